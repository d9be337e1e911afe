//! The notification service: subscriptions (routing rules and
//! destinations), routing of every event on the stream to the matching
//! subscriptions, and the delivery of each match over its channel (signed
//! CloudEvents webhooks, e-mail over SMTP, Jira and ServiceNow tickets kept
//! in step both ways), retried with backoff and parked as dead when the
//! destination keeps failing.
//!
//! `Application::build` connects to NATS and the database, migrates, binds
//! the gRPC and admin listeners (port 0 allowed) and `run_until_stopped`
//! serves until the shutdown signal, with the routing reaction, the
//! read-model projection and the delivery worker running alongside.

pub mod api;
pub mod config;
pub mod content;
pub mod egress;
pub mod email;
pub mod handlers;
pub mod mapping;
pub mod readmodel;
pub mod routing;
pub mod scope;
pub mod secrets;
pub mod tracker;
pub mod view;
pub mod webhook;
pub mod worker;

use psirt_proto::admin::admin_service_server::AdminServiceServer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use prost_reflect::DescriptorPool;
use psirt_eventstore::EventStore;
use psirt_kit::config::{
    AdminConfig, AuthConfig, DatabaseConfig, GrpcConfig, LogConfig, NatsConfig, OtelConfig, Problems,
};
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::service::{Sections, ServiceConfig};
use psirt_kit::{AdminServer, AuthLayer, GrpcServer, MetricsHandle, Readiness, Shutdown};
use psirt_projection::{ProjectionRunner, ProjectionSettings};
use psirt_proto::notification::notification_service_server::NotificationServiceServer;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use tracing::{info, warn};

pub use config::{DeliverySettings, NotificationSettings, WebhookSettings};
pub use handlers::Notification;
pub use secrets::{SecretSource, Secrets};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-notification";

/// The whole configuration of `psirt-notification`. Every key is documented
/// in `config/notification.example.toml`.
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
    pub notification: NotificationSettings,
    pub delivery: DeliverySettings,
    pub webhook: WebhookSettings,
    pub email: email::EmailSettings,
    pub jira: tracker::jira::JiraSettings,
    pub servicenow: tracker::servicenow::ServiceNowSettings,
    pub upstream: tracker::inbound::UpstreamSettings,
    /// Named secrets that subscriptions and adapters refer to by name.
    pub secrets: BTreeMap<String, SecretSource>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig { listen: SocketAddr::from(([127, 0, 0, 1], 50054)), ..GrpcConfig::default() },
            admin: AdminConfig { listen: SocketAddr::from(([127, 0, 0, 1], 9104)) },
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            auth: AuthConfig::default(),
            database: DatabaseConfig::default(),
            nats: NatsConfig::default(),
            projection: ProjectionSettings::default(),
            notification: NotificationSettings::default(),
            delivery: DeliverySettings::default(),
            webhook: WebhookSettings::default(),
            email: email::EmailSettings::default(),
            jira: tracker::jira::JiraSettings::default(),
            servicenow: tracker::servicenow::ServiceNowSettings::default(),
            upstream: tracker::inbound::UpstreamSettings::default(),
            secrets: BTreeMap::new(),
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
        let n = &self.notification;
        p.check(
            (1..=10_000).contains(&n.max_page_size),
            "notification.max_page_size",
            "must be between 1 and 10000",
        );
        p.check(
            n.default_page_size >= 1 && n.default_page_size <= n.max_page_size,
            "notification.default_page_size",
            "must be between 1 and notification.max_page_size",
        );
        for (key, problem) in self.delivery.problems() {
            p.push(&format!("delivery.{key}"), problem);
        }
        for (key, problem) in self.webhook.problems() {
            p.push(&format!("webhook.{key}"), problem);
        }
        let known = |name: &str| self.secrets.contains_key(name);
        for (key, problem) in self.email.problems(&self.secrets) {
            p.push(&format!("email.{key}"), problem);
        }
        for (key, problem) in self.jira.problems(&known) {
            p.push(&format!("jira.{key}"), problem);
        }
        for (key, problem) in self.servicenow.problems(&known) {
            p.push(&format!("servicenow.{key}"), problem);
        }
        for (key, problem) in self.upstream.problems(&known) {
            p.push(&format!("upstream.{key}"), problem);
        }
        for (key, problem) in secrets::problems(&self.secrets) {
            p.push(&key, problem);
        }
    }
}

/// The configured tracker adapters.
fn trackers(config: &Config, secrets: &Secrets, store: &EventStore) -> anyhow::Result<tracker::Trackers> {
    use tracker::{Auth, jira::Jira, servicenow::ServiceNow};
    let user_agent = &config.webhook.user_agent;
    let jira = if config.jira.enabled() {
        let auth = Auth::named(config.jira.auth, secrets.clone(), &config.jira.credentials_secret)
            .context("[jira] credentials_secret")?;
        Some(Arc::new(Jira::new(&config.jira, auth, user_agent)?))
    } else {
        None
    };
    let servicenow = if config.servicenow.enabled() {
        let auth =
            Auth::named(config.servicenow.auth, secrets.clone(), &config.servicenow.credentials_secret)
                .context("[servicenow] credentials_secret")?;
        Some(Arc::new(ServiceNow::new(&config.servicenow, auth, user_agent)?))
    } else {
        None
    };
    Ok(tracker::Trackers { store: store.clone(), jira, servicenow })
}

/// The project's descriptors, decoded once per process: event types are
/// checked against them and events turned into JSON with them.
pub fn descriptors() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(psirt_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("bad embedded descriptor set: {e}"))
}

/// A built, bound application.
pub struct Application {
    grpc: GrpcServer,
    admin: AdminServer,
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    notification: Notification,
    worker: worker::Worker,
    inbound: Arc<tracker::inbound::Inbound>,
    store: EventStore,
    pool: AnyPool,
    auth: AuthLayer,
    projection: ProjectionSettings,
    readiness: Readiness,
}

async fn open(config: &Config) -> anyhow::Result<(EventStore, AnyPool)> {
    let store = psirt_kit::backbone::open_event_store(&config.nats, SERVICE).await?;
    let pool = psirt_kit::backbone::open_database(&config.database).await?;
    psirt_kit::backbone::migrate(&readmodel::MIGRATOR, &pool, "notification").await?;
    psirt_projection::ensure_schema(&pool).await.context("failed to create projection tables")?;
    Ok((store, pool))
}

impl Application {
    /// Resolves the secrets, connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        let secrets = Secrets::resolve(&config.secrets).context("failed to resolve [secrets]")?;
        let descriptors = descriptors()?;
        let (store, pool) = open(config).await?;
        let auth = AuthLayer::from_config(&config.auth, api::policy())
            .await
            .context("failed to set up authentication")?;
        let readiness = Readiness::new();
        let grpc = GrpcServer::bind(&config.grpc).await?.with_readiness(readiness.clone());
        let admin = AdminServer::bind(config.admin.listen, readiness.clone(), metrics).await?;
        let grpc_addr = grpc.local_addr();
        let admin_addr = admin.local_addr();
        let notification = Notification::new(
            store.clone(),
            pool.clone(),
            config.notification.clone(),
            secrets.clone(),
            descriptors,
        );
        let trackers = trackers(config, &secrets, &store)?;
        let mailer = email::Mailer::new(&config.email, &secrets).context("failed to set up [email]")?;
        let inbound = Arc::new(tracker::inbound::Inbound::new(
            trackers.clone(),
            pool.clone(),
            &config.upstream,
            &secrets,
            &config.jira,
            &config.servicenow.webhook_secret,
        )?);
        let admin = admin.merge(Arc::clone(&inbound).routes());
        let worker = worker::Worker::new(
            store.clone(),
            pool.clone(),
            config.delivery.clone(),
            config.webhook.clone(),
            secrets,
            (mailer, trackers),
            descriptors,
        )?;
        Ok(Self {
            grpc,
            admin,
            grpc_addr,
            admin_addr,
            notification,
            worker,
            inbound,
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

    pub fn notification(&self) -> &Notification {
        &self.notification
    }

    /// Serves gRPC and admin HTTP and runs routing, the read model and the
    /// delivery worker until `shutdown`; then drains calls, lets the
    /// sends in flight be recorded, stops the projections and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self {
            grpc, admin, notification, worker, inbound, store, pool, auth, projection, readiness, ..
        } = self;
        let descriptors = descriptors()?;
        let serving = readiness.register("grpc");
        let nats_watch = psirt_kit::backbone::watch_backbone(
            store.jetstream().client(),
            pool.clone(),
            &readiness,
            shutdown.clone(),
        );

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        // The API's views, rebuilt in place through the admin API (routing is
        // a reaction: replaying it would route events again, so it is not).
        let views = {
            let (pool, store, projection) = (pool.clone(), store.clone(), projection.clone());
            Rebuildable::new(move || {
                ProjectionRunner::new(
                    readmodel::ViewsProjection,
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
        let routing = ProjectionRunner::new(
            routing::Routing { store: store.clone(), descriptors },
            pool.clone(),
            store,
            projection.for_reactions(),
        );
        let routing_watch = routing.watched();
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![views_position])
            .with_reactions(vec![routing.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![views_parked, routing.parked_events()]);
        let routing_task = tokio::spawn(routing.run(stop_rx));
        let _stall_watch = psirt_kit::backbone::watch_projections(
            vec![views_watch, routing_watch],
            projection.stalled_after,
            &readiness,
            shutdown.clone(),
        );
        let worker_task = tokio::spawn(worker.run(shutdown.clone()));
        let reconcile_task = tokio::spawn(inbound.reconcile_forever(shutdown.clone()));

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(NotificationServiceServer::new(api::NotificationApi::new(notification)))
            .add_service(AdminServiceServer::new(
                psirt_kit::parked::AdminApi::new(SERVICE, parked).with_rebuilders(vec![rebuilder]),
            ))
            .read_models(read_models);
        let grpc_task = tokio::spawn(grpc.serve(
            routes,
            auth,
            &[psirt_proto::FILE_DESCRIPTOR_SET],
            &[api::NOTIFICATION_SERVICE, psirt_kit::parked::ADMIN_SERVICE],
            shutdown.clone(),
        ));
        let admin_task = tokio::spawn(admin.serve(shutdown.clone()));
        serving.set_ready(true);
        info!("psirt-notification ready");

        shutdown.wait().await;
        serving.set_ready(false);
        let grpc_result = grpc_task.await.context("grpc task panicked")?;
        let _ = nats_watch.await;
        if let Err(e) = worker_task.await {
            warn!(error = %e, "delivery worker panicked");
        }
        if let Err(e) = reconcile_task.await {
            warn!(error = %e, "ticket reconciliation panicked");
        }
        let _ = stop.send(true);
        for (name, task) in [("notification-views", views_task), ("notification-routing", routing_task)] {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(projection = name, error = %e, "projection stopped with an error"),
                Err(e) => warn!(projection = name, error = %e, "projection task panicked"),
            }
        }
        let admin_result = admin_task.await.context("admin task panicked")?;
        info!("psirt-notification stopped");
        pool.close().await;
        grpc_result?;
        admin_result?;
        Ok(())
    }
}

/// Replays the read model from sequence 1; `on_progress(done, total)`.
/// Routing is not replayed: the deliveries it scheduled are on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    let (store, pool) = open(config).await?;
    let runner = ProjectionRunner::new(readmodel::ViewsProjection, pool, store, config.projection.clone());
    Ok(runner.rebuild(on_progress).await?)
}

/// `psirt-notification` as the kit's command line runs it.
pub struct NotificationService;

impl psirt_kit::service::Service for NotificationService {
    const NAME: &'static str = SERVICE;
    const ABOUT: &'static str = "PSIRT notification service: subscriptions, routing and deliveries (webhooks, e-mail, Jira, ServiceNow)";
    const READ_MODEL: &'static str = "the notification read model";
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
