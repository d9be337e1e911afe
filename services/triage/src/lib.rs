//! The triage service: cases opened from reports, triage decisions as case
//! events, and the case view built from the events of every service.
//!
//! `Application::build` connects to NATS and the database, migrates, binds
//! the gRPC and admin listeners (port 0 allowed, the bound addresses
//! exposed) and `run_until_stopped` serves until the shutdown signal, with
//! the case view projection and the reactions to intake running alongside.

pub mod api;
pub mod handlers;
pub mod mapping;
pub mod plan_state;
pub mod reactions;
pub mod readmodel;
pub mod scope;
pub mod view;
pub mod watch;

use std::net::SocketAddr;

use anyhow::Context;
use psirt_eventstore::EventStore;
use psirt_kit::config::{
    AdminConfig, AuthConfig, DatabaseConfig, GrpcConfig, LogConfig, NatsConfig, OtelConfig, Problems,
};
use psirt_kit::service::{Sections, ServiceConfig};
use psirt_kit::{AdminServer, AuthLayer, GrpcServer, MetricsHandle, Readiness, Shutdown};
use psirt_projection::{ProjectionRunner, ProjectionSettings};
use psirt_proto::admin::admin_service_server::AdminServiceServer;
use psirt_proto::triage::case_service_server::CaseServiceServer;
use psirt_proto::triage::triage_service_server::TriageServiceServer;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use tracing::{info, warn};

pub use handlers::{Triage, TriageSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-triage";

/// The whole configuration of `psirt-triage`. Every key is documented in
/// `config/triage.example.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub grpc: GrpcConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub otel: OtelConfig,
    pub auth: AuthConfig,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub projection: ProjectionSettings,
    pub triage: TriageSettings,
    pub watch: watch::WatchSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig { listen: SocketAddr::from(([127, 0, 0, 1], 50052)), ..GrpcConfig::default() },
            admin: AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9102)) },
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            auth: AuthConfig::default(),
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            projection: ProjectionSettings::default(),
            triage: TriageSettings::default(),
            watch: watch::WatchSettings::default(),
        }
    }
}

impl ServiceConfig for Config {
    fn sections(&self) -> Sections<'_> {
        Sections {
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

    fn check_own(&self, p: &mut Problems) {
        let t = &self.triage;
        p.check(
            (1..=10_000).contains(&t.max_page_size),
            "triage.max_page_size",
            "must be between 1 and 10000",
        );
        p.check(
            t.default_page_size >= 1 && t.default_page_size <= t.max_page_size,
            "triage.default_page_size",
            "must be between 1 and triage.max_page_size",
        );
        p.check(
            (100..=3_600_000).contains(&t.sla_check_interval_ms),
            "triage.sla_check_interval_ms",
            "must be between 100 and 3600000",
        );
        for v in t.sla.validate() {
            p.push(&format!("triage.sla.{}", v.field), v.description);
        }
        for (key, problem) in self.watch.problems() {
            p.push(key, problem);
        }
    }
}

/// A built, bound application.
pub struct Application {
    grpc: GrpcServer,
    admin: AdminServer,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    triage: Triage,
    store: EventStore,
    pool: AnyPool,
    auth: AuthLayer,
    projection: ProjectionSettings,
    settings: TriageSettings,
    readiness: Readiness,
    hub: watch::WatchHub,
}

async fn open(config: &Config) -> anyhow::Result<(EventStore, AnyPool)> {
    let store = psirt_kit::backbone::open_event_store(&config.nats, SERVICE).await?;
    let pool = psirt_kit::backbone::open_database(&config.database).await?;
    psirt_kit::backbone::migrate(&readmodel::MIGRATOR, &pool, "triage").await?;
    psirt_projection::ensure_schema(&pool).await.context("failed to create projection tables")?;
    Ok((store, pool))
}

impl Application {
    /// Connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        let (store, pool) = open(config).await?;
        let auth = AuthLayer::from_config(&config.auth, api::policy())
            .await
            .context("failed to set up authentication")?;
        let readiness = Readiness::new();
        let grpc = GrpcServer::bind(&config.grpc).await?.with_readiness(readiness.clone());
        let admin = AdminServer::bind(config.admin.listen, readiness.clone(), metrics).await?;
        let grpc_addr = grpc.local_addr();
        let admin_addr = admin.local_addr();
        let triage = Triage::new(store.clone(), pool.clone(), config.triage.clone());
        // Watches replay what the case view commits from here on.
        let checkpoint = psirt_projection::checkpoint(&pool, readmodel::PROJECTION_NAME).await?;
        let hub = watch::WatchHub::new(config.watch.clone(), checkpoint);
        Ok(Self {
            grpc,
            admin,
            grpc_addr,
            admin_addr,
            triage,
            store,
            pool,
            auth,
            projection: config.projection.clone(),
            settings: config.triage.clone(),
            readiness,
            hub,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn triage(&self) -> &Triage {
        &self.triage
    }

    /// Serves gRPC and admin HTTP and runs the case view projection, the
    /// reactions and the SLA scheduler until `shutdown`; then drains calls,
    /// stops them (the last batches committed and acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { grpc, admin, triage, store, pool, auth, projection, settings, readiness, hub, .. } = self;
        let serving = readiness.register("grpc");
        let nats_watch = psirt_kit::backbone::watch_backbone(
            store.jetstream().client(),
            pool.clone(),
            &readiness,
            shutdown.clone(),
        );

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        // The case view, publishing its changes to the watches; rebuilt in
        // place through the admin API.
        let cases =
            watch::case_view(projection.clone(), settings.sla, pool.clone(), store.clone(), hub.clone());
        let rebuilder = cases.rebuilder();
        let cases_watch = cases.watched();
        let cases_parked = cases.parked_events();
        let cases_position = cases.position();
        let cases_task = tokio::spawn(cases.run(stop_rx.clone()));
        let follower =
            tokio::spawn(hub.clone().follow_read_model(pool.clone(), store.clone(), stop_rx.clone()));
        let reactions = ProjectionRunner::new(
            reactions::Reactions::new(store.clone()),
            pool.clone(),
            store,
            projection.for_reactions(),
        );
        let reactions_watch = reactions.watched();
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![cases_position])
            .with_reactions(vec![reactions.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![cases_parked, reactions.parked_events()]);
        let reactions_task = tokio::spawn(reactions.run(stop_rx));
        let _stall_watch = psirt_kit::backbone::watch_projections(
            vec![cases_watch, reactions_watch],
            projection.stalled_after,
            &readiness,
            shutdown.clone(),
        );

        psirt_kit::telemetry::declare_sla_clocks(&psirt_domain::SlaClock::ALL.map(|c| c.as_str()));
        let scheduler = {
            let triage = triage.clone();
            let shutdown = shutdown.clone();
            let every = std::time::Duration::from_millis(settings.sla_check_interval_ms);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(every) => {}
                    }
                    if let Err(e) = triage.record_breaches().await {
                        warn!(error = %e, "sla scheduler pass failed");
                    }
                }
            })
        };

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(TriageServiceServer::new(api::TriageApi::new(triage.clone())))
            .add_service(CaseServiceServer::new(api::CaseApi::new(triage, hub.clone())))
            .add_service(AdminServiceServer::new(
                psirt_kit::parked::AdminApi::new(SERVICE, parked).with_rebuilders(vec![rebuilder]),
            ))
            .read_models(read_models);
        let grpc_task = tokio::spawn(grpc.serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            &[api::TRIAGE_SERVICE, api::CASE_SERVICE, api::ADMIN_SERVICE],
            shutdown.clone(),
        ));
        let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
        serving.set_ready(true);
        info!("psirt-triage ready");

        shutdown.wait().await;
        serving.set_ready(false);
        // Watches never end by themselves: end them so the drain is quick.
        hub.close();
        let grpc_result = grpc_task.await.context("grpc task panicked")?;
        let _ = nats_watch.await;
        let _ = stop.send(true);
        for (name, task) in [("triage-cases", cases_task), ("triage-reactions", reactions_task)] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(projection = name, error = %e, "projection stopped with an error"),
                Err(e) => warn!(projection = name, error = %e, "projection task panicked"),
            }
        }
        let _ = follower.await;
        let admin_result = admin_task.await.context("admin task panicked")?;
        let _ = scheduler.await;
        info!(checkpoint = hub.head(), "psirt-triage stopped");
        pool.close().await;
        grpc_result?;
        admin_result?;
        Ok(())
    }
}

/// Replays the case view from sequence 1; `on_progress(done, total)`. The
/// reactions are not replayed: what they appended is on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    let (store, pool) = open(config).await?;
    let runner = ProjectionRunner::new(
        readmodel::CasesProjection::new(config.triage.sla),
        pool,
        store,
        config.projection.clone(),
    );
    Ok(runner.rebuild_offline(on_progress).await?)
}

/// `psirt-triage` as the kit's command line runs it.
pub struct TriageService;

impl psirt_kit::service::Service for TriageService {
    const NAME: &'static str = SERVICE;
    const ABOUT: &'static str = "PSIRT triage service: cases, triage decisions and the case view";
    const READ_MODEL: &'static str = "the case view";
    type Config = Config;
    type App = Application;

    async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Application> {
        Application::build(config, metrics).await
    }

    async fn rebuild(config: &Config, on_progress: &(dyn Fn(u64, u64) + Send + Sync)) -> anyhow::Result<u64> {
        rebuild(config, on_progress).await
    }
}

impl psirt_kit::service::App for Application {
    fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        Application::run_until_stopped(self, shutdown).await
    }
}
