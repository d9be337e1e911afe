//! The internal admin HTTP server: Prometheus `/metrics`, liveness `/healthz` and readiness
//! `/readyz` (backed by named readiness checks), plus any extra routes a service merges in.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::shutdown::Shutdown;
use crate::telemetry::{MetricsHandle, PROMETHEUS_CONTENT_TYPE};

/// Named readiness checks; the process is ready when every registered check is.
/// Cheap to clone; clones share the checks. [`Readiness::subscribe`] tells of every
/// change (the gRPC health service follows it).
#[derive(Clone, Debug)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, Arc<AtomicBool>>>>,
    /// Bumped on every change of a check (and on registration).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self { checks: Arc::default(), changes: Arc::new(tokio::sync::watch::Sender::new(0)) }
    }
}

/// One readiness check, initially not ready. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadinessCheck {
    name: Arc<str>,
    ready: Arc<AtomicBool>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ReadinessCheck {
    /// Marks the dependency ready or not.
    pub fn set_ready(&self, ready: bool) {
        let was = self.ready.swap(ready, Ordering::SeqCst);
        if was != ready {
            tracing::info!(check = %self.name, ready, "readiness changed");
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Current state.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Body of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReadinessReport {
    /// True when every check is ready.
    pub ready: bool,
    /// Names of the checks that are not ready, sorted.
    pub not_ready: Vec<String>,
}

impl Readiness {
    /// No checks yet (an empty set is ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a check named `name`, initially not ready. Registering a name again returns
    /// a handle to the same check.
    pub fn register(&self, name: &str) -> ReadinessCheck {
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        let ready = checks.entry(name.to_owned()).or_insert_with(|| Arc::new(AtomicBool::new(false))).clone();
        drop(checks);
        // A new check (not ready) may turn the whole set not ready.
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        ReadinessCheck { name: Arc::from(name), ready, changes: self.changes.clone() }
    }

    /// A receiver that sees a change whenever a check changes or is registered; read
    /// [`Readiness::report`] after each.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current state of every check.
    pub fn report(&self) -> ReadinessReport {
        let checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        let not_ready: Vec<String> = checks
            .iter()
            .filter(|(_, ready)| !ready.load(Ordering::SeqCst))
            .map(|(name, _)| name.clone())
            .collect();
        ReadinessReport { ready: not_ready.is_empty(), not_ready }
    }

    /// True when every registered check is ready.
    pub fn is_ready(&self) -> bool {
        self.report().ready
    }
}

/// The admin HTTP server, bound but not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    router: Router,
}

impl AdminServer {
    /// Binds `addr` (port 0 allowed) and prepares `/metrics`, `/healthz` and `/readyz`.
    pub async fn bind(
        addr: SocketAddr,
        readiness: Readiness,
        metrics: MetricsHandle,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to bind admin listener on {addr}"))?;
        let local_addr = listener.local_addr().context("failed to read admin listener address")?;
        Ok(Self { listener, local_addr, router: router(readiness, metrics) })
    }

    /// The bound address (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a service's own routes (e.g. CSAF directory, inbound webhooks).
    pub fn merge(mut self, routes: Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// Serves until `shutdown` fires, then finishes in-flight requests.
    pub fn serve(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send {
        let Self { listener, local_addr, router } = self;
        async move {
            tracing::info!(addr = %local_addr, "admin server listening");
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
                .context("admin server failed")
        }
    }
}

/// The admin routes without a listener, for tests or embedding.
pub fn router(readiness: Readiness, metrics: MetricsHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], metrics.render()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let report = readiness.report();
                    let status = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, axum::Json(report)).into_response()
                }
            }),
        )
}
