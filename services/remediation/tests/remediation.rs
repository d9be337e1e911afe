//! The remediation service in-process: real nats-server, real PostgreSQL
//! and SQLite, real gRPC. Triage's case events are appended to the stream
//! as triage would write them.

use std::net::SocketAddr;
use std::time::Duration;

use psirt_domain::{CaseId, EventId, PlanId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::remediation::advisory_service_client::AdvisoryServiceClient;
use psirt_proto::remediation::remediation_service_client::RemediationServiceClient;
use psirt_proto::{common, events, remediation as api};
use psirt_remediation::{Application, Config};
use psirt_testkit::{BACKENDS, Backend, NatsServer, TestDatabase, eventually};
use secrecy::SecretString;
use time::OffsetDateTime;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const DEADLINE: Duration = Duration::from_secs(20);
const V31: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const V40: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
const DAY: i64 = 86_400;

struct Harness {
    nats: NatsServer,
    db: TestDatabase,
    grpc: SocketAddr,
    admin: SocketAddr,
    csaf: tempfile::TempDir,
    shutdown: Shutdown,
    store: EventStore,
    app: psirt_remediation::Remediation,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _telemetry: psirt_kit::TelemetryGuard,
}

fn test_key(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/advisory/tests/testdata/openpgp")
        .join(name)
}

fn config(nats: &NatsServer, db: &TestDatabase, csaf: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.grpc.listen = "127.0.0.1:0".parse().expect("addr");
    config.admin.listen = "127.0.0.1:0".parse().expect("addr");
    config.nats.url = nats.url();
    config.nats.stream.manage = true;
    config.database.url = SecretString::from(db.url().to_owned());
    config.auth.mode = AuthMode::None;
    config.log.level = "warn".to_owned();
    config.advisory.csaf_directory = csaf.to_path_buf();
    // The test-only key of the advisory crate's tests (made with GnuPG; never use it elsewhere).
    config.advisory.signing_key_file = Some(test_key("subkey-signing.sec.asc"));
    config.advisory.signing_key_passphrase_file = Some(test_key("subkey-signing.passphrase"));
    config.advisory.publisher_name = "ACME PSIRT".to_owned();
    config.advisory.publisher_namespace = "https://psirt.acme.example".to_owned();
    config.advisory.cna_org_id = "b3476cb9-2e3d-41a6-98d0-0f47421a65b6".to_owned();
    config.advisory.cna_short_name = "acme".to_owned();
    config
}

impl Harness {
    async fn start(backend: Backend) -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::new(backend).await?;
        let csaf = tempfile::tempdir()?;
        Box::pin(Self::start_on(nats, db, csaf)).await
    }

    async fn start_on(nats: NatsServer, db: TestDatabase, csaf: tempfile::TempDir) -> anyhow::Result<Self> {
        let config = config(&nats, &db, csaf.path());
        let telemetry = psirt_kit::telemetry::init("psirt-remediation-test", &config.log, &config.otel)?;
        let app = Application::build(&config, telemetry.metrics()).await?;
        let (grpc, admin) = (app.grpc_addr(), app.admin_addr());
        let remediation = app.remediation().clone();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        Ok(Self {
            nats,
            db,
            grpc,
            admin,
            csaf,
            shutdown,
            store,
            app: remediation,
            task: Some(task),
            _telemetry: telemetry,
        })
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    async fn plans(&self) -> anyhow::Result<RemediationServiceClient<Channel>> {
        Ok(RemediationServiceClient::new(
            Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?,
        ))
    }

    async fn advisories(&self) -> anyhow::Result<AdvisoryServiceClient<Channel>> {
        Ok(AdvisoryServiceClient::new(
            Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?,
        ))
    }

    /// Appends one case event as triage would.
    async fn case_event<M: psirt_proto::EventSchema>(
        &self,
        case: CaseId,
        tag: &str,
        m: &M,
    ) -> anyhow::Result<()> {
        let new = NewEvent::from_message(
            EventId::derive(case.into(), tag).into(),
            format!("psirt.evt.case.{case}"),
            m,
            Metadata { actor: Some("psirt-triage".to_owned()), ..Metadata::default() },
        );
        self.store.append(new, ExpectedVersion::Any).await?;
        Ok(())
    }

    /// A triaged, accepted case: two affected products, CVSS 3.1 and 4.0,
    /// CWE-79, a CVE and an embargo until `embargo`.
    async fn accepted_case(
        &self,
        rating: common::SeverityRating,
        embargo: OffsetDateTime,
    ) -> anyhow::Result<CaseId> {
        let case = CaseId::for_report(ReportId::new());
        let id = case.to_string();
        let key = format!("PSIRT-2026-{:04}", rand_key());
        let products = vec![
            product("acme-gateway", "vers:semver/>=2.0.0|<2.4.1"),
            product("acme-agent", "vers:semver/<1.9.0"),
        ];
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
        self.case_event(case, "assessed", &assessed(&id, rating)).await?;
        self.case_event(
            case,
            "products",
            &events::AffectedProductsSet {
                case_id: id.clone(),
                products: products.clone(),
                set_at: ts(OffsetDateTime::now_utc()),
            },
        )
        .await?;
        self.case_event(
            case,
            "cve",
            &events::CveAssigned {
                case_id: id.clone(),
                cve_id: "CVE-2026-12345".to_owned(),
                assigner: "acme".to_owned(),
                assigned_at: ts(OffsetDateTime::now_utc()),
            },
        )
        .await?;
        self.case_event(
            case,
            "embargo",
            &events::EmbargoSet {
                case_id: id.clone(),
                disclosure_at: ts(embargo),
                time_zone: "UTC".to_owned(),
                set_at: ts(OffsetDateTime::now_utc()),
                ..Default::default()
            },
        )
        .await?;
        self.case_event(
            case,
            "accepted",
            &events::CaseAccepted {
                case_id: id.clone(),
                case_key: key,
                severity: rating.into(),
                affected_products: products,
                note: String::new(),
                accepted_at: ts(OffsetDateTime::now_utc()),
            },
        )
        .await?;
        Ok(case)
    }

    /// Waits for the reaction to open the case's plan.
    async fn opened_plan(&self, case: CaseId) -> anyhow::Result<api::Plan> {
        let client = self.plans().await?;
        eventually(DEADLINE, "the plan opened by the reaction", || {
            let mut client = client.clone();
            async move {
                client
                    .get_plan(api::GetPlanRequest { case_id: case.to_string() })
                    .await
                    .ok()?
                    .into_inner()
                    .plan
            }
        })
        .await
    }

    async fn plan_events(&self, case: CaseId) -> anyhow::Result<Vec<RecordedEvent>> {
        Ok(self.store.load(&format!("psirt.evt.remediation.{}", PlanId::for_case(case))).await?)
    }

    async fn advisory_events(&self, case: CaseId) -> anyhow::Result<Vec<RecordedEvent>> {
        Ok(self
            .store
            .load(&format!("psirt.evt.advisory.{}", psirt_domain::AdvisoryId::for_case(case)))
            .await?)
    }
}

fn rand_key() -> u32 {
    u32::from(uuid::Uuid::now_v7().as_bytes()[15]) + 1
}

fn ts(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: 0 })
}

fn product(name: &str, range: &str) -> common::ProductVersionRange {
    common::ProductVersionRange {
        product: name.to_owned(),
        versions: Some(common::product_version_range::Versions::Range(range.to_owned())),
    }
}

fn assessed(case_id: &str, rating: common::SeverityRating) -> events::SeverityAssessed {
    events::SeverityAssessed {
        case_id: case_id.to_owned(),
        cvss_v31: Some(common::CvssV31 {
            vector: V31.to_owned(),
            base_score: 9.8,
            rating: common::SeverityRating::Critical.into(),
        }),
        cvss_v40: Some(common::CvssV40 {
            vector: V40.to_owned(),
            score: 9.3,
            rating: common::SeverityRating::Critical.into(),
        }),
        severity: rating.into(),
        cwe_ids: vec!["CWE-79".to_owned()],
        assessed_at: ts(OffsetDateTime::now_utc()),
        ..Default::default()
    }
}

fn field_violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

fn secs(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds)
}

fn plan_action(
    case: CaseId,
    request: &str,
    name: &str,
    range: &str,
    action: events::RemediationAction,
) -> api::PlanActionRequest {
    api::PlanActionRequest {
        case_id: case.to_string(),
        request_id: request.to_owned(),
        target: Some(product(name, range)),
        action: action.into(),
        owner_team: "gateway-team".to_owned(),
        target_release: "2.4.1".to_owned(),
        description: format!("Update {name} to 2.4.1 or later."),
        ..Default::default()
    }
}

fn content() -> events::AdvisoryContent {
    events::AdvisoryContent {
        title: "ACME Gateway: stored cross-site scripting in the admin console".to_owned(),
        summary: "A stored XSS lets an authenticated user run script in an administrator's browser."
            .to_owned(),
        details: "The admin console renders device names without escaping.".to_owned(),
        workarounds: "Restrict admin console access to trusted networks.".to_owned(),
        acknowledgments: vec![
            events::Acknowledgment {
                name: "Jane Doe".to_owned(),
                organization: "Example Research".to_owned(),
                url: String::new(),
                consent: true,
            },
            events::Acknowledgment {
                name: "John Roe".to_owned(),
                organization: String::new(),
                url: String::new(),
                consent: false,
            },
        ],
        references: vec!["https://psirt.acme.example/notes/gateway-2.4.1".to_owned()],
    }
}

#[tokio::test]
async fn accepting_a_case_opens_a_plan_whose_due_dates_follow_the_severity() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let case = h
            .accepted_case(
                common::SeverityRating::Critical,
                OffsetDateTime::now_utc() + time::Duration::days(30),
            )
            .await?;
        let plan = h.opened_plan(case).await?;
        assert_eq!(plan.severity, common::SeverityRating::Critical as i32, "{backend:?}");
        assert_eq!(plan.sla_policy, "default@1");
        assert_eq!(plan.affected_products.len(), 2);
        let opened = secs(plan.opened_at.as_ref());

        let mut plans = h.plans().await?;
        let planned = plans
            .plan_action(plan_action(
                case,
                "plan-gw",
                "acme-gateway",
                "vers:semver/>=2.0.0|<2.4.1",
                events::RemediationAction::Fix,
            ))
            .await?
            .into_inner();
        let action = planned
            .plan
            .as_ref()
            .expect("plan")
            .actions
            .iter()
            .find(|a| a.action_id == planned.action_id)
            .cloned()
            .expect("action");
        assert_eq!(secs(action.due_at.as_ref()) - opened, 7 * DAY, "critical: 7 days");

        // The same request again plans nothing new.
        let again = plans
            .plan_action(plan_action(
                case,
                "plan-gw",
                "acme-gateway",
                "vers:semver/>=2.0.0|<2.4.1",
                events::RemediationAction::Fix,
            ))
            .await?
            .into_inner();
        assert_eq!(again.action_id, planned.action_id);
        assert_eq!(again.plan.expect("plan").actions.len(), 1);

        // Triage lowers the severity: the due date moves to 30 days.
        let id = case.to_string();
        h.case_event(case, "reassessed", &assessed(&id, common::SeverityRating::High)).await?;
        let moved = eventually(DEADLINE, "due dates recomputed", || {
            let mut plans = plans.clone();
            async move {
                let plan = plans
                    .get_plan(api::GetPlanRequest { case_id: case.to_string() })
                    .await
                    .ok()?
                    .into_inner()
                    .plan?;
                (plan.severity == common::SeverityRating::High as i32).then_some(plan)
            }
        })
        .await?;
        assert_eq!(secs(moved.actions[0].due_at.as_ref()) - opened, 30 * DAY, "{backend:?}: high: 30 days");

        // A redelivered acceptance (another CaseAccepted) opens nothing twice.
        let opened_events = h
            .plan_events(case)
            .await?
            .iter()
            .filter(|e| e.event_type == "psirt.events.v1.RemediationPlanOpened")
            .count();
        assert_eq!(opened_events, 1);
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn bad_remediation_input_is_refused_and_appends_nothing() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let case = h
        .accepted_case(common::SeverityRating::High, OffsetDateTime::now_utc() - time::Duration::days(1))
        .await?;
    h.opened_plan(case).await?;
    let before = h.plan_events(case).await?.len();
    let mut plans = h.plans().await?;

    // known_not_affected without a justification
    let status = plans
        .set_product_status(api::SetProductStatusRequest {
            case_id: case.to_string(),
            request_id: "nna".to_owned(),
            product: "acme-agent".to_owned(),
            version: "vers:semver/<1.9.0".to_owned(),
            status: events::ProductStatus::KnownNotAffected.into(),
            ..Default::default()
        })
        .await
        .expect_err("justification required");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(field_violations(&status).contains(&"justification".to_owned()), "{status:?}");

    // a release of a product the plan does not cover
    let status = plans
        .record_release(api::RecordReleaseRequest {
            case_id: case.to_string(),
            request_id: "rel-unknown".to_owned(),
            product: "acme-toaster".to_owned(),
            fixed_version: "1.0.1".to_owned(),
            released_at: ts(OffsetDateTime::now_utc()),
            ..Default::default()
        })
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(field_violations(&status).contains(&"product".to_owned()), "{status:?}");

    // an action for an unknown product, and without an action kind
    let status = plans
        .plan_action(plan_action(
            case,
            "bad-plan",
            "acme-toaster",
            "vers:semver/<2",
            events::RemediationAction::Fix,
        ))
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = plans
        .plan_action(plan_action(
            case,
            "bad-plan-2",
            "acme-gateway",
            "vers:semver/<2",
            events::RemediationAction::Unspecified,
        ))
        .await
        .expect_err("no action");
    assert_eq!(status.code(), Code::InvalidArgument);

    // a stale expected version
    let status = plans
        .set_product_status(api::SetProductStatusRequest {
            case_id: case.to_string(),
            request_id: "stale".to_owned(),
            expected_version: Some(1),
            product: "acme-agent".to_owned(),
            version: "vers:semver/<1.9.0".to_owned(),
            status: events::ProductStatus::KnownAffected.into(),
            ..Default::default()
        })
        .await
        .expect_err("stale");
    assert_eq!(status.code(), Code::Aborted);

    // an unknown case
    let status = plans
        .get_plan(api::GetPlanRequest { case_id: CaseId::for_report(ReportId::new()).to_string() })
        .await
        .expect_err("unknown case");
    assert_eq!(status.code(), Code::NotFound);

    assert_eq!(h.plan_events(case).await?.len(), before, "nothing appended");
    h.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_advisory_is_refused_during_the_embargo_and_without_product_status_then_published_exported_and_rebuilt_identically()
-> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        // Embargo lifts in 3 seconds.
        let lifts = OffsetDateTime::now_utc() + time::Duration::seconds(3);
        let case = h.accepted_case(common::SeverityRating::Critical, lifts).await?;
        h.opened_plan(case).await?;
        let mut plans = h.plans().await?;
        let mut advisories = h.advisories().await?;
        let cid = case.to_string();

        let gw = plans
            .plan_action(plan_action(
                case,
                "gw",
                "acme-gateway",
                "vers:semver/>=2.0.0|<2.4.1",
                events::RemediationAction::Fix,
            ))
            .await?
            .into_inner();
        plans
            .plan_action(api::PlanActionRequest {
                description: "Nothing to do: the agent does not ship the console.".to_owned(),
                ..plan_action(case, "ag", "acme-agent", "vers:semver/<1.9.0", events::RemediationAction::None)
            })
            .await?;
        plans
            .record_release(api::RecordReleaseRequest {
                case_id: cid.clone(),
                request_id: "rel".to_owned(),
                action_id: gw.action_id.clone(),
                product: "acme-gateway".to_owned(),
                fixed_version: "2.4.1".to_owned(),
                released_at: ts(OffsetDateTime::now_utc()),
                release_notes_url: "https://psirt.acme.example/notes/gateway-2.4.1".to_owned(),
                ..Default::default()
            })
            .await?;
        plans
            .set_product_status(api::SetProductStatusRequest {
                case_id: cid.clone(),
                request_id: "st-gw".to_owned(),
                product: "acme-gateway".to_owned(),
                version: "vers:semver/>=2.0.0|<2.4.1".to_owned(),
                status: events::ProductStatus::KnownAffected.into(),
                statement: "Update to 2.4.1.".to_owned(),
                ..Default::default()
            })
            .await?;
        advisories
            .draft_advisory(api::DraftAdvisoryRequest {
                case_id: cid.clone(),
                request_id: "draft".to_owned(),
                tracking_id: "ACME-SA-2026-0001".to_owned(),
                content: Some(content()),
                ..Default::default()
            })
            .await?;
        let publish = |request: &str| api::PublishAdvisoryRequest {
            case_id: cid.clone(),
            request_id: request.to_owned(),
            ..Default::default()
        };
        let advisory_events = h.advisory_events(case).await?.len();

        // Still embargoed (the anonymous principal of auth mode none is an
        // admin, but gives no reason): refused, nothing appended.
        let status = advisories.publish_advisory(publish("pub-1")).await.expect_err("embargo");
        assert_eq!(status.code(), Code::FailedPrecondition, "{backend:?}");
        assert!(status.message().contains("embargo"), "{status:?}");
        assert!(OffsetDateTime::now_utc() < lifts, "the embargo check ran before the embargo lifted");

        // Once it lifts: the agent has no status yet: refused, nothing appended.
        let status = eventually(DEADLINE, "the embargo to lift", || {
            let mut advisories = advisories.clone();
            let request = publish("pub-2");
            async move {
                let status = advisories.publish_advisory(request).await.expect_err("agent has no status");
                (!status.message().contains("embargo")).then_some(status)
            }
        })
        .await?;
        assert_eq!(status.code(), Code::FailedPrecondition, "{backend:?}");
        assert!(status.message().contains("acme-agent"), "{status:?}");
        assert_eq!(h.advisory_events(case).await?.len(), advisory_events, "nothing appended");

        plans
            .set_product_status(api::SetProductStatusRequest {
                case_id: cid.clone(),
                request_id: "st-ag".to_owned(),
                product: "acme-agent".to_owned(),
                version: "vers:semver/<1.9.0".to_owned(),
                status: events::ProductStatus::KnownNotAffected.into(),
                justification: events::VexJustification::VulnerableCodeNotInExecutePath.into(),
                statement: "The agent never renders the console.".to_owned(),
                ..Default::default()
            })
            .await?;

        // After the embargo: published as 1.0.0.
        let published =
            advisories.publish_advisory(publish("pub-3")).await?.into_inner().advisory.expect("advisory");
        assert_eq!(published.published_version, "1.0.0");
        assert_eq!(published.state, api::AdvisoryState::Published as i32);

        // Every format exports and parses as JSON; the CSAF one is in the
        // provider directory, served on the admin port.
        let mut exported = Vec::new();
        for format in [
            api::ExportFormat::Csaf20,
            api::ExportFormat::CsafVex,
            api::ExportFormat::CveJson5,
            api::ExportFormat::Osv,
            api::ExportFormat::Openvex,
        ] {
            let doc = advisories
                .export_advisory(api::ExportAdvisoryRequest { case_id: cid.clone(), format: format.into() })
                .await?
                .into_inner();
            let json: serde_json::Value = serde_json::from_slice(&doc.document)?;
            assert!(json.is_object(), "{format:?}");
            exported.push(doc.document);
        }
        let csaf: serde_json::Value = serde_json::from_slice(&exported[0])?;
        assert_eq!(csaf["document"]["tracking"]["id"], "ACME-SA-2026-0001");
        assert_eq!(csaf["document"]["tracking"]["version"], "1.0.0");
        assert_eq!(csaf["vulnerabilities"][0]["cve"], "CVE-2026-12345");
        let year = OffsetDateTime::now_utc().year();
        let path = format!("{year}/acme-sa-2026-0001.json");
        let served = reqwest::get(format!("http://{}/.well-known/csaf/{path}", h.admin)).await?;
        assert_eq!(served.status(), 200, "{backend:?}");
        assert_eq!(
            served.bytes().await?.as_ref(),
            exported[0].as_slice(),
            "the directory serves the exported bytes"
        );
        let metadata: serde_json::Value =
            reqwest::get(format!("http://{}/.well-known/csaf/provider-metadata.json", h.admin))
                .await?
                .json()
                .await?;
        // Signed with the configured key: a trusted provider, its key published and listed.
        assert_eq!(metadata["role"], "csaf_trusted_provider", "{metadata}");
        assert_eq!(metadata["publisher"]["name"], "ACME PSIRT");
        let key =
            config(&h.nats, &h.db, h.csaf.path()).advisory.signing_key().expect("key").expect("configured");
        assert_eq!(metadata["public_openpgp_keys"][0]["fingerprint"], key.fingerprint());
        let key_url = metadata["public_openpgp_keys"][0]["url"].as_str().expect("key url");
        let key_path =
            key_url.strip_prefix("https://psirt.example.com/.well-known/csaf/").expect("in the directory");
        let served_key =
            reqwest::get(format!("http://{}/.well-known/csaf/{key_path}", h.admin)).await?.text().await?;
        assert_eq!(served_key, key.public_key_armored());
        let signature =
            reqwest::get(format!("http://{}/.well-known/csaf/{path}.asc", h.admin)).await?.text().await?;
        key.verify(&exported[0], &signature).expect("the served signature verifies over the exported bytes");
        let index =
            reqwest::get(format!("http://{}/.well-known/csaf/index.txt", h.admin)).await?.text().await?;
        assert!(index.lines().any(|l| l == path), "{index}");
        let outside =
            reqwest::get(format!("http://{}/.well-known/csaf/..%2F..%2Fetc%2Fpasswd", h.admin)).await?;
        assert_eq!(outside.status(), 404);

        // Rebuild: the same plan, the same documents, byte for byte.
        let plan_before =
            plans.get_plan(api::GetPlanRequest { case_id: cid.clone() }).await?.into_inner().plan;
        let list_before =
            advisories.list_advisories(api::ListAdvisoriesRequest::default()).await?.into_inner();
        h.stop().await?;
        let config = config(&h.nats, &h.db, h.csaf.path());
        psirt_remediation::rebuild(&config, |_, _| {}).await?;
        let Harness { nats, db, csaf, .. } = h;
        let mut h = Box::pin(Harness::start_on(nats, db, csaf)).await?;
        let mut plans = h.plans().await?;
        let mut advisories = h.advisories().await?;
        assert_eq!(
            plans.get_plan(api::GetPlanRequest { case_id: cid.clone() }).await?.into_inner().plan,
            plan_before
        );
        assert_eq!(
            advisories.list_advisories(api::ListAdvisoriesRequest::default()).await?.into_inner(),
            list_before
        );
        for (i, format) in [
            api::ExportFormat::Csaf20,
            api::ExportFormat::CsafVex,
            api::ExportFormat::CveJson5,
            api::ExportFormat::Osv,
            api::ExportFormat::Openvex,
        ]
        .into_iter()
        .enumerate()
        {
            let doc = advisories
                .export_advisory(api::ExportAdvisoryRequest { case_id: cid.clone(), format: format.into() })
                .await?
                .into_inner();
            assert_eq!(doc.document, exported[i], "{backend:?} {format:?} differs after the rebuild");
        }
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn an_overdue_action_breaches_once_per_deadline() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Postgres).await?;
    let case = h.accepted_case(common::SeverityRating::Medium, OffsetDateTime::now_utc()).await?;
    h.opened_plan(case).await?;
    let mut plans = h.plans().await?;
    let due = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    plans
        .plan_action(api::PlanActionRequest {
            due_at_override: ts(due),
            due_date_override_reason: "hotfix promised to the reporter".to_owned(),
            ..plan_action(
                case,
                "urgent",
                "acme-gateway",
                "vers:semver/<2.4.1",
                events::RemediationAction::Fix,
            )
        })
        .await?;
    // Wait until the action is overdue in the read model.
    eventually(DEADLINE, "the action listed as overdue", || {
        let mut plans = plans.clone();
        async move {
            let page = plans.list_overdue(api::ListOverdueRequest::default()).await.ok()?.into_inner();
            (!page.actions.is_empty()).then_some(())
        }
    })
    .await?;
    // Two scheduler passes (as two replicas would run them): one breach.
    h.app.record_breaches().await?;
    h.app.record_breaches().await?;
    let breaches =
        h.plan_events(case).await?.iter().filter(|e| e.event_type == "psirt.events.v1.SlaBreached").count();
    assert_eq!(breaches, 1);
    let filtered = plans
        .list_overdue(api::ListOverdueRequest { owner_team: "someone-else".to_owned(), ..Default::default() })
        .await?
        .into_inner();
    assert!(filtered.actions.is_empty(), "filtered by team");
    h.stop().await?;
    Ok(())
}
