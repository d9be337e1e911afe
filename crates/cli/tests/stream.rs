//! `psirtctl admin stream plan|apply` and `psirtctl admin nats-identities`
//! against a real nats-server with the shipped identities.

use std::process::{Command, Output};
use std::time::Duration;

use psirt_testkit::{NatsServer, Security};

fn psirtctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psirtctl")).args(args).output().expect("psirtctl runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn plan_shows_and_apply_makes_the_change_with_the_admin_identity_only() -> anyhow::Result<()> {
    let security = Security::identities()?;
    let server = NatsServer::start_secured(security.clone()).await?;
    let url = server.url();
    let admin = security.identities.seed_file("admin");
    let admin = admin.to_str().expect("utf-8 path");
    let base = ["admin", "stream"];
    let with = |verb: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        args.push(verb.to_owned());
        args.extend([
            "--nats-url".to_owned(),
            url.clone(),
            "--nats-nkey-seed-file".to_owned(),
            admin.to_owned(),
        ]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |args: Vec<String>| psirtctl(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let out = run(with("plan", &[]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).trim(), "stream PSIRT_EVENTS: missing, apply creates it");
    let js = async_nats::jetstream::new(server.connect().await?);
    assert!(js.get_stream("PSIRT_EVENTS").await.is_err(), "plan changed nothing");

    let out = run(with("apply", &[]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).trim(), "stream PSIRT_EVENTS: created");
    let out = run(with("plan", &[]));
    assert_eq!(text(&out).trim(), "stream PSIRT_EVENTS: as configured, nothing to change");

    let change = ["--max-age-secs", "86400", "--allow-expiry", "--duplicate-window-secs", "60"];
    let out = run(with("plan", &change));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).trim(),
        "stream PSIRT_EVENTS: apply changes\n  max_age: stream has 0s (forever), wanted 86400s\n  \
         duplicate_window: stream has 120s, wanted 60s"
    );
    let info = js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.max_age, Duration::ZERO, "plan changed nothing");

    // Expiry must be meant: a usage error, nothing changed.
    let out = run(with("apply", &["--max-age-secs", "86400"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("allow_expiry"), "{}", text(&out));

    // A service's identity may not apply anything.
    let intake = security.identities.seed_file("intake");
    let mut args = vec!["admin", "stream", "apply", "--nats-url", &url, "--nats-nkey-seed-file"];
    args.push(intake.to_str().expect("utf-8 path"));
    args.extend(change);
    let out = psirtctl(&args);
    assert!(!out.status.success(), "{}", text(&out));

    let out = run(with("apply", &change));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("stream PSIRT_EVENTS: changed\n  max_age"), "{}", text(&out));
    let info = js.get_stream("PSIRT_EVENTS").await?.info().await?.clone();
    assert_eq!(info.config.max_age, Duration::from_secs(86400));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(60));
    Ok(())
}

#[test]
fn nats_identities_makes_seeds_once_and_lists_the_public_keys() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ids");
    let path = path.to_str().expect("utf-8 path");
    let first = psirtctl(&["admin", "nats-identities", path]);
    assert!(first.status.success(), "{}", text(&first));
    let env = std::fs::read_to_string(dir.path().join("ids/nats-identities.env"))?;
    for name in ["ADMIN", "INTAKE", "TRIAGE", "REMEDIATION", "NOTIFICATION"] {
        let line =
            env.lines().find(|l| l.starts_with(&format!("PSIRT_NATS_{name}_NKEY=U"))).expect("a key line");
        assert_eq!(line.len(), format!("PSIRT_NATS_{name}_NKEY=").len() + 56, "{line}");
    }
    let seed = std::fs::read_to_string(dir.path().join("ids/intake.nk"))?;
    assert!(seed.starts_with("SU"), "a user seed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("ids/intake.nk"))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Again: the same keys (seeds are kept, never replaced).
    let second = psirtctl(&["admin", "nats-identities", path]);
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout), env);
    assert_eq!(std::fs::read_to_string(dir.path().join("ids/intake.nk"))?, seed);
    Ok(())
}
