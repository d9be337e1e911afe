//! The advisory: drafting, publishing under the embargo and product-status
//! rules, and revisions. One test per rule, fixed clock.

use time::Duration;

use super::*;
use crate::ids::ReportId;
use crate::testing::{NOW, given};

const TRACKING_ID: &str = "ACME-SA-2026-0001";

fn case_id() -> CaseId {
    CaseId::for_report(ReportId::for_request("web-form", "req-1"))
}

fn advisory_id() -> AdvisoryId {
    AdvisoryId::for_case(case_id())
}

fn content() -> AdvisoryContent {
    AdvisoryContent {
        title: "SQL injection in the Acme Gateway login".into(),
        summary: "An unauthenticated attacker can read the user database.".into(),
        details: "The login form concatenates the user name into a query.".into(),
        workarounds: "Restrict access to the admin interface.".into(),
        acknowledgments: vec![Acknowledgment {
            name: "Alice Researcher".into(),
            organization: Some("Example Labs".into()),
            url: Some("https://labs.example/alice".into()),
            consent: true,
        }],
        references: vec!["https://acme.example/notes/2.4.1".into()],
    }
}

fn draft(content: AdvisoryContent) -> AdvisoryCommand {
    AdvisoryCommand::Draft { case_id: case_id(), tracking_id: TRACKING_ID.into(), content }
}

fn drafted(content: AdvisoryContent) -> AdvisoryEvent {
    AdvisoryEvent::AdvisoryDrafted {
        advisory_id: advisory_id(),
        case_id: case_id(),
        tracking_id: TRACKING_ID.into(),
        content,
        drafted_at: NOW,
    }
}

/// A publication with nothing in the way.
fn publish() -> AdvisoryCommand {
    AdvisoryCommand::Publish {
        formats: vec![AdvisoryFormat::Csaf],
        embargo_until: None,
        override_reason: None,
        actor_is_admin: false,
        unresolved_products: vec![],
        change_summary: None,
    }
}

fn publish_under_embargo(until: OffsetDateTime, admin: bool, reason: Option<&str>) -> AdvisoryCommand {
    AdvisoryCommand::Publish {
        formats: vec![AdvisoryFormat::Csaf],
        embargo_until: Some(until),
        override_reason: reason.map(str::to_owned),
        actor_is_admin: admin,
        unresolved_products: vec![],
        change_summary: None,
    }
}

fn revise(summary: Option<&str>) -> AdvisoryCommand {
    AdvisoryCommand::Publish {
        formats: vec![AdvisoryFormat::Csaf, AdvisoryFormat::OpenVex],
        embargo_until: None,
        override_reason: None,
        actor_is_admin: false,
        unresolved_products: vec![],
        change_summary: summary.map(str::to_owned),
    }
}

fn published(at: OffsetDateTime, reason: Option<&str>) -> AdvisoryEvent {
    AdvisoryEvent::AdvisoryPublished {
        advisory_id: advisory_id(),
        case_id: case_id(),
        tracking_id: TRACKING_ID.into(),
        version: AdvisoryVersion::INITIAL,
        content: content(),
        formats: vec![AdvisoryFormat::Csaf],
        published_at: at,
        embargo_override_reason: reason.map(str::to_owned),
    }
}

fn revised(version: &str, content: AdvisoryContent, summary: &str, at: OffsetDateTime) -> AdvisoryEvent {
    AdvisoryEvent::AdvisoryRevised {
        advisory_id: advisory_id(),
        case_id: case_id(),
        tracking_id: TRACKING_ID.into(),
        version: version.parse().expect("valid version"),
        content,
        change_summary: summary.into(),
        formats: vec![AdvisoryFormat::Csaf, AdvisoryFormat::OpenVex],
        revised_at: at,
    }
}

fn refused_fields(result: Result<Vec<AdvisoryEvent>, AdvisoryError>) -> Vec<String> {
    match result {
        Err(AdvisoryError::Validation(violations)) => violations.into_iter().map(|v| v.field).collect(),
        other => panic!("expected field violations, got {other:?}"),
    }
}

// --- Draft --------------------------------------------------------------------

#[test]
fn draft_records_the_trimmed_content_under_the_case_advisory_id() {
    let mut untidy = content();
    untidy.title = format!("  {}  ", untidy.title);
    untidy.references = vec![" https://acme.example/notes/2.4.1 ".into()];
    untidy.acknowledgments[0].organization = Some(" Example Labs ".into());
    let advisory = given::<Advisory>([])
        .when(AdvisoryCommand::Draft {
            case_id: case_id(),
            tracking_id: " ACME-SA-2026-0001 ".into(),
            content: untidy,
        })
        .then([drafted(content())]);
    let details = advisory.details().expect("drafted");
    assert_eq!(details.id, AdvisoryId::for_case(case_id()));
    assert!(!advisory.is_published());
    assert!(advisory.has_unpublished_changes());
    assert!(advisory.revisions().is_empty());
    assert_eq!(advisory.next_version(), AdvisoryVersion::INITIAL);
}

#[test]
fn blank_credit_fields_are_absent() {
    let mut anonymous = content();
    anonymous.acknowledgments = vec![Acknowledgment {
        name: "Bob".into(),
        organization: Some(" ".into()),
        url: Some(String::new()),
        consent: false,
    }];
    let mut expected = anonymous.clone();
    expected.acknowledgments[0].organization = None;
    expected.acknowledgments[0].url = None;
    given::<Advisory>([]).when(draft(anonymous)).then([drafted(expected)]);
}

#[test]
fn the_tracking_id_is_1_to_100_safe_characters() {
    for tracking_id in ["", "ACME SA 1", "ACME/SA/1", "ACME-SA-ü", &"A".repeat(MAX_TRACKING_ID_CHARS + 1)] {
        let result = given::<Advisory>([])
            .when(AdvisoryCommand::Draft {
                case_id: case_id(),
                tracking_id: tracking_id.into(),
                content: content(),
            })
            .result();
        assert_eq!(refused_fields(result), ["tracking_id"], "{tracking_id:?}");
    }
    for tracking_id in ["a", "ACME-SA-2026-0001", "acme_sa.2026-1", &"A".repeat(MAX_TRACKING_ID_CHARS)] {
        assert_eq!(check_tracking_id(tracking_id), Ok(()), "{tracking_id}");
    }
}

#[test]
fn draft_checks_the_content_against_the_contract_all_at_once() {
    let bad = AdvisoryContent {
        title: " ".into(),
        summary: "s".repeat(MAX_SUMMARY_CHARS + 1),
        details: "d".repeat(64 * 1024 + 1),
        workarounds: "w".repeat(64 * 1024 + 1),
        acknowledgments: vec![Acknowledgment {
            name: String::new(),
            organization: Some("o".repeat(MAX_CREDIT_CHARS + 1)),
            url: Some("http://labs.example".into()),
            consent: true,
        }],
        references: vec![
            "https://acme.example/a".into(),
            "https://acme.example/a".into(),
            "ftp://acme.example".into(),
            " ".into(),
        ],
    };
    let result = given::<Advisory>([]).when(draft(bad)).result();
    assert_eq!(
        refused_fields(result),
        [
            "content.title",
            "content.summary",
            "content.details",
            "content.workarounds",
            "content.acknowledgments[0].name",
            "content.acknowledgments[0].organization",
            "content.acknowledgments[0].url",
            "content.references[1]",
            "content.references[2]",
            "content.references[3]",
        ]
    );
}

#[test]
fn draft_bounds_the_number_of_credits_and_references() {
    let mut many = content();
    many.acknowledgments = vec![many.acknowledgments[0].clone(); MAX_ACKNOWLEDGMENTS + 1];
    many.references = (0..=MAX_REFERENCES).map(|i| format!("https://acme.example/{i}")).collect();
    let result = given::<Advisory>([]).when(draft(many)).result();
    assert_eq!(refused_fields(result), ["content.acknowledgments", "content.references"]);
}

#[test]
fn editing_the_draft_replaces_it_and_the_same_draft_again_is_a_no_op() {
    let mut edited = content();
    edited.summary = "An attacker can read and modify the user database.".into();
    let advisory =
        given::<Advisory>([drafted(content())]).when(draft(edited.clone())).then([drafted(edited.clone())]);
    assert_eq!(advisory.details().map(|d| &d.draft), Some(&edited));
    given::<Advisory>([drafted(content())]).when(draft(content())).then_nothing();
}

#[test]
fn a_draft_for_another_case_is_refused() {
    let other = CaseId::for_report(ReportId::for_request("web-form", "req-2"));
    let result = given::<Advisory>([drafted(content())])
        .when(AdvisoryCommand::Draft { case_id: other, tracking_id: TRACKING_ID.into(), content: content() })
        .result();
    assert_eq!(refused_fields(result), ["case_id"]);
}

#[test]
fn the_tracking_id_may_change_before_publication_but_not_after() {
    let renamed = || AdvisoryCommand::Draft {
        case_id: case_id(),
        tracking_id: "ACME-SA-2026-0002".into(),
        content: content(),
    };
    given::<Advisory>([drafted(content())]).when(renamed()).then_ok();
    let result = given::<Advisory>([drafted(content()), published(NOW, None)]).when(renamed()).result();
    assert_eq!(refused_fields(result), ["tracking_id"]);
}

// --- Publish --------------------------------------------------------------------

#[test]
fn publishing_without_a_draft_is_refused() {
    given::<Advisory>([]).when(publish()).then_error(AdvisoryError::NoDraft);
}

#[test]
fn the_first_publication_is_version_1_0_0_and_starts_the_history() {
    let advisory = given::<Advisory>([drafted(content())]).when(publish()).then([published(NOW, None)]);
    assert_eq!(advisory.current_version(), Some(AdvisoryVersion::INITIAL));
    assert_eq!(
        advisory.revisions(),
        [Revision { version: AdvisoryVersion::INITIAL, date: NOW, summary: "Initial public release".into() }]
    );
    let details = advisory.details().expect("drafted");
    assert_eq!(details.first_published_at, Some(NOW));
    assert!(!advisory.has_unpublished_changes());
}

#[test]
fn publishing_needs_at_least_one_format_and_records_each_once() {
    let result = given::<Advisory>([drafted(content())])
        .when(AdvisoryCommand::Publish {
            formats: vec![],
            embargo_until: None,
            override_reason: None,
            actor_is_admin: true,
            unresolved_products: vec![],
            change_summary: None,
        })
        .result();
    assert_eq!(refused_fields(result), ["formats"]);
    given::<Advisory>([drafted(content())])
        .when(AdvisoryCommand::Publish {
            formats: vec![AdvisoryFormat::Csaf, AdvisoryFormat::Csaf],
            embargo_until: None,
            override_reason: None,
            actor_is_admin: false,
            unresolved_products: vec![],
            change_summary: None,
        })
        .then([published(NOW, None)]);
}

#[test]
fn publishing_while_the_embargo_runs_is_refused() {
    let until = NOW + Duration::days(3);
    for (admin, reason) in
        [(false, None), (false, Some("exploited in the wild")), (true, None), (true, Some("  "))]
    {
        given::<Advisory>([drafted(content())])
            .when(publish_under_embargo(until, admin, reason))
            .then_error(AdvisoryError::EmbargoInEffect { until });
    }
}

#[test]
fn an_administrator_may_override_the_embargo_with_a_reason_that_is_recorded() {
    let advisory = given::<Advisory>([drafted(content())])
        .when(publish_under_embargo(NOW + Duration::days(3), true, Some(" exploited in the wild ")))
        .then([published(NOW, Some("exploited in the wild"))]);
    assert_eq!(
        advisory.details().and_then(|d| d.embargo_override_reason.as_deref()),
        Some("exploited in the wild")
    );
}

#[test]
fn publishing_at_or_after_the_embargo_needs_no_override_and_records_none() {
    for until in [NOW, NOW - Duration::days(1)] {
        given::<Advisory>([drafted(content())])
            .when(publish_under_embargo(until, true, Some("not needed")))
            .then([published(NOW, None)]);
    }
}

#[test]
fn an_override_reason_is_bounded() {
    let reason = "r".repeat(MAX_REASON_CHARS + 1);
    let result = given::<Advisory>([drafted(content())])
        .when(publish_under_embargo(NOW + Duration::days(3), true, Some(&reason)))
        .result();
    assert_eq!(refused_fields(result), ["override_reason"]);
}

#[test]
fn publishing_with_products_without_status_is_refused_listing_them() {
    given::<Advisory>([drafted(content())])
        .when(AdvisoryCommand::Publish {
            formats: vec![AdvisoryFormat::Csaf],
            embargo_until: None,
            override_reason: None,
            actor_is_admin: true,
            unresolved_products: vec![
                "acme-gateway".into(),
                " Acme Router ".into(),
                "acme-gateway".into(),
                " ".into(),
            ],
            change_summary: None,
        })
        .then_error(AdvisoryError::UnresolvedProducts {
            products: vec!["acme-gateway".into(), "Acme Router".into()],
        });
}

// --- Revisions ----------------------------------------------------------------

#[test]
fn a_revision_needs_a_change_summary() {
    for summary in [None, Some(" ")] {
        let result =
            given::<Advisory>([drafted(content()), published(NOW, None)]).when(revise(summary)).result();
        assert_eq!(refused_fields(result), ["change_summary"]);
    }
    let long = "s".repeat(MAX_CHANGE_SUMMARY_CHARS + 1);
    let result =
        given::<Advisory>([drafted(content()), published(NOW, None)]).when(revise(Some(&long))).result();
    assert_eq!(refused_fields(result), ["change_summary"]);
}

#[test]
fn revisions_go_1_0_0_then_1_1_0_then_1_2_0_with_their_history() {
    let day = Duration::days(1);
    let mut edited = content();
    edited.references.push("https://upstream.example/advisory".into());
    let advisory = given::<Advisory>([drafted(content()), published(NOW, None), drafted(edited.clone())])
        .at(NOW + day)
        .when(revise(Some("Added the upstream advisory")))
        .then([revised("1.1.0", edited.clone(), "Added the upstream advisory", NOW + day)]);
    assert_eq!(advisory.current_version().map(|v| v.to_string()), Some("1.1.0".into()));
    assert_eq!(advisory.details().and_then(|d| d.published.as_ref()).map(|p| &p.content), Some(&edited));

    let advisory = given::<Advisory>([
        drafted(content()),
        published(NOW, None),
        drafted(edited.clone()),
        revised("1.1.0", edited.clone(), "Added the upstream advisory", NOW + day),
    ])
    .at(NOW + day * 2)
    .when(revise(Some("Router 1.1 fixed")))
    .then([revised("1.2.0", edited, "Router 1.1 fixed", NOW + day * 2)]);
    let history: Vec<(String, OffsetDateTime, String)> =
        advisory.revisions().iter().map(|r| (r.version.to_string(), r.date, r.summary.clone())).collect();
    assert_eq!(
        history,
        [
            ("1.0.0".to_owned(), NOW, "Initial public release".to_owned()),
            ("1.1.0".to_owned(), NOW + day, "Added the upstream advisory".to_owned()),
            ("1.2.0".to_owned(), NOW + day * 2, "Router 1.1 fixed".to_owned()),
        ]
    );
    assert_eq!(advisory.details().and_then(|d| d.first_published_at), Some(NOW));
}

#[test]
fn a_revision_is_not_held_by_the_embargo_but_by_unresolved_products() {
    let history = [drafted(content()), published(NOW, Some("exploited"))];
    given::<Advisory>(history.clone())
        .when(AdvisoryCommand::Publish {
            formats: vec![AdvisoryFormat::Csaf, AdvisoryFormat::OpenVex],
            embargo_until: Some(NOW + Duration::days(3)),
            override_reason: None,
            actor_is_admin: false,
            unresolved_products: vec![],
            change_summary: Some("More products fixed".into()),
        })
        .then([revised("1.1.0", content(), "More products fixed", NOW)]);
    given::<Advisory>(history)
        .when(AdvisoryCommand::Publish {
            formats: vec![AdvisoryFormat::Csaf],
            embargo_until: None,
            override_reason: None,
            actor_is_admin: false,
            unresolved_products: vec!["acme-toaster".into()],
            change_summary: Some("Toaster added".into()),
        })
        .then_error(AdvisoryError::UnresolvedProducts { products: vec!["acme-toaster".into()] });
}

// --- Versions and events ----------------------------------------------------------

#[test]
fn versions_parse_display_and_order() {
    let version: AdvisoryVersion = "1.10.0".parse().expect("valid");
    assert_eq!(version, AdvisoryVersion { major: 1, minor: 10, patch: 0 });
    assert_eq!(version.to_string(), "1.10.0");
    assert!(version > "1.9.3".parse().expect("valid"));
    assert_eq!(AdvisoryVersion::INITIAL.next_revision().to_string(), "1.1.0");
    assert_eq!(AdvisoryVersion { major: 2, minor: 3, patch: 4 }.next_revision().to_string(), "2.4.0");
    for text in ["", "1", "1.0", "1.0.0.0", "01.0.0", "1.a.0", "-1.0.0", "1..0", " 1.0.0"] {
        assert!(text.parse::<AdvisoryVersion>().is_err(), "{text:?}");
    }
}

#[test]
fn events_carry_the_protobuf_names_and_round_trip_through_json() {
    let events = [
        (drafted(content()), "AdvisoryDrafted"),
        (published(NOW, Some("exploited")), "AdvisoryPublished"),
        (revised("1.1.0", content(), "More products fixed", NOW), "AdvisoryRevised"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.case_id(), case_id());
        assert_eq!(event.at(), NOW);
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], name);
        assert_eq!(serde_json::from_value::<AdvisoryEvent>(json).expect("deserializes"), event);
    }
    let json = serde_json::to_value(published(NOW, None)).expect("serializes");
    assert_eq!(json["version"], "1.0.0");
    assert_eq!(json["formats"], serde_json::json!(["csaf"]));
    assert_eq!(Advisory::AGGREGATE_TYPE, "advisory");
}
