//! Intake, triage and remediation as real processes: a report is triaged,
//! accepted, remediated product by product and disclosed in an advisory
//! whose CSAF document passes the BSI CSAF validator (strict schema and
//! every mandatory test), and whose CVE, OSV and OpenVEX exports pass their
//! checks.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use psirt_proto::intake::intake_service_client::IntakeServiceClient;
use psirt_proto::remediation::advisory_service_client::AdvisoryServiceClient;
use psirt_proto::remediation::remediation_service_client::RemediationServiceClient;
use psirt_proto::triage::case_service_client::CaseServiceClient;
use psirt_proto::triage::triage_service_client::TriageServiceClient;
use psirt_proto::{common as pc, events, intake, remediation as api, triage};
use psirt_testkit::eventually;

use crate::common::{Service, build, sqlite, tempfile_dir};

const DEADLINE: Duration = Duration::from_secs(20);

fn product(name: &str, range: &str) -> pc::ProductVersionRange {
    pc::ProductVersionRange {
        product: name.to_owned(),
        versions: Some(pc::product_version_range::Versions::Range(range.to_owned())),
    }
}

fn by_id(case_id: &str) -> triage::GetCaseRequest {
    triage::GetCaseRequest { lookup: Some(triage::get_case_request::Lookup::CaseId(case_id.to_owned())) }
}

/// The BSI csaf-validator-lib over `file`: strict CSAF 2.0 schema plus every
/// mandatory test. `None` when `PSIRT_SKIP_EXTERNAL_VALIDATORS=1`.
fn bsi_validate(file: &Path) -> Option<(bool, String)> {
    if std::env::var("PSIRT_SKIP_EXTERNAL_VALIDATORS").as_deref() == Ok("1") {
        eprintln!("PSIRT_SKIP_EXTERNAL_VALIDATORS=1: the BSI CSAF validator is skipped");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/advisory/csaf-validator");
    assert!(
        dir.join("node_modules/@secvisogram/csaf-validator-lib/package.json").exists(),
        "the BSI CSAF validator is not installed: run `npm ci --prefix scripts/advisory/csaf-validator`"
    );
    let out = Command::new("node").arg(dir.join("validate.mjs")).arg(file).current_dir(&dir).output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_remediated_and_disclosed_in_a_valid_csaf_advisory() -> anyhow::Result<()> {
    build()?;
    let nats = common::secured_nats().await?;
    let dir = tempfile_dir::Dir::new("remediation-flow")?;
    let csaf_dir = dir.0.join("csaf");
    let intake_service = Service::start("intake", &nats, sqlite(&dir, "intake")).await?;
    let triage_service = Service::start("triage", &nats, sqlite(&dir, "triage")).await?;
    let remediation_service = Service::start_with(
        "remediation",
        &nats,
        sqlite(&dir, "remediation"),
        &[
            ("PSIRT_ADVISORY__CSAF_DIRECTORY", csaf_dir.display().to_string()),
            ("PSIRT_ADVISORY__PUBLISHER_NAME", "ACME PSIRT".to_owned()),
            ("PSIRT_ADVISORY__PUBLISHER_NAMESPACE", "https://psirt.acme.example".to_owned()),
            ("PSIRT_ADVISORY__CNA_ORG_ID", "b3476cb9-2e3d-41a6-98d0-0f47421a65b6".to_owned()),
            ("PSIRT_ADVISORY__CNA_SHORT_NAME", "acme".to_owned()),
        ],
    )
    .await?;
    let mut intake_client = IntakeServiceClient::new(intake_service.channel().await?);
    let cases = CaseServiceClient::new(triage_service.channel().await?);
    let mut decisions = TriageServiceClient::new(triage_service.channel().await?);
    let plans = RemediationServiceClient::new(remediation_service.channel().await?);
    let mut advisories = AdvisoryServiceClient::new(remediation_service.channel().await?);

    // submit -> triage: score, products, CVE, embargo, accept
    let submitted = intake_client
        .submit_report(intake::SubmitReportRequest {
            description: "Device names are rendered without escaping.".to_owned(),
            ..common::report("remediation-flow-1", "Stored XSS in the gateway admin console", "acme-gateway")
        })
        .await?
        .into_inner();
    let case_id = submitted.case_id.clone();
    eventually(DEADLINE, "case opened", || {
        let mut cases = cases.clone();
        let id = case_id.clone();
        async move { cases.get_case(by_id(&id)).await.ok()?.into_inner().case }
    })
    .await?;
    decisions
        .assess_severity(triage::AssessSeverityRequest {
            case_id: case_id.clone(),
            request_id: "assess".to_owned(),
            cvss_v3_vector: "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N".to_owned(),
            cvss_v4_vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N".to_owned(),
            cwe_ids: vec!["CWE-79".to_owned()],
            ..Default::default()
        })
        .await?;
    decisions
        .set_affected_products(triage::SetAffectedProductsRequest {
            case_id: case_id.clone(),
            request_id: "products".to_owned(),
            products: vec![
                product("acme-gateway", "vers:semver/>=2.0.0|<2.4.1"),
                product("acme-agent", "vers:semver/<1.9.0"),
            ],
            ..Default::default()
        })
        .await?;
    decisions
        .assign_cve(triage::AssignCveRequest {
            case_id: case_id.clone(),
            request_id: "cve".to_owned(),
            cve_id: "CVE-2026-12345".to_owned(),
            ..Default::default()
        })
        .await?;
    // The embargo lifts a few seconds from now (wall clock in UTC).
    let lifts = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let local = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        lifts.year(),
        u8::from(lifts.month()),
        lifts.day(),
        lifts.hour(),
        lifts.minute(),
        lifts.second()
    );
    decisions
        .set_embargo(triage::SetEmbargoRequest {
            case_id: case_id.clone(),
            request_id: "embargo".to_owned(),
            local_disclosure_time: local,
            time_zone: "UTC".to_owned(),
            ..Default::default()
        })
        .await?;
    decisions
        .accept_case(triage::AcceptCaseRequest {
            case_id: case_id.clone(),
            request_id: "accept".to_owned(),
            ..Default::default()
        })
        .await?;

    // remediation: the plan opens by itself
    let plan = eventually(DEADLINE, "remediation plan opened", || {
        let mut plans = plans.clone();
        let id = case_id.clone();
        async move { plans.get_plan(api::GetPlanRequest { case_id: id }).await.ok()?.into_inner().plan }
    })
    .await?;
    assert_eq!(plan.affected_products.len(), 2);
    let mut plans = plans.clone();
    let fix = plans
        .plan_action(api::PlanActionRequest {
            case_id: case_id.clone(),
            request_id: "fix-gateway".to_owned(),
            target: Some(product("acme-gateway", "vers:semver/>=2.0.0|<2.4.1")),
            action: events::RemediationAction::Fix.into(),
            owner_team: "gateway-team".to_owned(),
            target_release: "2.4.1".to_owned(),
            description: "Update the gateway to 2.4.1 or later.".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    plans
        .plan_action(api::PlanActionRequest {
            case_id: case_id.clone(),
            request_id: "check-agent".to_owned(),
            target: Some(product("acme-agent", "vers:semver/<1.9.0")),
            action: events::RemediationAction::None.into(),
            owner_team: "agent-team".to_owned(),
            description: "Confirm the agent does not ship the console.".to_owned(),
            ..Default::default()
        })
        .await?;
    plans
        .record_release(api::RecordReleaseRequest {
            case_id: case_id.clone(),
            request_id: "release-2.4.1".to_owned(),
            action_id: fix.action_id.clone(),
            product: "acme-gateway".to_owned(),
            fixed_version: "2.4.1".to_owned(),
            released_at: Some(prost_types::Timestamp {
                seconds: time::OffsetDateTime::now_utc().unix_timestamp(),
                nanos: 0,
            }),
            release_notes_url: "https://psirt.acme.example/notes/gateway-2.4.1".to_owned(),
            ..Default::default()
        })
        .await?;
    plans
        .set_product_status(api::SetProductStatusRequest {
            case_id: case_id.clone(),
            request_id: "status-gateway".to_owned(),
            product: "acme-gateway".to_owned(),
            version: "vers:semver/>=2.0.0|<2.4.1".to_owned(),
            status: events::ProductStatus::KnownAffected.into(),
            statement: "Update to 2.4.1 or later.".to_owned(),
            ..Default::default()
        })
        .await?;
    let after = plans
        .set_product_status(api::SetProductStatusRequest {
            case_id: case_id.clone(),
            request_id: "status-agent".to_owned(),
            product: "acme-agent".to_owned(),
            version: "vers:semver/<1.9.0".to_owned(),
            status: events::ProductStatus::KnownNotAffected.into(),
            justification: events::VexJustification::VulnerableCodeNotInExecutePath.into(),
            statement: "The agent never renders the admin console.".to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .plan
        .expect("plan");
    assert!(after.complete, "released gateway, settled agent: {after:?}");

    // triage follows: the case is FIXED. Its status comes from the case's own
    // events (GetCase folds them at once); the remediation summary from the
    // case view's projection of the plan events, which may follow a moment later.
    let fixed = eventually(DEADLINE, "case fixed with the plan's summary", || {
        let mut cases = cases.clone();
        let id = case_id.clone();
        async move {
            let case = cases.get_case(by_id(&id)).await.ok()?.into_inner().case?;
            let summarised =
                case.remediation.as_ref().is_some_and(|r| r.actions_total == 2 && r.actions_open == 0);
            (case.status == pc::CaseStatus::Fixed as i32 && summarised).then_some(case)
        }
    })
    .await?;
    let summary = fixed.remediation.expect("summary");
    assert_eq!(summary.actions_total, 2);
    assert_eq!(summary.actions_open, 0, "released gateway, settled agent");

    // draft; publishing during the embargo is refused; after it, published
    advisories
        .draft_advisory(api::DraftAdvisoryRequest {
            case_id: case_id.clone(),
            request_id: "draft".to_owned(),
            tracking_id: "ACME-SA-2026-0001".to_owned(),
            content: Some(events::AdvisoryContent {
                title: "ACME Gateway: stored cross-site scripting in the admin console".to_owned(),
                summary: "An authenticated user can run script in an administrator's browser.".to_owned(),
                details: "The admin console renders device names without escaping.".to_owned(),
                workarounds: "Restrict the admin console to trusted networks.".to_owned(),
                acknowledgments: vec![events::Acknowledgment {
                    name: "Dana".to_owned(),
                    consent: true,
                    ..Default::default()
                }],
                references: vec!["https://psirt.acme.example/notes/gateway-2.4.1".to_owned()],
            }),
            ..Default::default()
        })
        .await?;
    let publish = |id: &str| api::PublishAdvisoryRequest {
        case_id: case_id.clone(),
        request_id: id.to_owned(),
        ..Default::default()
    };
    if time::OffsetDateTime::now_utc() < lifts {
        let refused = advisories.publish_advisory(publish("publish-early")).await.expect_err("embargo");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    }
    let published = eventually(DEADLINE, "published after the embargo", || {
        let mut advisories = advisories.clone();
        let request = publish("publish");
        async move { advisories.publish_advisory(request).await.ok()?.into_inner().advisory }
    })
    .await?;
    assert_eq!(published.published_version, "1.0.0");

    // the case is DISCLOSED, its view shows the advisory
    let disclosed = eventually(DEADLINE, "case disclosed", || {
        let mut cases = cases.clone();
        let id = case_id.clone();
        async move {
            let case = cases.get_case(by_id(&id)).await.ok()?.into_inner().case?;
            (case.status == pc::CaseStatus::Disclosed as i32).then_some(case)
        }
    })
    .await?;
    let advisory = eventually(DEADLINE, "advisory state in the case view", || {
        let mut cases = cases.clone();
        let id = case_id.clone();
        async move {
            let case = cases.get_case(by_id(&id)).await.ok()?.into_inner().case?;
            case.advisory.filter(|a| a.status == triage::AdvisoryStatus::Published as i32)
        }
    })
    .await?;
    assert_eq!(advisory.tracking_id, "ACME-SA-2026-0001");
    assert_eq!(advisory.version, "1.0.0");
    assert!(disclosed.version > fixed.version);

    // exports: CSAF through the BSI validator; the others parse and name the CVE
    let csaf = advisories
        .export_advisory(api::ExportAdvisoryRequest {
            case_id: case_id.clone(),
            format: api::ExportFormat::Csaf20.into(),
        })
        .await?
        .into_inner();
    let file = dir.0.join(&csaf.file_name);
    std::fs::write(&file, &csaf.document)?;
    if let Some((valid, report)) = bsi_validate(&file) {
        assert!(valid, "the BSI validator refused the exported CSAF document:\n{report}");
    }
    let year = time::OffsetDateTime::now_utc().year();
    let published_file = csaf_dir.join(format!("{year}/acme-sa-2026-0001.json"));
    assert_eq!(
        std::fs::read(&published_file)?,
        csaf.document,
        "the provider directory has the same document"
    );
    for format in [api::ExportFormat::CveJson5, api::ExportFormat::Osv, api::ExportFormat::Openvex] {
        let doc = advisories
            .export_advisory(api::ExportAdvisoryRequest { case_id: case_id.clone(), format: format.into() })
            .await?
            .into_inner();
        let text = String::from_utf8(doc.document)?;
        assert!(text.contains("CVE-2026-12345"), "{format:?}: {text}");
    }
    Ok(())
}
