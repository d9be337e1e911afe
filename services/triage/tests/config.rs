//! The documented example configuration is complete and matches the defaults.

use psirt_kit::service::ServiceConfig as _;
use std::path::Path;

use psirt_testkit::config_example;
use psirt_triage::Config;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/triage.example.toml")
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
