//! The documented example configuration is complete and matches the defaults.

use psirt_kit::service::ServiceConfig as _;
use std::path::Path;

use psirt_remediation::Config;
use psirt_testkit::config_example;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/remediation.example.toml")
}

#[test]
fn the_example_file_loads_to_exactly_the_defaults() {
    config_example::assert_states_the_defaults::<Config, _>(&example(), |path| {
        psirt_kit::config::load(Some(path))
    });
}

#[test]
fn every_key_is_documented_in_the_example_file() {
    config_example::assert_documents_every_key::<Config>(
        &example(),
        config_example::COMMON_UNSERIALIZED_KEYS,
    );
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

/// The test-only keys of the advisory crate's tests (made with GnuPG; never use them elsewhere).
fn test_key(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/advisory/tests/testdata/openpgp").join(name)
}

#[test]
fn the_csaf_signing_key_is_checked_at_start_and_errors_name_the_config_key() {
    let mut config = Config::default();
    config.auth.mode = psirt_kit::config::AuthMode::None;
    let problem = |config: &Config| config.validate().expect_err("refused").to_string();

    config.advisory.signing_key_file = Some(test_key("subkey-signing.sec.asc"));
    config.advisory.signing_key_passphrase_file = Some(test_key("subkey-signing.passphrase"));
    config.validate().expect("a usable key");
    let key = config.advisory.signing_key().expect("loads").expect("configured");
    assert_eq!(key.fingerprint(), "C46EC6F4539A4D4271FC40D21965EF4D0521075B");

    // Wrong passphrase: the passphrase file is at fault.
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").expect("write");
    config.advisory.signing_key_passphrase_file = Some(wrong);
    let err = problem(&config);
    assert!(err.contains("advisory.signing_key_passphrase_file"), "{err}");

    // Expired, unreadable, not a key: the key file is at fault.
    config.advisory.signing_key_passphrase_file = None;
    config.advisory.signing_key_file = Some(test_key("expired.sec.asc"));
    let err = problem(&config);
    assert!(err.contains("advisory.signing_key_file") && err.contains("expired"), "{err}");
    config.advisory.signing_key_file = Some(dir.path().join("missing.asc"));
    let err = problem(&config);
    assert!(err.contains("advisory.signing_key_file"), "{err}");
    let not_a_key = dir.path().join("not-a-key.asc");
    std::fs::write(&not_a_key, "hello\n").expect("write");
    config.advisory.signing_key_file = Some(not_a_key);
    let err = problem(&config);
    assert!(err.contains("advisory.signing_key_file"), "{err}");

    // A passphrase without a key is a mistake, not ignored.
    config.advisory.signing_key_file = None;
    config.advisory.signing_key_passphrase_file = Some(test_key("subkey-signing.passphrase"));
    let err = problem(&config);
    assert!(err.contains("advisory.signing_key_passphrase_file"), "{err}");
}
