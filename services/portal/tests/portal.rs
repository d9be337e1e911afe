//! The portal as a researcher's client and a scanner see it: a real HTTP
//! server on a free port, read with a real HTTP client.

use std::path::Path;
use std::time::Duration;

use pgp::composed::{ArmorOptions, KeyType, SecretKeyParamsBuilder};
use psirt_portal::{Bound, Config, PortalSettings, Site};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A fresh ed25519 key (secret), made with the pgp crate.
fn secret_key() -> pgp::composed::SignedSecretKey {
    SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("PSIRT <psirt@example.com>".into())
        .build()
        .expect("params")
        .generate(rand08::thread_rng())
        .expect("generate")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// Starts the portal on free ports; answers its addresses and the shutdown.
async fn start(
    portal: PortalSettings,
) -> (Bound, psirt_kit::Shutdown, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let mut config = Config {
        portal: PortalSettings { listen: "127.0.0.1:0".parse().expect("addr"), ..portal },
        ..Config::default()
    };
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    let shutdown = psirt_kit::Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let metrics = psirt_kit::MetricsHandle::new(prometheus_registry());
    let server = tokio::spawn(psirt_portal::serve(config, shutdown.clone(), None, metrics, move |bound| {
        let _ = tx.send(bound);
    }));
    let bound =
        tokio::time::timeout(Duration::from_secs(10), rx).await.expect("bound in time").expect("bound");
    (bound, shutdown, server)
}

/// Stops the portal and checks it ended cleanly, in time.
async fn stop(shutdown: psirt_kit::Shutdown, server: tokio::task::JoinHandle<anyhow::Result<()>>) {
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean stop");
}

fn prometheus_registry() -> prometheus::Registry {
    prometheus::Registry::new()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn field<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    text.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
}

#[tokio::test]
async fn security_txt_is_a_valid_rfc_9116_file_that_never_lapses_and_the_key_it_names_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = secret_key().to_public_key().to_armored_string(ArmorOptions::default()).expect("armor");
    let mut portal = PortalSettings::default();
    portal.security_txt.contacts = vec!["mailto:psirt@example.com".to_owned()];
    portal.security_txt.openpgp_key_file = write(dir.path(), "psirt.asc", &public);
    portal.security_txt.policy = "https://example.com/disclosure-policy".to_owned();
    portal.security_txt.lifetime_days = 90;
    portal.public_url = "http://127.0.0.1:8080".to_owned();
    let (bound, shutdown, server) = start(portal).await;
    let base = format!("http://{}", bound.http);

    let before = OffsetDateTime::now_utc();
    let response = client().get(format!("{base}/.well-known/security.txt")).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], psirt_portal::headers::CONTENT_SECURITY_POLICY);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers.get("strict-transport-security").is_none(), "no HSTS on a loopback http URL");
    let text = response.text().await.expect("body");

    // RFC 9116 §2.5: Contact at least once, Expires exactly once, in the
    // future (less than a year ahead), Canonical naming where it is served.
    assert_eq!(field(&text, "Contact"), vec!["mailto:psirt@example.com"]);
    let expires = field(&text, "Expires");
    assert_eq!(expires.len(), 1, "{text}");
    let expires = OffsetDateTime::parse(expires[0], &Rfc3339).expect("RFC 3339 date");
    assert!(expires > before + time::Duration::days(89), "{expires}");
    assert!(expires < OffsetDateTime::now_utc() + time::Duration::days(91), "{expires}");
    assert_eq!(field(&text, "Canonical"), vec!["http://127.0.0.1:8080/.well-known/security.txt"]);
    assert_eq!(field(&text, "Encryption"), vec!["http://127.0.0.1:8080/pgp-key.txt"]);
    assert_eq!(field(&text, "Policy"), vec!["https://example.com/disclosure-policy"]);
    assert_eq!(field(&text, "Preferred-Languages"), vec!["en"]);
    for line in text.lines() {
        assert!(line.is_empty() || line.starts_with('#') || line.contains(": "), "not a field: {line:?}");
    }

    // The key Encryption names is the configured public key.
    let key = client().get(format!("{base}/pgp-key.txt")).send().await.expect("get key");
    assert_eq!(key.status(), 200);
    assert_eq!(key.headers()["content-type"], "application/pgp-keys; charset=utf-8");
    assert_eq!(key.headers()["x-content-type-options"], "nosniff");
    assert_eq!(key.text().await.expect("key"), public);

    // The legacy location points to the well-known one; anything else is 404
    // with the same headers.
    let legacy = client().get(format!("{base}/security.txt")).send().await.expect("get legacy");
    assert_eq!(legacy.status(), 301);
    assert_eq!(legacy.headers()["location"], "/.well-known/security.txt");
    let missing = client().get(format!("{base}/cases")).send().await.expect("get missing");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-security-policy"], psirt_portal::headers::CONTENT_SECURITY_POLICY);

    // The admin port answers like every service's.
    let ready = client().get(format!("http://{}/readyz", bound.admin)).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);

    stop(shutdown, server).await;
}

#[tokio::test]
async fn an_https_public_url_adds_hsts_and_without_a_key_there_is_no_key_page() {
    let mut portal = PortalSettings::default();
    portal.security_txt.contacts =
        vec!["https://psirt.example.com/report".to_owned(), "tel:+41-44-000-00-00".to_owned()];
    portal.public_url = "https://psirt.example.com/".to_owned();
    let (bound, shutdown, server) = start(portal).await;
    let base = format!("http://{}", bound.http);
    let response = client().get(format!("{base}/.well-known/security.txt")).send().await.expect("get");
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    let text = response.text().await.expect("body");
    assert_eq!(field(&text, "Contact"), vec!["https://psirt.example.com/report", "tel:+41-44-000-00-00"]);
    assert!(field(&text, "Encryption").is_empty(), "{text}");
    assert_eq!(field(&text, "Canonical"), vec!["https://psirt.example.com/.well-known/security.txt"]);
    let key = client().get(format!("{base}/pgp-key.txt")).send().await.expect("get key");
    assert_eq!(key.status(), 404);
    stop(shutdown, server).await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_cannot_dodge_it_with_a_forwarded_header() {
    let mut portal = PortalSettings::default();
    portal.security_txt.contacts = vec!["mailto:psirt@example.com".to_owned()];
    portal.rate = psirt_kit::quota::Rate::new(60, 2);
    let (bound, shutdown, server) = start(portal).await;
    let url = format!("http://{}/.well-known/security.txt", bound.http);
    for _ in 0..2 {
        assert_eq!(client().get(&url).send().await.expect("get").status(), 200);
    }
    // The loopback peer is no trusted proxy: its X-Forwarded-For changes nothing.
    let refused = client().get(&url).header("x-forwarded-for", "198.51.100.1").send().await.expect("get");
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(refused.headers()["content-security-policy"], psirt_portal::headers::CONTENT_SECURITY_POLICY);
    stop(shutdown, server).await;
}

#[test]
fn a_secret_key_a_broken_key_and_a_public_http_url_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_key().to_armored_string(ArmorOptions::default()).expect("armor");
    let mut portal = PortalSettings::default();
    portal.security_txt.contacts = vec!["mailto:psirt@example.com".to_owned()];
    portal.security_txt.openpgp_key_file = write(dir.path(), "secret.asc", &secret);
    let problems = Site::new(&portal).expect_err("a secret key is refused").join("\n");
    assert!(problems.contains("holds a secret key"), "{problems}");

    portal.security_txt.openpgp_key_file =
        write(dir.path(), "broken.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n");
    let problems = Site::new(&portal).expect_err("a broken key is refused").join("\n");
    assert!(problems.contains("is not an armored OpenPGP public key"), "{problems}");

    portal.security_txt.openpgp_key_file = dir.path().join("absent.asc").display().to_string();
    assert!(Site::new(&portal).is_err(), "a missing key file is refused");

    portal.security_txt.openpgp_key_file = String::new();
    let with_contact = portal.clone();
    let portal =
        PortalSettings { public_url: "http://psirt.example.com/".to_owned(), ..with_contact.clone() };
    let problems = Site::new(&portal).expect_err("plain http in public is refused").join("\n");
    assert!(problems.contains("must be served over https"), "{problems}");
    let no_limit = PortalSettings {
        rate: psirt_kit::quota::Rate::new(0, 1),
        trusted_proxies: vec!["10.0.0.0/8".to_owned(), "the ingress".to_owned()],
        ..with_contact.clone()
    };
    let problems = Site::new(&no_limit).expect_err("no limit, a bad network").join("\n");
    assert!(problems.contains("portal.rate.per_minute: the public pages need a limit"), "{problems}");
    assert!(problems.contains("\"the ingress\" is not a CIDR network"), "{problems}");
    for loopback in ["http://127.0.0.1:8080/", "http://localhost:8080/", "http://[::1]:8080/"] {
        let portal = PortalSettings { public_url: loopback.to_owned(), ..with_contact.clone() };
        assert!(Site::new(&portal).is_ok(), "{loopback} is a laptop's portal");
    }
}
