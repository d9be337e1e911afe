//! `psirtctl remediation ...` and `psirtctl advisory ...` against a real
//! remediation service in-process (real nats-server, temp SQLite, real
//! gRPC). The accepted case is appended to the event stream as triage would
//! write it; commands name it by id, so no triage service is needed.

mod support;

use std::path::Path;

use psirt_domain::{CaseId, EventId, ReportId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent};
use psirt_kit::Shutdown;
use psirt_kit::config::AuthMode;
use psirt_proto::{common, events};
use psirt_remediation::{Application, Config};
use psirt_testkit::{NatsServer, TestDatabase, eventually, free_port};
use secrecy::SecretString;
use support::{PROJECTION_DEADLINE, Run, psirtctl};
use time::OffsetDateTime;

const GATEWAY_RANGE: &str = "vers:semver/>=2.0.0|<2.4.1";
const AGENT_RANGE: &str = "vers:semver/<1.9.0";

/// A running remediation service and what it depends on.
struct Remediation {
    /// `127.0.0.1:<port>` (for `--remediation-server`).
    server: String,
    store: EventStore,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped after the service is stopped.
    _telemetry: psirt_kit::TelemetryGuard,
    _csaf: tempfile::TempDir,
    _db: TestDatabase,
    _nats: NatsServer,
}

impl Remediation {
    async fn start() -> anyhow::Result<Self> {
        let nats = NatsServer::start().await?;
        let db = TestDatabase::sqlite()?;
        let csaf = tempfile::tempdir()?;
        let mut config = Config::default();
        config.grpc.listen = "127.0.0.1:0".parse()?;
        config.admin.listen = "127.0.0.1:0".parse()?;
        config.nats.url = nats.url();
        config.nats.stream.manage = true;
        config.database.url = SecretString::from(db.url().to_owned());
        config.auth.mode = AuthMode::None;
        config.log.level = "warn".to_owned();
        config.advisory.csaf_directory = csaf.path().to_path_buf();
        config.advisory.publisher_name = "ACME PSIRT".to_owned();
        config.advisory.publisher_namespace = "https://psirt.acme.example".to_owned();
        config.advisory.cna_org_id = "b3476cb9-2e3d-41a6-98d0-0f47421a65b6".to_owned();
        config.advisory.cna_short_name = "acme".to_owned();
        let telemetry = psirt_kit::telemetry::init("test-remediation", &config.log, &config.otel)?;
        let app = Box::pin(Application::build(&config, telemetry.metrics())).await?;
        let server = app.grpc_addr().to_string();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let store =
            EventStore::open(nats.connect().await?, &psirt_kit::backbone::stream_settings(&config.nats))
                .await?;
        Ok(Self {
            server,
            store,
            shutdown,
            task: Some(task),
            _telemetry: telemetry,
            _csaf: csaf,
            _db: db,
            _nats: nats,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Appends one case event as triage would.
    async fn case_event<M: psirt_proto::EventSchema>(
        &self,
        case: CaseId,
        tag: &str,
        message: &M,
    ) -> anyhow::Result<()> {
        let event = NewEvent::from_message(
            EventId::derive(case.into(), tag).into(),
            format!("psirt.evt.case.{case}"),
            message,
            Metadata { actor: Some("psirt-triage".to_owned()), ..Metadata::default() },
        );
        self.store.append(event, ExpectedVersion::Any).await?;
        Ok(())
    }

    /// A critical case, accepted with two affected products, a CVE and an
    /// embargo that has already ended.
    async fn accepted_case(&self) -> anyhow::Result<CaseId> {
        let case = CaseId::for_report(ReportId::new());
        let id = case.to_string();
        let key = "PSIRT-2026-0042".to_owned();
        let now = OffsetDateTime::now_utc();
        let products = vec![product("acme-gateway", GATEWAY_RANGE), product("acme-agent", AGENT_RANGE)];
        self.case_event(
            case,
            "opened",
            &events::CaseOpened {
                case_id: id.clone(),
                case_key: key.clone(),
                title: "Stored XSS in the gateway admin console".to_owned(),
                opened_at: ts(now),
                ..Default::default()
            },
        )
        .await?;
        self.case_event(
            case,
            "assessed",
            &events::SeverityAssessed {
                case_id: id.clone(),
                cvss_v31: Some(common::CvssV31 {
                    vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".to_owned(),
                    base_score: 9.8,
                    rating: common::SeverityRating::Critical.into(),
                }),
                severity: common::SeverityRating::Critical.into(),
                cwe_ids: vec!["CWE-79".to_owned()],
                assessed_at: ts(now),
                ..Default::default()
            },
        )
        .await?;
        self.case_event(
            case,
            "products",
            &events::AffectedProductsSet { case_id: id.clone(), products: products.clone(), set_at: ts(now) },
        )
        .await?;
        self.case_event(
            case,
            "cve",
            &events::CveAssigned {
                case_id: id.clone(),
                cve_id: "CVE-2026-12345".to_owned(),
                assigner: "acme".to_owned(),
                assigned_at: ts(now),
            },
        )
        .await?;
        self.case_event(
            case,
            "embargo",
            &events::EmbargoSet {
                case_id: id.clone(),
                disclosure_at: ts(now - time::Duration::days(1)),
                time_zone: "UTC".to_owned(),
                set_at: ts(now),
                ..Default::default()
            },
        )
        .await?;
        self.case_event(
            case,
            "accepted",
            &events::CaseAccepted {
                case_id: id,
                case_key: key,
                severity: common::SeverityRating::Critical.into(),
                affected_products: products,
                note: String::new(),
                accepted_at: ts(now),
            },
        )
        .await?;
        Ok(case)
    }

    /// `psirtctl --remediation-server <server> <args>`, run to completion.
    async fn run(&self, args: &[&str]) -> Run {
        psirtctl(["--remediation-server", self.server.as_str()].iter().chain(args).copied()).run().await
    }
}

impl Drop for Remediation {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_remediate_and_publish_an_advisory() -> anyhow::Result<()> {
    let service = Remediation::start().await?;
    let case = service.accepted_case().await?;
    let id = case.to_string();

    // The service opens the plan when it sees the acceptance.
    let plan = eventually(PROJECTION_DEADLINE, "the plan opened by the service", || {
        let args = ["--remediation-server", service.server.as_str(), "remediation", "plan", id.as_str()]
            .map(str::to_owned);
        async move {
            let run = psirtctl(args).run().await;
            (run.code == 0).then_some(run)
        }
    })
    .await?;
    assert_eq!(plan.field("Case key"), "PSIRT-2026-0042");
    assert_eq!(plan.field("Severity"), "critical");
    assert!(plan.stdout.contains("Actions:\n  none"), "{}", plan.stdout);

    // Plan a fix; the same request id again plans nothing new.
    let gateway = format!("acme-gateway@{GATEWAY_RANGE}");
    let fix = [
        "remediation",
        "action",
        id.as_str(),
        "--product",
        gateway.as_str(),
        "--action",
        "fix",
        "--team",
        "gateway-team",
        "--target-release",
        "2.4.1",
        "--description",
        "Escape device names.",
        "--request-id",
        "plan-gw",
    ];
    let planned = service.run(&fix).await.expect_code(0);
    let action_id = planned.field("Action ID");
    assert_eq!(planned.field("Request ID"), "plan-gw");
    assert!(planned.stdout.contains("acme-gateway  vers:semver/>=2.0.0|<2.4.1  fix"), "{}", planned.stdout);
    let again = service.run(&fix).await.expect_code(0);
    assert_eq!(again.field("Action ID"), action_id);
    assert_eq!(again.field("Version"), planned.field("Version"));

    // An action with an overridden due date, as JSON; a new request id is
    // generated and shown.
    let agent = format!("acme-agent@{AGENT_RANGE}");
    let due = OffsetDateTime::now_utc() + time::Duration::days(60);
    let due = format!("{}-{:02}-{:02}T00:00:00Z", due.year(), u8::from(due.month()), due.day());
    let none = service
        .run(&[
            "--output",
            "json",
            "remediation",
            "action",
            id.as_str(),
            "--product",
            agent.as_str(),
            "--action",
            "none",
            "--team",
            "agent-team",
            "--due",
            due.as_str(),
            "--due-reason",
            "agreed with the product owner",
            "--description",
            "The agent does not ship the console.",
        ])
        .await
        .expect_code(0);
    let json = none.json();
    let agent_action = json["plan"]["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["actionId"] == json["actionId"]))
        .cloned()
        .expect("the new action in the plan");
    assert_eq!(agent_action["action"], "REMEDIATION_ACTION_NONE");
    assert_eq!(agent_action["dueAt"], due.as_str());
    assert_eq!(agent_action["dueDateOverrideReason"], "agreed with the product owner");

    // A release, the product statuses, the verification.
    let released = service
        .run(&[
            "remediation",
            "release",
            id.as_str(),
            "--product",
            "acme-gateway",
            "--fixed-version",
            "2.4.1",
            "--action-id",
            action_id.as_str(),
            "--notes-url",
            "https://psirt.acme.example/notes/gateway-2.4.1",
        ])
        .await
        .expect_code(0);
    assert!(
        released.stdout.contains("acme-gateway  2.4.1") && released.stdout.contains("gateway-2.4.1"),
        "{}",
        released.stdout
    );
    service
        .run(&[
            "remediation",
            "status",
            id.as_str(),
            "--product",
            "acme-gateway",
            "--version",
            GATEWAY_RANGE,
            "--status",
            "affected",
            "--statement",
            "Update to 2.4.1.",
        ])
        .await
        .expect_code(0);
    let status = service
        .run(&[
            "remediation",
            "status",
            id.as_str(),
            "--product",
            "acme-agent",
            "--version",
            AGENT_RANGE,
            "--status",
            "not-affected",
            "--justification",
            "vulnerable-code-not-in-execute-path",
            "--statement",
            "The agent never renders the console.",
        ])
        .await
        .expect_code(0);
    assert!(status.stdout.contains("not-affected  vulnerable-code-not-in-execute-path"), "{}", status.stdout);
    let version: u64 = status.field("Version").parse()?;
    let verified = service
        .run(&[
            "remediation",
            "verify",
            id.as_str(),
            "--action-id",
            action_id.as_str(),
            "--note",
            "retested with the PoC",
            "--expected-version",
            &version.to_string(),
        ])
        .await
        .expect_code(0);
    assert!(verified.stdout.contains("verified"), "{}", verified.stdout);

    // A stale expected version is refused by the server (exit 1).
    let stale = service
        .run(&[
            "remediation",
            "verify",
            id.as_str(),
            "--action-id",
            action_id.as_str(),
            "--expected-version",
            "1",
        ])
        .await
        .expect_code(1);
    assert!(stale.stderr.contains("ABORTED"), "{}", stale.stderr);
    // A not-affected status without justification never reaches the server.
    let refused = service
        .run(&[
            "remediation",
            "status",
            id.as_str(),
            "--product",
            "acme-agent",
            "--version",
            "1.0",
            "--status",
            "not-affected",
        ])
        .await
        .expect_code(2);
    assert!(refused.stderr.contains("needs --justification"), "{}", refused.stderr);

    let overdue = service.run(&["remediation", "overdue", "--team", "gateway-team"]).await.expect_code(0);
    assert_eq!(overdue.stdout, "No overdue actions.\n");

    // The advisory: drafted with details from a file, published, exported.
    let dir = tempfile::tempdir()?;
    let details = dir.path().join("details.md");
    std::fs::write(&details, "The admin console renders device names without escaping.\n")?;
    let drafted = service
        .run(&[
            "advisory",
            "draft",
            id.as_str(),
            "--title",
            "ACME Gateway: stored cross-site scripting",
            "--summary",
            "A stored XSS lets an authenticated user run script in an administrator's browser.",
            "--details-file",
            details.to_str().expect("utf-8 path"),
            "--workarounds",
            "Restrict admin console access to trusted networks.",
            "--tracking-id",
            "ACME-SA-2026-0001",
            "--credit",
            "Jane Doe;Example Research;consent",
            "--credit",
            "John Roe",
            "--reference",
            "https://psirt.acme.example/notes/gateway-2.4.1",
            "--request-id",
            "draft-1",
        ])
        .await
        .expect_code(0);
    assert_eq!(drafted.field("State"), "draft");
    assert_eq!(drafted.field("Tracking ID"), "ACME-SA-2026-0001");
    assert_eq!(drafted.field("Credits"), "2");
    assert_eq!(drafted.field("Request ID"), "draft-1");

    let published = service
        .run(&["advisory", "publish", id.as_str(), "--format", "csaf", "--format", "osv"])
        .await
        .expect_code(0);
    assert_eq!(published.field("State"), "published");
    assert_eq!(published.field("Published version"), "1.0.0");
    assert_eq!(published.field("Formats"), "csaf, osv");

    let stdout = service.run(&["advisory", "export", id.as_str(), "--format", "csaf"]).await.expect_code(0);
    let csaf: serde_json::Value = serde_json::from_str(&stdout.stdout)?;
    assert_eq!(csaf["document"]["tracking"]["id"], "ACME-SA-2026-0001");
    assert_eq!(csaf["vulnerabilities"][0]["cve"], "CVE-2026-12345");
    let out = dir.path().join("advisory.json");
    let file = service
        .run(&["advisory", "export", id.as_str(), "--format", "csaf", "--out", out.to_str().expect("utf-8")])
        .await
        .expect_code(0);
    assert_eq!(file.stdout, "");
    assert!(file.stderr.contains(out.to_str().expect("utf-8")), "{}", file.stderr);
    assert_eq!(std::fs::read_to_string(&out)?, stdout.stdout, "the same bytes as on stdout");
    assert_eq!(entries(dir.path()), ["advisory.json", "details.md"], "no temporary file left");
    for format in ["csaf-vex", "cve", "osv", "openvex"] {
        let run = service.run(&["advisory", "export", id.as_str(), "--format", format]).await.expect_code(0);
        let json: serde_json::Value = serde_json::from_str(&run.stdout)?;
        assert!(json.is_object(), "{format}");
    }

    let listed = service.run(&["advisory", "list", "--state", "published"]).await.expect_code(0);
    assert!(
        listed.stdout.contains("ACME-SA-2026-0001  PSIRT-2026-0042  published  1.0.0"),
        "{}",
        listed.stdout
    );
    let drafts =
        service.run(&["--output", "json", "advisory", "list", "--state", "draft"]).await.expect_code(0);
    assert!(drafts.json()["advisories"].as_array().is_none_or(Vec::is_empty), "{}", drafts.stdout);

    service.stop().await
}

#[tokio::test]
async fn connection_errors() -> anyhow::Result<()> {
    // A case key is resolved at the triage service: none there, exit 3.
    let triage = format!("127.0.0.1:{}", free_port()?);
    let remediation = format!("127.0.0.1:{}", free_port()?);
    let run = psirtctl([
        "--remediation-server",
        remediation.as_str(),
        "--triage-server",
        triage.as_str(),
        "remediation",
        "plan",
        "PSIRT-2026-0001",
    ])
    .run()
    .await
    .expect_code(3);
    assert!(run.stderr.contains(&triage), "{}", run.stderr);
    // A case id needs no triage service: the remediation server is tried.
    let run = psirtctl([
        "--remediation-server",
        remediation.as_str(),
        "--triage-server",
        triage.as_str(),
        "advisory",
        "export",
        "0190f5a4-0000-4000-8000-000000000001",
        "--format",
        "csaf",
    ])
    .run()
    .await
    .expect_code(3);
    assert!(run.stderr.contains(&remediation), "{}", run.stderr);
    Ok(())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
