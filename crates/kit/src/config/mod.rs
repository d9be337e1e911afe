//! Typed configuration shared by every service: one loader with a fixed precedence
//! (defaults < TOML file < `PSIRT_` env) and the common sections with their defaults and
//! validation. Each service composes its own config struct from these sections.
//!
//! Env keys: `PSIRT_` + the dotted key path upper-cased with `.` written as `__`, e.g.
//! `PSIRT_OTEL__ENDPOINT` sets `otel.endpoint`, `PSIRT_NATS__STREAM__NAME` sets
//! `nats.stream.name`. Durations are strings like `"500ms"`, `"30s"`, `"2m"`, `"1h30m"`,
//! `"7d"` (a bare integer means seconds), see [`duration`].

pub mod duration;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// Prefix of the environment variables read by [`load`].
pub const ENV_PREFIX: &str = "PSIRT_";
/// Separator between nested keys in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    /// Figment could not read a source or deserialize the merged values.
    #[error("failed to load configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// Values were read but do not make sense together; every problem is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// The individual problems of an [`ConfigError::Invalid`] (empty for other variants).
    pub fn problems(&self) -> &[String] {
        match self {
            ConfigError::Invalid(problems) => problems,
            ConfigError::MissingFile(_) | ConfigError::Load(_) => &[],
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        ConfigError::Load(Box::new(err))
    }
}

/// Loads `T` from, in increasing precedence: `T::default()`, the TOML `file` (an explicitly
/// given file that does not exist is an error), and `PSIRT_*` environment variables with
/// nested keys separated by `__`. Validation is left to the caller (`cfg.validate()`), so a
/// service can validate its own sections together with the common ones.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    figment::<T>(file)?.extract().map_err(ConfigError::from)
}

/// The [`Figment`] used by [`load`], for services that need to extract more than one value.
pub fn figment<T: Serialize + Default>(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.to_path_buf()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    Ok(figment.merge(Env::prefixed(ENV_PREFIX).split(ENV_SEPARATOR)))
}

/// Collects validation problems so that one run reports all of them.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with the config key `key`.
    pub fn push(&mut self, key: &str, message: impl fmt::Display) {
        self.0.push(format!("{key}: {message}"));
    }

    /// Records `message` for `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: impl fmt::Display) {
        if !ok {
            self.push(key, message);
        }
    }

    /// The page sizes of a service's list calls, `<section>.max_page_size`
    /// (1 to 10,000) and `<section>.default_page_size` (1 to the maximum).
    pub fn page_sizes(&mut self, section: &str, default: u32, max: u32) {
        self.check(
            (1..=10_000).contains(&max),
            &format!("{section}.max_page_size"),
            "must be between 1 and 10000",
        );
        self.check(
            default >= 1 && default <= max,
            &format!("{section}.default_page_size"),
            format!("must be between 1 and {section}.max_page_size"),
        );
    }

    /// How often a periodic pass runs, in ms: 100 ms to an hour.
    pub fn interval_ms(&mut self, key: &str, value: u64) {
        self.check((100..=3_600_000).contains(&value), key, "must be between 100 and 3600000");
    }

    /// Adds the problems of another section's `validate()`.
    pub fn merge(&mut self, result: Result<(), ConfigError>) {
        match result {
            Ok(()) => {}
            Err(ConfigError::Invalid(problems)) => self.0.extend(problems),
            Err(other) => self.0.push(other.to_string()),
        }
    }

    /// `Ok` when nothing was recorded, else [`ConfigError::Invalid`] with every problem.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(self.0)) }
    }
}

fn is_positive(d: Duration) -> bool {
    !d.is_zero()
}

// ---------------------------------------------------------------------------------------------
// grpc

/// The public gRPC listener (`[grpc]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcConfig {
    /// Address the gRPC server binds: an IP address and port, or `localhost:PORT` (bound as
    /// `127.0.0.1`). Default `"0.0.0.0:50051"`; port 0 picks a free port. With
    /// `auth.mode = "none"` only a loopback address is accepted.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Largest encoded request or response message in bytes. Default 4194304 (4 MiB).
    pub max_message_bytes: usize,
    /// Concurrent requests allowed per client connection; unset means unlimited. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_limit_per_connection: Option<usize>,
    /// Deadline the server applies to each request (a shorter client `grpc-timeout` wins).
    /// Default `"30s"`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// After a shutdown signal, how long in-flight calls (including open streams) may
    /// finish before the server closes its connections. Default `"10s"`.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// PEM certificate chain the server presents; with `tls_key_file` the server speaks
    /// only TLS. Default unset (plaintext, for a mesh or ingress that terminates TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) that sign client certificates: set, every client must present
    /// one (mutual TLS). Requires `tls_cert_file`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            max_message_bytes: 4 * 1024 * 1024,
            concurrency_limit_per_connection: None,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        }
    }
}

impl GrpcConfig {
    /// Checks limits and timeouts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        p.check(self.max_message_bytes >= 1024, "grpc.max_message_bytes", "must be at least 1024");
        p.check(
            self.concurrency_limit_per_connection != Some(0),
            "grpc.concurrency_limit_per_connection",
            "must be at least 1 (remove it for no limit)",
        );
        p.check(is_positive(self.request_timeout), "grpc.request_timeout", "must be greater than 0");
        p.check(
            self.tls_cert_file.is_some() == self.tls_key_file.is_some(),
            "grpc.tls_cert_file",
            "tls_cert_file and tls_key_file must be set together",
        );
        p.check(
            self.tls_client_ca_file.is_none() || self.tls_cert_file.is_some(),
            "grpc.tls_client_ca_file",
            "requires tls_cert_file and tls_key_file (mutual TLS is TLS first)",
        );
        p.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// admin

/// The internal admin HTTP listener: `/metrics`, `/healthz`, `/readyz` (`[admin]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Address the admin HTTP server binds, like `grpc.listen`. Default `"0.0.0.0:9090"`;
    /// port 0 picks a free port. With `auth.mode = "none"` only a loopback address is accepted.
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 9090)) }
    }
}

impl AdminConfig {
    /// Nothing can be wrong with a socket address that parsed; kept for symmetry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A listener address from the config: `IP:PORT` (`[v6]:PORT` for IPv6) or `localhost:PORT`,
/// which binds `127.0.0.1`. Other host names are refused: a listener binds an address, and a
/// name could resolve to anything.
fn listen_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen_addr(&text).map_err(serde::de::Error::custom)
}

/// Parses a listener address as [`GrpcConfig::listen`] and [`AdminConfig::listen`] take it.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match text.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| format!("{text:?} has no valid port")),
        _ => Err(format!(
            "{text:?} is not an IP address and port (or localhost:PORT); a listener binds an \
             address, e.g. 127.0.0.1:50051, [::1]:50051 or 0.0.0.0:50051"
        )),
    }
}

/// True when `addr` is a loopback address (`127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`):
/// reachable from this host only.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// With `auth.mode = "none"` every caller is an admin, so a service may only listen where
/// nobody but this host can reach it: every listener in `listeners` (config key, address)
/// must be a loopback address. Each one that is not is named with its key. In `jwt` mode
/// any address is fine.
pub fn check_unauthenticated_listeners(
    auth: &AuthConfig,
    listeners: &[(&str, SocketAddr)],
) -> Result<(), ConfigError> {
    let mut p = Problems::new();
    if auth.mode == AuthMode::None {
        for (key, addr) in listeners {
            p.check(
                is_loopback(addr),
                key,
                format!(
                    "{addr} is not a loopback address, and auth.mode = \"none\" (no \
                     authentication, every caller an admin) is only allowed on loopback: listen \
                     on 127.0.0.1, ::1 or localhost, or set auth.mode = \"jwt\""
                ),
            );
        }
    }
    p.finish()
}

// ---------------------------------------------------------------------------------------------
// log

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (production).
    #[default]
    Json,
    /// Human-readable multi-line output (development).
    Pretty,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives, e.g. `"info,psirt_kit=debug,sqlx=warn"`.
    /// Default `"info"`.
    pub level: String,
    /// `"json"` or `"pretty"`. Default `"json"`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".to_owned(), format: LogFormat::Json }
    }
}

impl LogConfig {
    /// Checks that `level` is a valid filter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            p.push("log.level", format!("invalid filter {:?}: {err}", self.level));
        }
        p.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// otel

/// OpenTelemetry export (`[otel]`). Prometheus `/metrics` works without any of this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OtelConfig {
    /// OTLP/gRPC collector endpoint, e.g. `"http://otel-collector:4317"`. When unset (the
    /// default) no traces are exported and metrics are only served on `/metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Overrides the `service.name` resource attribute. Default unset (the binary's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Fraction of new root traces that are sampled, 0.0 to 1.0; a sampled parent in the
    /// incoming trace context is always followed. Default 1.0.
    pub sample_ratio: f64,
    /// Timeout of one OTLP export call. Default `"10s"`.
    #[serde(with = "duration")]
    pub export_timeout: Duration,
    /// Interval between two OTLP metric exports. Default `"60s"`.
    #[serde(with = "duration")]
    pub metrics_interval: Duration,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            sample_ratio: 1.0,
            export_timeout: Duration::from_secs(10),
            metrics_interval: Duration::from_secs(60),
        }
    }
}

impl OtelConfig {
    /// Checks the endpoint scheme and the ratio range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        if let Some(endpoint) = &self.endpoint {
            p.check(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "otel.endpoint",
                format!("must start with http:// or https://, got {endpoint:?}"),
            );
        }
        p.check((0.0..=1.0).contains(&self.sample_ratio), "otel.sample_ratio", "must be between 0.0 and 1.0");
        p.check(is_positive(self.export_timeout), "otel.export_timeout", "must be greater than 0");
        p.check(is_positive(self.metrics_interval), "otel.metrics_interval", "must be greater than 0");
        p.finish()
    }
}

// ---------------------------------------------------------------------------------------------
// auth

/// How callers of the gRPC API are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Bearer JWT on every call (the default).
    #[default]
    Jwt,
    /// No authentication: every caller is `anonymous` with every role. Local development
    /// only: refused unless every listener is a loopback address
    /// ([`check_unauthenticated_listeners`]).
    None,
}

/// gRPC authentication (`[auth]`).
///
/// Key sources (any combination): `hs256_secret` or `hs256_secret_file` for HS256 tokens
/// (development), `jwks_file` and/or `jwks_url` for RS256/ES256 tokens (production, keys
/// picked by `kid`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// `"jwt"` or `"none"`. Default `"jwt"`; `"none"` disables authentication entirely and
    /// is only accepted when `grpc.listen` and `admin.listen` are loopback addresses.
    pub mode: AuthMode,
    /// HS256 shared secret (at least 32 bytes). Never printed. Default unset.
    #[serde(skip_serializing, deserialize_with = "lenient_secret")]
    pub hs256_secret: Option<SecretString>,
    /// File holding the HS256 secret (surrounding whitespace trimmed). Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<PathBuf>,
    /// File holding a JWKS document (`{"keys": [...]}`). Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// URL of a JWKS document, fetched at startup and every `jwks_refresh`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched again. Default `"5m"`.
    #[serde(with = "duration")]
    pub jwks_refresh: Duration,
    /// Required `iss` claim; must be set with mode `jwt`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Required `aud` claim (one of the token's audiences); must be set with mode `jwt`.
    /// Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Claim holding the roles: a string array or a space-separated string. Default `"roles"`.
    pub roles_claim: String,
    /// Claim holding the product scopes: product names, purl prefixes or `*`, as a
    /// string array or one comma-separated string. Default `"psirt_products"`. Without
    /// it a caller knows of no case (admins know of every case).
    pub scopes_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default 30.
    pub leeway_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::Jwt,
            hs256_secret: None,
            hs256_secret_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(300),
            issuer: None,
            audience: None,
            roles_claim: "roles".to_owned(),
            scopes_claim: "psirt_products".to_owned(),
            leeway_seconds: 30,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "[REDACTED]"))
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("jwks_file", &self.jwks_file)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("roles_claim", &self.roles_claim)
            .field("scopes_claim", &self.scopes_claim)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish()
    }
}

/// Minimum HS256 secret length: RFC 7518 section 3.2 asks for a key as long as the hash.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

impl AuthConfig {
    /// True when at least one key source is configured.
    pub fn has_key_source(&self) -> bool {
        self.hs256_secret.is_some()
            || self.hs256_secret_file.is_some()
            || self.jwks_file.is_some()
            || self.jwks_url.is_some()
    }

    /// Checks that mode `jwt` has a usable key source and that the sources are consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        if self.mode == AuthMode::Jwt && !self.has_key_source() {
            p.push(
                "auth",
                "mode \"jwt\" needs a key source: set auth.jwks_url (PSIRT_AUTH__JWKS_URL), \
                 auth.jwks_file (PSIRT_AUTH__JWKS_FILE), auth.hs256_secret_file \
                 (PSIRT_AUTH__HS256_SECRET_FILE) or auth.hs256_secret (PSIRT_AUTH__HS256_SECRET); \
                 or set auth.mode = \"none\" for local development only",
            );
        }
        if self.mode == AuthMode::Jwt {
            // Without them a token minted for another application of the same identity
            // provider (or by another issuer sharing a key) would be accepted.
            if self.issuer.as_deref().is_none_or(|v| v.trim().is_empty()) {
                p.push(
                    "auth.issuer",
                    "required with auth.mode = \"jwt\": the iss claim tokens must carry, e.g. \
                     https://idp.example.com/realms/psirt (PSIRT_AUTH__ISSUER)",
                );
            }
            if self.audience.as_deref().is_none_or(|v| v.trim().is_empty()) {
                p.push(
                    "auth.audience",
                    "required with auth.mode = \"jwt\": the aud claim tokens must carry, e.g. psirt \
                     (PSIRT_AUTH__AUDIENCE)",
                );
            }
        }
        if self.hs256_secret.is_some() && self.hs256_secret_file.is_some() {
            p.push("auth.hs256_secret", "set either auth.hs256_secret or auth.hs256_secret_file, not both");
        }
        if let Some(secret) = &self.hs256_secret {
            p.check(
                secret.expose_secret().len() >= MIN_HS256_SECRET_BYTES,
                "auth.hs256_secret",
                format!("must be at least {MIN_HS256_SECRET_BYTES} bytes"),
            );
        }
        if let Some(url) = &self.jwks_url {
            p.check(
                url.starts_with("https://") || url.strip_prefix("http://").is_some_and(is_loopback_authority),
                "auth.jwks_url",
                format!("must be an https URL (plain http only to a loopback host), got {url:?}"),
            );
        }
        p.check(is_positive(self.jwks_refresh), "auth.jwks_refresh", "must be greater than 0");
        p.check(!self.roles_claim.trim().is_empty(), "auth.roles_claim", "must not be empty");
        p.check(!self.scopes_claim.trim().is_empty(), "auth.scopes_claim", "must not be empty");
        p.finish()
    }
}

/// Whether the authority at the start of `rest` (after `scheme://`) names a
/// loopback host: `localhost`, `127.x.y.z` or `[::1]`, with an optional port.
fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Env values are parsed by figment, so `PSIRT_AUTH__HS256_SECRET=1234...` arrives as a
/// number; a secret is text whatever it looks like.
fn lenient_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i128),
        Float(f64),
        Bool(bool),
    }
    let value: Option<Scalar> = Option::deserialize(d)?;
    Ok(value.map(|v| {
        let text = match v {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        };
        SecretString::from(text)
    }))
}

// ---------------------------------------------------------------------------------------------
// database

/// The service's read-model database (`[database]`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host/db` or `sqlite://path/to/file.db?mode=rwc`. Secret because
    /// it may carry a password; log [`DatabaseConfig::redacted_url`] instead.
    /// Default `"sqlite://psirt.db?mode=rwc"`.
    #[serde(skip_serializing, deserialize_with = "required_secret")]
    pub url: SecretString,
    /// Upper bound of the connection pool. Default 10.
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing. Default `"5s"`.
    #[serde(with = "duration")]
    pub acquire_timeout: Duration,
}

/// Default of `database.url`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://psirt.db?mode=rwc";

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from(DEFAULT_DATABASE_URL),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DatabaseConfig {
    /// The URL with any `user:password@` part replaced by `***@`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_userinfo(self.url.expose_secret())
    }

    /// True for a `postgres://` or `postgresql://` URL.
    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// Checks the URL scheme and pool settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        let url = self.url.expose_secret();
        p.check(
            self.is_postgres() || url.starts_with("sqlite:"),
            "database.url",
            format!("must start with postgres://, postgresql:// or sqlite:, got {:?}", self.redacted_url()),
        );
        p.check(self.max_connections >= 1, "database.max_connections", "must be at least 1");
        p.check(is_positive(self.acquire_timeout), "database.acquire_timeout", "must be greater than 0");
        p.finish()
    }
}

fn required_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    match lenient_secret(d)? {
        Some(secret) => Ok(secret),
        None => Err(serde::de::Error::custom("must not be empty")),
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// nats

/// JetStream storage backend of the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Persisted to disk (the default).
    #[default]
    File,
    /// In memory only (tests).
    Memory,
}

/// The JetStream stream holding every event (`[nats.stream]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    /// Stream name. Default `"PSIRT_EVENTS"`.
    pub name: String,
    /// Subjects captured by the stream. Default `["psirt.evt.>"]`.
    pub subjects: Vec<String>,
    /// Number of replicas (1 for a single server, 3 in a cluster). Default 1.
    pub replicas: usize,
    /// `"file"` or `"memory"`. Default `"file"`.
    pub storage: StorageKind,
    /// Age after which events are discarded; `"0s"` keeps them forever (events are the
    /// source of truth). Default `"0s"`.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate. Default `"2m"`.
    #[serde(with = "duration")]
    pub duplicate_window: Duration,
    /// Largest event payload in bytes accepted by the stream. Default 1048576 (1 MiB).
    pub max_msg_size: u32,
    /// Create the stream at start when it is missing (`just up`, tests). Services never
    /// change an existing stream: they compare it with these settings and refuse to start
    /// on a difference. Production leaves this off and creates the stream with
    /// `psirtctl admin stream apply` (an admin NATS identity). Default false.
    pub manage: bool,
    /// A `max_age` other than `"0s"` deletes events: refused unless this is set. Default
    /// false.
    pub allow_expiry: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: "PSIRT_EVENTS".to_owned(),
            subjects: vec!["psirt.evt.>".to_owned()],
            replicas: 1,
            storage: StorageKind::File,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
            max_msg_size: 1024 * 1024,
            manage: false,
            allow_expiry: false,
        }
    }
}

/// Connection to NATS (`[nats]`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated. Default `"nats://127.0.0.1:4222"`.
    pub url: String,
    /// `.creds` file (JWT + NKey) for NATS authentication. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Token for NATS token authentication. Never printed. Default unset.
    #[serde(skip_serializing, deserialize_with = "lenient_secret")]
    pub token: Option<SecretString>,
    /// File holding the service's NKey seed (`SU...`): the service's own NATS identity,
    /// whose public key the server's configuration lists with its permissions. Default
    /// unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name for NATS user/password authentication (with `password_file`). Default
    /// unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// File holding the password of `user`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) used to verify the server's TLS certificate. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with `tls_client_key_file`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<PathBuf>,
    /// Refuse to connect without TLS. Default false.
    pub tls_required: bool,
    /// Connection name shown by the server (`nats server report connections`). Default
    /// unset (the service uses its own name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Timeout of one connection attempt; a service waits six times as long for NATS at
    /// start before giving up with the last cause. Default `"5s"`.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// The event stream.
    pub stream: StreamConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials_file: None,
            token: None,
            nkey_seed_file: None,
            user: None,
            password_file: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            tls_required: false,
            name: None,
            connect_timeout: Duration::from_secs(5),
            stream: StreamConfig::default(),
        }
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("credentials_file", &self.credentials_file)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("user", &self.user)
            .field("password_file", &self.password_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert_file", &self.tls_client_cert_file)
            .field("tls_client_key_file", &self.tls_client_key_file)
            .field("tls_required", &self.tls_required)
            .field("name", &self.name)
            .field("connect_timeout", &self.connect_timeout)
            .field("stream", &self.stream)
            .finish()
    }
}

impl NatsConfig {
    /// Checks URL, credentials and stream settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        p.check(!self.url.trim().is_empty(), "nats.url", "must not be empty");
        for url in self.url.split(',') {
            if let Err(e) = parse_nats_url(url) {
                p.check(false, "nats.url", e);
            }
        }
        let methods = [
            self.credentials_file.is_some(),
            self.token.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password_file.is_some(),
        ];
        p.check(
            methods.iter().filter(|m| **m).count() <= 1,
            "nats.token",
            "set one NATS authentication: nats.credentials_file, nats.token, nats.nkey_seed_file or \
             nats.user with nats.password_file",
        );
        p.check(
            self.user.is_some() == self.password_file.is_some(),
            "nats.password_file",
            "nats.user and nats.password_file go together",
        );
        p.check(
            self.tls_client_cert_file.is_some() == self.tls_client_key_file.is_some(),
            "nats.tls_client_key_file",
            "nats.tls_client_cert_file and nats.tls_client_key_file go together",
        );
        p.check(is_positive(self.connect_timeout), "nats.connect_timeout", "must be greater than 0");
        let s = &self.stream;
        p.check(
            !s.name.is_empty()
                && !s.name.contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>')),
            "nats.stream.name",
            "must be non-empty without spaces, '.', '*' or '>'",
        );
        p.check(!s.subjects.is_empty(), "nats.stream.subjects", "must list at least one subject");
        p.check((1..=5).contains(&s.replicas), "nats.stream.replicas", "must be between 1 and 5");
        p.check(is_positive(s.duplicate_window), "nats.stream.duplicate_window", "must be greater than 0");
        p.check(
            s.max_age.is_zero() || s.duplicate_window <= s.max_age,
            "nats.stream.duplicate_window",
            "must not exceed nats.stream.max_age",
        );
        p.check(s.max_msg_size >= 1024, "nats.stream.max_msg_size", "must be at least 1024");
        p.check(
            s.max_age.is_zero() || s.allow_expiry,
            "nats.stream.max_age",
            "deletes every event older than it (events are the source of truth); set \
             nats.stream.allow_expiry = true to mean it",
        );
        p.finish()
    }
}

/// One server URL of `nats.url` (`nats://`, `tls://`, `ws://`, `wss://` or a bare
/// `host:port`), or an error naming it and the cause.
pub fn parse_nats_url(url: &str) -> Result<async_nats::ServerAddr, String> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(format!("{url:?} is empty (a stray comma in the list?)"));
    }
    trimmed
        .parse::<async_nats::ServerAddr>()
        .map_err(|e| format!("{trimmed:?} is not a NATS server URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_url_is_https_or_plain_http_to_loopback() {
        let with = |url: &str| AuthConfig {
            jwks_url: Some(url.to_owned()),
            issuer: Some("https://idp.example.com".to_owned()),
            audience: Some("psirt".to_owned()),
            ..AuthConfig::default()
        };
        for ok in [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(with(ok).validate().is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.5/jwks",
            "http://user@127.0.0.1.evil.com/x",
            "ftp://idp/jwks",
            "http://127.0.0.1.nip.io/jwks",
        ] {
            let err = with(bad).validate().expect_err(bad);
            assert!(err.to_string().contains("auth.jwks_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn nats_url_lists_are_parsed_and_bad_entries_named() {
        let ok = NatsConfig {
            url: "nats://a:4331, nats://b:4332,tls://c:4333".to_owned(),
            ..NatsConfig::default()
        };
        assert!(ok.validate().is_ok());
        let bad = NatsConfig { url: "nats://a:4331,,http//b".to_owned(), ..NatsConfig::default() };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("stray comma"), "{err}");
        let bad = NatsConfig { url: "nats://a:4331,nats://b:notaport".to_owned(), ..NatsConfig::default() };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("nats://b:notaport"), "{err}");
    }

    #[test]
    fn one_nats_identity_and_an_expiring_stream_must_be_meant() {
        let two = NatsConfig {
            nkey_seed_file: Some("/run/seed".into()),
            token: Some(SecretString::from("t")),
            ..NatsConfig::default()
        };
        assert!(two.validate().unwrap_err().to_string().contains("one NATS authentication"));
        let half = NatsConfig { user: Some("intake".to_owned()), ..NatsConfig::default() };
        assert!(half.validate().unwrap_err().to_string().contains("nats.password_file"));
        let mut expiring = NatsConfig::default();
        expiring.stream.max_age = Duration::from_secs(3600);
        assert!(expiring.validate().unwrap_err().to_string().contains("allow_expiry"));
        expiring.stream.allow_expiry = true;
        assert!(expiring.validate().is_ok());
    }

    fn unauthenticated(grpc: &str, admin: &str) -> Result<(), ConfigError> {
        let auth = AuthConfig { mode: AuthMode::None, ..AuthConfig::default() };
        let grpc = parse_listen_addr(grpc).expect("grpc address");
        let admin = parse_listen_addr(admin).expect("admin address");
        check_unauthenticated_listeners(&auth, &[("grpc.listen", grpc), ("admin.listen", admin)])
    }

    #[test]
    fn auth_none_is_refused_on_any_listener_that_is_not_loopback_and_the_key_is_named() {
        for accepted in
            ["127.0.0.1:50051", "[::1]:50051", "localhost:50051", "127.0.0.2:0", "[::ffff:127.0.0.1]:1"]
        {
            assert!(unauthenticated(accepted, "127.0.0.1:9090").is_ok(), "{accepted}");
            assert!(unauthenticated("[::1]:0", accepted).is_ok(), "{accepted}");
        }
        for refused in ["0.0.0.0:50051", "[::]:50051", "192.168.1.20:50051", "10.0.0.7:0", "[fe80::1]:1"] {
            let err = unauthenticated(refused, "127.0.0.1:9090").expect_err(refused);
            assert_eq!(err.problems().len(), 1, "{err}");
            assert!(err.problems()[0].starts_with("grpc.listen: "), "{err}");
            assert!(err.to_string().contains(refused), "{err}");
            assert!(err.to_string().contains("loopback"), "{err}");
            let err = unauthenticated("127.0.0.1:1", refused).expect_err(refused);
            assert!(err.problems()[0].starts_with("admin.listen: "), "{err}");
        }
        // Both named when both are open.
        let err = unauthenticated("0.0.0.0:1", "[::]:2").expect_err("both");
        assert_eq!(err.problems().len(), 2, "{err}");
        // With authentication any address is fine.
        let jwt = AuthConfig::default();
        let open = parse_listen_addr("0.0.0.0:50051").expect("addr");
        assert!(check_unauthenticated_listeners(&jwt, &[("grpc.listen", open)]).is_ok());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn a_listener_is_an_address_or_localhost_never_another_host_name() {
        assert_eq!(
            parse_listen_addr("localhost:7").expect("localhost"),
            SocketAddr::from(([127, 0, 0, 1], 7))
        );
        assert_eq!(
            parse_listen_addr("LOCALHOST:7").expect("localhost"),
            SocketAddr::from(([127, 0, 0, 1], 7))
        );
        assert!(parse_listen_addr("localhost:http").is_err());
        let err = parse_listen_addr("psirt.example.com:50051").expect_err("host name");
        assert!(err.contains("psirt.example.com:50051"), "{err}");
        assert!(parse_listen_addr("localhost.example.com:1").is_err());
        assert!(parse_listen_addr("0.0.0.0").is_err(), "no port");
        // Loaded from a file or the environment, the error names the key.
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[grpc]\nlisten = \"psirt.example.com:50051\"\n")?;
            let err = load::<TwoListeners>(Some(Path::new("a.toml"))).expect_err("host name");
            assert!(err.to_string().contains("grpc.listen"), "{err}");
            jail.create_file("b.toml", "[grpc]\nlisten = \"localhost:0\"\n[admin]\nlisten = \"[::1]:0\"\n")?;
            let ok = load::<TwoListeners>(Some(Path::new("b.toml"))).expect("localhost");
            assert_eq!(ok.grpc.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
            assert!(is_loopback(&ok.admin.listen));
            jail.set_env("PSIRT_ADMIN__LISTEN", "localhost:9");
            let env = load::<TwoListeners>(None).expect("env");
            assert_eq!(env.admin.listen, SocketAddr::from(([127, 0, 0, 1], 9)));
            Ok(())
        });
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct TwoListeners {
        grpc: GrpcConfig,
        admin: AdminConfig,
    }

    #[test]
    fn redacts_userinfo() {
        assert_eq!(redact_userinfo("postgres://psirt:hunter2@db:5432/psirt"), "postgres://***@db:5432/psirt");
        assert_eq!(redact_userinfo("sqlite://psirt.db?mode=rwc"), "sqlite://psirt.db?mode=rwc");
    }

    #[test]
    fn defaults_are_valid_except_auth_without_keys() {
        assert!(GrpcConfig::default().validate().is_ok());
        assert!(AdminConfig::default().validate().is_ok());
        assert!(LogConfig::default().validate().is_ok());
        assert!(OtelConfig::default().validate().is_ok());
        assert!(DatabaseConfig::default().validate().is_ok());
        assert!(NatsConfig::default().validate().is_ok());
        let err = AuthConfig::default().validate().unwrap_err();
        assert!(err.to_string().contains("auth.jwks_url"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let auth = AuthConfig {
            hs256_secret: Some(SecretString::from("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")),
            ..AuthConfig::default()
        };
        let db =
            DatabaseConfig { url: SecretString::from("postgres://u:pw@h/db"), ..DatabaseConfig::default() };
        let printed = format!("{auth:?} {db:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(!printed.contains("pw"), "{printed}");
    }
}
