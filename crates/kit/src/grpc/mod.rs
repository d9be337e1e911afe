//! Serving a service's tonic routes the same way everywhere: bound listener first (port 0
//! allowed, address exposed), then `grpc.health.v1`, reflection v1 and v1alpha, the
//! telemetry and auth layers, config limits (`grpc.max_message_bytes` on every server,
//! oversized messages answered `RESOURCE_EXHAUSTED`), and a graceful shutdown that flips
//! health to `NOT_SERVING` before draining.
//!
//! ```no_run
//! # async fn run(cfg: psirt_kit::config::GrpcConfig, auth_cfg: psirt_kit::config::AuthConfig,
//! #              routes: psirt_kit::grpc::ServiceRoutes, descriptor: &'static [u8]) -> anyhow::Result<()> {
//! use psirt_kit::auth::{AuthLayer, AuthPolicy, Role};
//! use psirt_kit::grpc::GrpcServer;
//! use psirt_kit::Shutdown;
//!
//! let shutdown = Shutdown::on_signals();
//! let policy = AuthPolicy::new()
//!     .allow("/psirt.intake.v1.IntakeService/SubmitReport", &[Role::Reporter, Role::Analyst]);
//! let auth = AuthLayer::from_config(&auth_cfg, policy).await?;
//! let server = GrpcServer::bind(&cfg).await?;
//! let addr = server.local_addr();
//! server
//!     .serve(routes, auth, &[descriptor], &["psirt.intake.v1.IntakeService"], shutdown)
//!     .await
//! # }
//! ```

mod limits;
mod telemetry;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use prost::Message as _;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

pub(crate) use self::limits::current_max_message_bytes;
pub use self::limits::{MessageLimit, MessageLimitLayer, ServiceRoutes};
pub use self::telemetry::{OTHER, RPC_DURATION_METRIC, RpcTelemetry, RpcTelemetryLayer};
use crate::admin::Readiness;
use crate::auth::{Access, AuthLayer};
use crate::config::GrpcConfig;
pub use crate::shutdown::Shutdown;

/// Full paths of the kit's own methods (health and reflection).
const BUILTIN_METHODS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Routes and method names ready to serve.
struct Prepared {
    server: GrpcServer,
    routes: Routes,
    known_methods: HashSet<String>,
}

/// A bound gRPC listener, ready to serve.
#[derive(Debug)]
pub struct GrpcServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    config: GrpcConfig,
    health: HealthReporter,
    tls: Option<ServerTlsConfig>,
    /// When set, `grpc.health.v1` follows it (see [`GrpcServer::with_readiness`]).
    readiness: Option<Readiness>,
}

/// The server's TLS settings from `grpc.tls_*`, read now so a missing or broken file
/// stops the start with its path rather than the first handshake.
fn server_tls(config: &GrpcConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let cert_pem = read_pem(cert, "CERTIFICATE", "gRPC certificate (grpc.tls_cert_file)")?;
    let key_pem = read_pem(key, "PRIVATE KEY", "gRPC private key (grpc.tls_key_file)")?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
    if let Some(ca) = &config.tls_client_ca_file {
        let ca_pem = read_pem(ca, "CERTIFICATE", "gRPC client CA (grpc.tls_client_ca_file)")?;
        tls = tls.client_ca_root(Certificate::from_pem(ca_pem));
    }
    // Parse everything now (a key that does not match its certificate, a
    // corrupt block) rather than at the first connection.
    Server::builder()
        .tls_config(tls.clone())
        .with_context(|| format!("invalid gRPC TLS settings ({} / {})", cert.display(), key.display()))?;
    Ok(Some(tls))
}

/// TLS for a gRPC client of an `https://` endpoint: the system's and the public roots
/// plus `ca_file` (a private CA), and `identity` (certificate, key) for a server that
/// demands client certificates. Files are read and checked now; errors name them.
pub fn client_tls(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<ClientTlsConfig> {
    let mut tls = ClientTlsConfig::new().with_enabled_roots();
    if let Some(ca) = ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CERTIFICATE", "CA certificate")?));
    }
    if let Some((cert, key)) = identity {
        let cert_pem = read_pem(cert, "CERTIFICATE", "client certificate")?;
        let key_pem = read_pem(key, "PRIVATE KEY", "client private key")?;
        tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(tls)
}

/// Reads a PEM file that must hold a `label` block (tonic parses PEM lazily, at the
/// first handshake; a wrong file is named here instead).
fn read_pem(path: &Path, label: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("failed to read the {what} {}", path.display()))?;
    let text = String::from_utf8_lossy(&pem);
    let end = format!("{label}-----");
    let found = text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&end));
    anyhow::ensure!(found, "the {what} {} holds no PEM {label} block", path.display());
    Ok(pem)
}

impl GrpcServer {
    /// Binds `config.listen` (port 0 picks a free port).
    pub async fn bind(config: &GrpcConfig) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to bind grpc listener on {}", config.listen))?;
        let local_addr = listener.local_addr().context("failed to read grpc listener address")?;
        let tls = server_tls(config)?;
        Ok(Self {
            listener,
            local_addr,
            config: config.clone(),
            health: HealthReporter::new(),
            tls,
            readiness: None,
        })
    }

    /// Makes `grpc.health.v1` tell the same as `/readyz`: every served service name and
    /// `""` are `SERVING` while every check of `readiness` is ready and `NOT_SERVING`
    /// while one is not (NATS or the database lost, a stalled projection, not yet or no
    /// longer serving), and `NOT_SERVING` for good once draining starts.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The health reporter behind `grpc.health.v1`, to mark services `NOT_SERVING` while a
    /// dependency is down. [`GrpcServer::serve`] marks them `SERVING` when it starts.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves `routes` plus health and reflection until `shutdown` fires.
    ///
    /// Every server of `routes` decodes and encodes messages of at most
    /// `grpc.max_message_bytes`; a larger one is answered `RESOURCE_EXHAUSTED`. With
    /// authentication off (`auth.mode = "none"`) the listener must be a loopback address,
    /// else the server refuses to start.
    ///
    /// - `file_descriptor_sets`: encoded `FileDescriptorSet`s of the served APIs, for
    ///   reflection and to name methods in metrics (unknown paths are labelled `_OTHER`).
    /// - `services`: fully-qualified service names reported `SERVING` (with `""`).
    ///
    /// On shutdown every service is set `NOT_SERVING`, new connections are refused and
    /// in-flight calls get `grpc.shutdown_grace` to finish before connections are closed.
    pub fn serve(
        self,
        routes: ServiceRoutes,
        auth: AuthLayer,
        file_descriptor_sets: &[&[u8]],
        services: &[&str],
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        // Everything borrowed is used before the future is returned, so the future is
        // `'static` and can be spawned.
        let consistency =
            crate::consistency::ConsistencyLayer::new(routes.waits_for(), self.config.request_timeout);
        let prepared = self.prepare(routes, &auth, file_descriptor_sets, services);
        let names: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
        async move {
            let Prepared { server, routes, known_methods } = prepared?;
            let GrpcServer { listener, local_addr, config, health, tls, readiness } = server;
            let follower = match readiness {
                None => {
                    set_all(&health, &names, ServingStatus::Serving).await;
                    None
                }
                Some(readiness) => {
                    // Set before the first call can arrive, then followed.
                    set_all(&health, &names, serving_status(&readiness)).await;
                    Some(tokio::spawn(follow_readiness(readiness, health.clone(), names.clone())))
                }
            };

            let mut builder = Server::builder().timeout(config.request_timeout);
            let scheme = if tls.is_some() { "TLS" } else { "plaintext" };
            if let Some(tls) = tls {
                builder = builder.tls_config(tls).context("invalid gRPC TLS settings")?;
            }
            if let Some(limit) = config.concurrency_limit_per_connection {
                builder = builder.concurrency_limit_per_connection(limit);
            }
            // The first layer is the outermost: telemetry sees the status the limit layer set.
            let router = builder
                .layer(RpcTelemetryLayer::new(known_methods))
                .layer(auth)
                .layer(MessageLimitLayer::new(config.max_message_bytes))
                .layer(consistency)
                .add_routes(routes);

            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let signal = {
                let shutdown = shutdown.clone();
                async move {
                    shutdown.wait().await;
                    tracing::info!("grpc server draining");
                    // Stopped first, so it cannot set a status back to SERVING.
                    if let Some(follower) = follower {
                        follower.abort();
                        let _ = follower.await;
                    }
                    set_all(&health, &names, ServingStatus::NotServing).await;
                }
            };
            tracing::info!(addr = %local_addr, transport = scheme, "grpc server listening");
            let serving = router.serve_with_incoming_shutdown(incoming, signal);
            let grace = config.shutdown_grace;
            tokio::select! {
                result = serving => result.context("grpc server failed")?,
                () = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(
                        grace_s = grace.as_secs_f64(),
                        "grpc calls still running after the shutdown grace period, closing connections"
                    );
                }
            }
            tracing::info!("grpc server stopped");
            Ok(())
        }
    }

    fn prepare(
        self,
        routes: ServiceRoutes,
        auth: &AuthLayer,
        file_descriptor_sets: &[&[u8]],
        services: &[&str],
    ) -> anyhow::Result<Prepared> {
        // Config validation refuses this already; a service built without it (tests,
        // embedding) is refused here.
        anyhow::ensure!(
            !auth.authenticator().is_disabled() || crate::config::is_loopback(&self.local_addr),
            "grpc.listen: {} is not a loopback address, and auth.mode = \"none\" (no \
             authentication) is only allowed on loopback",
            self.local_addr
        );
        let limit = self.config.max_message_bytes;
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for set in file_descriptor_sets {
                builder = builder.register_encoded_file_descriptor_set(set);
            }
            builder
        };
        let reflection_v1 = reflection()
            .build_v1()
            .context("invalid file descriptor set for reflection")?
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .context("invalid file descriptor set for reflection")?
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let health_server = HealthServer::new(HealthService::from_health_reporter(self.health.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);

        let known_methods = known_methods(file_descriptor_sets)?;
        check_policy(auth, &known_methods, services);

        let routes = routes
            .build(limit)
            .add_service(health_server)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(Prepared { server: self, routes, known_methods })
    }
}

/// Sets every name of `names` and the overall `""` to `status`.
async fn set_all(health: &HealthReporter, names: &[String], status: ServingStatus) {
    for name in names.iter().map(String::as_str).chain([""]) {
        health.set_service_status(name, status).await;
    }
}

fn serving_status(readiness: &Readiness) -> ServingStatus {
    if readiness.is_ready() { ServingStatus::Serving } else { ServingStatus::NotServing }
}

/// Keeps the health statuses equal to `readiness` until aborted by the drain.
async fn follow_readiness(readiness: Readiness, health: HealthReporter, names: Vec<String>) {
    let mut changes = readiness.subscribe();
    let mut last = None;
    loop {
        let status = serving_status(&readiness);
        if last != Some(status) {
            if status == ServingStatus::NotServing {
                tracing::warn!(not_ready = ?readiness.report().not_ready, "grpc health NOT_SERVING");
            } else if last.is_some() {
                tracing::info!("grpc health SERVING again");
            }
            set_all(&health, &names, status).await;
            last = Some(status);
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Every method path in `file_descriptor_sets` plus the kit's built-in ones.
fn known_methods(file_descriptor_sets: &[&[u8]]) -> anyhow::Result<HashSet<String>> {
    let mut methods: HashSet<String> = BUILTIN_METHODS.iter().map(|m| (*m).to_owned()).collect();
    for bytes in file_descriptor_sets {
        let set =
            prost_types::FileDescriptorSet::decode(*bytes).context("failed to decode file descriptor set")?;
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                let service_name = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                for method in &service.method {
                    methods.insert(format!("/{service_name}/{}", method.name()));
                }
            }
        }
    }
    Ok(methods)
}

/// Startup warnings for policy mistakes: served methods without a rule (they will be denied)
/// and rules naming methods that do not exist (typos).
fn check_policy(auth: &AuthLayer, known_methods: &HashSet<String>, services: &[&str]) {
    let policy = auth.policy();
    for method in known_methods {
        let Some((service, _)) = crate::auth::split_method_path(method) else {
            continue;
        };
        if services.contains(&service) && policy.access_for(method).is_none() {
            tracing::warn!(method = %method, "method has no auth policy entry and will be denied");
        }
    }
    for (method, access) in policy.methods() {
        if !known_methods.contains(method) {
            tracing::warn!(method, access = ?access, "auth policy names a method the server does not serve");
        }
    }
    if auth.authenticator().is_disabled() {
        return;
    }
    let public: Vec<&str> = policy.methods().filter(|(_, a)| **a == Access::Public).map(|(m, _)| m).collect();
    if !public.is_empty() {
        tracing::info!(methods = ?public, "methods callable without a token");
    }
}
