//! The lifecycle; what triage records is in the submodules.

mod attention;
mod findings;

use time::Duration;

use super::*;
use crate::cvss_vector::CvssVector;
use crate::testing::{NOW, given};

/// CVSS v3.1, 9.8 critical.
const V31: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
/// CVSS v3.0, low.
const V30: &str = "CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N";
/// CVSS v4.0, 9.3 critical.
const V40: &str = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
/// CVSS v4.0, low.
const V40_LOW: &str = "CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N";

fn score(vector: &str) -> CvssScore {
    CvssScore::of(&CvssVector::parse(vector).expect("valid vector"))
}

/// The assessment every case past triage has on the main path: v3.1 only.
fn assessed() -> CaseEvent {
    CaseEvent::SeverityAssessed {
        case_id: case_id(),
        cvss_v3: Some(score(V31)),
        cvss_v4: None,
        ssvc_decision: None,
        rating: Some(CvssSeverity::Critical),
        assessed_at: NOW,
        evidence: SeverityEvidence::default(),
    }
}

fn details(case: &Case) -> &CaseDetails {
    case.details().expect("opened")
}

fn case_id() -> CaseId {
    CaseId::for_report(report_id())
}

fn report_id() -> ReportId {
    ReportId::for_request("web-form", "req-1")
}

fn key() -> CaseKey {
    CaseKey::new(2026, 1).expect("valid key")
}

fn opened() -> CaseEvent {
    CaseEvent::CaseOpened {
        case_id: case_id(),
        key: key(),
        report_id: Some(report_id()),
        title: "SQL injection in login".into(),
        opened_at: NOW,
        channel: None,
        report_received_at: None,
    }
}

/// The events that bring a case to `status` along the main path.
fn history_to(status: CaseStatus) -> Vec<CaseEvent> {
    use CaseStatus::*;
    let id = case_id();
    let triage = CaseEvent::TriageStarted { case_id: id, started_at: NOW };
    let assessed = assessed();
    let accepted = CaseEvent::CaseAccepted { case_id: id, accepted_at: NOW, note: String::new() };
    let remediating = CaseEvent::RemediationStarted { case_id: id, started_at: NOW, plan_id: String::new() };
    let fixed = CaseEvent::CaseFixed {
        case_id: id,
        fixed_at: NOW,
        plan_id: String::new(),
        fixed_versions: Vec::new(),
    };
    let disclosed = CaseEvent::CaseDisclosed {
        case_id: id,
        disclosed_at: NOW,
        advisory_id: String::new(),
        tracking_id: String::new(),
    };
    let closed = CaseEvent::CaseClosed {
        case_id: id,
        resolution: Resolution::Fixed,
        root_cause: "unparameterised query".into(),
        lessons_learned: String::new(),
        closed_at: NOW,
    };
    let rejected = CaseEvent::CaseRejected {
        case_id: id,
        reason: RejectionReason::NotAVulnerability,
        text: "works as designed".into(),
        rejected_at: NOW,
    };
    let duplicate = CaseEvent::CaseMarkedDuplicate {
        case_id: id,
        of: CaseId::new(),
        marked_at: NOW,
        of_key: None,
        note: String::new(),
    };
    let path: Vec<CaseEvent> = match status {
        Received => vec![],
        Triage => vec![triage, assessed],
        Accepted => vec![triage, assessed, accepted],
        Rejected => vec![triage, assessed, rejected],
        Duplicate => vec![triage, assessed, duplicate],
        Remediating => vec![triage, assessed, accepted, remediating],
        Fixed => vec![triage, assessed, accepted, remediating, fixed],
        Disclosed => vec![triage, assessed, accepted, remediating, fixed, disclosed],
        Closed => vec![triage, assessed, accepted, remediating, fixed, disclosed, closed],
    };
    std::iter::once(opened()).chain(path).collect()
}

/// A command that asks for `target`, valid in every other respect for a
/// case coming from `from`.
fn command_to(from: CaseStatus, target: CaseStatus) -> Option<CaseCommand> {
    use CaseStatus::*;
    Some(match target {
        Received => return None,
        Triage if from == Closed => CaseCommand::Reopen { reason: "regression found".into() },
        Triage => CaseCommand::StartTriage,
        Accepted => CaseCommand::Accept { note: String::new() },
        Rejected => {
            CaseCommand::Reject { reason: RejectionReason::OutOfScope, text: "not our product".into() }
        }
        Duplicate => CaseCommand::MarkDuplicate { of: CaseId::new(), of_key: None, note: String::new() },
        Remediating => CaseCommand::StartRemediation { plan_id: String::new() },
        Fixed => CaseCommand::MarkFixed { plan_id: String::new(), fixed_versions: Vec::new() },
        Disclosed => CaseCommand::Disclose { advisory_id: String::new(), tracking_id: String::new() },
        Closed => CaseCommand::Close {
            resolution: match from {
                Rejected => Resolution::Rejected,
                Duplicate => Resolution::Duplicate,
                Accepted | Remediating => Resolution::WontFix,
                _ => Resolution::Fixed,
            },
            root_cause: "missing input validation".into(),
            lessons_learned: "add fuzzing".into(),
        },
    })
}

#[test]
fn transition_table() {
    use CaseStatus::*;
    let allowed = [
        (Received, Triage),
        (Triage, Accepted),
        (Triage, Rejected),
        (Triage, Duplicate),
        (Accepted, Remediating),
        (Accepted, Closed),
        (Remediating, Fixed),
        (Remediating, Closed),
        (Fixed, Disclosed),
        (Fixed, Closed),
        (Disclosed, Closed),
        (Rejected, Closed),
        (Duplicate, Closed),
        (Closed, Triage),
    ];
    for from in CaseStatus::ALL {
        for to in CaseStatus::ALL {
            let expected = allowed.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
            let result = from.transition(to);
            if expected {
                assert_eq!(result, Ok(to));
            } else {
                assert_eq!(result, Err(InvalidTransition { from, to }));
            }
        }
    }
}

#[test]
fn every_pair_through_the_aggregate() {
    // Given a case in each status, when asking for each other status, then
    // the command succeeds exactly when the table allows it.
    for from in CaseStatus::ALL {
        for to in CaseStatus::ALL {
            let Some(command) = command_to(from, to) else { continue };
            let scenario = given::<Case>(history_to(from)).when(command);
            if from.can_transition_to(to) {
                let case = scenario.then_ok();
                assert_eq!(case.details().map(|c| c.status), Some(to), "{from} -> {to}");
            } else {
                scenario.then_error(CaseError::InvalidTransition(InvalidTransition { from, to }));
            }
        }
    }
}

#[test]
fn open_records_the_case() {
    let case = given::<Case>([])
        .when(CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: Some(report_id()),
            title: "  SQL injection in login ".into(),
            channel: None,
            report_received_at: None,
        })
        .then([opened()]);
    let details = case.details().expect("opened");
    assert_eq!(details.status, CaseStatus::Received);
    assert_eq!(details.key, key());
    assert_eq!(details.opened_at, NOW);
    assert_eq!(case.version(), 1);
}

#[test]
fn open_twice_is_refused() {
    given::<Case>([opened()])
        .when(CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: None,
            title: "x".into(),
            channel: None,
            report_received_at: None,
        })
        .then_error(CaseError::AlreadyExists { id: case_id() });
}

#[test]
fn open_needs_a_title() {
    given::<Case>([])
        .when(CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: None,
            title: " ".into(),
            channel: None,
            report_received_at: None,
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new("title", "title must not be empty")]));
    given::<Case>([])
        .when(CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: None,
            title: "x".repeat(MAX_TITLE_CHARS + 1),
            channel: None,
            report_received_at: None,
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "title",
            "title must be at most 300 characters",
        )]));
}

#[test]
fn commands_on_an_unopened_case_are_not_found() {
    for command in every_command_but_open() {
        given::<Case>([]).when(command).then_error(CaseError::NotFound);
    }
}

#[test]
fn start_triage() {
    given::<Case>([opened()])
        .when(CaseCommand::StartTriage)
        .then([CaseEvent::TriageStarted { case_id: case_id(), started_at: NOW }]);
}

#[test]
fn assign_records_the_assignee() {
    let case = given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Assign { assignee: " team-web ".into(), team: Some(" web ".into()) })
        .then([CaseEvent::CaseAssigned {
            case_id: case_id(),
            assignee: "team-web".into(),
            team: Some("web".into()),
            assigned_at: NOW,
        }]);
    assert_eq!(case.details().and_then(|c| c.assignee.as_deref()), Some("team-web"));
    // Assignment does not change the status.
    assert_eq!(case.details().map(|c| c.status), Some(CaseStatus::Triage));
}

#[test]
fn assigning_the_same_assignee_again_is_a_no_op() {
    let mut history = history_to(CaseStatus::Accepted);
    history.push(CaseEvent::CaseAssigned {
        case_id: case_id(),
        assignee: "team-web".into(),
        team: Some("web".into()),
        assigned_at: NOW,
    });
    given::<Case>(history.clone())
        .when(CaseCommand::Assign { assignee: "team-web".into(), team: Some("web".into()) })
        .then_nothing();
    // The same person for another team is a new assignment.
    given::<Case>(history).when(CaseCommand::Assign { assignee: "team-web".into(), team: None }).then([
        CaseEvent::CaseAssigned {
            case_id: case_id(),
            assignee: "team-web".into(),
            team: None,
            assigned_at: NOW,
        },
    ]);
}

#[test]
fn assign_needs_a_name() {
    given::<Case>([opened()]).when(CaseCommand::Assign { assignee: "  ".into(), team: None }).then_error(
        CaseError::Validation(vec![FieldViolation::new("assignee", "assignee must not be empty")]),
    );
}

#[test]
fn a_closed_case_cannot_be_assigned() {
    given::<Case>(history_to(CaseStatus::Closed))
        .when(CaseCommand::Assign { assignee: "team-web".into(), team: None })
        .then_error(CaseError::Closed { id: case_id() });
}

#[test]
fn accept() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Accept { note: String::new() })
        .then([CaseEvent::CaseAccepted { case_id: case_id(), accepted_at: NOW, note: String::new() }]);
}

#[test]
fn accept_needs_a_severity_assessment() {
    given::<Case>([opened(), CaseEvent::TriageStarted { case_id: case_id(), started_at: NOW }])
        .when(CaseCommand::Accept { note: String::new() })
        .then_error(CaseError::SeverityNotAssessed { id: case_id() });
}

#[test]
fn an_ssvc_decision_is_enough_to_accept() {
    given::<Case>([
        opened(),
        CaseEvent::TriageStarted { case_id: case_id(), started_at: NOW },
        CaseEvent::SeverityAssessed {
            case_id: case_id(),
            cvss_v3: None,
            cvss_v4: None,
            ssvc_decision: Some("Immediate".into()),
            rating: None,
            assessed_at: NOW,
            evidence: SeverityEvidence::default(),
        },
    ])
    .when(CaseCommand::Accept { note: String::new() })
    .then([CaseEvent::CaseAccepted { case_id: case_id(), accepted_at: NOW, note: String::new() }]);
}

#[test]
fn the_status_is_checked_before_the_severity() {
    // A received case without a severity names its status, not the missing severity.
    given::<Case>([opened()]).when(CaseCommand::Accept { note: String::new() }).then_error(
        CaseError::InvalidTransition(InvalidTransition {
            from: CaseStatus::Received,
            to: CaseStatus::Accepted,
        }),
    );
}

#[test]
fn reject_records_reason_and_text() {
    let case = given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Reject { reason: RejectionReason::NotReproducible, text: String::new() })
        .then([CaseEvent::CaseRejected {
            case_id: case_id(),
            reason: RejectionReason::NotReproducible,
            text: String::new(),
            rejected_at: NOW,
        }]);
    assert_eq!(
        case.details().and_then(|c| c.rejection.clone()),
        Some(Rejection { reason: RejectionReason::NotReproducible, text: String::new() })
    );
}

#[test]
fn reject_for_other_reasons_needs_a_text() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Reject { reason: RejectionReason::Other, text: " ".into() })
        .then_error(CaseError::Validation(vec![FieldViolation::new("text", "text must not be empty")]));
}

#[test]
fn mark_duplicate_links_the_other_case() {
    let other = CaseId::for_report(ReportId::for_request("web-form", "req-0"));
    let case = given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::MarkDuplicate { of: other, of_key: None, note: String::new() })
        .then([CaseEvent::CaseMarkedDuplicate {
            case_id: case_id(),
            of: other,
            marked_at: NOW,
            of_key: None,
            note: String::new(),
        }]);
    assert_eq!(case.details().and_then(|c| c.duplicate_of), Some(other));
}

#[test]
fn a_case_cannot_be_a_duplicate_of_itself() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::MarkDuplicate { of: case_id(), of_key: None, note: String::new() })
        .then_error(CaseError::DuplicateOfSelf);
}

#[test]
fn remediate_fix_and_disclose() {
    let id = case_id();
    given::<Case>(history_to(CaseStatus::Accepted))
        .when(CaseCommand::StartRemediation { plan_id: String::new() })
        .then([CaseEvent::RemediationStarted { case_id: id, started_at: NOW, plan_id: String::new() }]);
    given::<Case>(history_to(CaseStatus::Remediating))
        .when(CaseCommand::MarkFixed { plan_id: String::new(), fixed_versions: Vec::new() })
        .then([CaseEvent::CaseFixed {
            case_id: id,
            fixed_at: NOW,
            plan_id: String::new(),
            fixed_versions: Vec::new(),
        }]);
    given::<Case>(history_to(CaseStatus::Fixed))
        .when(CaseCommand::Disclose { advisory_id: String::new(), tracking_id: String::new() })
        .then([CaseEvent::CaseDisclosed {
            case_id: id,
            disclosed_at: NOW,
            advisory_id: String::new(),
            tracking_id: String::new(),
        }]);
}

#[test]
fn disclosing_before_a_fix_is_refused() {
    given::<Case>(history_to(CaseStatus::Remediating))
        .when(CaseCommand::Disclose { advisory_id: String::new(), tracking_id: String::new() })
        .then_error(CaseError::InvalidTransition(InvalidTransition {
            from: CaseStatus::Remediating,
            to: CaseStatus::Disclosed,
        }));
}

#[test]
fn close_records_resolution_root_cause_and_lessons() {
    let later = NOW + Duration::days(40);
    let case = given::<Case>(history_to(CaseStatus::Disclosed))
        .at(later)
        .when(CaseCommand::Close {
            resolution: Resolution::Fixed,
            root_cause: "unparameterised query".into(),
            lessons_learned: "use the query builder".into(),
        })
        .then([CaseEvent::CaseClosed {
            case_id: case_id(),
            resolution: Resolution::Fixed,
            root_cause: "unparameterised query".into(),
            lessons_learned: "use the query builder".into(),
            closed_at: later,
        }]);
    let details = case.details().expect("opened");
    assert_eq!(details.status, CaseStatus::Closed);
    assert_eq!(details.status_changed_at, later);
    assert_eq!(details.closure.as_ref().map(|c| c.resolution), Some(Resolution::Fixed));
    assert_eq!(details.closed_at, Some(later));
    assert_eq!(details.updated_at, later);
}

#[test]
fn close_refuses_a_resolution_that_contradicts_the_status() {
    for (status, resolution) in [
        (CaseStatus::Rejected, Resolution::Fixed),
        (CaseStatus::Duplicate, Resolution::Rejected),
        (CaseStatus::Accepted, Resolution::Fixed),
        (CaseStatus::Fixed, Resolution::WontFix),
        (CaseStatus::Disclosed, Resolution::Duplicate),
    ] {
        let result = given::<Case>(history_to(status))
            .when(CaseCommand::Close { resolution, root_cause: "x".into(), lessons_learned: String::new() })
            .result();
        match result {
            Err(CaseError::Validation(violations)) => {
                assert_eq!(violations.len(), 1, "{status} {resolution:?}");
                assert_eq!(violations[0].field, "resolution");
            }
            other => panic!("{status} {resolution:?}: {other:?}"),
        }
    }
}

#[test]
fn closing_an_accepted_vulnerability_needs_a_root_cause() {
    given::<Case>(history_to(CaseStatus::Remediating))
        .when(CaseCommand::Close {
            resolution: Resolution::EndOfLife,
            root_cause: String::new(),
            lessons_learned: String::new(),
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "root_cause",
            "root_cause must not be empty",
        )]));
}

#[test]
fn closing_a_rejected_case_needs_no_root_cause() {
    given::<Case>(history_to(CaseStatus::Rejected))
        .when(CaseCommand::Close {
            resolution: Resolution::Rejected,
            root_cause: String::new(),
            lessons_learned: String::new(),
        })
        .then([CaseEvent::CaseClosed {
            case_id: case_id(),
            resolution: Resolution::Rejected,
            root_cause: String::new(),
            lessons_learned: String::new(),
            closed_at: NOW,
        }]);
}

#[test]
fn closing_twice_is_an_invalid_transition() {
    given::<Case>(history_to(CaseStatus::Closed))
        .when(CaseCommand::Close {
            resolution: Resolution::Fixed,
            root_cause: "x".into(),
            lessons_learned: String::new(),
        })
        .then_error(CaseError::InvalidTransition(InvalidTransition {
            from: CaseStatus::Closed,
            to: CaseStatus::Closed,
        }));
}

#[test]
fn reopen_goes_back_to_triage_and_clears_the_decision() {
    let mut history = history_to(CaseStatus::Rejected);
    history.push(CaseEvent::CaseClosed {
        case_id: case_id(),
        resolution: Resolution::Rejected,
        root_cause: String::new(),
        lessons_learned: String::new(),
        closed_at: NOW,
    });
    let case = given::<Case>(history)
        .when(CaseCommand::Reopen { reason: "reporter sent a working exploit".into() })
        .then([CaseEvent::CaseReopened {
            case_id: case_id(),
            reason: "reporter sent a working exploit".into(),
            reopened_at: NOW,
        }]);
    let details = case.details().expect("opened");
    assert_eq!(details.status, CaseStatus::Triage);
    assert_eq!(details.reopen_count, 1);
    assert_eq!(details.rejection, None);
    assert_eq!(details.closure, None);
    assert_eq!(details.closed_at, None);
}

#[test]
fn reopen_needs_a_reason() {
    given::<Case>(history_to(CaseStatus::Closed))
        .when(CaseCommand::Reopen { reason: "".into() })
        .then_error(CaseError::Validation(vec![FieldViolation::new("reason", "reason must not be empty")]));
}

#[test]
fn only_a_closed_case_can_be_reopened() {
    for status in CaseStatus::ALL.into_iter().filter(|s| *s != CaseStatus::Closed) {
        given::<Case>(history_to(status))
            .when(CaseCommand::Reopen { reason: "more information".into() })
            .then_error(CaseError::NotClosed { id: case_id(), status });
    }
}

#[test]
fn a_closed_case_is_reopened_not_triaged() {
    given::<Case>(history_to(CaseStatus::Closed))
        .when(CaseCommand::StartTriage)
        .then_error(CaseError::Closed { id: case_id() });
}

#[test]
fn skipping_triage_is_refused() {
    for command in [
        CaseCommand::Accept { note: String::new() },
        CaseCommand::MarkDuplicate { of: CaseId::new(), of_key: None, note: String::new() },
    ] {
        let to = if matches!(command, CaseCommand::Accept { .. }) {
            CaseStatus::Accepted
        } else {
            CaseStatus::Duplicate
        };
        given::<Case>([opened()])
            .when(command)
            .then_error(CaseError::InvalidTransition(InvalidTransition { from: CaseStatus::Received, to }));
    }
}

#[test]
fn apply_counts_every_event_and_ignores_events_before_opening() {
    let mut case = Case::default();
    case.apply(&CaseEvent::TriageStarted { case_id: case_id(), started_at: NOW });
    assert_eq!(case.version(), 1);
    assert!(!case.exists());
    let case = Case::from_events(&history_to(CaseStatus::Disclosed));
    assert_eq!(case.version(), 7);
    assert_eq!(case.details().map(|c| c.status), Some(CaseStatus::Disclosed));
}

#[test]
fn event_names_are_stable() {
    let names: Vec<&str> = one_of_each_event().iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "CaseOpened",
            "TriageStarted",
            "CaseAssigned",
            "SeverityAssessed",
            "AffectedProductsSet",
            "CaseAccepted",
            "CaseRejected",
            "CaseMarkedDuplicate",
            "DuplicateLinked",
            "CveAssigned",
            "EmbargoSet",
            "CaseEscalated",
            "SlaBreached",
            "RemediationStarted",
            "CaseFixed",
            "CaseDisclosed",
            "CaseClosed",
            "CaseReopened",
        ]
    );
    assert!(one_of_each_event().iter().all(|e| e.event_version() == 1));
}

#[test]
fn events_round_trip_through_serde_with_their_name_as_tag() {
    for event in one_of_each_event() {
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], event.event_type());
        let back: CaseEvent = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, event);
    }
}

#[test]
fn events_know_their_case_and_time() {
    for (minutes, event) in (0_i64..).zip(one_of_each_event()) {
        assert_eq!(event.case_id(), case_id(), "{}", event.event_type());
        assert_eq!(event.at(), NOW + Duration::minutes(minutes), "{}", event.event_type());
    }
}

#[test]
fn the_wire_format_of_the_triage_events() {
    // What projections in other services and languages read: pinned.
    let json = |event: &CaseEvent| serde_json::to_value(event).expect("serializes");
    let events = one_of_each_event();
    let by_type = |name: &str| {
        events.iter().find(|e| e.event_type() == name).map(json).unwrap_or_else(|| panic!("{name}"))
    };
    let severity = by_type("SeverityAssessed");
    assert_eq!(severity["cvss_v3"]["vector"], V30);
    assert_eq!(severity["cvss_v3"]["version"], "3.0");
    assert_eq!(severity["cvss_v4"]["score"], 9.3);
    assert_eq!(severity["cvss_v4"]["severity"], "critical");
    assert_eq!(severity["rating"], "critical");
    assert_eq!(severity["ssvc_decision"], "Immediate");
    let products = by_type("AffectedProductsSet");
    assert_eq!(products["products"][0]["versions"]["range"], ">=2.0, <2.4.1");
    assert_eq!(products["products"][1]["versions"]["explicit"][0], "1.0");
    assert_eq!(by_type("CveAssigned")["cve_id"], "CVE-2026-12345");
    let embargo = by_type("EmbargoSet");
    assert_eq!(embargo["disclosure_at"], "2026-04-01T10:00:00+09:00");
    assert_eq!(embargo["time_zone"], "Asia/Tokyo");
    assert_eq!(by_type("CaseEscalated")["level"], "management");
    assert_eq!(by_type("SlaBreached")["clock"], "triage");
    assert_eq!(by_type("DuplicateLinked")["other_case"], json_id(other_case()));
}

fn json_id(id: CaseId) -> serde_json::Value {
    serde_json::to_value(id).expect("serializes")
}

#[test]
fn updated_at_follows_the_latest_event_and_never_moves_back() {
    let later = NOW + Duration::hours(3);
    let case = Case::from_events(&[
        opened(),
        CaseEvent::TriageStarted { case_id: case_id(), started_at: later },
        // Written by a replica whose clock is behind.
        CaseEvent::CaseAssigned {
            case_id: case_id(),
            assignee: "alice".into(),
            assigned_at: NOW,
            team: None,
        },
    ]);
    assert_eq!(details(&case).updated_at, later);
    assert_eq!(details(&case).status_changed_at, later);
    assert_eq!(details(&case).opened_at, NOW);
}

#[test]
fn reopening_keeps_the_findings_and_the_record_but_not_the_escalation() {
    let mut history = history_to(CaseStatus::Closed);
    // Everything triage recorded before closing, in the order of `one_of_each_event`.
    let recorded: Vec<CaseEvent> = one_of_each_event()
        .into_iter()
        .filter(|e| e.status_after().is_none() && !matches!(e, CaseEvent::CaseAssigned { .. }))
        .collect();
    let close = history.pop().expect("closed");
    history.extend(recorded);
    history.push(close);
    let case = given::<Case>(history).when(CaseCommand::Reopen { reason: "fix incomplete".into() }).then([
        CaseEvent::CaseReopened { case_id: case_id(), reason: "fix incomplete".into(), reopened_at: NOW },
    ]);
    let details = details(&case);
    assert_eq!(details.status, CaseStatus::Triage);
    assert!(details.severity.is_some());
    assert_eq!(details.affected_products.len(), 2);
    assert_eq!(details.cves.len(), 1);
    assert!(details.embargo.is_some());
    assert_eq!(details.sla_breaches.len(), 1);
    assert_eq!(details.suspected_duplicates.len(), 1);
    // The reopened case's own deadlines must be able to escalate it again.
    assert_eq!(details.escalation, None);
    assert_eq!(details.closed_at, None);
}

#[test]
fn every_command_has_a_name() {
    let mut names: Vec<&str> = every_command_but_open().iter().map(CaseCommand::name).collect();
    names.push(
        CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: None,
            title: "x".into(),
            channel: None,
            report_received_at: None,
        }
        .name(),
    );
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    assert_eq!(names.len(), 18);
}

/// Given a case in each status along the main path, when `command`: it is
/// accepted exactly in `allowed` (after `TriageStarted` on a received case
/// when `starts_triage`) and refused elsewhere, naming the status.
#[track_caller]
fn check_statuses(command: &CaseCommand, allowed: &[CaseStatus], starts_triage: bool) {
    let name = command.name();
    for status in CaseStatus::ALL {
        let scenario = given::<Case>(history_to(status)).when(command.clone());
        if allowed.contains(&status) {
            let events = match scenario.result() {
                Ok(events) => events,
                Err(error) => panic!("{name} on a {status} case: {error:?}"),
            };
            assert!(!events.is_empty(), "{name} on a {status} case changed nothing");
            let triage_started = matches!(events.first(), Some(CaseEvent::TriageStarted { .. }));
            assert_eq!(triage_started, starts_triage && status == CaseStatus::Received, "{name} on {status}");
            assert_eq!(events.len(), 1 + usize::from(triage_started), "{name} on {status}");
            assert_eq!(events.last().and_then(CaseEvent::status_after), None, "{name} on {status}");
        } else if status == CaseStatus::Closed {
            scenario.then_error(CaseError::Closed { id: case_id() });
        } else {
            scenario.then_error(CaseError::NotAllowed { id: case_id(), status, command: name });
        }
    }
}

fn other_case() -> CaseId {
    CaseId::for_report(ReportId::for_request("web-form", "req-2"))
}

/// One valid instance of every command but `Open`, none a no-op on a case
/// along the main path.
fn every_command_but_open() -> Vec<CaseCommand> {
    vec![
        CaseCommand::StartTriage,
        CaseCommand::Assign { assignee: "alice".into(), team: None },
        CaseCommand::AssessSeverity {
            cvss_v3: None,
            cvss_v4: Some(V40.into()),
            ssvc_decision: None,
            evidence: SeverityEvidence::default(),
        },
        CaseCommand::SetAffectedProducts {
            entries: vec![AffectedProduct {
                product: "Router OS".into(),
                versions: VersionSpec::Range("<2".into()),
            }],
        },
        CaseCommand::Accept { note: String::new() },
        CaseCommand::Reject { reason: RejectionReason::OutOfScope, text: String::new() },
        CaseCommand::MarkDuplicate { of: other_case(), of_key: None, note: String::new() },
        CaseCommand::LinkSuspectedDuplicate {
            other: other_case(),
            reason: "same title".into(),
            hint: DuplicateHint::default(),
        },
        CaseCommand::AssignCve { cve_id: "CVE-2026-1234".into(), assigner: String::new() },
        CaseCommand::SetEmbargo {
            disclosure_at: NOW + Duration::days(30),
            time_zone: "Europe/Berlin".into(),
            terms: EmbargoTerms::default(),
        },
        CaseCommand::Escalate {
            level: EscalationLevel::Team,
            reason: "no owner".into(),
            automatic: false,
            incident: false,
            sla_deadline: None,
        },
        CaseCommand::RecordSlaBreach { clock: SlaClock::Triage, deadline: NOW },
        CaseCommand::StartRemediation { plan_id: String::new() },
        CaseCommand::MarkFixed { plan_id: String::new(), fixed_versions: Vec::new() },
        CaseCommand::Disclose { advisory_id: String::new(), tracking_id: String::new() },
        CaseCommand::Close {
            resolution: Resolution::Fixed,
            root_cause: "x".into(),
            lessons_learned: String::new(),
        },
        CaseCommand::Reopen { reason: "x".into() },
    ]
}

/// Every kind of event once, the n-th one at `NOW + n minutes`.
fn one_of_each_event() -> Vec<CaseEvent> {
    let id = case_id();
    let at = |minutes: i64| NOW + Duration::minutes(minutes);
    vec![
        CaseEvent::CaseOpened {
            case_id: id,
            key: key(),
            report_id: Some(report_id()),
            title: "SQL injection in login".into(),
            opened_at: at(0),
            channel: None,
            report_received_at: None,
        },
        CaseEvent::TriageStarted { case_id: id, started_at: at(1) },
        CaseEvent::CaseAssigned { case_id: id, assignee: "alice".into(), assigned_at: at(2), team: None },
        CaseEvent::SeverityAssessed {
            case_id: id,
            cvss_v3: Some(score(V30)),
            cvss_v4: Some(score(V40)),
            ssvc_decision: Some("Immediate".into()),
            rating: Some(CvssSeverity::Critical),
            assessed_at: at(3),
            evidence: SeverityEvidence::default(),
        },
        CaseEvent::AffectedProductsSet {
            case_id: id,
            products: vec![
                AffectedProduct {
                    product: "Router OS".into(),
                    versions: VersionSpec::Range(">=2.0, <2.4.1".into()),
                },
                AffectedProduct {
                    product: "Router Manager".into(),
                    versions: VersionSpec::Explicit(vec!["1.0".into(), "1.1".into()]),
                },
            ],
            set_at: at(4),
        },
        CaseEvent::CaseAccepted { case_id: id, accepted_at: at(5), note: String::new() },
        CaseEvent::CaseRejected {
            case_id: id,
            reason: RejectionReason::Other,
            text: "a feature".into(),
            rejected_at: at(6),
        },
        CaseEvent::CaseMarkedDuplicate {
            case_id: id,
            of: other_case(),
            marked_at: at(7),
            of_key: None,
            note: String::new(),
        },
        CaseEvent::DuplicateLinked {
            case_id: id,
            other_case: other_case(),
            reason: "same title".into(),
            linked_at: at(8),
            hint: DuplicateHint::default(),
        },
        CaseEvent::CveAssigned {
            case_id: id,
            cve_id: CveId::parse("CVE-2026-12345").expect("valid"),
            assigned_at: at(9),
            assigner: String::new(),
        },
        CaseEvent::EmbargoSet {
            case_id: id,
            disclosure_at: time::macros::datetime!(2026-04-01 10:00 +09:00),
            time_zone: "Asia/Tokyo".into(),
            set_at: at(10),
            terms: EmbargoTerms::default(),
        },
        CaseEvent::CaseEscalated {
            case_id: id,
            level: EscalationLevel::Management,
            reason: "time to triage exceeded".into(),
            automatic: true,
            escalated_at: at(11),
            incident: false,
            sla_deadline: None,
        },
        CaseEvent::SlaBreached { case_id: id, clock: SlaClock::Triage, deadline: NOW, recorded_at: at(12) },
        CaseEvent::RemediationStarted { case_id: id, started_at: at(13), plan_id: String::new() },
        CaseEvent::CaseFixed {
            case_id: id,
            fixed_at: at(14),
            plan_id: String::new(),
            fixed_versions: Vec::new(),
        },
        CaseEvent::CaseDisclosed {
            case_id: id,
            disclosed_at: at(15),
            advisory_id: String::new(),
            tracking_id: String::new(),
        },
        CaseEvent::CaseClosed {
            case_id: id,
            resolution: Resolution::Fixed,
            root_cause: "unparameterised query".into(),
            lessons_learned: "use the query builder".into(),
            closed_at: at(16),
        },
        CaseEvent::CaseReopened { case_id: id, reason: "regression".into(), reopened_at: at(17) },
    ]
}

#[test]
fn triage_times_are_the_first_ones() {
    let at = |hours: i64| NOW + Duration::hours(hours);
    let case = Case::from_events(&[
        opened(),
        CaseEvent::TriageStarted { case_id: case_id(), started_at: at(1) },
        CaseEvent::CaseRejected {
            case_id: case_id(),
            reason: RejectionReason::NotReproducible,
            text: String::new(),
            rejected_at: at(2),
        },
        CaseEvent::CaseClosed {
            case_id: case_id(),
            resolution: Resolution::Rejected,
            root_cause: String::new(),
            lessons_learned: String::new(),
            closed_at: at(3),
        },
        CaseEvent::CaseReopened { case_id: case_id(), reason: "reproduced".into(), reopened_at: at(4) },
        CaseEvent::CaseAccepted { case_id: case_id(), accepted_at: at(5), note: String::new() },
    ]);
    assert_eq!(details(&case).triage_started_at, Some(at(1)));
    assert_eq!(details(&case).triaged_at, Some(at(2)));
    assert_eq!(details(&case).status_changed_at, at(5));
    let untriaged = Case::from_events(&[opened()]);
    assert_eq!(details(&untriaged).triage_started_at, None);
    assert_eq!(details(&untriaged).triaged_at, None);
}

#[test]
fn marking_a_duplicate_is_a_triage_decision() {
    let case = Case::from_events(&history_to(CaseStatus::Duplicate));
    assert_eq!(details(&case).triaged_at, Some(NOW));
}
