//! The PSIRT service runtime: everything a service binary needs around its own handlers.
//!
//! - [`config`]: figment loading (defaults < TOML file < `PSIRT_*` env) and common sections.
//! - [`telemetry`]: JSON logs, Prometheus metrics, OTLP traces/metrics, W3C propagation.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` and extra HTTP routes.
//! - [`grpc`]: serving tonic routes with health, reflection, auth, telemetry and shutdown.
//! - [`auth`]: bearer JWT authentication, roles and the per-method policy.
//! - [`error`]: [`ApiError`] and its mapping to `tonic::Status`.
//! - [`consistency`]: read-your-writes (`psirt-position`, `psirt-min-position`).
//! - [`host`]: the wiring of a service (store, database, auth, listeners, the workers
//!   beside the API, one drain order); [`service`]: its command line and config
//!   (`service!`, `service_config!`).
//!
//! What [`host::Host`] does for a service, spelled out:
//!
//! ```no_run
//! use psirt_kit::config::{self, AdminConfig, AuthConfig, GrpcConfig, LogConfig, OtelConfig, Problems};
//! use psirt_kit::{AdminServer, AuthLayer, AuthPolicy, GrpcServer, Readiness, Role, Shutdown};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! #[serde(default)]
//! struct IntakeConfig {
//!     grpc: GrpcConfig,
//!     admin: AdminConfig,
//!     log: LogConfig,
//!     otel: OtelConfig,
//!     auth: AuthConfig,
//! }
//!
//! # async fn start(config_path: Option<std::path::PathBuf>, routes: psirt_kit::grpc::ServiceRoutes,
//! #                descriptor: &'static [u8]) -> anyhow::Result<()> {
//! let cfg: IntakeConfig = config::load(config_path.as_deref())?;
//! let mut problems = Problems::new();
//! problems.merge(cfg.grpc.validate());
//! problems.merge(cfg.auth.validate());
//! problems.finish()?;
//!
//! let telemetry = psirt_kit::telemetry::init("psirt-intake", &cfg.log, &cfg.otel)?;
//! let shutdown = Shutdown::on_signals();
//! let readiness = Readiness::new();
//! let nats_ready = readiness.register("nats");
//!
//! let admin = AdminServer::bind(cfg.admin.listen, readiness.clone(), telemetry.metrics()).await?;
//! let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
//!
//! let policy = AuthPolicy::new()
//!     .allow("/psirt.intake.v1.IntakeService/SubmitReport", &[Role::Reporter, Role::Analyst])
//!     .allow("/psirt.intake.v1.IntakeService/GetReport", &[Role::Analyst]);
//! let auth = AuthLayer::from_config(&cfg.auth, policy).await?;
//! let grpc = GrpcServer::bind(&cfg.grpc).await?;
//! tracing::info!(addr = %grpc.local_addr(), "intake starting");
//! nats_ready.set_ready(true);
//! grpc.serve(routes, auth, &[descriptor], &["psirt.intake.v1.IntakeService"], shutdown).await?;
//! admin_task.await??;
//! telemetry.shutdown();
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod auth;
pub mod backbone;
pub mod config;
pub mod consistency;
pub mod error;
pub mod grpc;
pub mod host;
pub mod parked;
pub mod quota;
pub mod rebuild;
pub mod request;
pub mod service;
pub mod shutdown;
pub mod telemetry;

pub use admin::{AdminServer, Readiness, ReadinessCheck};
pub use auth::{Access, AuthLayer, AuthPolicy, Authenticator, Principal, Role, Rule, Scopes};
pub use consistency::ReadModels;
pub use error::{ApiError, FieldViolation, Refusal, refusal};
pub use grpc::{GrpcServer, ServiceRoutes};
pub use host::{Host, Workers};
pub use shutdown::Shutdown;
pub use telemetry::{MetricsHandle, TelemetryGuard};
