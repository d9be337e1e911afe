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

use std::net::SocketAddr;

use psirt_kit::config::Problems;
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::{Host, MetricsHandle, Shutdown, Workers};
use psirt_projection::ProjectionRunner;
use psirt_proto::remediation::advisory_service_server::AdvisoryServiceServer;
use psirt_proto::remediation::remediation_service_server::RemediationServiceServer;

pub use handlers::{Remediation, RemediationSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-remediation";

psirt_kit::service_config! {
    /// The whole configuration of `psirt-remediation`. Every key is documented
    /// in `config/remediation.example.toml`.
    pub struct Config {
        ports: (50053, 9103),
        check: check_settings,
        pub remediation: RemediationSettings,
        pub advisory: documents::Settings,
    }
}

impl Config {
    fn check_settings(&self, p: &mut Problems) {
        let r = &self.remediation;
        p.page_sizes("remediation", r.default_page_size, r.max_page_size);
        p.interval_ms("remediation.overdue_check_interval_ms", r.overdue_check_interval_ms);
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
    host: Host,
    remediation: Remediation,
    settings: RemediationSettings,
    documents: documents::Settings,
}

impl Application {
    /// Connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        use psirt_kit::service::ServiceConfig as _;
        let migrations = (&readmodel::MIGRATOR, "remediation");
        let host =
            Box::pin(Host::build(SERVICE, config.sections(), migrations, api::policy(), metrics)).await?;
        let host = {
            let directory = csaf_dir::routes(host.pool().clone(), config.advisory.clone());
            host.merge_admin(directory)
        };
        let remediation = Remediation::new(
            host.store().clone(),
            host.pool().clone(),
            config.remediation.clone(),
            config.advisory.clone(),
        );
        Ok(Self {
            host,
            remediation,
            settings: config.remediation.clone(),
            documents: config.advisory.clone(),
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.host.admin_addr()
    }

    pub fn remediation(&self) -> &Remediation {
        &self.remediation
    }

    /// Serves gRPC and admin HTTP and runs the projection, the reactions and
    /// the overdue scheduler until `shutdown`; then drains calls, stops them
    /// (the last batches committed and acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { host, remediation, settings, documents } = self;
        let (pool, store, projection) =
            (host.pool().clone(), host.store().clone(), host.projection().clone());
        let mut workers = Workers::new();
        // The plans and advisories views, rebuilt in place through the admin
        // API (the reactions are not: replaying them would act again).
        let views = {
            let (pool, store, projection) = (pool.clone(), store.clone(), projection.clone());
            Rebuildable::new(move || {
                let views = readmodel::ViewsProjection { documents: documents.clone() };
                ProjectionRunner::new(views, pool.clone(), store.clone(), projection.clone())
            })
        };
        let rebuilder = views.rebuilder();
        let views_parked = views.parked_events();
        let views_position = views.position();
        workers.projection(views.watched(), views.run(workers.stop_signal()));
        let reactions = reactions::Reactions::new(store.clone(), settings.policy.clone());
        let reactions = ProjectionRunner::new(reactions, pool, store, projection.for_reactions());
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![views_position])
            .with_reactions(vec![reactions.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![views_parked, reactions.parked_events()]);
        workers.projection(reactions.watched(), reactions.run(workers.stop_signal()));

        psirt_kit::telemetry::declare_sla_clocks(&["remediation"]);
        let scheduler = remediation.clone();
        let every = std::time::Duration::from_millis(settings.overdue_check_interval_ms);
        workers.every("overdue-scheduler", every, &shutdown, move || {
            let remediation = scheduler.clone();
            async move { remediation.record_breaches().await }
        });

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(RemediationServiceServer::new(api::RemediationApi::new(remediation.clone())))
            .add_service(AdvisoryServiceServer::new(api::AdvisoryApi::new(remediation)))
            .admin(SERVICE, parked, vec![rebuilder])
            .read_models(read_models);
        let names = [api::REMEDIATION_SERVICE, api::ADVISORY_SERVICE, psirt_kit::parked::ADMIN_SERVICE];
        Box::pin(host.serve(shutdown, routes, &names, workers, || {})).await
    }
}

/// Replays the read model from sequence 1; `on_progress(done, total)`. The
/// reactions are not replayed: what they appended is on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    use psirt_kit::service::ServiceConfig as _;
    let (store, pool) =
        psirt_kit::host::open(SERVICE, config.sections(), &readmodel::MIGRATOR, "remediation").await?;
    let views = readmodel::ViewsProjection { documents: config.advisory.clone() };
    let runner = ProjectionRunner::new(views, pool, store, config.projection.clone());
    Ok(runner.rebuild(on_progress).await?)
}

psirt_kit::service! {
    /// `psirt-remediation` as the kit's command line runs it.
    pub struct RemediationService {
        name: SERVICE,
        about: "PSIRT remediation service: remediation plans, VEX status and advisories",
        read_model: "the remediation read model",
    }
}
