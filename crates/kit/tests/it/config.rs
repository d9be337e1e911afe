//! Loading order (defaults < file < env), explicit-file errors and validation reports.

// `figment::Jail` closures must return `figment::Error`, which is large.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Jail;
use figment::providers::{Format as _, Toml};
use psirt_kit::config::{
    self, AdminConfig, AuthConfig, AuthMode, ConfigError, DatabaseConfig, GrpcConfig, LogConfig, LogFormat,
    NatsConfig, OtelConfig, Problems, StorageKind,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// What a service's config struct looks like: the common sections plus its own.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ServiceConfig {
    grpc: GrpcConfig,
    admin: AdminConfig,
    log: LogConfig,
    otel: OtelConfig,
    auth: AuthConfig,
    database: DatabaseConfig,
    nats: NatsConfig,
    intake: IntakeSection,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
struct IntakeSection {
    max_reports_per_hour: u32,
}

impl Default for IntakeSection {
    fn default() -> Self {
        Self { max_reports_per_hour: 100 }
    }
}

impl ServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Problems::new();
        problems.merge(self.grpc.validate());
        problems.merge(self.admin.validate());
        problems.merge(self.log.validate());
        problems.merge(self.otel.validate());
        problems.merge(self.auth.validate());
        problems.merge(self.database.validate());
        problems.merge(self.nats.validate());
        problems.check(
            self.intake.max_reports_per_hour > 0,
            "intake.max_reports_per_hour",
            "must be greater than 0",
        );
        problems.finish()
    }
}

fn to_figment(err: impl std::fmt::Display) -> figment::Error {
    figment::Error::from(err.to_string())
}

#[test]
fn defaults_then_file_then_env() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "service.toml",
            r#"
            [grpc]
            listen = "127.0.0.1:6000"
            request_timeout = "45s"

            [otel]
            sample_ratio = 0.5
            endpoint = "http://from-file:4317"

            [nats.stream]
            duplicate_window = "5m"
            storage = "memory"

            [intake]
            max_reports_per_hour = 7
            "#,
        )?;
        jail.set_env("PSIRT_GRPC__LISTEN", "127.0.0.1:7000");
        jail.set_env("PSIRT_OTEL__ENDPOINT", "http://collector:4317");
        jail.set_env("PSIRT_DATABASE__URL", "postgres://psirt:pw@db/psirt");
        // Looks like a number to figment's env parser; must still arrive as text.
        jail.set_env("PSIRT_AUTH__HS256_SECRET", "1234567890123456789012345678901234567890");
        jail.set_env("PSIRT_LOG__FORMAT", "pretty");
        jail.set_env("PSIRT_AUTH__ISSUER", "https://idp.example.com/realms/psirt");
        jail.set_env("PSIRT_AUTH__AUDIENCE", "psirt");

        let cfg: ServiceConfig = config::load(Some(Path::new("service.toml"))).map_err(to_figment)?;

        // env beats file
        assert_eq!(cfg.grpc.listen, "127.0.0.1:7000".parse::<SocketAddr>().expect("addr"));
        assert_eq!(cfg.otel.endpoint.as_deref(), Some("http://collector:4317"));
        // file beats defaults
        assert_eq!(cfg.grpc.request_timeout, Duration::from_secs(45));
        assert_eq!(cfg.otel.sample_ratio, 0.5);
        assert_eq!(cfg.nats.stream.duplicate_window, Duration::from_secs(300));
        assert_eq!(cfg.nats.stream.storage, StorageKind::Memory);
        assert_eq!(cfg.intake.max_reports_per_hour, 7);
        // untouched defaults
        assert_eq!(cfg.grpc.max_message_bytes, 4 * 1024 * 1024);
        assert_eq!(cfg.nats.stream.name, "PSIRT_EVENTS");
        assert_eq!(cfg.nats.stream.replicas, 1);
        assert_eq!(cfg.admin.listen.port(), 9090);
        assert_eq!(cfg.auth.mode, AuthMode::Jwt);
        assert_eq!(cfg.auth.roles_claim, "roles");
        assert_eq!(cfg.auth.jwks_refresh, Duration::from_secs(300));
        assert_eq!(cfg.database.max_connections, 10);
        // env-only values
        assert_eq!(cfg.log.format, LogFormat::Pretty);
        assert!(cfg.database.is_postgres());
        assert_eq!(cfg.database.redacted_url(), "postgres://***@db/psirt");
        assert_eq!(
            cfg.auth.hs256_secret.as_ref().map(|s| s.expose_secret().to_owned()),
            Some("1234567890123456789012345678901234567890".to_owned())
        );
        assert!(!format!("{cfg:?}").contains("1234567890123456789012345678901234567890"));
        assert!(!format!("{cfg:?}").contains(":pw@"));
        cfg.validate().map_err(to_figment)?;
        Ok(())
    });
}

#[test]
fn defaults_without_file_or_env() {
    Jail::expect_with(|_jail| {
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        assert_eq!(cfg.grpc.listen.port(), 50051);
        assert_eq!(cfg.otel.endpoint, None);
        assert!(cfg.auth.hs256_secret.is_none());
        assert_eq!(cfg.database.url.expose_secret(), config::DEFAULT_DATABASE_URL);
        assert_eq!(cfg.nats.stream.duplicate_window, Duration::from_secs(120));
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = config::load::<ServiceConfig>(Some(Path::new("/nonexistent/psirt.toml")))
        .expect_err("missing file must fail");
    assert!(matches!(err, ConfigError::MissingFile(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/psirt.toml"));
}

#[test]
fn bad_values_name_their_key() {
    Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[grpc]\nrequest_timeout = \"ten seconds\"\n")?;
        let err =
            config::load::<ServiceConfig>(Some(Path::new("bad.toml"))).expect_err("bad duration must fail");
        let text = err.to_string();
        assert!(text.contains("request_timeout"), "{text}");
        Ok(())
    });
}

#[test]
fn validation_lists_every_problem() {
    Jail::expect_with(|jail| {
        jail.set_env("PSIRT_GRPC__MAX_MESSAGE_BYTES", "10");
        jail.set_env("PSIRT_OTEL__SAMPLE_RATIO", "2.5");
        jail.set_env("PSIRT_DATABASE__URL", "mysql://x");
        jail.set_env("PSIRT_INTAKE__MAX_REPORTS_PER_HOUR", "0");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        let err = cfg.validate().expect_err("invalid config");
        let problems = err.problems();
        let text = err.to_string();
        for key in
            ["grpc.max_message_bytes", "otel.sample_ratio", "database.url", "intake.max_reports_per_hour"]
        {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key} missing in {text}");
        }
        // auth mode jwt without a key source names the keys to set
        let auth = problems.iter().find(|p| p.starts_with("auth")).expect("auth problem");
        for key in ["auth.jwks_url", "auth.jwks_file", "auth.hs256_secret_file", "PSIRT_AUTH__HS256_SECRET"] {
            assert!(auth.contains(key), "{auth}");
        }
        // and without the iss and aud every token must carry
        for key in ["auth.issuer: ", "auth.audience: "] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{key} missing in {text}");
        }
        assert_eq!(problems.len(), 7, "{text}");
        Ok(())
    });
}

#[test]
fn auth_none_is_explicit_and_short_secrets_are_rejected() {
    Jail::expect_with(|jail| {
        jail.set_env("PSIRT_AUTH__MODE", "none");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        assert_eq!(cfg.auth.mode, AuthMode::None);
        assert!(cfg.auth.validate().is_ok());

        jail.set_env("PSIRT_AUTH__MODE", "jwt");
        jail.set_env("PSIRT_AUTH__HS256_SECRET", "short");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        let err = cfg.auth.validate().expect_err("short secret");
        assert!(err.to_string().contains("auth.hs256_secret"), "{err}");
        Ok(())
    });
}

#[test]
fn jwt_mode_requires_issuer_and_audience_naming_each_key() {
    Jail::expect_with(|jail| {
        jail.set_env("PSIRT_AUTH__HS256_SECRET", "0123456789abcdef0123456789abcdef");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        let err = cfg.auth.validate().expect_err("no issuer, no audience");
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{err}");
        assert!(problems[0].starts_with("auth.issuer: required"), "{err}");
        assert!(problems[1].starts_with("auth.audience: required"), "{err}");

        jail.set_env("PSIRT_AUTH__ISSUER", "https://idp.example.com/realms/psirt");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        let err = cfg.auth.validate().expect_err("no audience");
        assert_eq!(err.problems().len(), 1, "{err}");
        assert!(err.problems()[0].starts_with("auth.audience: "), "{err}");

        jail.set_env("PSIRT_AUTH__AUDIENCE", "psirt");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        cfg.auth.validate().map_err(to_figment)?;

        // Not needed with authentication off.
        jail.set_env("PSIRT_AUTH__MODE", "none");
        jail.set_env("PSIRT_AUTH__ISSUER", "");
        jail.set_env("PSIRT_AUTH__AUDIENCE", "");
        let cfg: ServiceConfig = config::load(None).map_err(to_figment)?;
        cfg.auth.validate().map_err(to_figment)?;
        Ok(())
    });
}

/// The documented example must stay in sync with the code's defaults.
#[test]
fn example_file_matches_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let from_file: ServiceConfig =
        figment::Figment::new().merge(Toml::file_exact(&example)).extract().expect("example parses");
    let defaults = ServiceConfig::default();
    assert_eq!(from_file.grpc, defaults.grpc);
    assert_eq!(from_file.admin, defaults.admin);
    assert_eq!(from_file.log, defaults.log);
    assert_eq!(from_file.otel, defaults.otel);
    assert_eq!(format!("{:?}", from_file.auth), format!("{:?}", defaults.auth));
    assert_eq!(format!("{:?}", from_file.database), format!("{:?}", defaults.database));
    assert_eq!(format!("{:?}", from_file.nats), format!("{:?}", defaults.nats));
}
