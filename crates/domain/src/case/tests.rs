use time::Duration;

use super::*;
use crate::testing::{NOW, given};

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
    }
}

/// The events that bring a case to `status` along the main path.
fn history_to(status: CaseStatus) -> Vec<CaseEvent> {
    use CaseStatus::*;
    let id = case_id();
    let triage = CaseEvent::TriageStarted { case_id: id, started_at: NOW };
    let accepted = CaseEvent::CaseAccepted { case_id: id, accepted_at: NOW };
    let remediating = CaseEvent::RemediationStarted { case_id: id, started_at: NOW };
    let fixed = CaseEvent::CaseFixed { case_id: id, fixed_at: NOW };
    let disclosed = CaseEvent::CaseDisclosed { case_id: id, disclosed_at: NOW };
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
    let duplicate = CaseEvent::CaseMarkedDuplicate { case_id: id, of: CaseId::new(), marked_at: NOW };
    let path: Vec<CaseEvent> = match status {
        Received => vec![],
        Triage => vec![triage],
        Accepted => vec![triage, accepted],
        Rejected => vec![triage, rejected],
        Duplicate => vec![triage, duplicate],
        Remediating => vec![triage, accepted, remediating],
        Fixed => vec![triage, accepted, remediating, fixed],
        Disclosed => vec![triage, accepted, remediating, fixed, disclosed],
        Closed => vec![triage, accepted, remediating, fixed, disclosed, closed],
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
        Accepted => CaseCommand::Accept,
        Rejected => {
            CaseCommand::Reject { reason: RejectionReason::OutOfScope, text: "not our product".into() }
        }
        Duplicate => CaseCommand::MarkDuplicate { of: CaseId::new() },
        Remediating => CaseCommand::StartRemediation,
        Fixed => CaseCommand::MarkFixed,
        Disclosed => CaseCommand::Disclose,
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
        .when(CaseCommand::Open { case_id: case_id(), key: key(), report_id: None, title: "x".into() })
        .then_error(CaseError::AlreadyExists { id: case_id() });
}

#[test]
fn open_needs_a_title() {
    given::<Case>([])
        .when(CaseCommand::Open { case_id: case_id(), key: key(), report_id: None, title: " ".into() })
        .then_error(CaseError::Validation(vec![FieldViolation::new("title", "title must not be empty")]));
    given::<Case>([])
        .when(CaseCommand::Open {
            case_id: case_id(),
            key: key(),
            report_id: None,
            title: "x".repeat(MAX_TITLE_CHARS + 1),
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "title",
            "title must be at most 300 characters",
        )]));
}

#[test]
fn commands_on_an_unopened_case_are_not_found() {
    for command in [
        CaseCommand::StartTriage,
        CaseCommand::Assign { assignee: "alice".into() },
        CaseCommand::Reopen { reason: "x".into() },
    ] {
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
        .when(CaseCommand::Assign { assignee: " team-web ".into() })
        .then([CaseEvent::CaseAssigned {
            case_id: case_id(),
            assignee: "team-web".into(),
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
        assigned_at: NOW,
    });
    given::<Case>(history).when(CaseCommand::Assign { assignee: "team-web".into() }).then_nothing();
}

#[test]
fn assign_needs_a_name() {
    given::<Case>([opened()]).when(CaseCommand::Assign { assignee: "  ".into() }).then_error(
        CaseError::Validation(vec![FieldViolation::new("assignee", "assignee must not be empty")]),
    );
}

#[test]
fn a_closed_case_cannot_be_assigned() {
    given::<Case>(history_to(CaseStatus::Closed))
        .when(CaseCommand::Assign { assignee: "team-web".into() })
        .then_error(CaseError::Closed { id: case_id() });
}

#[test]
fn accept() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Accept)
        .then([CaseEvent::CaseAccepted { case_id: case_id(), accepted_at: NOW }]);
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
        .when(CaseCommand::MarkDuplicate { of: other })
        .then([CaseEvent::CaseMarkedDuplicate { case_id: case_id(), of: other, marked_at: NOW }]);
    assert_eq!(case.details().and_then(|c| c.duplicate_of), Some(other));
}

#[test]
fn a_case_cannot_be_a_duplicate_of_itself() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::MarkDuplicate { of: case_id() })
        .then_error(CaseError::DuplicateOfSelf);
}

#[test]
fn remediate_fix_and_disclose() {
    let id = case_id();
    given::<Case>(history_to(CaseStatus::Accepted))
        .when(CaseCommand::StartRemediation)
        .then([CaseEvent::RemediationStarted { case_id: id, started_at: NOW }]);
    given::<Case>(history_to(CaseStatus::Remediating))
        .when(CaseCommand::MarkFixed)
        .then([CaseEvent::CaseFixed { case_id: id, fixed_at: NOW }]);
    given::<Case>(history_to(CaseStatus::Fixed))
        .when(CaseCommand::Disclose)
        .then([CaseEvent::CaseDisclosed { case_id: id, disclosed_at: NOW }]);
}

#[test]
fn disclosing_before_a_fix_is_refused() {
    given::<Case>(history_to(CaseStatus::Remediating)).when(CaseCommand::Disclose).then_error(
        CaseError::InvalidTransition(InvalidTransition {
            from: CaseStatus::Remediating,
            to: CaseStatus::Disclosed,
        }),
    );
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
    for command in [CaseCommand::Accept, CaseCommand::MarkDuplicate { of: CaseId::new() }] {
        let to = if command == CaseCommand::Accept { CaseStatus::Accepted } else { CaseStatus::Duplicate };
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
    assert_eq!(case.version(), 6);
    assert_eq!(case.details().map(|c| c.status), Some(CaseStatus::Disclosed));
}

#[test]
fn event_names_are_stable() {
    let names: Vec<&str> = history_to(CaseStatus::Closed).iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        names,
        [
            "CaseOpened",
            "TriageStarted",
            "CaseAccepted",
            "RemediationStarted",
            "CaseFixed",
            "CaseDisclosed",
            "CaseClosed"
        ]
    );
    assert!(history_to(CaseStatus::Closed).iter().all(|e| e.event_version() == 1));
}

#[test]
fn events_round_trip_through_serde_with_their_name_as_tag() {
    for event in history_to(CaseStatus::Closed) {
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], event.event_type());
        let back: CaseEvent = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, event);
    }
}
