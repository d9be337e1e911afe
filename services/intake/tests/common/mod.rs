//! Test harness: a real intake application on a real nats-server and a real
//! database, with clients that carry a token.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use psirt_intake::{Application, Config};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::{common, intake};
use psirt_testkit::{Backend, NatsServer, TestDatabase};
use secrecy::SecretString;
use tonic::transport::Channel;

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256!";
/// The `iss` and `aud` every token of the tests carries (required in jwt mode).
pub const ISSUER: &str = "https://idp.test/psirt";
pub const AUDIENCE: &str = "psirt";

pub struct Harness {
    pub nats: NatsServer,
    pub db: TestDatabase,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    auth: AuthMode,
    _telemetry: psirt_kit::TelemetryGuard,
}

pub fn config(nats: &NatsServer, db: &TestDatabase, auth: AuthMode) -> Config {
    let mut config = Config::default();
    config.grpc.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    config.nats.url = nats.url();
    config.nats.stream.manage = true;
    config.database.url = SecretString::from(db.url().to_owned());
    config.auth.mode = auth;
    if auth == AuthMode::Jwt {
        config.auth.hs256_secret = Some(SecretString::from(SECRET.to_owned()));
        config.auth.issuer = Some(ISSUER.to_owned());
        config.auth.audience = Some(AUDIENCE.to_owned());
    }
    config.log.level = "warn".to_owned();
    config
}

impl Harness {
    pub async fn start(backend: Backend, auth: AuthMode) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        Self::start_on(nats, db, auth).await
    }

    pub async fn start_on(nats: NatsServer, db: TestDatabase, auth: AuthMode) -> anyhow::Result<Self> {
        Self::start_configured(nats, db, auth, |_| {}).await
    }

    /// [`Harness::start_on`] with `tweak` applied to the test configuration.
    pub async fn start_configured(
        nats: NatsServer,
        db: TestDatabase,
        auth: AuthMode,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut config = config(&nats, &db, auth);
        tweak(&mut config);
        let telemetry = psirt_kit::telemetry::init("psirt-intake-test", &config.log, &config.otel)?;
        let app = Application::build(&config, telemetry.metrics()).await?;
        let grpc = app.grpc_addr();
        let admin = app.admin_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Ok(Self { nats, db, grpc, admin, shutdown, task: Some(task), auth, _telemetry: telemetry })
    }

    /// Stops the application and starts a new one on the same NATS and database.
    pub async fn restart(mut self) -> anyhow::Result<Self> {
        self.stop().await?;
        let Self { nats, db, auth, .. } = self;
        Self::start_on(nats, db, auth).await
    }

    /// [`Harness::restart`] with `tweak` applied to the test configuration.
    pub async fn restart_configured(mut self, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        self.stop().await?;
        let Self { nats, db, auth, .. } = self;
        Self::start_configured(nats, db, auth, tweak).await
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    pub async fn client(&self) -> anyhow::Result<IntakeServiceClient<Channel>> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?;
        Ok(IntakeServiceClient::new(channel))
    }

    /// Number of events in the whole stream.
    pub async fn stream_messages(&self) -> anyhow::Result<u64> {
        let js = async_nats::jetstream::new(self.nats.connect().await?);
        let mut stream = js.get_stream("PSIRT_EVENTS").await?;
        Ok(stream.info().await?.state.messages)
    }

    /// The events stored on one report's subject.
    pub async fn report_events(
        &self,
        report_id: &str,
    ) -> anyhow::Result<Vec<psirt_eventstore::RecordedEvent>> {
        let store = psirt_eventstore::EventStore::open(
            self.nats.connect().await?,
            &psirt_eventstore::StreamSettings::managed(),
        )
        .await?;
        Ok(store.load(&format!("psirt.evt.report.{report_id}")).await?)
    }
}

/// A token for every product (`psirt_products: ["*"]`).
pub fn token(sub: &str, roles: &[&str], exp_offset_secs: i64, secret: &str) -> String {
    token_with(sub, roles, &["*"], exp_offset_secs, secret)
}

/// A token with these product scopes (none: the claim is left out).
pub fn token_with(
    sub: &str,
    roles: &[&str],
    products: &[&str],
    exp_offset_secs: i64,
    secret: &str,
) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + exp_offset_secs;
    let mut claims =
        serde_json::json!({ "sub": sub, "roles": roles, "exp": exp, "iss": ISSUER, "aud": AUDIENCE });
    if !products.is_empty() {
        claims["psirt_products"] = serde_json::json!(products);
    }
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("token encodes")
}

pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header value"));
    request
}

pub fn submission(request_id: &str, title: &str) -> intake::SubmitReportRequest {
    intake::SubmitReportRequest {
        request_id: request_id.to_owned(),
        title: title.to_owned(),
        description: "The login form concatenates the username into an SQL query.".to_owned(),
        reporter: Some(common::Reporter {
            name: "Alice Researcher".to_owned(),
            email: "alice@example.org".to_owned(),
            organization: "Example Research".to_owned(),
        }),
        channel: common::ReportChannel::Web.into(),
        affected_products: vec!["Portal".to_owned()],
        suggested_cvss_vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
        requested_disclosure_at: None,
        external_reference: String::new(),
    }
}

pub const DEADLINE: Duration = Duration::from_secs(20);

/// The HTTP status of `GET path` on the admin port.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}
