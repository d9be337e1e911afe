//! The remediation service: a remediation plan per accepted case (actions
//! per product and version, due dates from the SLA policy, releases, VEX
//! status) and the case's security advisory (draft, publish, export as CSAF
//! 2.0, CVE JSON 5, OSV and OpenVEX; a CSAF trusted provider directory).
//!
//! `Application::build` connects to NATS and the database, migrates, binds
//! the gRPC and admin listeners (port 0 allowed) and `run_until_stopped`
//! serves until the shutdown signal, with the read-model projection, the
//! reactions to triage and the overdue scheduler running alongside.

pub mod api;
pub mod csaf_dir;
pub mod documents;
pub mod handlers;
pub mod mapping;
pub mod reactions;
pub mod readmodel;
pub mod scope;
pub mod view;

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
use psirt_proto::remediation::advisory_service_server::AdvisoryServiceServer;
use psirt_proto::remediation::remediation_service_server::RemediationServiceServer;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use tracing::{info, warn};

pub use handlers::{Remediation, RemediationSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-remediation";

/// The whole configuration of `psirt-remediation`. Every key is documented
/// in `config/remediation.example.toml`.
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
    pub remediation: RemediationSettings,
    pub advisory: documents::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig { listen: SocketAddr::from(([127, 0, 0, 1], 50053)), ..GrpcConfig::default() },
            admin: AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9103)) },
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            auth: AuthConfig::default(),
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            projection: ProjectionSettings::default(),
            remediation: RemediationSettings::default(),
            advisory: documents::Settings::default(),
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
        let r = &self.remediation;
        p.check(
            (1..=10_000).contains(&r.max_page_size),
            "remediation.max_page_size",
            "must be between 1 and 10000",
        );
        p.check(
            r.default_page_size >= 1 && r.default_page_size <= r.max_page_size,
            "remediation.default_page_size",
            "must be between 1 and remediation.max_page_size",
        );
        p.check(
            (100..=3_600_000).contains(&r.overdue_check_interval_ms),
            "remediation.overdue_check_interval_ms",
            "must be between 100 and 3600000",
        );
        for v in r.policy.validate() {
            p.push(&format!("remediation.policy.{}", v.field), v.description);
        }
        for (field, problem) in self.advisory.problems() {
            p.push(&format!("advisory.{field}"), problem);
        }
    }
}

/// A built, bound application.
pub struct Application {
    grpc: GrpcServer,
    admin: AdminServer,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    remediation: Remediation,
    store: EventStore,
    pool: AnyPool,
    auth: AuthLayer,
    projection: ProjectionSettings,
    settings: RemediationSettings,
    documents: documents::Settings,
    readiness: Readiness,
}

async fn open(config: &Config) -> anyhow::Result<(EventStore, AnyPool)> {
    let store = psirt_kit::backbone::open_event_store(&config.nats, SERVICE).await?;
    let pool = psirt_kit::backbone::open_database(&config.database).await?;
    psirt_kit::backbone::migrate(&readmodel::MIGRATOR, &pool, "remediation").await?;
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
        let admin = AdminServer::bind(config.admin.listen, readiness.clone(), metrics)
            .await?
            .merge(csaf_dir::routes(pool.clone(), config.advisory.clone()));
        let grpc_addr = grpc.local_addr();
        let admin_addr = admin.local_addr();
        let remediation = Remediation::new(
            store.clone(),
            pool.clone(),
            config.remediation.clone(),
            config.advisory.clone(),
        );
        Ok(Self {
            grpc,
            admin,
            grpc_addr,
            admin_addr,
            remediation,
            store,
            pool,
            auth,
            projection: config.projection.clone(),
            settings: config.remediation.clone(),
            documents: config.advisory.clone(),
            readiness,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn remediation(&self) -> &Remediation {
        &self.remediation
    }

    /// Serves gRPC and admin HTTP and runs the projection, the reactions and
    /// the overdue scheduler until `shutdown`; then drains calls, stops them
    /// (the last batches committed and acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            grpc,
            admin,
            remediation,
            store,
            pool,
            auth,
            projection,
            settings,
            documents,
            readiness,
            ..
        } = self;
        let serving = readiness.register("grpc");
        let nats_watch = psirt_kit::backbone::watch_backbone(
            store.jetstream().client(),
            pool.clone(),
            &readiness,
            shutdown.clone(),
        );

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        // The plans and advisories views, rebuilt in place through the admin
        // API (the reactions are not: replaying them would act again).
        let views = {
            let (pool, store, projection) = (pool.clone(), store.clone(), projection.clone());
            Rebuildable::new(move || {
                ProjectionRunner::new(
                    readmodel::ViewsProjection { documents: documents.clone() },
                    pool.clone(),
                    store.clone(),
                    projection.clone(),
                )
            })
        };
        let rebuilder = views.rebuilder();
        let views_watch = views.watched();
        let views_parked = views.parked_events();
        let views_position = views.position();
        let views_task = tokio::spawn(views.run(stop_rx.clone()));
        let reactions = ProjectionRunner::new(
            reactions::Reactions::new(store.clone(), settings.policy.clone()),
            pool.clone(),
            store,
            projection.for_reactions(),
        );
        let reactions_watch = reactions.watched();
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![views_position])
            .with_reactions(vec![reactions.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![views_parked, reactions.parked_events()]);
        let reactions_task = tokio::spawn(reactions.run(stop_rx));
        let _stall_watch = psirt_kit::backbone::watch_projections(
            vec![views_watch, reactions_watch],
            projection.stalled_after,
            &readiness,
            shutdown.clone(),
        );

        psirt_kit::telemetry::declare_sla_clocks(&["remediation"]);
        let scheduler = {
            let remediation = remediation.clone();
            let shutdown = shutdown.clone();
            let every = std::time::Duration::from_millis(settings.overdue_check_interval_ms);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(every) => {}
                    }
                    if let Err(e) = remediation.record_breaches().await {
                        warn!(error = %e, "overdue scheduler pass failed");
                    }
                }
            })
        };

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(RemediationServiceServer::new(api::RemediationApi::new(remediation.clone())))
            .add_service(AdvisoryServiceServer::new(api::AdvisoryApi::new(remediation)))
            .add_service(AdminServiceServer::new(
                psirt_kit::parked::AdminApi::new(SERVICE, parked).with_rebuilders(vec![rebuilder]),
            ))
            .read_models(read_models);
        let grpc_task = tokio::spawn(grpc.serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            &[api::REMEDIATION_SERVICE, api::ADVISORY_SERVICE, psirt_kit::parked::ADMIN_SERVICE],
            shutdown.clone(),
        ));
        let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
        serving.set_ready(true);
        info!("psirt-remediation ready");

        shutdown.wait().await;
        serving.set_ready(false);
        let grpc_result = grpc_task.await.context("grpc task panicked")?;
        let _ = nats_watch.await;
        let _ = stop.send(true);
        for (name, task) in [("remediation-views", views_task), ("remediation-reactions", reactions_task)] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(projection = name, error = %e, "projection stopped with an error"),
                Err(e) => warn!(projection = name, error = %e, "projection task panicked"),
            }
        }
        let admin_result = admin_task.await.context("admin task panicked")?;
        let _ = scheduler.await;
        info!("psirt-remediation stopped");
        pool.close().await;
        grpc_result?;
        admin_result?;
        Ok(())
    }
}

/// Replays the read model from sequence 1; `on_progress(done, total)`. The
/// reactions are not replayed: what they appended is on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    let (store, pool) = open(config).await?;
    let runner = ProjectionRunner::new(
        readmodel::ViewsProjection { documents: config.advisory.clone() },
        pool,
        store,
        config.projection.clone(),
    );
    Ok(runner.rebuild(on_progress).await?)
}

/// `psirt-remediation` as the kit's command line runs it.
pub struct RemediationService;

impl psirt_kit::service::Service for RemediationService {
    const NAME: &'static str = SERVICE;
    const ABOUT: &'static str = "PSIRT remediation service: remediation plans, VEX status and advisories";
    const READ_MODEL: &'static str = "the remediation read model";
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
