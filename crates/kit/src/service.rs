//! What every service binary shares: the sections of its configuration and
//! their validation, and the command line (`serve`, `rebuild`, `config`)
//! with telemetry, signals and the rebuild's progress bar. A service says
//! what it is ([`Service`]); its `main.rs` is one line:
//!
//! ```ignore
//! fn main() -> anyhow::Result<()> {
//!     psirt_kit::service::main::<psirt_intake::Intake>()
//! }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{
    AdminConfig, AuthConfig, ConfigError, DatabaseConfig, GrpcConfig, LogConfig, NatsConfig, OtelConfig,
    Problems,
};
use crate::{MetricsHandle, Shutdown};

/// The sections every service's configuration has.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    pub grpc: &'a GrpcConfig,
    pub admin: &'a AdminConfig,
    pub log: &'a LogConfig,
    pub otel: &'a OtelConfig,
    pub auth: &'a AuthConfig,
    pub database: &'a DatabaseConfig,
    pub nats: &'a NatsConfig,
    pub projection: &'a psirt_projection::ProjectionSettings,
}

impl Sections<'_> {
    /// Every listener of the service, with its config key.
    pub fn listeners(&self) -> [(&'static str, SocketAddr); 2] {
        [("grpc.listen", self.grpc.listen), ("admin.listen", self.admin.listen)]
    }

    /// Adds every problem of the shared sections to `p`.
    pub fn check(&self, p: &mut Problems) {
        p.merge(self.grpc.validate());
        p.merge(self.admin.validate());
        p.merge(self.log.validate());
        p.merge(self.otel.validate());
        p.merge(self.auth.validate());
        p.merge(self.database.validate());
        p.merge(self.nats.validate());
        p.merge(crate::config::check_unauthenticated_listeners(self.auth, &self.listeners()));
        for problem in self.projection.problems() {
            p.push("projection", problem);
        }
    }
}

/// A service's whole configuration: the shared sections and its own.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default + Sized {
    /// The shared sections.
    fn sections(&self) -> Sections<'_>;

    /// Adds the problems of the service's own sections to `p`.
    fn check_own(&self, p: &mut Problems);

    /// Every problem in every section, at once.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::new();
        self.sections().check(&mut p);
        self.check_own(&mut p);
        p.finish()
    }

    /// Loads defaults < `file` < `PSIRT_*` environment, then validates.
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = crate::config::load(file)?;
        config.validate()?;
        Ok(config)
    }
}

/// Declares a service's whole configuration: the shared sections (with the
/// service's own default ports), then its own sections, each `Default`
/// (every key documented in the service's example config). Generates the
/// struct, `Default` and [`ServiceConfig`], whose `check_own` is the
/// inherent method named after `check`:
///
/// ```ignore
/// psirt_kit::service_config! {
///     /// The whole configuration of `psirt-intake`.
///     pub struct Config {
///         ports: (50051, 9101),
///         check: check_settings,
///         pub intake: IntakeSettings,
///         pub quotas: IntakeQuotas,
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            ports: ($grpc:literal, $admin:literal),
            check: $check:ident,
            $( $(#[$field_meta:meta])* pub $field:ident : $type:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            pub grpc: $crate::config::GrpcConfig,
            pub admin: $crate::config::AdminConfig,
            pub log: $crate::config::LogConfig,
            pub otel: $crate::config::OtelConfig,
            pub auth: $crate::config::AuthConfig,
            pub database: $crate::config::DatabaseConfig,
            pub nats: $crate::config::NatsConfig,
            pub projection: ::psirt_projection::ProjectionSettings,
            $( $(#[$field_meta])* pub $field: $type, )*
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                let loopback = |port: u16| ::std::net::SocketAddr::from(([127, 0, 0, 1], port));
                Self {
                    grpc: $crate::config::GrpcConfig { listen: loopback($grpc), ..Default::default() },
                    admin: $crate::config::AdminConfig { listen: loopback($admin) },
                    log: Default::default(),
                    otel: Default::default(),
                    auth: Default::default(),
                    database: Default::default(),
                    nats: Default::default(),
                    projection: Default::default(),
                    $( $field: Default::default(), )*
                }
            }
        }

        impl $crate::service::ServiceConfig for $name {
            fn sections(&self) -> $crate::service::Sections<'_> {
                $crate::service::Sections {
                    grpc: &self.grpc,
                    admin: &self.admin,
                    log: &self.log,
                    otel: &self.otel,
                    auth: &self.auth,
                    database: &self.database,
                    nats: &self.nats,
                    projection: &self.projection,
                }
            }

            fn check_own(&self, p: &mut $crate::config::Problems) {
                self.$check(p);
            }
        }
    };
}

/// A built application, bound and not yet serving.
pub trait App: Send {
    fn grpc_addr(&self) -> SocketAddr;
    fn admin_addr(&self) -> SocketAddr;
    /// Serves until `shutdown`, then drains and stops.
    fn run_until_stopped(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Declares a service for [`main`] from what its crate has: an
/// `Application` with `build(&Config, MetricsHandle)`, `grpc_addr()`,
/// `admin_addr()` and `run_until_stopped(Shutdown)`, and a
/// `rebuild(&Config, on_progress)` function:
///
/// ```ignore
/// psirt_kit::service! {
///     /// `psirt-intake` as the kit's command line runs it.
///     pub struct IntakeService {
///         name: SERVICE,
///         about: "PSIRT intake service: vulnerability reports in",
///         read_model: "the intake read model",
///     }
/// }
/// ```
#[macro_export]
macro_rules! service {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { name: $service:expr, about: $about:expr, read_model: $read_model:expr $(,)? }
    ) => {
        $(#[$meta])*
        pub struct $name;

        impl $crate::service::Service for $name {
            const NAME: &'static str = $service;
            const ABOUT: &'static str = $about;
            const READ_MODEL: &'static str = $read_model;
            type Config = Config;
            type App = Application;

            async fn build(config: &Config, metrics: $crate::MetricsHandle) -> ::anyhow::Result<Application> {
                Application::build(config, metrics).await
            }

            async fn rebuild(
                config: &Config,
                on_progress: &(dyn Fn(u64, u64) + Send + Sync),
            ) -> ::anyhow::Result<u64> {
                rebuild(config, on_progress).await
            }
        }

        impl $crate::service::App for Application {
            fn grpc_addr(&self) -> ::std::net::SocketAddr {
                Application::grpc_addr(self)
            }

            fn admin_addr(&self) -> ::std::net::SocketAddr {
                Application::admin_addr(self)
            }

            async fn run_until_stopped(self, shutdown: $crate::Shutdown) -> ::anyhow::Result<()> {
                Application::run_until_stopped(self, shutdown).await
            }
        }
    };
}

/// What a service is, for [`main`].
pub trait Service {
    /// The binary's and telemetry's name (`psirt-intake`).
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// What `rebuild` replays, in prose (`the intake read model`).
    const READ_MODEL: &'static str;

    type Config: ServiceConfig + Send + Sync;
    type App: App;

    /// Connects, migrates and binds; nothing is served yet.
    fn build(
        config: &Self::Config,
        metrics: MetricsHandle,
    ) -> impl Future<Output = anyhow::Result<Self::App>> + Send;

    /// Replays the read model from sequence 1; `on_progress(done, total)`.
    fn rebuild(
        config: &Self::Config,
        on_progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `ports_file`: where to write the bound addresses (see [`write_ports_file`]).
    Serve {
        config: Option<PathBuf>,
        ports_file: Option<PathBuf>,
    },
    Rebuild {
        config: Option<PathBuf>,
    },
    PrintConfig {
        config: Option<PathBuf>,
    },
}

/// The command line of a service binary.
pub fn command(name: &'static str, about: &'static str, read_model: &'static str) -> clap::Command {
    use clap::{Arg, Command, value_parser};
    Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(about)
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .env("PSIRT_CONFIG")
                .global(true)
                .value_parser(value_parser!(PathBuf))
                .help("TOML config file; `PSIRT_*` environment variables override it"),
        )
        .arg(
            Arg::new("ports-file")
                .long("ports-file")
                .env("PSIRT_PORTS_FILE")
                .global(true)
                .value_parser(value_parser!(PathBuf))
                .help(
                    "After binding, write the bound gRPC and admin addresses to this file as JSON \
                     (useful with port 0); removed on a clean stop",
                ),
        )
        .subcommand(Command::new("serve").about("Serve gRPC and admin HTTP (the default)"))
        .subcommand(Command::new("rebuild").about(format!("Replay {read_model} from sequence 1, then exit")))
        .subcommand(
            Command::new("config").about("Print the effective configuration (secrets redacted) and exit"),
        )
}

/// Parses `args` (the program name first).
pub fn parse(
    name: &'static str,
    about: &'static str,
    read_model: &'static str,
    args: impl IntoIterator<Item = String>,
) -> Result<Invocation, clap::Error> {
    let matches = command(name, about, read_model).try_get_matches_from(args)?;
    let config_of = |m: &clap::ArgMatches| m.get_one::<PathBuf>("config").cloned();
    let ports_file_of = |m: &clap::ArgMatches| m.get_one::<PathBuf>("ports-file").cloned();
    Ok(match matches.subcommand() {
        Some(("rebuild", sub)) => Invocation::Rebuild { config: config_of(sub) },
        Some(("config", sub)) => Invocation::PrintConfig { config: config_of(sub) },
        Some((_, sub)) => Invocation::Serve { config: config_of(sub), ports_file: ports_file_of(sub) },
        None => Invocation::Serve { config: config_of(&matches), ports_file: ports_file_of(&matches) },
    })
}

/// The whole `main` of a service binary.
pub fn main<S: Service>() -> anyhow::Result<()> {
    let invocation = match parse(S::NAME, S::ABOUT, S::READ_MODEL, std::env::args()) {
        Ok(invocation) => invocation,
        Err(e) => e.exit(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run::<S>(invocation))
}

/// Carries out one invocation.
pub async fn run<S: Service>(invocation: Invocation) -> anyhow::Result<()> {
    let file = match &invocation {
        Invocation::Serve { config, .. }
        | Invocation::Rebuild { config }
        | Invocation::PrintConfig { config } => config.clone(),
    };
    let config = S::Config::load(file.as_deref()).context("invalid configuration")?;
    let sections = config.sections();
    match invocation {
        Invocation::PrintConfig { .. } => {
            // Secrets are skipped by their serializers.
            println!(
                "{}",
                serde_json::to_string_pretty(&config).unwrap_or_else(|e| format!("cannot print config: {e}"))
            );
            Ok(())
        }
        Invocation::Rebuild { .. } => {
            let telemetry = crate::telemetry::init(S::NAME, sections.log, sections.otel)?;
            let bar = indicatif::ProgressBar::new(0);
            let template = format!(
                "rebuilding {} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, eta {{eta}})",
                S::READ_MODEL
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let total = S::rebuild(&config, &progress).await?;
            bar.finish();
            eprintln!("rebuilt {} from {total} events", S::READ_MODEL);
            telemetry.shutdown();
            Ok(())
        }
        Invocation::Serve { ports_file, .. } => {
            let telemetry = crate::telemetry::init(S::NAME, sections.log, sections.otel)?;
            let shutdown = Shutdown::on_signals();
            let app = S::build(&config, telemetry.metrics()).await?;
            tracing::info!(grpc = %app.grpc_addr(), admin = %app.admin_addr(), "{} bound", S::NAME);
            if let Some(path) = &ports_file {
                write_ports_file(path, app.grpc_addr(), app.admin_addr())?;
            }
            let result = app.run_until_stopped(shutdown).await;
            if let Some(path) = &ports_file {
                let _ = std::fs::remove_file(path);
            }
            telemetry.shutdown();
            result
        }
    }
}

/// Writes `{"grpc": "<addr>", "admin": "<addr>"}` to `path` atomically (a temporary file
/// next to it, then renamed), whatever the log level: a supervisor or a test that started
/// the service on port 0 reads the addresses it bound from there.
pub fn write_ports_file(path: &Path, grpc: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    write_named_ports_file(path, &[("grpc", grpc), ("admin", admin)])
}

/// [`write_ports_file`] for a process with other listeners (the portal's `http`):
/// `{"<name>": "<addr>", ...}`, atomically.
pub fn write_named_ports_file(path: &Path, addresses: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    let json: serde_json::Map<String, serde_json::Value> =
        addresses.iter().map(|(name, addr)| ((*name).to_owned(), addr.to_string().into())).collect();
    let json = serde_json::Value::Object(json);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{json}\n"))
        .with_context(|| format!("failed to write the ports file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write the ports file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_command_line_defaults_to_serve_and_takes_the_config_anywhere() {
        let p = |a: &[&str]| parse("psirt-x", "x", "the x read model", args(a));
        assert_eq!(p(&["psirt-x"]).unwrap(), Invocation::Serve { config: None, ports_file: None });
        assert_eq!(
            p(&["psirt-x", "--config", "a.toml"]).unwrap(),
            Invocation::Serve { config: Some(PathBuf::from("a.toml")), ports_file: None }
        );
        assert_eq!(
            p(&["psirt-x", "serve", "--ports-file", "p.json"]).unwrap(),
            Invocation::Serve { config: None, ports_file: Some(PathBuf::from("p.json")) }
        );
        assert_eq!(
            p(&["psirt-x", "rebuild", "-c", "b.toml"]).unwrap(),
            Invocation::Rebuild { config: Some(PathBuf::from("b.toml")) }
        );
        assert_eq!(
            p(&["psirt-x", "-c", "c.toml", "config"]).unwrap(),
            Invocation::PrintConfig { config: Some(PathBuf::from("c.toml")) }
        );
        assert_eq!(p(&["psirt-x", "serve"]).unwrap(), Invocation::Serve { config: None, ports_file: None });
        let err = p(&["psirt-x", "frobnicate"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidSubcommand);
        let help = command("psirt-x", "x", "the x read model").render_long_help().to_string();
        assert!(help.contains("PSIRT_CONFIG"), "{help}");
        assert!(help.contains("PSIRT_PORTS_FILE"), "{help}");
    }

    #[test]
    fn the_ports_file_holds_the_bound_addresses() {
        let dir = std::env::temp_dir().join(format!("psirt-kit-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ports.json");
        let grpc: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let admin: SocketAddr = "127.0.0.1:9101".parse().unwrap();
        write_ports_file(&path, grpc, admin).unwrap();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({ "grpc": "127.0.0.1:50051", "admin": "127.0.0.1:9101" }));
        assert!(!dir.join("ports.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
