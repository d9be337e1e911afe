//! The wiring every service shares around its own handlers, written once:
//!
//! - [`open`]: the event store (the service's NATS identity) and the database,
//!   migrated, with the projection tables;
//! - [`Host::build`]: that, authentication with the service's policy, and both
//!   listeners bound (port 0 allowed, the bound addresses exposed); nothing is
//!   served yet;
//! - [`Workers`]: what runs beside the API (projections, reactions,
//!   schedulers), each with the signal that ends it;
//! - [`Host::serve`]: serves gRPC and admin HTTP with readiness following the
//!   backbone and the projections until the shutdown signal, then drains in
//!   one order: calls in flight, the workers that end with the shutdown
//!   (a delivery in flight is recorded), the projections (their last batch
//!   committed and acknowledged), the workers that follow them, the admin
//!   listener, the database pool.
//!
//! A service's `Application` is its handlers and the routes it adds.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use psirt_eventstore::EventStore;
use psirt_projection::{ProjectionError, ProjectionSettings};
use sqlx::AnyPool;
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::service::Sections;
use crate::{
    AdminServer, AuthLayer, AuthPolicy, GrpcServer, MetricsHandle, Readiness, ServiceRoutes, Shutdown,
};

/// Opens the event store and the database of `service`, applies `migrator`
/// (its migrations' name in errors: `schema`) and creates the projection
/// tables. What `serve` and an offline `rebuild` both start from.
pub async fn open(
    service: &str,
    sections: Sections<'_>,
    migrator: &Migrator,
    schema: &str,
) -> anyhow::Result<(EventStore, AnyPool)> {
    let store = crate::backbone::open_event_store(sections.nats, service).await?;
    let pool = crate::backbone::open_database(sections.database).await?;
    crate::backbone::migrate(migrator, &pool, schema).await?;
    psirt_projection::ensure_schema(&pool).await.context("failed to create projection tables")?;
    Ok((store, pool))
}

/// A service connected and bound, not yet serving.
pub struct Host {
    service: &'static str,
    grpc: GrpcServer,
    admin: AdminServer,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    store: EventStore,
    pool: AnyPool,
    auth: AuthLayer,
    readiness: Readiness,
    projection: ProjectionSettings,
}

impl Host {
    /// Connects ([`open`]), sets up authentication with `policy` and binds
    /// the gRPC and admin listeners.
    pub async fn build(
        service: &'static str,
        sections: Sections<'_>,
        (migrator, schema): (&Migrator, &str),
        policy: AuthPolicy,
        metrics: MetricsHandle,
    ) -> anyhow::Result<Self> {
        let (store, pool) = open(service, sections, migrator, schema).await?;
        let auth =
            AuthLayer::from_config(sections.auth, policy).await.context("failed to set up authentication")?;
        let readiness = Readiness::new();
        let grpc = GrpcServer::bind(sections.grpc).await?.with_readiness(readiness.clone());
        let admin = AdminServer::bind(sections.admin.listen, readiness.clone(), metrics).await?;
        let (grpc_addr, admin_addr) = (grpc.local_addr(), admin.local_addr());
        Ok(Self {
            service,
            grpc,
            admin,
            grpc_addr,
            admin_addr,
            store,
            pool,
            auth,
            readiness,
            projection: sections.projection.clone(),
        })
    }

    /// Adds HTTP routes to the admin listener (the CSAF provider directory,
    /// the trackers' webhooks).
    #[must_use]
    pub fn merge_admin(mut self, routes: axum::Router) -> Self {
        self.admin = self.admin.merge(routes);
        self
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn projection(&self) -> &ProjectionSettings {
        &self.projection
    }

    /// Serves `routes` (gRPC services `names`, plus health and reflection)
    /// and admin HTTP, with `workers` running beside them, until `shutdown`;
    /// then `drain` (for what never ends by itself, such as live watches)
    /// and the drain of the module documentation.
    pub async fn serve(
        self,
        shutdown: Shutdown,
        routes: ServiceRoutes,
        names: &[&str],
        workers: Workers,
        drain: impl FnOnce() + Send,
    ) -> anyhow::Result<()> {
        let Self { service, grpc, admin, store, pool, auth, readiness, projection, .. } = self;
        let Workers { stop, projections, watched, until_shutdown, until_stopped } = workers;
        let serving = readiness.register("grpc");
        let backbone = crate::backbone::watch_backbone(
            store.jetstream().client(),
            pool.clone(),
            &readiness,
            shutdown.clone(),
        );
        let _stall_watch = crate::backbone::watch_projections(
            watched,
            projection.stalled_after,
            &readiness,
            shutdown.clone(),
        );
        let grpc_task = tokio::spawn(grpc.serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            names,
            shutdown.clone(),
        ));
        let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
        serving.set_ready(true);
        info!("{service} ready");

        shutdown.wait().await;
        serving.set_ready(false);
        drain();
        let grpc_result = grpc_task.await.context("grpc task panicked")?;
        let _ = backbone.await;
        join_all(until_shutdown).await;
        let _ = stop.send(true);
        for (name, task) in projections {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(projection = %name, error = %e, "projection stopped with an error"),
                Err(e) => warn!(projection = %name, error = %e, "projection task panicked"),
            }
        }
        join_all(until_stopped).await;
        let admin_result = admin_task.await.context("admin task panicked")?;
        info!("{service} stopped");
        pool.close().await;
        grpc_result?;
        admin_result?;
        Ok(())
    }
}

async fn join_all(tasks: Vec<(&'static str, JoinHandle<()>)>) {
    for (name, task) in tasks {
        if let Err(e) = task.await {
            warn!(worker = name, error = %e, "worker panicked");
        }
    }
}

/// What runs beside a service's API, and what ends each part.
pub struct Workers {
    stop: watch::Sender<bool>,
    projections: Vec<(String, JoinHandle<Result<(), ProjectionError>>)>,
    watched: Vec<(String, Arc<psirt_projection::Progress>)>,
    until_shutdown: Vec<(&'static str, JoinHandle<()>)>,
    until_stopped: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            projections: Vec::new(),
            watched: Vec::new(),
            until_shutdown: Vec::new(),
            until_stopped: Vec::new(),
        }
    }

    /// The signal that stops the projections (after the API has drained).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs a projection (`run` is its runner's `run(stop_signal())`), its
    /// progress `watched` by readiness (a stalled projection is not ready).
    pub fn projection(
        &mut self,
        watched: (String, Arc<psirt_projection::Progress>),
        run: impl Future<Output = Result<(), ProjectionError>> + Send + 'static,
    ) {
        self.projections.push((watched.0.clone(), tokio::spawn(run)));
        self.watched.push(watched);
    }

    /// Runs `work`, which ends by itself on the shutdown signal; it is
    /// awaited before the projections stop.
    pub fn until_shutdown(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.until_shutdown.push((name, tokio::spawn(work)));
    }

    /// Runs `work`, which ends on [`Workers::stop_signal`]; it is awaited
    /// after the projections stopped.
    pub fn until_stopped(&mut self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.until_stopped.push((name, tokio::spawn(work)));
    }

    /// Runs `pass` every `every` until `shutdown` (the first pass after one
    /// interval); a failed pass is logged and the next one runs on time.
    pub fn every<F, Fut, T, E>(&mut self, name: &'static str, every: Duration, shutdown: &Shutdown, pass: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        E: std::fmt::Display,
    {
        let shutdown = shutdown.clone();
        self.until_shutdown(name, async move {
            loop {
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(e) = pass().await {
                    warn!(worker = name, error = %e, "pass failed");
                }
            }
        });
    }
}
