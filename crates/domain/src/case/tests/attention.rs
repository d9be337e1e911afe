//! Getting the case attention: escalations, SLA breaches, duplicate hints.
//! None of them is someone working on the case, so none starts triage.

use super::*;

fn open_statuses() -> Vec<CaseStatus> {
    CaseStatus::ALL.into_iter().filter(|s| *s != CaseStatus::Closed).collect()
}

fn escalate(level: EscalationLevel, automatic: bool) -> CaseCommand {
    CaseCommand::Escalate {
        level,
        reason: "time to triage exceeded".into(),
        automatic,
        incident: false,
        sla_deadline: None,
    }
}

fn escalated(level: EscalationLevel, automatic: bool) -> CaseEvent {
    CaseEvent::CaseEscalated {
        case_id: case_id(),
        level,
        reason: "time to triage exceeded".into(),
        automatic,
        escalated_at: NOW,
        incident: false,
        sla_deadline: None,
    }
}

fn history_escalated_to(level: EscalationLevel) -> Vec<CaseEvent> {
    let mut history = history_to(CaseStatus::Triage);
    history.push(escalated(level, false));
    history
}

// --- Escalate ---------------------------------------------------------------

#[test]
fn escalate_records_level_reason_and_who_raised_it() {
    let case = given::<Case>(history_to(CaseStatus::Accepted))
        .when(escalate(EscalationLevel::Management, true))
        .then([escalated(EscalationLevel::Management, true)]);
    let details = details(&case);
    assert_eq!(details.escalation_level(), Some(EscalationLevel::Management));
    assert_eq!(
        details.escalation,
        Some(Escalation {
            level: EscalationLevel::Management,
            reason: "time to triage exceeded".into(),
            automatic: true,
            escalated_at: NOW,
        })
    );
}

#[test]
fn escalating_a_received_case_leaves_it_received() {
    let case = given::<Case>([opened()])
        .when(escalate(EscalationLevel::Team, true))
        .then([escalated(EscalationLevel::Team, true)]);
    assert_eq!(details(&case).status, CaseStatus::Received);
}

#[test]
fn escalate_is_allowed_until_the_case_closes() {
    for automatic in [true, false] {
        check_statuses(&escalate(EscalationLevel::Executive, automatic), &open_statuses(), false);
    }
}

#[test]
fn escalations_go_up() {
    let case = given::<Case>(history_escalated_to(EscalationLevel::Team))
        .when(escalate(EscalationLevel::Executive, false))
        .then([escalated(EscalationLevel::Executive, false)]);
    assert_eq!(details(&case).escalation_level(), Some(EscalationLevel::Executive));
}

#[test]
fn escalating_to_the_current_level_again_is_a_no_op() {
    for level in EscalationLevel::ALL {
        for automatic in [true, false] {
            given::<Case>(history_escalated_to(level)).when(escalate(level, automatic)).then_nothing();
        }
    }
}

#[test]
fn a_late_automatic_escalation_below_the_current_level_is_a_no_op() {
    // The scheduler escalates to the team while a person already went to management.
    given::<Case>(history_escalated_to(EscalationLevel::Management))
        .when(escalate(EscalationLevel::Team, true))
        .then_nothing();
}

#[test]
fn a_person_cannot_escalate_downwards() {
    given::<Case>(history_escalated_to(EscalationLevel::Executive))
        .when(escalate(EscalationLevel::Management, false))
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "level",
            "the case is already escalated to executive; escalations only go up",
        )]));
}

#[test]
fn escalate_needs_a_reason() {
    let found = given::<Case>(history_escalated_to(EscalationLevel::Executive))
        .when(CaseCommand::Escalate {
            level: EscalationLevel::Team,
            reason: " ".into(),
            automatic: false,
            incident: false,
            sla_deadline: None,
        })
        .result();
    assert_eq!(
        found,
        Err(CaseError::Validation(vec![
            FieldViolation::new("reason", "reason must not be empty"),
            FieldViolation::new(
                "level",
                "the case is already escalated to executive; escalations only go up"
            ),
        ]))
    );
    given::<Case>(history_to(CaseStatus::Triage))
        .when(CaseCommand::Escalate {
            level: EscalationLevel::Team,
            reason: "x".repeat(validation::MAX_TEXT_BYTES + 1),
            automatic: true,
            incident: false,
            sla_deadline: None,
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "reason",
            "reason must be at most 65536 bytes",
        )]));
}

#[test]
fn a_reopened_case_can_be_escalated_again() {
    let mut history = history_to(CaseStatus::Rejected);
    history.push(escalated(EscalationLevel::Executive, true));
    history.push(CaseEvent::CaseClosed {
        case_id: case_id(),
        resolution: Resolution::Rejected,
        root_cause: String::new(),
        lessons_learned: String::new(),
        closed_at: NOW,
    });
    history.push(CaseEvent::CaseReopened {
        case_id: case_id(),
        reason: "new evidence".into(),
        reopened_at: NOW,
    });
    given::<Case>(history)
        .when(escalate(EscalationLevel::Team, true))
        .then([escalated(EscalationLevel::Team, true)]);
}

// --- RecordSlaBreach --------------------------------------------------------

fn breach(clock: SlaClock, deadline: OffsetDateTime) -> CaseCommand {
    CaseCommand::RecordSlaBreach { clock, deadline }
}

#[test]
fn record_sla_breach() {
    let deadline = NOW - Duration::hours(1);
    let case =
        given::<Case>([opened()]).when(breach(SlaClock::Triage, deadline)).then([CaseEvent::SlaBreached {
            case_id: case_id(),
            clock: SlaClock::Triage,
            deadline,
            recorded_at: NOW,
        }]);
    let details = details(&case);
    assert_eq!(details.sla_breaches, [SlaBreach { clock: SlaClock::Triage, deadline, recorded_at: NOW }]);
    assert_eq!(details.status, CaseStatus::Received, "a breach is not someone triaging");
}

#[test]
fn the_same_breach_again_is_a_no_op() {
    let deadline = NOW - Duration::hours(1);
    let mut history = history_to(CaseStatus::Triage);
    history.push(CaseEvent::SlaBreached {
        case_id: case_id(),
        clock: SlaClock::Triage,
        deadline,
        recorded_at: NOW,
    });
    // Another replica of the scheduler, a minute later.
    given::<Case>(history.clone())
        .at(NOW + Duration::minutes(1))
        .when(breach(SlaClock::Triage, deadline))
        .then_nothing();
    // Another clock, or another deadline of the same clock, is another breach.
    given::<Case>(history.clone()).when(breach(SlaClock::Acknowledge, deadline)).then_ok();
    let case = given::<Case>(history).when(breach(SlaClock::Triage, deadline - Duration::hours(1))).then_ok();
    assert_eq!(details(&case).sla_breaches.len(), 2);
}

#[test]
fn a_deadline_that_has_not_passed_is_no_breach() {
    given::<Case>(history_to(CaseStatus::Triage))
        .when(breach(SlaClock::Acknowledge, NOW + Duration::seconds(1)))
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "deadline",
            "deadline has not passed yet",
        )]));
    given::<Case>(history_to(CaseStatus::Triage)).when(breach(SlaClock::Acknowledge, NOW)).then_ok();
}

#[test]
fn breaches_are_recorded_until_the_case_closes() {
    check_statuses(&breach(SlaClock::Acknowledge, NOW - Duration::days(1)), &open_statuses(), false);
}

#[test]
fn replaying_a_breach_twice_records_it_once() {
    let event = CaseEvent::SlaBreached {
        case_id: case_id(),
        clock: SlaClock::Triage,
        deadline: NOW,
        recorded_at: NOW,
    };
    let case = Case::from_events(&[opened(), event.clone(), event]);
    assert_eq!(details(&case).sla_breaches.len(), 1);
}

// --- LinkSuspectedDuplicate -------------------------------------------------

fn link(other: CaseId) -> CaseCommand {
    CaseCommand::LinkSuspectedDuplicate {
        other,
        reason: "same normalised title".into(),
        hint: DuplicateHint::default(),
    }
}

#[test]
fn link_suspected_duplicate_records_the_hint_without_deciding() {
    let case = given::<Case>([opened()]).when(link(other_case())).then([CaseEvent::DuplicateLinked {
        case_id: case_id(),
        other_case: other_case(),
        reason: "same normalised title".into(),
        linked_at: NOW,
        hint: DuplicateHint::default(),
    }]);
    let details = details(&case);
    assert_eq!(details.status, CaseStatus::Received);
    assert_eq!(details.duplicate_of, None);
    assert_eq!(
        details.suspected_duplicates,
        [LinkedDuplicate {
            other_case: other_case(),
            reason: "same normalised title".into(),
            linked_at: NOW
        }]
    );
}

#[test]
fn linking_the_same_case_again_is_a_no_op() {
    let mut history = vec![opened()];
    history.push(CaseEvent::DuplicateLinked {
        case_id: case_id(),
        other_case: other_case(),
        reason: "same normalised title".into(),
        linked_at: NOW,
        hint: DuplicateHint::default(),
    });
    // Redelivered with another reason: still the same link.
    given::<Case>(history.clone())
        .when(CaseCommand::LinkSuspectedDuplicate {
            other: other_case(),
            reason: "same reporter".into(),
            hint: DuplicateHint::default(),
        })
        .then_nothing();
    let third = CaseId::for_report(ReportId::for_request("web-form", "req-3"));
    let case = given::<Case>(history).when(link(third)).then_ok();
    assert_eq!(details(&case).suspected_duplicates.len(), 2);
}

#[test]
fn duplicate_hints_are_recorded_in_every_status_even_closed() {
    for status in CaseStatus::ALL {
        let case =
            given::<Case>(history_to(status)).when(link(other_case())).then([CaseEvent::DuplicateLinked {
                case_id: case_id(),
                other_case: other_case(),
                reason: "same normalised title".into(),
                linked_at: NOW,
                hint: DuplicateHint::default(),
            }]);
        assert_eq!(details(&case).status, status);
    }
}

#[test]
fn a_case_is_not_its_own_suspected_duplicate() {
    given::<Case>([opened()]).when(link(case_id())).then_error(CaseError::DuplicateOfSelf);
}

#[test]
fn the_link_reason_is_bounded() {
    given::<Case>([opened()])
        .when(CaseCommand::LinkSuspectedDuplicate {
            other: other_case(),
            reason: "x".repeat(validation::MAX_TEXT_BYTES + 1),
            hint: DuplicateHint::default(),
        })
        .then_error(CaseError::Validation(vec![FieldViolation::new(
            "reason",
            "reason must be at most 65536 bytes",
        )]));
    // Intake may have nothing to say beyond the link itself.
    given::<Case>([opened()])
        .when(CaseCommand::LinkSuspectedDuplicate {
            other: other_case(),
            reason: String::new(),
            hint: DuplicateHint::default(),
        })
        .then_ok();
}
