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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use prost_reflect::DescriptorPool;
use psirt_eventstore::EventStore;
use psirt_kit::config::Problems;
use psirt_kit::rebuild::Rebuildable;
use psirt_kit::{Host, MetricsHandle, Shutdown, Workers};
use psirt_projection::ProjectionRunner;
use psirt_proto::notification::notification_service_server::NotificationServiceServer;

pub use config::{DeliverySettings, NotificationSettings, WebhookSettings};
pub use handlers::Notification;
pub use secrets::{SecretSource, Secrets};

/// The service name in telemetry and logs.
pub const SERVICE: &str = "psirt-notification";

psirt_kit::service_config! {
    /// The whole configuration of `psirt-notification`. Every key is
    /// documented in `config/notification.example.toml`.
    pub struct Config {
        ports: (50054, 9104),
        check: check_settings,
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
}

impl Config {
    fn check_settings(&self, p: &mut Problems) {
        let n = &self.notification;
        p.page_sizes("notification", n.default_page_size, n.max_page_size);
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
    host: Host,
    notification: Notification,
    worker: worker::Worker,
    inbound: Arc<tracker::inbound::Inbound>,
}

impl Application {
    /// Resolves the secrets, connects, migrates and binds; nothing is served yet.
    pub async fn build(config: &Config, metrics: MetricsHandle) -> anyhow::Result<Self> {
        use psirt_kit::service::ServiceConfig as _;
        let secrets = Secrets::resolve(&config.secrets).context("failed to resolve [secrets]")?;
        let descriptors = descriptors()?;
        let migrations = (&readmodel::MIGRATOR, "notification");
        let host =
            Box::pin(Host::build(SERVICE, config.sections(), migrations, api::policy(), metrics)).await?;
        let (store, pool) = (host.store().clone(), host.pool().clone());
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
        let host = host.merge_admin(Arc::clone(&inbound).routes());
        let worker = worker::Worker::new(
            store,
            pool,
            config.delivery.clone(),
            config.webhook.clone(),
            secrets,
            (mailer, trackers),
            descriptors,
        )?;
        Ok(Self { host, notification, worker, inbound })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.host.grpc_addr()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.host.admin_addr()
    }

    pub fn notification(&self) -> &Notification {
        &self.notification
    }

    /// Serves gRPC and admin HTTP and runs routing, the read model and the
    /// delivery worker until `shutdown`; then drains calls, lets the
    /// sends in flight be recorded, stops the projections and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { host, notification, worker, inbound } = self;
        let descriptors = descriptors()?;
        let (pool, store, projection) =
            (host.pool().clone(), host.store().clone(), host.projection().clone());
        let mut workers = Workers::new();
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
        let views_parked = views.parked_events();
        let views_position = views.position();
        workers.projection(views.watched(), views.run(workers.stop_signal()));
        let routing = routing::Routing { store: store.clone(), descriptors };
        let routing = ProjectionRunner::new(routing, pool, store, projection.for_reactions());
        let read_models = psirt_kit::ReadModels::new(projection.read_wait, vec![views_position])
            .with_reactions(vec![routing.position()]);
        let parked = psirt_kit::parked::ParkedAdmin::new(vec![views_parked, routing.parked_events()]);
        workers.projection(routing.watched(), routing.run(workers.stop_signal()));
        workers.until_shutdown("delivery-worker", worker.run(shutdown.clone()));
        workers.until_shutdown("ticket-reconciliation", inbound.reconcile_forever(shutdown.clone()));

        let routes = psirt_kit::ServiceRoutes::new()
            .add_service(NotificationServiceServer::new(api::NotificationApi::new(notification)))
            .admin(SERVICE, parked, vec![rebuilder])
            .read_models(read_models);
        let names = [api::NOTIFICATION_SERVICE, psirt_kit::parked::ADMIN_SERVICE];
        Box::pin(host.serve(shutdown, routes, &names, workers, || {})).await
    }
}

/// Replays the read model from sequence 1; `on_progress(done, total)`.
/// Routing is not replayed: the deliveries it scheduled are on the stream.
pub async fn rebuild(config: &Config, on_progress: impl Fn(u64, u64) + Send + Sync) -> anyhow::Result<u64> {
    use psirt_kit::service::ServiceConfig as _;
    let (store, pool) =
        psirt_kit::host::open(SERVICE, config.sections(), &readmodel::MIGRATOR, "notification").await?;
    let runner = ProjectionRunner::new(readmodel::ViewsProjection, pool, store, config.projection.clone());
    Ok(runner.rebuild(on_progress).await?)
}

psirt_kit::service! {
    /// `psirt-notification` as the kit's command line runs it.
    pub struct NotificationService {
        name: SERVICE,
        about: "PSIRT notification service: subscriptions, routing and deliveries (webhooks, e-mail, Jira, ServiceNow)",
        read_model: "the notification read model",
    }
}
