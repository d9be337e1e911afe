//! The documented example configuration is complete and matches the defaults.

use std::path::Path;

use psirt_portal::Config;
use psirt_testkit::config_example;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/portal.example.toml")
}

#[test]
fn the_example_file_loads_to_exactly_the_defaults() {
    config_example::assert_states_the_defaults::<Config, _>(&example(), |path| {
        psirt_kit::config::load(Some(path))
    });
}

#[test]
fn every_key_is_documented_in_the_example_file() {
    config_example::assert_documents_every_key::<Config>(&example(), &["otel.endpoint"]);
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
fn environment_overrides_the_file_and_a_shared_environment_does_not_break_it() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("PSIRT_PORTAL__SECURITY_TXT__CONTACTS", r#"["mailto:psirt@example.com"]"#);
        jail.set_env("PSIRT_PORTAL__PUBLIC_URL", "https://psirt.example.com/");
        // Another service's settings in the same environment (`just up` exports them).
        jail.set_env("PSIRT_AUTH__MODE", "none");
        let loaded: Config = psirt_kit::config::load(Some(&example())).expect("loads");
        assert_eq!(loaded.portal.security_txt.contacts, vec!["mailto:psirt@example.com"]);
        assert_eq!(loaded.portal.public_url, "https://psirt.example.com/");
        psirt_portal::Site::new(&loaded.portal).expect("a valid site");
        // A key the portal's section does not know is refused.
        jail.set_env("PSIRT_PORTAL__SECURITY_TXT__CONTACT", "mailto:typo@example.com");
        let typo = psirt_kit::config::load::<Config>(Some(&example()));
        assert!(typo.is_err(), "a misspelt key is refused");
        Ok(())
    });
}
