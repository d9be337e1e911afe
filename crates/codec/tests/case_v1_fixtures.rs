//! Committed payloads of every case event as schema version 1 wrote them,
//! with every fact set (`tests/fixtures/case/v1/`). They were written by the
//! codec of commit 3d9ae20, when the request's facts (team, notes, EPSS, the
//! embargo's local time, ...) still rode beside the domain events in a side
//! channel; today's codec must read every one of them into the domain event
//! with all those facts, and write the same bytes again. Folding the facts
//! into the domain changed no stored shape, so every case event is still
//! schema version 1 (an event that moves to version 2 gets its upcaster and a
//! test from these bytes). Never regenerate them to make this test pass: they
//! are what old streams hold.
//! (`PSIRT_WRITE_FIXTURES=1` writes the version-1 files again, for a new
//! event type only.)

use psirt_codec::case;
use psirt_domain::{
    AffectedProduct, Aggregate, Automatable, Case, CaseEvent, CaseId, CaseKey, Channel, CvssScore,
    CvssSeverity, CvssVector, DomainEvent, DuplicateHint, DuplicateMatch, EmbargoTerms, EscalationLevel,
    Exploitation, PublicSafetyImpact, RejectionReason, ReportId, Resolution, SeverityEvidence, SlaClock,
    SlaDeadline, SsvcInputs, TechnicalImpact, ValueDensity, VersionSpec,
};
use psirt_eventstore::{Encoded, Metadata, NewEvent, RecordedEvent};
use psirt_proto::events;
use std::path::PathBuf;
use time::OffsetDateTime;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/case/v1")
}

fn at(offset_s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + offset_s).expect("time")
}

/// A case's whole life, every event with every fact it can carry.
fn history() -> Vec<CaseEvent> {
    let case_id = CaseId::for_report(ReportId::for_request("fixture", "report-1"));
    let other = CaseId::for_report(ReportId::for_request("fixture", "report-2"));
    let v3 = CvssVector::parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").expect("v3");
    let v4 =
        CvssVector::parse("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").expect("v4");
    let plan_id = "5f0c2a9e-5d7b-4c1e-9a3e-1b2c3d4e5f60".to_owned();
    vec![
        CaseEvent::CaseOpened {
            case_id,
            key: CaseKey::new(2026, 42).expect("key"),
            report_id: Some(ReportId::for_request("fixture", "report-1")),
            title: "SQL injection in the portal login".into(),
            channel: Some(Channel::Email),
            report_received_at: Some(at(1)),
            opened_at: at(10),
        },
        CaseEvent::TriageStarted { case_id, started_at: at(20) },
        CaseEvent::CaseAssigned {
            case_id,
            assignee: "alice".into(),
            team: Some("web".into()),
            assigned_at: at(30),
        },
        CaseEvent::CaseAssigned {
            case_id,
            assignee: "bob".into(),
            team: Some("platform".into()),
            assigned_at: at(40),
        },
        CaseEvent::SeverityAssessed {
            case_id,
            cvss_v3: Some(CvssScore::of(&v3)),
            cvss_v4: Some(CvssScore::of(&v4)),
            ssvc_decision: Some("Out-of-Cycle".into()),
            rating: Some(CvssSeverity::Critical),
            evidence: SeverityEvidence {
                ssvc_inputs: Some(SsvcInputs {
                    exploitation: Exploitation::PoC,
                    automatable: Automatable::Yes,
                    value_density: ValueDensity::Concentrated,
                    technical_impact: TechnicalImpact::Total,
                    public_safety_impact: PublicSafetyImpact::Minimal,
                }),
                known_exploited: true,
                epss_probability: Some(0.4375),
                epss_percentile: Some(0.96875),
                cwe_ids: vec!["CWE-89".into(), "CWE-20".into()],
                rationale: "Unauthenticated, network reachable, full database read.".into(),
            },
            assessed_at: at(50),
        },
        CaseEvent::AffectedProductsSet {
            case_id,
            products: vec![
                AffectedProduct {
                    product: "portal".into(),
                    versions: VersionSpec::Range("vers:semver/<2.4.1".into()),
                },
                AffectedProduct {
                    product: "gateway".into(),
                    versions: VersionSpec::Explicit(vec!["1.0.0".into(), "1.0.1".into()]),
                },
            ],
            set_at: at(60),
        },
        CaseEvent::CveAssigned {
            case_id,
            cve_id: psirt_domain::CveId::parse("CVE-2026-12345").expect("cve"),
            assigner: "acme".into(),
            assigned_at: at(70),
        },
        CaseEvent::EmbargoSet {
            case_id,
            disclosure_at: at(86_400),
            time_zone: "Asia/Tokyo".into(),
            terms: EmbargoTerms {
                agreed_with: vec!["reporter".into(), "JPCERT/CC".into()],
                note: "Agreed on the call.".into(),
                local_disclosure_time: "2026-01-02T09:00:00".into(),
                utc_offset_seconds: 32_400,
            },
            set_at: at(80),
        },
        CaseEvent::DuplicateLinked {
            case_id,
            other_case: other,
            reason: "same title".into(),
            hint: DuplicateHint {
                report_id: Some(ReportId::for_request("fixture", "report-1")),
                other_report_id: Some(ReportId::for_request("fixture", "report-2")),
                match_kind: Some(DuplicateMatch::Title),
                similarity: 0.875,
                suspected_at: Some(at(85)),
            },
            linked_at: at(90),
        },
        CaseEvent::CaseEscalated {
            case_id,
            level: EscalationLevel::Team,
            reason: "TRIAGE deadline passed".into(),
            automatic: true,
            incident: false,
            sla_deadline: Some(SlaDeadline { clock: SlaClock::Triage, deadline: at(95) }),
            escalated_at: at(100),
        },
        CaseEvent::CaseEscalated {
            case_id,
            level: EscalationLevel::Executive,
            reason: "Exploited in the wild".into(),
            automatic: false,
            incident: true,
            sla_deadline: None,
            escalated_at: at(105),
        },
        CaseEvent::SlaBreached { case_id, clock: SlaClock::Triage, deadline: at(95), recorded_at: at(110) },
        CaseEvent::CaseAccepted { case_id, note: "Confirmed on 2.4.0.".into(), accepted_at: at(120) },
        CaseEvent::RemediationStarted { case_id, plan_id: plan_id.clone(), started_at: at(130) },
        CaseEvent::CaseFixed {
            case_id,
            plan_id,
            fixed_versions: vec!["portal@2.4.1".into(), "gateway@1.0.2".into()],
            fixed_at: at(140),
        },
        CaseEvent::CaseDisclosed {
            case_id,
            advisory_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
            tracking_id: "ACME-SA-2026-0042".into(),
            disclosed_at: at(150),
        },
        CaseEvent::CaseClosed {
            case_id,
            resolution: Resolution::Fixed,
            root_cause: "String concatenation in a query.".into(),
            lessons_learned: "Prepared statements only.".into(),
            closed_at: at(160),
        },
        CaseEvent::CaseReopened { case_id, reason: "Fix incomplete".into(), reopened_at: at(170) },
        CaseEvent::CaseRejected {
            case_id,
            reason: RejectionReason::Other,
            text: "Behaviour as documented.".into(),
            rejected_at: at(180),
        },
        CaseEvent::CaseClosed {
            case_id,
            resolution: Resolution::Rejected,
            root_cause: String::new(),
            lessons_learned: String::new(),
            closed_at: at(190),
        },
        CaseEvent::CaseReopened { case_id, reason: "Same as PSIRT-2026-0007".into(), reopened_at: at(200) },
        CaseEvent::CaseMarkedDuplicate {
            case_id,
            of: other,
            of_key: Some(CaseKey::new(2026, 7).expect("key")),
            note: "Same root cause.".into(),
            marked_at: at(210),
        },
    ]
}

fn file_name(index: usize, event: &CaseEvent) -> String {
    format!("{:02}-{}.bin", index + 1, event.event_type())
}

/// The stored event of a fixture: its bytes under schema version 1, as
/// a stream written by that version holds it.
fn stored(event: &CaseEvent, payload: Vec<u8>, sequence: u64) -> RecordedEvent {
    let new = NewEvent {
        id: uuid::Uuid::nil(),
        subject: case::subject(event.case_id()),
        event_type: format!("{}.{}", psirt_proto::EVENTS_PACKAGE, event.event_type()),
        schema_version: 1,
        payload: payload.into(),
        metadata: Metadata::default(),
    };
    RecordedEvent::from_new(&new, sequence)
}

#[test]
fn version_1_payloads_of_every_case_event_decode_with_every_fact() {
    let write = std::env::var_os("PSIRT_WRITE_FIXTURES").is_some();
    let mut case = Case::default();
    let mut seen = std::collections::BTreeSet::new();
    for (index, event) in history().into_iter().enumerate() {
        let Encoded { event_type, schema_version, payload } = case::encode(&event, case.details());
        assert_eq!(schema_version, 1, "{event_type}: a new version needs an upcaster and its own fixtures");
        let path = dir().join(file_name(index, &event));
        if write {
            std::fs::create_dir_all(dir()).expect("fixture dir");
            std::fs::write(&path, &payload).expect("write fixture");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Read back as a stream written by version 1 holds it, into the
        // domain event with every fact.
        let decoded = case::to_domain(&stored(&event, committed.clone(), index as u64 + 1))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(decoded, event, "{}", path.display());
        // And written again as it was, but for what the codec now knows
        // more of (see the next test).
        let ours = if psirt_eventstore::is_type::<events::CaseAssigned>(&event_type) {
            let mut message: events::CaseAssigned = prost::Message::decode(&payload[..]).expect("payload");
            message.previous_team.clear();
            prost::Message::encode_to_vec(&message)
        } else {
            payload.to_vec()
        };
        assert_eq!(ours, committed, "{} differs from what the codec writes", path.display());
        seen.insert(event.event_type());
        case.apply(&event);
    }
    assert_eq!(seen.len(), 18, "every case event type has a fixture: {seen:?}");
}

/// The team is now part of the case, so `CaseAssigned.previous_team` says
/// the team of the assignment it replaces (it was always empty). Old readers
/// read the filled field correctly, so this is not a new schema version
/// (docs/architecture.md, "Changing an event", rule 1); in events written
/// before, an empty `previous_team` means "not recorded".
#[test]
fn case_assigned_records_the_previous_team() {
    let history = history();
    let before = Case::from_events(&history[..3]);
    let second = &history[3];
    let Encoded { payload, .. } = case::encode(second, before.details());
    let now: events::CaseAssigned = prost::Message::decode(&payload[..]).expect("payload");
    assert_eq!((now.previous_assignee.as_str(), now.previous_team.as_str()), ("alice", "web"));
    assert_eq!((now.assignee.as_str(), now.team.as_str()), ("bob", "platform"));
    let v1 = std::fs::read(dir().join(file_name(3, second))).expect("fixture");
    let old: events::CaseAssigned = prost::Message::decode(&v1[..]).expect("fixture payload");
    assert_eq!((old.previous_assignee.as_str(), old.previous_team.as_str()), ("alice", ""));
}
