//! The documented example configuration is complete and matches the defaults.

use psirt_kit::service::ServiceConfig as _;
use std::path::Path;

use psirt_notification::Config;
use psirt_testkit::config_example;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/notification.example.toml")
}

#[test]
fn the_example_file_loads_to_exactly_the_defaults() {
    config_example::assert_states_the_defaults::<Config, _>(&example(), |path| {
        psirt_kit::config::load(Some(path))
    });
}

#[test]
fn every_key_is_documented_in_the_example_file() {
    let mut keys = config_example::COMMON_UNSERIALIZED_KEYS.to_vec();
    keys.push("email.credentials_secret");
    config_example::assert_documents_every_key::<Config>(&example(), &keys);
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("PSIRT_DELIVERY__MAX_ATTEMPTS", "5");
        jail.set_env("PSIRT_WEBHOOK__TIMEOUT", "3s");
        jail.set_env("PSIRT_SECRETS__LEGAL__ENV", "LEGAL_HOOK_KEY");
        let loaded: Config = psirt_kit::config::load(Some(&example())).expect("loads");
        assert_eq!(loaded.delivery.max_attempts, 5);
        assert_eq!(loaded.webhook.timeout, std::time::Duration::from_secs(3));
        assert_eq!(loaded.secrets["legal"].env.as_deref(), Some("LEGAL_HOOK_KEY"));
        assert_eq!(loaded.delivery.initial_backoff, Config::default().delivery.initial_backoff);
        Ok(())
    });
}

#[test]
fn jwt_mode_without_a_key_is_refused_with_a_clear_message() {
    let config = Config::default();
    let err = config.validate().expect_err("jwt without key");
    assert!(err.to_string().contains("auth"), "{err}");
}

#[test]
fn bad_delivery_webhook_and_secret_settings_are_each_named() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    config.validate().expect("the defaults are valid");
    config.delivery.max_attempts = 0;
    config.delivery.max_backoff = std::time::Duration::from_millis(1);
    config.webhook.max_concurrency_per_endpoint = 0;
    config.secrets.insert("bad name".to_owned(), psirt_notification::SecretSource::default());
    let err = config.validate().expect_err("invalid").to_string();
    for key in [
        "delivery.max_attempts",
        "delivery.max_backoff",
        "webhook.max_concurrency_per_endpoint",
        "secrets.bad name",
    ] {
        assert!(err.contains(key), "{key} missing in {err}");
    }
}

#[test]
fn secrets_resolve_from_files_and_refuse_short_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good");
    let short = dir.path().join("short");
    std::fs::write(&good, "0123456789abcdef0123456789abcdef\n").expect("write");
    std::fs::write(&short, "tiny").expect("write");
    let mut sources = std::collections::BTreeMap::new();
    sources.insert("good".to_owned(), psirt_notification::SecretSource { env: None, file: Some(good) });
    let secrets = psirt_notification::Secrets::resolve(&sources).expect("resolves");
    let value = secrets.get("good").expect("the good secret");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&value), "0123456789abcdef0123456789abcdef");
    assert!(!format!("{secrets:?}").contains("0123"), "debug output never shows a secret");
    sources.insert("short".to_owned(), psirt_notification::SecretSource { env: None, file: Some(short) });
    assert!(psirt_notification::Secrets::resolve(&sources).is_err());
}

#[test]
fn upstream_tls_settings_need_an_https_triage_and_a_whole_client_identity() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    config.upstream.triage_url = "https://psirt-triage:50052".to_owned();
    config.upstream.tls_ca_file = Some("/etc/psirt/tls/ca.crt".into());
    config.upstream.tls_client_cert_file = Some("/etc/psirt/tls/client.crt".into());
    config.upstream.tls_client_key_file = Some("/etc/psirt/tls/client.key".into());
    config.validate().expect("TLS to an https triage is valid");

    config.upstream.tls_client_key_file = None;
    let err = config.validate().expect_err("a certificate without its key").to_string();
    assert!(err.contains("upstream.tls_client_cert_file"), "{err}");

    config.upstream.tls_client_cert_file = None;
    config.upstream.triage_url = "http://psirt-triage:50052".to_owned();
    let err = config.validate().expect_err("a CA for a plaintext URL").to_string();
    assert!(err.contains("upstream.tls_ca_file"), "{err}");
}
