//! Product scopes (issue 15, point 2) in remediation: a principal scoped to a
//! product knows only the plans and advisories of that product's cases. Out
//! of scope answers NOT_FOUND exactly like a missing case, lists leave it
//! out; `*` holders and admins see every case; a case without products only
//! they see. Real nats-server, SQLite, gRPC with JWT authentication.

use std::time::Duration;

use psirt_domain::{CaseId, EventId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::remediation::advisory_service_client::AdvisoryServiceClient;
use psirt_proto::remediation::remediation_service_client::RemediationServiceClient;
use psirt_proto::{common, events, remediation as api};
use psirt_remediation::{Application, Config};
use psirt_testkit::jwt;
use psirt_testkit::{Backend, NatsServer, TestDatabase, eventually};
use secrecy::SecretString;
use time::OffsetDateTime;
use tonic::Code;
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(20);

/// A token of `roles` with these product scopes (none: no scope at all).
fn token(sub: &str, roles: &[&str], scopes: &[&str]) -> jwt::Token {
    jwt::Token::new(sub, roles).products(scopes)
}

fn with_token<T>(message: T, token: &jwt::Token) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", token.header());
    request
}

fn ts(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: 0 })
}

fn product(name: &str) -> common::ProductVersionRange {
    common::ProductVersionRange {
        product: name.to_owned(),
        versions: Some(common::product_version_range::Versions::Range("vers:semver/<2.0.0".to_owned())),
    }
}

static NEXT_KEY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The status's code and its message with `id` written as `<id>`.
fn shape(status: &tonic::Status, id: &str) -> (Code, String) {
    (status.code(), status.message().replace(id, "<id>"))
}

/// An accepted case with `products`, appended as triage would.
async fn accepted_case(store: &EventStore, products: &[&str]) -> anyhow::Result<CaseId> {
    let case = CaseId::for_report(ReportId::new());
    let id = case.to_string();
    let key = format!("PSIRT-2026-{:04}", NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let products: Vec<_> = products.iter().map(|p| product(p)).collect();
    let now = OffsetDateTime::now_utc();
    let metadata = || Metadata { actor: Some("psirt-triage".to_owned()), ..Metadata::default() };
    let subject = format!("psirt.evt.case.{case}");
    let opened = events::CaseOpened {
        case_id: id.clone(),
        case_key: key.clone(),
        title: "Overflow".to_owned(),
        opened_at: ts(now),
        ..Default::default()
    };
    store
        .append(
            NewEvent::from_message(
                EventId::derive(case.into(), "opened").into(),
                subject.clone(),
                &opened,
                metadata(),
            ),
            ExpectedVersion::Any,
        )
        .await?;
    if !products.is_empty() {
        let set =
            events::AffectedProductsSet { case_id: id.clone(), products: products.clone(), set_at: ts(now) };
        store
            .append(
                NewEvent::from_message(
                    EventId::derive(case.into(), "products").into(),
                    subject.clone(),
                    &set,
                    metadata(),
                ),
                ExpectedVersion::Any,
            )
            .await?;
    }
    let accepted = events::CaseAccepted {
        case_id: id.clone(),
        case_key: key,
        severity: common::SeverityRating::High.into(),
        affected_products: products,
        note: String::new(),
        accepted_at: ts(now),
    };
    store
        .append(
            NewEvent::from_message(
                EventId::derive(case.into(), "accepted").into(),
                subject,
                &accepted,
                metadata(),
            ),
            ExpectedVersion::Any,
        )
        .await?;
    Ok(case)
}

struct Service {
    _nats: NatsServer,
    _db: TestDatabase,
    _csaf: tempfile::TempDir,
    shutdown: Shutdown,
    store: EventStore,
    plans: RemediationServiceClient<Channel>,
    advisories: AdvisoryServiceClient<Channel>,
    _telemetry: psirt_kit::TelemetryGuard,
}

async fn start() -> anyhow::Result<Service> {
    let nats = NatsServer::start().await?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let csaf = tempfile::tempdir()?;
    let mut config = Config::default();
    config.grpc.listen = "127.0.0.1:0".parse()?;
    config.admin.listen = "127.0.0.1:0".parse()?;
    config.nats.url = nats.url();
    config.nats.stream.manage = true;
    config.database.url = SecretString::from(db.url().to_owned());
    config.auth.mode = AuthMode::Jwt;
    config.auth.hs256_secret = Some(SecretString::from(jwt::SECRET.to_owned()));
    config.auth.issuer = Some(jwt::ISSUER.to_owned());
    config.auth.audience = Some(jwt::AUDIENCE.to_owned());
    config.log.level = "warn".to_owned();
    config.advisory.csaf_directory = csaf.path().to_path_buf();
    config.advisory.publisher_name = "ACME PSIRT".to_owned();
    config.advisory.publisher_namespace = "https://psirt.acme.example".to_owned();
    let telemetry = psirt_kit::telemetry::init("psirt-remediation-test", &config.log, &config.otel)?;
    let app = Application::build(&config, telemetry.metrics()).await?;
    let grpc = app.grpc_addr();
    let shutdown = Shutdown::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let store =
        EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats)).await?;
    let channel = Channel::from_shared(format!("http://{grpc}"))?.connect().await?;
    Ok(Service {
        _nats: nats,
        _db: db,
        _csaf: csaf,
        shutdown,
        store,
        plans: RemediationServiceClient::new(channel.clone()),
        advisories: AdvisoryServiceClient::new(channel),
        _telemetry: telemetry,
    })
}

fn get(case: &str) -> api::GetPlanRequest {
    api::GetPlanRequest { case_id: case.to_owned() }
}

fn draft(case: &str, request_id: &str) -> api::DraftAdvisoryRequest {
    api::DraftAdvisoryRequest {
        case_id: case.to_owned(),
        request_id: request_id.to_owned(),
        content: Some(events::AdvisoryContent {
            title: "Overflow".to_owned(),
            summary: "An overflow.".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every advisory a caller lists, page by page (one a page), by case id.
async fn listed(s: &Service, token: &jwt::Token) -> anyhow::Result<Vec<String>> {
    let mut client = s.advisories.clone();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = client
            .list_advisories(with_token(
                api::ListAdvisoriesRequest {
                    page_size: 1,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        assert!(page.advisories.len() <= 1, "page size holds");
        seen.extend(page.advisories.into_iter().map(|a| a.case_id));
        if page.next_page_token.is_empty() {
            seen.sort();
            return Ok(seen);
        }
        page_token = page.next_page_token;
    }
    anyhow::bail!("the list did not end")
}

#[tokio::test]
async fn a_scoped_principal_knows_only_the_plans_and_advisories_of_its_products() -> anyhow::Result<()> {
    let s = Box::pin(start()).await?;
    let admin = token("ada", &["admin"], &[]);
    let star = token("sam", &["analyst"], &["*"]);
    let gateway = token("gil", &["analyst"], &["acme-gateway"]);
    let a = accepted_case(&s.store, &["acme-gateway", "acme-agent"]).await?.to_string();
    let b = accepted_case(&s.store, &["acme-switch"]).await?.to_string();
    let none = accepted_case(&s.store, &[]).await?.to_string();
    for case in [&a, &b, &none] {
        eventually(DEADLINE, "the plan opened by the reaction", || {
            let mut plans = s.plans.clone();
            let request = with_token(get(case), &admin);
            async move { plans.get_plan(request).await.ok() }
        })
        .await?;
    }
    let missing = CaseId::new().to_string();
    let mut plans = s.plans.clone();
    let mut advisories = s.advisories.clone();

    // Plans: B's and the case without products are missing to the gateway analyst.
    let absent = plans.get_plan(with_token(get(&missing), &gateway)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    for case in [&b, &none] {
        let hidden = plans.get_plan(with_token(get(case), &gateway)).await.expect_err("out of scope");
        assert_eq!(shape(&hidden, case), shape(&absent, &missing));
    }
    assert_eq!(
        plans.get_plan(with_token(get(&a), &gateway)).await?.into_inner().plan.expect("plan").case_id,
        a
    );
    let status = |case: &str| api::SetProductStatusRequest {
        case_id: case.to_owned(),
        request_id: format!("status-{case}"),
        product: "acme-switch".to_owned(),
        version: "1.0.0".to_owned(),
        status: events::ProductStatus::Fixed.into(),
        ..Default::default()
    };
    let absent = plans.set_product_status(with_token(status(&missing), &gateway)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    let hidden = plans.set_product_status(with_token(status(&b), &gateway)).await.expect_err("out of scope");
    assert_eq!(shape(&hidden, &b), shape(&absent, &missing));
    for token in [&star, &admin] {
        plans.get_plan(with_token(get(&none), token)).await?;
    }

    // Advisories: drafting is refused as for a missing case; lists leave
    // the others out.
    let absent =
        advisories.draft_advisory(with_token(draft(&missing, "d-m"), &gateway)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    let hidden = advisories.draft_advisory(with_token(draft(&b, "d-b"), &gateway)).await.expect_err("scope");
    assert_eq!(shape(&hidden, &b), shape(&absent, &missing));
    advisories.draft_advisory(with_token(draft(&a, "d-a"), &gateway)).await?;
    advisories.draft_advisory(with_token(draft(&b, "d-b"), &admin)).await?;
    advisories.draft_advisory(with_token(draft(&none, "d-n"), &star)).await?;

    // Audit: the actor's scopes are recorded with the command's event.
    let advisory_events = async |case: &str| -> anyhow::Result<Vec<psirt_eventstore::RecordedEvent>> {
        let case: CaseId = case.parse()?;
        let subject = format!("psirt.evt.advisory.{}", psirt_domain::AdvisoryId::for_case(case));
        Ok(s.store.load(&subject).await?)
    };
    let drafted = advisory_events(&a).await?.pop().expect("drafted");
    assert_eq!(drafted.metadata.actor.as_deref(), Some("gil"));
    assert_eq!(drafted.metadata.actor_scopes.as_deref(), Some("acme-gateway"));
    assert_eq!(
        advisory_events(&b).await?.pop().expect("drafted").metadata.actor_scopes.as_deref(),
        Some("*")
    );

    let export = |case: &str| api::ExportAdvisoryRequest {
        case_id: case.to_owned(),
        format: api::ExportFormat::Csaf20.into(),
    };
    let absent =
        advisories.export_advisory(with_token(export(&missing), &gateway)).await.expect_err("missing");
    assert_eq!(absent.code(), Code::NotFound);
    let hidden = advisories.export_advisory(with_token(export(&b), &gateway)).await.expect_err("scope");
    assert_eq!(shape(&hidden, &b), shape(&absent, &missing));

    let mut all = vec![a.clone(), b.clone(), none.clone()];
    all.sort();
    eventually(DEADLINE, "advisories in the read model", || async {
        (listed(&s, &admin).await.ok()? == all).then_some(())
    })
    .await?;
    assert_eq!(listed(&s, &gateway).await?, vec![a.clone()]);
    assert_eq!(listed(&s, &star).await?, all);
    assert!(listed(&s, &token("nobody", &["engineer"], &[])).await?.is_empty(), "no claim: no case");
    s.shutdown.trigger();
    Ok(())
}
