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

use std::net::SocketAddr;

use psirt_kit::config::Problems;
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::{Host, MetricsHandle, Shutdown, Workers};
use psirt_projection::ProjectionRunner;
use psirt_proto::intake::intake_service_server::IntakeServiceServer;
use tracing::warn;

pub use handlers::{Intake, IntakeQuotas, IntakeSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-intake";

psirt_kit::service_config! {
    /// The whole configuration of `psirt-intake`. Every key is documented in
    /// `config/psirt.example.toml`.
    pub struct Config {
        ports: (50051, 9101),
        check: check_settings,
        pub intake: IntakeSettings,
        pub quotas: IntakeQuotas,
    }
}

impl Config {
    fn check_settings(&self, p: &mut Problems) {
        let i = &self.intake;
        p.check(i.duplicate_window_days >= 1, "intake.duplicate_window_days", "must be at least 1");
        p.page_sizes("intake", i.default_page_size, i.max_page_size);
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
    host: Host,
    intake: Intake,
}

impl Application {
    /// Connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        use psirt_kit::service::ServiceConfig as _;
        let migrations = (&readmodel::MIGRATOR, "intake");
        let host =
            Box::pin(Host::build(SERVICE, config.sections(), migrations, api::policy(), metrics)).await?;
        let intake = Intake::new(
            host.store().clone(),
            host.pool().clone(),
            config.intake.clone(),
            config.quotas.clone(),
        );
        Ok(Self { host, intake })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.host.admin_addr()
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Serves gRPC and admin HTTP and runs the projection until `shutdown`;
    /// then drains calls, stops the projection (its last batch committed and
    /// acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { host, intake } = self;
        let mut workers = Workers::new();
        // The read model, rebuilt in place through the admin API.
        let runner = {
            let (pool, store, projection) =
                (host.pool().clone(), host.store().clone(), host.projection().clone());
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
        let read_models = psirt_kit::ReadModels::new(host.projection().read_wait, vec![runner.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![runner.parked_events()]);
        workers.projection(runner.watched(), runner.run(workers.stop_signal()));

        // The duplicate filter learns other replicas' and earlier reports
        // from the read model.
        if let Err(e) = intake.refresh_dedup_filter().await {
            warn!(error = %e, "failed to load the duplicate filter");
        }
        let refresher = intake.clone();
        workers.every("dedup-filter-refresh", std::time::Duration::from_secs(2), &shutdown, move || {
            let intake = refresher.clone();
            async move { intake.refresh_dedup_filter().await }
        });

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(IntakeServiceServer::new(api::IntakeApi::new(intake)))
            .admin(SERVICE, parked, vec![rebuilder])
            .read_models(read_models);
        let names = [api::SERVICE_NAME, psirt_kit::parked::ADMIN_SERVICE];
        Box::pin(host.serve(shutdown, routes, &names, workers, || {})).await
    }
}

/// Replays the intake read model from sequence 1; `on_progress(done, total)`.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    use psirt_kit::service::ServiceConfig as _;
    let (store, pool) =
        psirt_kit::host::open(SERVICE, config.sections(), &readmodel::MIGRATOR, "intake").await?;
    let runner = ProjectionRunner::new(readmodel::ReportsProjection, pool, store, config.projection.clone());
    Ok(runner.rebuild(on_progress).await?)
}

psirt_kit::service! {
    /// `psirt-intake` as the kit's command line runs it.
    pub struct IntakeService {
        name: SERVICE,
        about: "PSIRT intake service: vulnerability reports in",
        read_model: "the intake read model",
    }
}
