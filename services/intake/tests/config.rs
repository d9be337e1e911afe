//! The documented example configuration is complete and matches the defaults.

use psirt_kit::service::ServiceConfig as _;
use std::path::Path;

use psirt_intake::Config;
use psirt_testkit::config_example;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/intake.example.toml")
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
        jail.set_env("PSIRT_INTAKE__DUPLICATE_WINDOW_DAYS", "7");
        jail.set_env("PSIRT_NATS__STREAM__REPLICAS", "3");
        let loaded: Config = psirt_kit::config::load(Some(&example())).expect("loads");
        assert_eq!(loaded.intake.duplicate_window_days, 7);
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

/// Runs the real binary with only the given `PSIRT_*` settings; (exit success, stderr).
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_psirt-intake"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PSIRT_") {
            command.env_remove(key);
        }
    }
    let dir = tempfile_dir();
    command.current_dir(&dir).args(args).envs(env.iter().copied()).stdin(std::process::Stdio::null());
    let output = command.output().expect("run psirt-intake");
    let _ = std::fs::remove_dir_all(&dir);
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("psirt-intake-config-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_binary_refuses_to_start_without_authentication_on_a_non_loopback_listener() {
    // Refused before anything is connected or bound (no NATS, no database here).
    for (grpc, admin, key, addr) in [
        ("0.0.0.0:50051", "127.0.0.1:9101", "grpc.listen", "0.0.0.0:50051"),
        ("127.0.0.1:50051", "[::]:9101", "admin.listen", "[::]:9101"),
        ("192.168.10.20:50051", "localhost:9101", "grpc.listen", "192.168.10.20:50051"),
    ] {
        let env =
            [("PSIRT_AUTH__MODE", "none"), ("PSIRT_GRPC__LISTEN", grpc), ("PSIRT_ADMIN__LISTEN", admin)];
        let (ok, stderr) = run_binary(&["serve"], &env);
        assert!(!ok, "started with auth off on {grpc} / {admin}: {stderr}");
        assert!(stderr.contains(&format!("{key}: {addr} is not a loopback address")), "{stderr}");
        assert!(stderr.contains("auth.mode"), "{stderr}");
    }
    // The same settings on loopback pass validation (`config` validates, prints and exits).
    let env = [
        ("PSIRT_AUTH__MODE", "none"),
        ("PSIRT_GRPC__LISTEN", "localhost:50051"),
        ("PSIRT_ADMIN__LISTEN", "[::1]:9101"),
    ];
    let (ok, stderr) = run_binary(&["config"], &env);
    assert!(ok, "{stderr}");
    let (ok, stderr) =
        run_binary(&["config"], &[("PSIRT_AUTH__MODE", "none"), ("PSIRT_GRPC__LISTEN", "0.0.0.0:1")]);
    assert!(!ok && stderr.contains("grpc.listen"), "{stderr}");
}
