//! Committed payloads of every case event as schema version 1 writes them,
//! with every request fact set (`tests/fixtures/case/v1/`). They were written
//! by the codec of commit 5a4da3b, when the request's facts (team, notes,
//! EPSS, the embargo's local time, ...) still rode beside the domain events;
//! the codec must decode them into today's domain events with those facts and
//! write the same bytes again. Regenerate only for a new schema version, never
//! to make this test pass: `PSIRT_WRITE_FIXTURES=1 cargo test -p psirt-codec --test case_v1_fixtures`.

use prost_types::Timestamp;
use psirt_codec::case::{self, Extra};
use psirt_domain::{
    AffectedProduct, Case, CaseEvent, CaseId, CaseKey, CvssScore, CvssSeverity, CvssVector,
    DomainEvent, EscalationLevel, RejectionReason, ReportId, Resolution, SlaClock, VersionSpec,
};
use psirt_eventstore::Encoded;
use psirt_proto::common;
use std::path::PathBuf;
use time::OffsetDateTime;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/case/v1")
}

fn at(offset_s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + offset_s).expect("time")
}

fn ts(offset_s: i64) -> Option<Timestamp> {
    Some(case::timestamp(at(offset_s)))
}

/// A case's whole life, each event with the request facts it was written with.
fn history() -> Vec<(CaseEvent, Extra)> {
    let case_id = CaseId::for_report(ReportId::for_request("fixture", "report-1"));
    let other = CaseId::for_report(ReportId::for_request("fixture", "report-2"));
    let v3 = CvssVector::parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").expect("v3");
    let v4 = CvssVector::parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").expect("v4");
    let none = Extra::default;
    vec![
        (
            CaseEvent::CaseOpened {
                case_id,
                key: CaseKey::new(2026, 42).expect("key"),
                report_id: Some(ReportId::for_request("fixture", "report-1")),
                title: "SQL injection in the portal login".into(),
                opened_at: at(10),
            },
            Extra { channel: common::ReportChannel::Email as i32, report_received_at: ts(1), ..none() },
        ),
        (CaseEvent::TriageStarted { case_id, started_at: at(20) }, none()),
        (
            CaseEvent::CaseAssigned { case_id, assignee: "alice".into(), assigned_at: at(30) },
            Extra { team: "web".into(), ..none() },
        ),
        (
            CaseEvent::CaseAssigned { case_id, assignee: "bob".into(), assigned_at: at(40) },
            Extra { team: "platform".into(), ..none() },
        ),
        (
            CaseEvent::SeverityAssessed {
                case_id,
                cvss_v3: Some(CvssScore::of(&v3)),
                cvss_v4: Some(CvssScore::of(&v4)),
                ssvc_decision: Some("Out-of-Cycle".into()),
                rating: Some(CvssSeverity::Critical),
                assessed_at: at(50),
            },
            Extra {
                ssvc: Some(common::Ssvc {
                    exploitation: common::SsvcExploitation::Poc as i32,
                    automatable: common::SsvcAutomatable::Yes as i32,
                    value_density: common::SsvcValueDensity::Concentrated as i32,
                    technical_impact: common::SsvcTechnicalImpact::Total as i32,
                    public_safety_impact: common::SsvcPublicSafetyImpact::Minimal as i32,
                    decision: common::SsvcDecision::Unspecified as i32,
                }),
                known_exploited: true,
                epss_probability: Some(0.4375),
                epss_percentile: Some(0.96875),
                cwe_ids: vec!["CWE-89".into(), "CWE-20".into()],
                rationale: "Unauthenticated, network reachable, full database read.".into(),
                ..none()
            },
        ),
        (
            CaseEvent::AffectedProductsSet {
                case_id,
                products: vec![
                    AffectedProduct { product: "portal".into(), versions: VersionSpec::Range("vers:semver/<2.4.1".into()) },
                    AffectedProduct {
                        product: "gateway".into(),
                        versions: VersionSpec::Explicit(vec!["1.0.0".into(), "1.0.1".into()]),
                    },
                ],
                set_at: at(60),
            },
            none(),
        ),
        (
            CaseEvent::CveAssigned {
                case_id,
                cve_id: psirt_domain::CveId::parse("CVE-2026-12345").expect("cve"),
                assigned_at: at(70),
            },
            Extra { assigner: "acme".into(), ..none() },
        ),
        (
            CaseEvent::EmbargoSet { case_id, disclosure_at: at(86_400), time_zone: "Asia/Tokyo".into(), set_at: at(80) },
            Extra {
                agreed_with: vec!["reporter".into(), "JPCERT/CC".into()],
                note: "Agreed on the call.".into(),
                local_disclosure_time: "2026-01-02T09:00:00".into(),
                utc_offset_seconds: 32_400,
                ..none()
            },
        ),
        (
            CaseEvent::DuplicateLinked { case_id, other_case: other, reason: "same title".into(), linked_at: at(90) },
            Extra {
                other_report_id: ReportId::for_request("fixture", "report-2").to_string(),
                report_id: ReportId::for_request("fixture", "report-1").to_string(),
                suspected_at: ts(85),
                match_kind: psirt_proto::events::DuplicateMatchKind::Title as i32,
                similarity: 0.875,
                ..none()
            },
        ),
        (
            CaseEvent::CaseEscalated {
                case_id,
                level: EscalationLevel::Team,
                reason: "TRIAGE deadline passed".into(),
                automatic: true,
                escalated_at: at(100),
            },
            Extra { sla_clock: common_sla(SlaClock::Triage), sla_deadline: ts(95), ..none() },
        ),
        (
            CaseEvent::CaseEscalated {
                case_id,
                level: EscalationLevel::Executive,
                reason: "Exploited in the wild".into(),
                automatic: false,
                escalated_at: at(105),
            },
            Extra { incident: true, ..none() },
        ),
        (CaseEvent::SlaBreached { case_id, clock: SlaClock::Triage, deadline: at(95), recorded_at: at(110) }, none()),
        (
            CaseEvent::CaseAccepted { case_id, accepted_at: at(120) },
            Extra { note: "Confirmed on 2.4.0.".into(), ..none() },
        ),
        (
            CaseEvent::RemediationStarted { case_id, started_at: at(130) },
            Extra { plan_id: "5f0c2a9e-5d7b-4c1e-9a3e-1b2c3d4e5f60".into(), ..none() },
        ),
        (
            CaseEvent::CaseFixed { case_id, fixed_at: at(140) },
            Extra {
                plan_id: "5f0c2a9e-5d7b-4c1e-9a3e-1b2c3d4e5f60".into(),
                fixed_versions: vec!["portal@2.4.1".into(), "gateway@1.0.2".into()],
                ..none()
            },
        ),
        (
            CaseEvent::CaseDisclosed { case_id, disclosed_at: at(150) },
            Extra {
                advisory_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
                tracking_id: "ACME-SA-2026-0042".into(),
                ..none()
            },
        ),
        (
            CaseEvent::CaseClosed {
                case_id,
                resolution: Resolution::Fixed,
                root_cause: "String concatenation in a query.".into(),
                lessons_learned: "Prepared statements only.".into(),
                closed_at: at(160),
            },
            none(),
        ),
        (CaseEvent::CaseReopened { case_id, reason: "Fix incomplete".into(), reopened_at: at(170) }, none()),
        (
            CaseEvent::CaseRejected {
                case_id,
                reason: RejectionReason::Other,
                text: "Behaviour as documented.".into(),
                rejected_at: at(180),
            },
            none(),
        ),
        (
            CaseEvent::CaseClosed {
                case_id,
                resolution: Resolution::Rejected,
                root_cause: String::new(),
                lessons_learned: String::new(),
                closed_at: at(190),
            },
            none(),
        ),
        (CaseEvent::CaseReopened { case_id, reason: "Same as PSIRT-2026-0007".into(), reopened_at: at(200) }, none()),
        (
            CaseEvent::CaseMarkedDuplicate { case_id, of: other, marked_at: at(210) },
            Extra { duplicate_of_case_key: "PSIRT-2026-0007".into(), note: "Same root cause.".into(), ..none() },
        ),
    ]
}

fn common_sla(clock: SlaClock) -> i32 {
    case::clock_to_proto(clock) as i32
}

fn file_name(index: usize, event: &CaseEvent) -> String {
    format!("{:02}-{}.bin", index + 1, event.event_type())
}

#[test]
fn version_1_payloads_of_every_case_event_are_what_the_codec_writes() {
    let write = std::env::var_os("PSIRT_WRITE_FIXTURES").is_some();
    let mut case = Case::default();
    let mut seen = std::collections::BTreeSet::new();
    for (index, (event, extra)) in history().into_iter().enumerate() {
        let Encoded { event_type, schema_version, payload } = case::encode(&event, case.details(), &extra);
        assert_eq!(schema_version, 1, "{event_type}");
        let path = dir().join(file_name(index, &event));
        if write {
            std::fs::create_dir_all(dir()).expect("fixture dir");
            std::fs::write(&path, &payload).expect("write fixture");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(payload, committed, "{} differs from what the codec writes", path.display());
        seen.insert(event.event_type());
        case.apply(&event);
    }
    assert_eq!(seen.len(), 18, "every case event type has a fixture: {seen:?}");
}
