//! What the notification tests share: the service in-process on a real
//! nats-server and database, and a real HTTP receiver for webhooks.

#![allow(dead_code, unused_imports)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use psirt_domain::{CaseId, DeliveryId, EventId, ReportId, SubscriptionId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_kit::service::ServiceConfig as _;
use psirt_notification::{Application, Config, SecretSource};
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::{common, events, notification as api};
use psirt_testkit::{BACKENDS, Backend, NatsServer, TestDatabase, eventually};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub const DEADLINE: Duration = Duration::from_secs(30);
pub const SECRET: &str = "test-hook";
pub const SECRET_VALUE: &str = "0123456789abcdef0123456789abcdef";
pub const ACCEPTED: &str = "psirt.events.v1.CaseAccepted";

// ---------------------------------------------------------------------------
// A real HTTP receiver
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub json: Value,
}

/// One scripted answer.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    /// How long the receiver takes before answering.
    pub delay: Duration,
}

impl From<u16> for Reply {
    fn from(status: u16) -> Self {
        Self { status, retry_after: None, delay: Duration::ZERO }
    }
}

#[derive(Default)]
pub struct ReceiverState {
    pub requests: Vec<Received>,
    /// Answers to give first, in order; then `default_status`.
    pub script: VecDeque<Reply>,
    pub default_status: u16,
}

#[derive(Clone)]
pub struct Receiver {
    pub state: Arc<Mutex<ReceiverState>>,
    pub addr: SocketAddr,
}

pub async fn hook(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap) {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let reply = {
        let mut state = state.lock().expect("receiver state");
        state.requests.push(Received {
            at: std::time::Instant::now(),
            id: json["id"].as_str().unwrap_or_default().to_owned(),
            timestamp: header("x-psirt-timestamp"),
            signature: header("x-psirt-signature"),
            body: body.to_vec(),
            json,
        });
        let default = Reply::from(state.default_status);
        state.script.pop_front().unwrap_or(default)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut headers = HeaderMap::new();
    if let Some(value) = reply.retry_after {
        headers.insert("retry-after", axum::http::HeaderValue::from_static(value));
    }
    (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), headers)
}

impl Receiver {
    pub async fn start(script: &[u16], default_status: u16) -> anyhow::Result<Self> {
        Self::scripted(script.iter().map(|s| Reply::from(*s)).collect(), default_status).await
    }

    pub async fn scripted(script: Vec<Reply>, default_status: u16) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(ReceiverState {
            requests: Vec::new(),
            script: script.into(),
            default_status,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app =
            axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { state, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().expect("receiver state").requests.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().expect("receiver state").requests.len()
    }

    pub fn answer(&self, status: u16) {
        self.state.lock().expect("receiver state").default_status = status;
    }
}

pub fn verify_signature(r: &Received) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET_VALUE.as_bytes()).expect("key");
    mac.update(r.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.signature, expected, "signature over timestamp and body");
    let ts: i64 = r.timestamp.parse().expect("unix seconds");
    assert!((OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 300, "fresh timestamp");
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

pub struct Harness {
    pub _nats: NatsServer,
    pub _db: TestDatabase,
    pub _secrets: tempfile::TempDir,
    pub grpc: SocketAddr,
    /// The admin HTTP port (health, metrics, the trackers' inbound hooks).
    pub admin: SocketAddr,
    pub pool: sqlx::AnyPool,
    pub shutdown: Shutdown,
    pub store: EventStore,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub config: Config,
    pub telemetry: psirt_kit::TelemetryGuard,
}

impl Harness {
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Box::pin(Self::start_inner(backend, adjust)).await
    }

    pub async fn start_inner(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let secrets = tempfile::tempdir()?;
        let secret_file = secrets.path().join("hook-key");
        std::fs::write(&secret_file, format!("{SECRET_VALUE}\n"))?;
        let mut config = Config::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(db.url().to_owned());
        config.auth.mode = AuthMode::None;
        config.log.level = "warn".to_owned();
        config.delivery.poll_interval = Duration::from_millis(20);
        config.delivery.max_attempts = 5;
        config.delivery.initial_backoff = Duration::from_millis(10);
        config.delivery.max_backoff = Duration::from_millis(50);
        config.webhook.timeout = Duration::from_secs(5);
        // The receivers listen on loopback, which the egress guard refuses
        // unless allowed.
        config.webhook.allowed_networks = vec!["127.0.0.1/32".to_owned()];
        config.secrets.insert(SECRET.to_owned(), SecretSource { env: None, file: Some(secret_file) });
        adjust(&mut config);
        config.validate()?;
        let telemetry = psirt_kit::telemetry::init("psirt-notification-test", &config.log, &config.otel)?;
        let app = Application::build(&config, telemetry.metrics()).await?;
        let grpc = app.grpc_addr();
        let admin = app.admin_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        let pool = psirt_kit::backbone::open_database(&config.database).await?;
        Ok(Self {
            _nats: nats,
            _db: db,
            _secrets: secrets,
            grpc,
            admin,
            pool,
            shutdown,
            store,
            task: Some(task),
            config,
            telemetry,
        })
    }

    /// Stops the service, runs `sql` on its database, and starts it again
    /// on the same NATS and database.
    pub async fn restart_after(&mut self, sql: &[&str]) -> anyhow::Result<()> {
        self.stop().await?;
        for statement in sql {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        let app = Box::pin(Application::build(&self.config, self.telemetry.metrics())).await?;
        self.grpc = app.grpc_addr();
        self.admin = app.admin_addr();
        self.shutdown = Shutdown::new();
        self.task = Some(tokio::spawn(app.run_until_stopped(self.shutdown.clone())));
        Ok(())
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    pub async fn client(&self) -> anyhow::Result<NotificationServiceClient<Channel>> {
        Ok(NotificationServiceClient::new(
            Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?,
        ))
    }

    /// Appends one case event as triage would; returns its stream sequence.
    pub async fn case_event<M: psirt_proto::EventSchema>(
        &self,
        case: CaseId,
        tag: &str,
        m: &M,
    ) -> anyhow::Result<u64> {
        let new = NewEvent::from_message(
            EventId::derive(case.into(), tag).into(),
            format!("psirt.evt.case.{case}"),
            m,
            Metadata { actor: Some("psirt-triage".to_owned()), ..Metadata::default() },
        );
        Ok(self.store.append(new, ExpectedVersion::Any).await?.sequence)
    }

    /// A case opened and accepted with `rating`; with an embargo set in
    /// between when `embargo`. Returns the case and the acceptance's sequence.
    pub async fn accepted_case(
        &self,
        rating: common::SeverityRating,
        embargo: bool,
    ) -> anyhow::Result<(CaseId, u64)> {
        let case = CaseId::for_report(ReportId::new());
        let id = case.to_string();
        let key = format!("PSIRT-2026-{:04}", u32::from(uuid::Uuid::now_v7().as_bytes()[15]) + 1);
        self.case_event(
            case,
            "opened",
            &events::CaseOpened {
                case_id: id.clone(),
                case_key: key.clone(),
                title: "Stored XSS in the gateway admin console".to_owned(),
                opened_at: ts(OffsetDateTime::now_utc()),
                ..Default::default()
            },
        )
        .await?;
        if embargo {
            self.case_event(
                case,
                "embargo",
                &events::EmbargoSet {
                    case_id: id.clone(),
                    disclosure_at: ts(OffsetDateTime::now_utc() + time::Duration::days(30)),
                    time_zone: "UTC".to_owned(),
                    set_at: ts(OffsetDateTime::now_utc()),
                    ..Default::default()
                },
            )
            .await?;
        }
        let seq = self
            .case_event(
                case,
                "accepted",
                &events::CaseAccepted {
                    case_id: id,
                    case_key: key,
                    severity: rating.into(),
                    affected_products: vec![common::ProductVersionRange {
                        product: "acme-gateway".to_owned(),
                        versions: Some(common::product_version_range::Versions::Range(
                            "vers:semver/<2.4.1".to_owned(),
                        )),
                    }],
                    note: "confirmed".to_owned(),
                    accepted_at: ts(OffsetDateTime::now_utc()),
                },
            )
            .await?;
        Ok((case, seq))
    }

    pub async fn subscribe(
        &self,
        request_id: &str,
        settings: events::SubscriptionSettings,
    ) -> anyhow::Result<api::Subscription> {
        let response = self
            .client()
            .await?
            .create_subscription(api::CreateSubscriptionRequest {
                request_id: request_id.to_owned(),
                settings: Some(settings),
            })
            .await?;
        response.into_inner().subscription.ok_or_else(|| anyhow::anyhow!("no subscription"))
    }

    pub async fn deliveries(&self, filter: api::ListDeliveriesRequest) -> anyhow::Result<Vec<api::Delivery>> {
        Ok(self.client().await?.list_deliveries(filter).await?.into_inner().deliveries)
    }

    pub async fn delivery(&self, id: DeliveryId) -> anyhow::Result<Option<api::Delivery>> {
        let all =
            self.deliveries(api::ListDeliveriesRequest { page_size: 1000, ..Default::default() }).await?;
        Ok(all.into_iter().find(|d| d.delivery_id == id.to_string()))
    }

    /// Waits until routing has looked at every event on the stream so far.
    pub async fn routed_everything(&self) -> anyhow::Result<()> {
        let last = self.store.stream_last_sequence().await?;
        eventually(DEADLINE, "routing checkpoint at the stream's end", || async {
            let done = psirt_projection::checkpoint(&self.pool, psirt_notification::routing::PROJECTION_NAME)
                .await
                .ok()?;
            (done >= last).then_some(())
        })
        .await
    }

    pub async fn wait_for_status(
        &self,
        id: DeliveryId,
        status: api::DeliveryStatus,
    ) -> anyhow::Result<api::Delivery> {
        eventually(DEADLINE, &format!("delivery {id} {status:?}"), || async {
            self.delivery(id).await.ok().flatten().filter(|d| d.status == status as i32)
        })
        .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub fn ts(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: 0 })
}

pub fn webhook(name: &str, url: &str) -> events::SubscriptionSettings {
    events::SubscriptionSettings {
        name: name.to_owned(),
        channel: events::DeliveryChannel::Webhook.into(),
        endpoint: url.to_owned(),
        event_types: vec![ACCEPTED.to_owned()],
        secret_ref: SECRET.to_owned(),
        enabled: true,
        ..Default::default()
    }
}

pub fn delivery_of(case: CaseId, tag: &str, subscription: &api::Subscription) -> DeliveryId {
    let sub: SubscriptionId = subscription.subscription_id.parse().expect("subscription id");
    DeliveryId::for_event(EventId::derive(case.into(), tag), sub)
}

/// The same settings, for a destination trusted with undisclosed details.
pub fn trusted(settings: events::SubscriptionSettings) -> events::SubscriptionSettings {
    events::SubscriptionSettings { trusted: true, ..settings }
}
