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

use psirt_kit::config::Problems;
use psirt_kit::{Host, MetricsHandle, Shutdown, Workers};
use psirt_projection::ProjectionRunner;
use psirt_proto::triage::case_service_server::CaseServiceServer;
use psirt_proto::triage::triage_service_server::TriageServiceServer;

pub use handlers::{Triage, TriageSettings};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-triage";

psirt_kit::service_config! {
    /// The whole configuration of `psirt-triage`. Every key is documented in
    /// `config/triage.example.toml`.
    pub struct Config {
        ports: (50052, 9102),
        check: check_settings,
        pub triage: TriageSettings,
        pub watch: watch::WatchSettings,
    }
}

impl Config {
    fn check_settings(&self, p: &mut Problems) {
        let t = &self.triage;
        p.page_sizes("triage", t.default_page_size, t.max_page_size);
        p.interval_ms("triage.sla_check_interval_ms", t.sla_check_interval_ms);
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
    host: Host,
    triage: Triage,
    settings: TriageSettings,
    hub: watch::WatchHub,
}

impl Application {
    /// Connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        use psirt_kit::service::ServiceConfig as _;
        let migrations = (&readmodel::MIGRATOR, "triage");
        let host =
            Box::pin(Host::build(SERVICE, config.sections(), migrations, api::policy(), metrics)).await?;
        let triage = Triage::new(host.store().clone(), host.pool().clone(), config.triage.clone());
        // Watches replay what the case view commits from here on.
        let checkpoint = psirt_projection::checkpoint(host.pool(), readmodel::PROJECTION_NAME).await?;
        let hub = watch::WatchHub::new(config.watch.clone(), checkpoint);
        Ok(Self { host, triage, settings: config.triage.clone(), hub })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.host.admin_addr()
    }

    pub fn triage(&self) -> &Triage {
        &self.triage
    }

    /// Serves gRPC and admin HTTP and runs the case view projection, the
    /// reactions and the SLA scheduler until `shutdown`; then drains calls,
    /// stops them (the last batches committed and acknowledged) and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { host, triage, settings, hub } = self;
        let (pool, store, projection) =
            (host.pool().clone(), host.store().clone(), host.projection().clone());
        let mut workers = Workers::new();
        // The case view, publishing its changes to the watches; rebuilt in
        // place through the admin API.
        let cases =
            watch::case_view(projection.clone(), settings.sla, pool.clone(), store.clone(), hub.clone());
        let rebuilder = cases.rebuilder();
        let cases_parked = cases.parked_events();
        let cases_position = cases.position();
        workers.projection(cases.watched(), cases.run(workers.stop_signal()));
        workers.until_stopped(
            "watch-follower",
            hub.clone().follow_read_model(pool.clone(), store.clone(), workers.stop_signal()),
        );
        let reactions = ProjectionRunner::new(
            reactions::Reactions::new(store.clone()),
            pool,
            store,
            projection.for_reactions(),
        );
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![cases_position])
            .with_reactions(vec![reactions.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![cases_parked, reactions.parked_events()]);
        workers.projection(reactions.watched(), reactions.run(workers.stop_signal()));

        psirt_kit::telemetry::declare_sla_clocks(&psirt_domain::SlaClock::ALL.map(|c| c.as_str()));
        let scheduler = triage.clone();
        let every = std::time::Duration::from_millis(settings.sla_check_interval_ms);
        workers.every("sla-scheduler", every, &shutdown, move || {
            let triage = scheduler.clone();
            async move { triage.record_breaches().await }
        });

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(TriageServiceServer::new(api::TriageApi::new(triage.clone())))
            .add_service(CaseServiceServer::new(api::CaseApi::new(triage, hub.clone())))
            .admin(SERVICE, parked, vec![rebuilder])
            .read_models(read_models);
        let names = [api::TRIAGE_SERVICE, api::CASE_SERVICE, api::ADMIN_SERVICE];
        // Watches never end by themselves: end them so the drain is quick.
        Box::pin(host.serve(shutdown, routes, &names, workers, || hub.close())).await
    }
}

/// Replays the case view from sequence 1; `on_progress(done, total)`. The
/// reactions are not replayed: what they appended is on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    use psirt_kit::service::ServiceConfig as _;
    let (store, pool) =
        psirt_kit::host::open(SERVICE, config.sections(), &readmodel::MIGRATOR, "triage").await?;
    let projection = readmodel::CasesProjection::new(config.triage.sla);
    let runner = ProjectionRunner::new(projection, pool, store, config.projection.clone());
    Ok(runner.rebuild_offline(on_progress).await?)
}

psirt_kit::service! {
    /// `psirt-triage` as the kit's command line runs it.
    pub struct TriageService {
        name: SERVICE,
        about: "PSIRT triage service: cases, triage decisions and the case view",
        read_model: "the case view",
    }
}
