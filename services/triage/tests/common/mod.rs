//! Test harness: a real triage application on a real nats-server and a real
//! database, and a way to put intake's events on the stream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use psirt_domain::{CaseId, EventId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{common, events, triage};
use psirt_testkit::{Backend, NatsServer, TestDatabase, eventually};
use psirt_triage::{Application, Config};
use secrecy::SecretString;
use tonic::transport::Channel;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256!";
/// The `iss` and `aud` every token of the tests carries (required in jwt mode).
pub const ISSUER: &str = "https://idp.test/psirt";
pub const AUDIENCE: &str = "psirt";

pub struct Harness {
    pub nats: NatsServer,
    pub db: TestDatabase,
    pub grpc: SocketAddr,
    pub shutdown: Shutdown,
    pub store: EventStore,
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
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        Box::pin(Self::start_with(backend, AuthMode::None)).await
    }

    pub async fn start_with(backend: Backend, auth: AuthMode) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        Box::pin(Self::start_on(nats, db, auth)).await
    }

    pub async fn start_on(nats: NatsServer, db: TestDatabase, auth: AuthMode) -> anyhow::Result<Self> {
        let config = config(&nats, &db, auth);
        Box::pin(Self::start_configured(nats, db, config)).await
    }

    /// Starts triage with `config` (made by [`config`] and adjusted).
    pub async fn start_configured(
        nats: NatsServer,
        db: TestDatabase,
        config: Config,
    ) -> anyhow::Result<Self> {
        let auth = config.auth.mode;
        let telemetry = psirt_kit::telemetry::init("psirt-triage-test", &config.log, &config.otel)?;
        let app = Application::build(&config, telemetry.metrics()).await?;
        let grpc = app.grpc_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        Ok(Self { nats, db, grpc, shutdown, store, task: Some(task), auth, _telemetry: telemetry })
    }

    /// The stream helpers on `nats` and `db` without an application: for
    /// tests that run triage themselves.
    pub async fn detached(nats: NatsServer, db: TestDatabase) -> anyhow::Result<Self> {
        let config = config(&nats, &db, AuthMode::None);
        let telemetry = psirt_kit::telemetry::init("psirt-triage-test", &config.log, &config.otel)?;
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        let grpc = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Self {
            nats,
            db,
            grpc,
            shutdown: Shutdown::new(),
            store,
            task: None,
            auth: AuthMode::None,
            _telemetry: telemetry,
        })
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Stops the application and starts a new one on the same NATS and database.
    pub async fn restart(mut self) -> anyhow::Result<Self> {
        self.stop().await?;
        let Self { nats, db, auth, .. } = self;
        Box::pin(Self::start_on(nats, db, auth)).await
    }

    pub fn config(&self) -> Config {
        config(&self.nats, &self.db, self.auth)
    }

    pub async fn triage(&self) -> anyhow::Result<TriageServiceClient<Channel>> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?;
        Ok(TriageServiceClient::new(channel))
    }

    pub async fn cases(&self) -> anyhow::Result<CaseServiceClient<Channel>> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?;
        Ok(CaseServiceClient::new(channel))
    }

    /// Appends a `ReportReceived` as intake would; returns the promised case id.
    pub async fn report(&self, title: &str) -> anyhow::Result<(ReportId, CaseId)> {
        let report_id = ReportId::new();
        let case_id = CaseId::for_report(report_id);
        let event = events::ReportReceived {
            report_id: report_id.to_string(),
            case_id: case_id.to_string(),
            request_id: String::new(),
            title: title.to_owned(),
            description: "The login form concatenates the username into an SQL query.".to_owned(),
            reporter: None,
            channel: common::ReportChannel::Web.into(),
            affected_products: vec!["Portal".to_owned()],
            suggested_cvss_vector: String::new(),
            requested_disclosure_at: None,
            received_at: Some(psirt_triage::mapping::timestamp(time::OffsetDateTime::now_utc())),
            external_reference: String::new(),
        };
        let new = NewEvent::from_message(
            EventId::derive(report_id.into(), "received").into(),
            format!("psirt.evt.report.{report_id}"),
            &event,
            Metadata { actor: Some("psirt-intake".to_owned()), ..Metadata::default() },
        );
        self.store.append(new, ExpectedVersion::NoStream).await?;
        Ok((report_id, case_id))
    }

    /// Appends intake's duplicate hint: `report` may duplicate `other`.
    pub async fn duplicate_hint(&self, report: ReportId, other: ReportId) -> anyhow::Result<()> {
        let event = events::DuplicateSuspected {
            report_id: report.to_string(),
            case_id: CaseId::for_report(report).to_string(),
            other_report_id: other.to_string(),
            other_case_id: CaseId::for_report(other).to_string(),
            reason: "same normalised title and affected product".to_owned(),
            ..Default::default()
        };
        let new = NewEvent::from_message(
            EventId::derive(report.into(), &format!("duplicate\u{1f}{other}")).into(),
            format!("psirt.evt.report.{report}"),
            &event,
            Metadata::default(),
        );
        self.store.append(new, ExpectedVersion::Any).await?;
        Ok(())
    }

    /// The events stored on one case's subject.
    pub async fn case_events(&self, case_id: CaseId) -> anyhow::Result<Vec<RecordedEvent>> {
        Ok(self.store.load(&format!("psirt.evt.case.{case_id}")).await?)
    }

    /// Waits until the case view has the case at `version` or later.
    pub async fn case_at(&self, case_id: CaseId, version: u64) -> anyhow::Result<triage::Case> {
        let client = self.cases().await?;
        eventually(DEADLINE, "case in the read model", || {
            let mut client = client.clone();
            async move {
                let case = client
                    .list_cases(triage::ListCasesRequest { page_size: 1000, ..Default::default() })
                    .await
                    .ok()?
                    .into_inner()
                    .cases
                    .into_iter()
                    .find(|c| c.case_id == case_id.to_string())?;
                (case.version >= version).then_some(case)
            }
        })
        .await
    }

    /// Waits until the case is opened and returns its view.
    pub async fn opened(&self, case_id: CaseId) -> anyhow::Result<triage::Case> {
        let client = self.cases().await?;
        eventually(DEADLINE, "case opened", || {
            let mut client = client.clone();
            async move {
                client
                    .get_case(triage::GetCaseRequest {
                        lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_string())),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .case
            }
        })
        .await
    }
}

/// A token of `sub` with `roles` and every product scope (`*`).
pub fn token(sub: &str, roles: &[&str]) -> String {
    scoped_token(sub, roles, &["*"])
}

/// A token of `sub` with `roles` and the product scopes `scopes` (claim
/// `psirt_products`, the default `auth.scopes_claim`).
pub fn scoped_token(sub: &str, roles: &[&str], scopes: &[&str]) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let claims = serde_json::json!({
        "sub": sub, "roles": roles, "exp": exp, "iss": ISSUER, "aud": AUDIENCE, "psirt_products": scopes,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token encodes")
}

pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header value"));
    request
}
