//! The intake service: vulnerability reports in, `ReportReceived` events out.
//!
//! `Application::build` connects to NATS and the database, migrates, binds
//! the gRPC and admin listeners (port 0 allowed, the bound addresses
//! exposed) and `run_until_stopped` serves until the shutdown signal, with
//! the read-model projection running alongside.

pub mod api;
pub mod dedup;
pub mod handlers;
pub mod mapping;
pub mod readmodel;

use psirt_proto::admin::admin_service_server::AdminServiceServer;
use std::net::SocketAddr;

use anyhow::Context;
use psirt_eventstore::EventStore;
use psirt_kit::config::{
    AdminConfig, AuthConfig, DatabaseConfig, GrpcConfig, LogConfig, NatsConfig, OtelConfig, Problems,
};
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::service::{Sections, ServiceConfig};
use psirt_kit::{AdminServer, AuthLayer, GrpcServer, MetricsHandle, Readiness, Shutdown};
use psirt_projection::{ProjectionRunner, ProjectionSettings};
use psirt_proto::intake::intake_service_server::IntakeServiceServer;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use tracing::{info, warn};

pub use handlers::{Intake, IntakeQuotas, IntakeSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-intake";

/// The whole configuration of `psirt-intake`. Every key is documented in
/// `config/psirt.example.toml`.
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
    pub intake: IntakeSettings,
    pub quotas: IntakeQuotas,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig { listen: SocketAddr::from(([127, 0, 0, 1], 50051)), ..GrpcConfig::default() },
            admin: AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9101)) },
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            auth: AuthConfig::default(),
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            projection: ProjectionSettings::default(),
            intake: IntakeSettings::default(),
            quotas: IntakeQuotas::default(),
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
        let i = &self.intake;
        p.check(i.duplicate_window_days >= 1, "intake.duplicate_window_days", "must be at least 1");
        p.check(
            (1..=10_000).contains(&i.max_page_size),
            "intake.max_page_size",
            "must be between 1 and 10000",
        );
        p.check(
            i.default_page_size >= 1 && i.default_page_size <= i.max_page_size,
            "intake.default_page_size",
            "must be between 1 and intake.max_page_size",
        );
        p.check(
            !i.acknowledgement_template.trim().is_empty(),
            "intake.acknowledgement_template",
            "must not be empty",
        );
        for (key, problem) in self.quotas.problems() {
            p.check(false, &format!("quotas.{key}"), &problem);
        }
    }
}

/// A built, bound application.
pub struct Application {
    grpc: GrpcServer,
    admin: AdminServer,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    intake: Intake,
    store: EventStore,
    pool: AnyPool,
    auth: AuthLayer,
    projection: ProjectionSettings,
    readiness: Readiness,
}

impl Application {
    /// Connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        let store = psirt_kit::backbone::open_event_store(&config.nats, SERVICE).await?;
        let pool = psirt_kit::backbone::open_database(&config.database).await?;
        psirt_kit::backbone::migrate(&readmodel::MIGRATOR, &pool, "intake").await?;
        psirt_projection::ensure_schema(&pool).await.context("failed to create projection tables")?;
        let auth = AuthLayer::from_config(&config.auth, api::policy())
            .await
            .context("failed to set up authentication")?;
        let readiness = Readiness::new();
        let grpc = GrpcServer::bind(&config.grpc).await?.with_readiness(readiness.clone());
        let admin = AdminServer::bind(config.admin.listen, readiness.clone(), metrics).await?;
        let grpc_addr = grpc.local_addr();
        let admin_addr = admin.local_addr();
        let intake = Intake::new(store.clone(), pool.clone(), config.intake.clone(), config.quotas.clone());
        Ok(Self {
            grpc,
            admin,
            grpc_addr,
            admin_addr,
            intake,
            store,
            pool,
            auth,
            projection: config.projection.clone(),
            readiness,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Serves gRPC and admin HTTP and runs the projection until `shutdown`;
    /// then drains calls, stops the projection (its last batch committed and
    /// acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { grpc, admin, intake, store, pool, auth, projection, readiness, .. } = self;
        let serving = readiness.register("grpc");
        let nats_watch = psirt_kit::backbone::watch_backbone(
            store.jetstream().client(),
            pool.clone(),
            &readiness,
            shutdown.clone(),
        );

        let (stop_projection, stop_rx) = tokio::sync::watch::channel(false);
        // The read model, rebuilt in place through the admin API.
        let runner = {
            let (pool, store, projection) = (pool.clone(), store.clone(), projection.clone());
            Rebuildable::new(move || {
                ProjectionRunner::new(
                    readmodel::ReportsProjection,
                    pool.clone(),
                    store.clone(),
                    projection.clone(),
                )
            })
        };
        let rebuilder = runner.rebuilder();
        let progress_watch = runner.watched();
        let progress = std::sync::Arc::clone(&progress_watch.1);
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![runner.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![runner.parked_events()]);
        let projection_task = tokio::spawn(runner.run(stop_rx));
        let _stall_watch = psirt_kit::backbone::watch_projections(
            vec![progress_watch],
            projection.stalled_after,
            &readiness,
            shutdown.clone(),
        );

        // The duplicate filter learns other replicas' and earlier reports
        // from the read model.
        if let Err(e) = intake.refresh_dedup_filter().await {
            warn!(error = %e, "failed to load the duplicate filter");
        }
        let refresher = {
            let intake = intake.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    }
                    if let Err(e) = intake.refresh_dedup_filter().await {
                        warn!(error = %e, "failed to refresh the duplicate filter");
                    }
                }
            })
        };

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(IntakeServiceServer::new(api::IntakeApi::new(intake)))
            .add_service(AdminServiceServer::new(
                psirt_kit::parked::AdminApi::new(SERVICE, parked).with_rebuilders(vec![rebuilder]),
            ))
            .read_models(read_models);
        let grpc_task = tokio::spawn(grpc.serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            &[api::SERVICE_NAME, psirt_kit::parked::ADMIN_SERVICE],
            shutdown.clone(),
        ));
        let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
        serving.set_ready(true);
        info!("psirt-intake ready");

        shutdown.wait().await;
        serving.set_ready(false);
        let grpc_result = grpc_task.await.context("grpc task panicked")?;
        let _ = stop_projection.send(true);
        match projection_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "projection stopped with an error"),
            Err(e) => warn!(error = %e, "projection task panicked"),
        }
        let admin_result = admin_task.await.context("admin task panicked")?;
        let _ = refresher.await;
        let _ = nats_watch.await;
        info!(
            checkpoint = progress.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
            "psirt-intake stopped"
        );
        pool.close().await;
        grpc_result?;
        admin_result?;
        Ok(())
    }
}

/// Replays the intake read model from sequence 1; `on_progress(done, total)`.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    let store = psirt_kit::backbone::open_event_store(&config.nats, SERVICE).await?;
    let pool = psirt_kit::backbone::open_database(&config.database).await?;
    psirt_kit::backbone::migrate(&readmodel::MIGRATOR, &pool, "intake").await?;
    let runner = ProjectionRunner::new(readmodel::ReportsProjection, pool, store, config.projection.clone());
    Ok(runner.rebuild(on_progress).await?)
}

/// `psirt-intake` as the kit's command line runs it.
pub struct IntakeService;

impl psirt_kit::service::Service for IntakeService {
    const NAME: &'static str = SERVICE;
    const ABOUT: &'static str = "PSIRT intake service: vulnerability reports in";
    const READ_MODEL: &'static str = "the intake read model";
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
