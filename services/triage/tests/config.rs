//! The documented example configuration is complete and matches the defaults.

use std::path::Path;

use psirt_triage::Config;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/triage.example.toml")
}

fn leaf_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaf_keys(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn the_example_file_loads_to_exactly_the_defaults() {
    let loaded: Config = psirt_kit::config::load(Some(&example())).expect("example loads");
    let defaults = Config::default();
    assert_eq!(
        serde_json::to_value(&loaded).expect("json"),
        serde_json::to_value(&defaults).expect("json"),
        "config/triage.example.toml states the defaults"
    );
}

#[test]
fn every_key_is_documented_in_the_example_file() {
    let text = std::fs::read_to_string(example()).expect("example exists");
    let mut keys = Vec::new();
    leaf_keys("", &serde_json::to_value(Config::default()).expect("json"), &mut keys);
    // secrets and optional keys do not serialize; they must be in the file too
    keys.extend(
        [
            "auth.hs256_secret",
            "auth.jwks_url",
            "auth.jwks_file",
            "nats.token",
            "nats.credentials_file",
            "otel.endpoint",
        ]
        .map(str::to_owned),
    );
    for key in keys {
        let (section, leaf) = key.rsplit_once('.').expect("sectioned key");
        let header = format!("[{section}]");
        let start = text.find(&header).unwrap_or_else(|| panic!("section {header} missing"));
        let rest = &text[start + header.len()..];
        let end = rest.find("\n[").unwrap_or(rest.len());
        let block = &rest[..end];
        let documented = block.lines().any(|line| {
            let line = line.trim_start_matches('#').trim();
            line.starts_with(&format!("{leaf} =")) || line.starts_with(&format!("{leaf}="))
        });
        assert!(documented, "{key} is not in config/triage.example.toml");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("PSIRT_TRIAGE__DEFAULT_PAGE_SIZE", "7");
        jail.set_env("PSIRT_TRIAGE__SLA__CRITICAL__TRIAGE", "2d");
        jail.set_env("PSIRT_NATS__STREAM__REPLICAS", "3");
        let loaded: Config = psirt_kit::config::load(Some(&example())).expect("loads");
        assert_eq!(loaded.triage.default_page_size, 7);
        assert_eq!(loaded.triage.sla.critical.triage.to_string(), "2d");
        assert_eq!(
            loaded.triage.sla.high,
            psirt_domain::SlaPolicy::default().high,
            "other clocks keep their defaults"
        );
        assert_eq!(loaded.nats.stream.replicas, 3);
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
fn an_sla_policy_giving_critical_more_time_than_high_is_refused() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    config.triage.sla.critical.triage = "10d".parse().expect("duration");
    let err = config.validate().expect_err("critical slower than high");
    assert!(err.to_string().contains("triage.sla.critical.triage"), "{err}");
}
