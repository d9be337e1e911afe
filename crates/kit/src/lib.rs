//! The PSIRT service runtime: everything a service binary needs around its own handlers.
//!
//! - [`config`]: figment loading (defaults < TOML file < `PSIRT_*` env) and common sections.
//! - [`telemetry`]: JSON logs, Prometheus metrics, OTLP traces/metrics, W3C propagation.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` and extra HTTP routes.
//! - [`grpc`]: serving tonic routes with health, reflection, auth, telemetry and shutdown.
//! - [`auth`]: bearer JWT authentication, roles and the per-method policy.
//! - [`error`]: [`ApiError`](error::ApiError) and its mapping to `tonic::Status`.

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod shutdown;
pub mod telemetry;

pub use admin::{AdminServer, Readiness, ReadinessCheck};
pub use auth::{Access, AuthLayer, AuthPolicy, Authenticator, Principal, Role};
pub use error::{ApiError, FieldViolation};
pub use grpc::GrpcServer;
pub use shutdown::Shutdown;
pub use telemetry::{MetricsHandle, TelemetryGuard};
