use time::Duration;
use time::macros::datetime;

use super::*;
use crate::testing::{NOW, given};
use crate::validation::{
    MAX_AFFECTED_PRODUCTS, MAX_DESCRIPTION_BYTES, MAX_PRODUCT_NAME_CHARS, MAX_REQUEST_ID_CHARS,
    MAX_TITLE_CHARS,
};

fn report_id() -> ReportId {
    ReportId::for_request("web-form", "req-1")
}

fn submission() -> SubmitReport {
    SubmitReport {
        report_id: report_id(),
        request_id: Some("req-1".into()),
        title: "SQL injection in login".into(),
        description: "The username field is concatenated into a query.".into(),
        reporter: Reporter {
            name: Some("Alice".into()),
            email: Some("alice@example.com".into()),
            organization: Some("Example Research".into()),
        },
        channel: Some(Channel::Web),
        affected_products: vec!["Portal 2.0".into()],
        suggested_cvss_vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
        requested_disclosure_at: Some(datetime!(2026-06-01 00:00 UTC)),
        external_reference: Some("GHSA-xxxx-yyyy-zzzz".into()),
    }
}

fn received() -> ReportEvent {
    ReportEvent::ReportReceived {
        report_id: report_id(),
        case_id: CaseId::for_report(report_id()),
        request_id: Some("req-1".into()),
        title: "SQL injection in login".into(),
        description: "The username field is concatenated into a query.".into(),
        reporter: Reporter {
            name: Some("Alice".into()),
            email: Some("alice@example.com".into()),
            organization: Some("Example Research".into()),
        },
        channel: Channel::Web,
        affected_products: vec!["Portal 2.0".into()],
        suggested_cvss_vector: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
        requested_disclosure_at: Some(datetime!(2026-06-01 00:00 UTC)),
        received_at: NOW,
        external_reference: Some("GHSA-xxxx-yyyy-zzzz".into()),
    }
}

fn acknowledged() -> ReportEvent {
    ReportEvent::ReportAcknowledged {
        report_id: report_id(),
        message: "Thank you, we are looking into it.".into(),
        acknowledged_at: NOW,
    }
}

/// Given no report, when submitting `edit(valid submission)`, then these violations.
#[track_caller]
fn submitting_is_refused(edit: impl FnOnce(&mut SubmitReport), violations: &[(&str, &str)]) {
    let mut submit = submission();
    edit(&mut submit);
    given::<Report>([]).when(ReportCommand::Submit(Box::new(submit))).then_error(ReportError::Validation(
        violations.iter().map(|(field, description)| FieldViolation::new(*field, *description)).collect(),
    ));
}

/// Given no report, when submitting `edit(valid submission)`, then it is received.
#[track_caller]
fn submitting_is_accepted(edit: impl FnOnce(&mut SubmitReport)) -> Report {
    let mut submit = submission();
    edit(&mut submit);
    given::<Report>([]).when(ReportCommand::Submit(Box::new(submit))).then_ok()
}

// Submission

#[test]
fn submit_records_the_report_and_the_case_it_will_open() {
    let report = given::<Report>([]).when(ReportCommand::Submit(Box::new(submission()))).then([received()]);
    let details = report.details().expect("submitted");
    assert_eq!(details.status, ReportStatus::Received);
    assert_eq!(details.case_id, CaseId::for_report(report_id()));
    assert_eq!(details.received_at, NOW);
    assert_eq!(details.acknowledged_at, None);
    assert_eq!(report.version(), 1);
}

#[test]
fn submit_trims_and_drops_blank_optional_fields() {
    let report = submitting_is_accepted(|s| {
        s.title = "  SQL injection in login \n".into();
        s.reporter = Reporter { name: Some(" ".into()), email: Some(String::new()), organization: None };
        s.request_id = Some(String::new());
        s.suggested_cvss_vector = Some("  ".into());
        s.affected_products = vec![" Portal 2.0 ".into()];
    });
    let details = report.details().expect("submitted");
    assert_eq!(details.title, "SQL injection in login");
    assert!(details.reporter.is_anonymous());
    assert_eq!(details.request_id, None);
    assert_eq!(details.suggested_cvss_vector, None);
    assert_eq!(details.affected_products, ["Portal 2.0"]);
}

#[test]
fn submit_on_an_existing_report_is_refused() {
    given::<Report>([received()])
        .when(ReportCommand::Submit(Box::new(submission())))
        .then_error(ReportError::AlreadyExists { id: report_id() });
}

#[test]
fn anonymous_reports_are_accepted() {
    submitting_is_accepted(|s| s.reporter = Reporter::default());
}

#[test]
fn title_must_not_be_blank() {
    submitting_is_refused(|s| s.title = " \t ".into(), &[("title", "title must not be empty")]);
}

#[test]
fn title_is_limited_in_characters_not_bytes() {
    submitting_is_accepted(|s| s.title = "脆".repeat(MAX_TITLE_CHARS));
    submitting_is_refused(
        |s| s.title = "a".repeat(MAX_TITLE_CHARS + 1),
        &[("title", "title must be at most 300 characters")],
    );
}

#[test]
fn description_must_not_be_empty() {
    submitting_is_refused(
        |s| s.description = String::new(),
        &[("description", "description must not be empty")],
    );
}

#[test]
fn description_is_limited_to_64_kib() {
    submitting_is_accepted(|s| s.description = "a".repeat(MAX_DESCRIPTION_BYTES));
    submitting_is_refused(
        |s| s.description = "a".repeat(MAX_DESCRIPTION_BYTES + 1),
        &[("description", "description must be at most 65536 bytes")],
    );
    // Bytes, not characters: 21846 three-byte characters are 65538 bytes.
    submitting_is_refused(
        |s| s.description = "脆".repeat(21_846),
        &[("description", "description must be at most 65536 bytes")],
    );
}

#[test]
fn reporter_email_must_be_well_formed() {
    submitting_is_refused(
        |s| s.reporter.email = Some("alice at example.com".into()),
        &[("reporter.email", "e-mail address must not contain spaces")],
    );
    submitting_is_refused(
        |s| s.reporter.email = Some("alice@localhost".into()),
        &[("reporter.email", "e-mail address must have a domain with a dot")],
    );
}

#[test]
fn reporter_name_and_organization_are_limited() {
    submitting_is_refused(
        |s| {
            s.reporter.name = Some("n".repeat(201));
            s.reporter.organization = Some("o".repeat(201));
        },
        &[
            ("reporter.name", "name must be at most 200 characters"),
            ("reporter.organization", "organization must be at most 200 characters"),
        ],
    );
}

#[test]
fn channel_must_be_known() {
    submitting_is_refused(
        |s| s.channel = None,
        &[("channel", "channel must be one of web, email, api, feed, internal")],
    );
    for channel in Channel::ALL {
        submitting_is_accepted(|s| s.channel = Some(channel));
    }
}

#[test]
fn at_most_100_affected_products() {
    submitting_is_accepted(|s| s.affected_products = vec!["p".into(); MAX_AFFECTED_PRODUCTS]);
    submitting_is_refused(
        |s| s.affected_products = vec!["p".into(); MAX_AFFECTED_PRODUCTS + 1],
        &[("affected_products", "at most 100 affected products")],
    );
}

#[test]
fn no_products_is_fine() {
    submitting_is_accepted(|s| s.affected_products.clear());
}

#[test]
fn product_names_must_not_be_empty_nor_too_long() {
    submitting_is_refused(
        |s| {
            s.affected_products = vec![
                "Portal".into(),
                " ".into(),
                "p".repeat(MAX_PRODUCT_NAME_CHARS),
                "p".repeat(MAX_PRODUCT_NAME_CHARS + 1),
            ]
        },
        &[
            ("affected_products[1]", "product name must not be empty"),
            ("affected_products[3]", "product name must be at most 200 characters"),
        ],
    );
}

#[test]
fn suggested_cvss_vector_must_parse() {
    submitting_is_accepted(|s| {
        s.suggested_cvss_vector =
            Some("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N".into())
    });
    submitting_is_accepted(|s| {
        s.suggested_cvss_vector = Some("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into())
    });
    submitting_is_accepted(|s| s.suggested_cvss_vector = None);
    submitting_is_refused(
        |s| s.suggested_cvss_vector = Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/C:H/I:H/A:H".into()),
        &[("suggested_cvss_vector", "not a CVSS v3.x or v4.0 vector: mandatory base metrics missing: S")],
    );
    submitting_is_refused(
        |s| s.suggested_cvss_vector = Some("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
        &[("suggested_cvss_vector", "not a CVSS v3.x or v4.0 vector: metric AV appears more than once")],
    );
    submitting_is_refused(
        |s| s.suggested_cvss_vector = Some("9.8".into()),
        &[(
            "suggested_cvss_vector",
            "not a CVSS v3.x or v4.0 vector: \"9.8\" is not a supported CVSS version (expected CVSS:3.0, CVSS:3.1 or CVSS:4.0)",
        )],
    );
}

#[test]
fn request_id_is_limited_and_printable() {
    submitting_is_accepted(|s| s.request_id = Some("r".repeat(MAX_REQUEST_ID_CHARS)));
    submitting_is_refused(
        |s| s.request_id = Some("r".repeat(MAX_REQUEST_ID_CHARS + 1)),
        &[("request_id", "request id must be at most 128 characters")],
    );
    submitting_is_refused(
        |s| s.request_id = Some("req\u{0}1".into()),
        &[("request_id", "request id must consist of A-Z a-z 0-9 . _ : -")],
    );
}

/// Titles and names refuse control and bidirectional-override characters;
/// the description keeps line breaks and tabs but refuses NUL.
#[test]
fn text_fields_refuse_control_and_bidi_override_characters() {
    submitting_is_refused(
        |s| s.title = "evil\u{0}title".into(),
        &[("title", "title must not contain U+0000 (a control character)")],
    );
    submitting_is_refused(
        |s| s.title = "invoice\u{202E}fdp.exe".into(),
        &[("title", "title must not contain U+202E (a bidirectional embedding or override)")],
    );
    submitting_is_refused(
        |s| s.reporter.name = Some("Mallory\u{2066}".into()),
        &[("reporter.name", "name must not contain U+2066 (a bidirectional isolate)")],
    );
    submitting_is_refused(
        |s| s.description = "steps\n\u{0}".into(),
        &[("description", "description must not contain U+0000 (a control character)")],
    );
    submitting_is_accepted(|s| {
        s.title = "Überlauf im 認証 module 🔓".into();
        s.description = "1. open\n\t2. crash\r\n".into();
    });
}

#[test]
fn requested_disclosure_may_be_up_to_a_day_in_the_past() {
    submitting_is_accepted(|s| s.requested_disclosure_at = Some(NOW - Duration::hours(23)));
    submitting_is_accepted(|s| s.requested_disclosure_at = None);
    submitting_is_refused(
        |s| s.requested_disclosure_at = Some(NOW - Duration::hours(25)),
        &[("requested_disclosure_at", "requested disclosure date must not be in the past")],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut submit = SubmitReport {
        report_id: report_id(),
        request_id: Some("x".repeat(129)),
        title: String::new(),
        description: " ".into(),
        reporter: Reporter { name: None, email: Some("nope".into()), organization: None },
        channel: None,
        affected_products: vec![String::new()],
        suggested_cvss_vector: Some("CVSS:3.1/AV:N".into()),
        requested_disclosure_at: Some(datetime!(2020-01-01 00:00 UTC)),
        external_reference: None,
    };
    let violations = crate::validation::validate_submission(&submit, NOW);
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "title",
            "description",
            "reporter.email",
            "channel",
            "affected_products[0]",
            "suggested_cvss_vector",
            "request_id",
            "requested_disclosure_at",
        ]
    );
    submit.affected_products = vec![String::new(); 150];
    let violations = crate::validation::validate_submission(&submit, NOW);
    let products = violations.iter().filter(|v| v.field.starts_with("affected_products")).count();
    // The count, plus one per item up to the limit: never one per item sent.
    assert_eq!(products, 1 + MAX_AFFECTED_PRODUCTS);
    given::<Report>([])
        .when(ReportCommand::Submit(Box::new(submit)))
        .then_error(ReportError::Validation(violations));
}

// Acknowledgement

#[test]
fn acknowledge_tells_the_reporter() {
    let later = NOW + Duration::hours(3);
    let report = given::<Report>([received()])
        .at(later)
        .when(ReportCommand::Acknowledge { message: "Thank you, we are looking into it.".into() })
        .then([ReportEvent::ReportAcknowledged {
            report_id: report_id(),
            message: "Thank you, we are looking into it.".into(),
            acknowledged_at: later,
        }]);
    let details = report.details().expect("submitted");
    assert_eq!(details.status, ReportStatus::Acknowledged);
    assert_eq!(details.acknowledged_at, Some(later));
}

#[test]
fn acknowledge_twice_is_refused() {
    given::<Report>([received(), acknowledged()])
        .when(ReportCommand::Acknowledge { message: "again".into() })
        .then_error(ReportError::AlreadyAcknowledged { id: report_id() });
}

#[test]
fn acknowledge_needs_a_message() {
    given::<Report>([received()]).when(ReportCommand::Acknowledge { message: " ".into() }).then_error(
        ReportError::Validation(vec![FieldViolation::new("message", "message must not be empty")]),
    );
}

#[test]
fn commands_on_an_unsubmitted_report_are_not_found() {
    for command in [
        ReportCommand::Acknowledge { message: "hi".into() },
        ReportCommand::AddMessage {
            direction: MessageDirection::Inbound,
            author: "a".into(),
            body: "b".into(),
            max_messages: 1000,
        },
        ReportCommand::SuspectDuplicate { other: ReportId::new(), reason: "same title".into() },
    ] {
        given::<Report>([]).when(command).then_error(ReportError::NotFound);
    }
}

// Conversation

#[test]
fn add_message_numbers_messages_deterministically() {
    let first = ReportEvent::ReporterMessageAdded {
        report_id: report_id(),
        message_id: MessageId::for_report_message(report_id(), 1),
        direction: MessageDirection::Inbound,
        author: "Alice".into(),
        body: "Here is a proof of concept.".into(),
        added_at: NOW,
    };
    given::<Report>([received()])
        .when(ReportCommand::AddMessage {
            direction: MessageDirection::Inbound,
            author: " Alice ".into(),
            body: "Here is a proof of concept.".into(),
            max_messages: 1000,
        })
        .then([first.clone()]);
    let report = given::<Report>([received(), acknowledged(), first])
        .when(ReportCommand::AddMessage {
            direction: MessageDirection::Outbound,
            author: "psirt".into(),
            body: "Thanks, reproduced.".into(),
            max_messages: 1000,
        })
        .then([ReportEvent::ReporterMessageAdded {
            report_id: report_id(),
            message_id: MessageId::for_report_message(report_id(), 2),
            direction: MessageDirection::Outbound,
            author: "psirt".into(),
            body: "Thanks, reproduced.".into(),
            added_at: NOW,
        }]);
    let messages = &report.details().expect("submitted").messages;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].direction, MessageDirection::Outbound);
}

#[test]
fn a_report_holds_at_most_its_quota_of_messages() {
    let message = |n: u64| ReportEvent::ReporterMessageAdded {
        report_id: report_id(),
        message_id: MessageId::for_report_message(report_id(), n),
        direction: MessageDirection::Inbound,
        author: "Alice".into(),
        body: format!("message {n}"),
        added_at: NOW,
    };
    let add = |max_messages| ReportCommand::AddMessage {
        direction: MessageDirection::Inbound,
        author: "Alice".into(),
        body: "one more".into(),
        max_messages,
    };
    given::<Report>([received(), message(1), message(2)])
        .when(add(2))
        .then_error(ReportError::TooManyMessages { id: report_id(), limit: 2 });
    given::<Report>([received(), message(1), message(2)]).when(add(3)).then([
        ReportEvent::ReporterMessageAdded {
            report_id: report_id(),
            message_id: MessageId::for_report_message(report_id(), 3),
            direction: MessageDirection::Inbound,
            author: "Alice".into(),
            body: "one more".into(),
            added_at: NOW,
        },
    ]);
}

#[test]
fn add_message_needs_an_author_and_a_body() {
    given::<Report>([received()])
        .when(ReportCommand::AddMessage {
            direction: MessageDirection::Inbound,
            author: "".into(),
            body: "".into(),
            max_messages: 1000,
        })
        .then_error(ReportError::Validation(vec![
            FieldViolation::new("author", "author must not be empty"),
            FieldViolation::new("body", "body must not be empty"),
        ]));
}

// Duplicates

#[test]
fn suspect_duplicate_links_the_other_report() {
    let other = ReportId::for_request("web-form", "req-0");
    let report = given::<Report>([received()])
        .when(ReportCommand::SuspectDuplicate { other, reason: "same title and product".into() })
        .then([ReportEvent::DuplicateSuspected {
            report_id: report_id(),
            other,
            reason: "same title and product".into(),
            suspected_at: NOW,
        }]);
    assert_eq!(report.details().expect("submitted").suspected_duplicates[0].other, other);
}

#[test]
fn a_report_cannot_duplicate_itself() {
    given::<Report>([received()])
        .when(ReportCommand::SuspectDuplicate { other: report_id(), reason: "x".into() })
        .then_error(ReportError::DuplicateOfSelf);
}

#[test]
fn a_known_duplicate_link_is_a_no_op() {
    let other = ReportId::for_request("web-form", "req-0");
    given::<Report>([
        received(),
        ReportEvent::DuplicateSuspected {
            report_id: report_id(),
            other,
            reason: "same title".into(),
            suspected_at: NOW,
        },
    ])
    .when(ReportCommand::SuspectDuplicate { other, reason: "same title, again".into() })
    .then_nothing();
}

// Evolution

#[test]
fn apply_counts_events_and_tolerates_out_of_order_facts() {
    let mut report = Report::default();
    report.apply(&acknowledged());
    assert_eq!(report.version(), 1);
    assert!(!report.exists());
    let report = Report::from_events(&[received(), acknowledged()]);
    assert_eq!(report.version(), 2);
    assert_eq!(report.details().map(|r| r.status), Some(ReportStatus::Acknowledged));
}

#[test]
fn event_names_are_stable_and_serde_round_trips() {
    let events = [
        received(),
        acknowledged(),
        ReportEvent::ReporterMessageAdded {
            report_id: report_id(),
            message_id: MessageId::for_report_message(report_id(), 1),
            direction: MessageDirection::Inbound,
            author: "a".into(),
            body: "b".into(),
            added_at: NOW,
        },
        ReportEvent::DuplicateSuspected {
            report_id: report_id(),
            other: ReportId::new(),
            reason: String::new(),
            suspected_at: NOW,
        },
    ];
    let names: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(names, ["ReportReceived", "ReportAcknowledged", "ReporterMessageAdded", "DuplicateSuspected"]);
    for event in events {
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], event.event_type());
        assert_eq!(serde_json::from_value::<ReportEvent>(json).expect("deserializes"), event);
    }
}
