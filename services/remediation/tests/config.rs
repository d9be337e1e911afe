//! The documented example configuration is complete and matches the defaults.

use std::path::Path;

use psirt_remediation::Config;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/remediation.example.toml")
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
        "config/remediation.example.toml states the defaults"
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
        assert!(documented, "{key} is not in config/remediation.example.toml");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
fn environment_overrides_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("PSIRT_REMEDIATION__DEFAULT_PAGE_SIZE", "7");
        jail.set_env("PSIRT_REMEDIATION__POLICY__CRITICAL", "3d");
        jail.set_env("PSIRT_ADVISORY__PUBLISHER_NAME", "ACME PSIRT");
        let loaded: Config = psirt_kit::config::load(Some(&example())).expect("loads");
        assert_eq!(loaded.remediation.default_page_size, 7);
        assert_eq!(loaded.remediation.policy.critical.to_string(), "3d");
        assert_eq!(
            loaded.remediation.policy.high,
            psirt_domain::RemediationPolicy::default().high,
            "other windows keep their defaults"
        );
        assert_eq!(loaded.advisory.publisher_name, "ACME PSIRT");
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
fn a_policy_giving_critical_more_time_than_high_is_refused() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    config.validate().expect("the defaults are valid");
    config.remediation.policy.critical = "60d".parse().expect("duration");
    let err = config.validate().expect_err("critical slower than high");
    assert!(err.to_string().contains("remediation.policy"), "{err}");
}

#[test]
fn a_half_configured_cna_is_refused() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    config.advisory.cna_org_id = "b3476cb9-2e3d-41a6-98d0-0f47421a65b6".to_owned();
    let err = config.validate().expect_err("org id without short name");
    assert!(err.to_string().contains("advisory.cna_short_name"), "{err}");
}
