//! The remediation plan: one test per rule, given past events, when a
//! command, then new events or an error. Fixed clock, no sleeping.

use time::Duration;

use super::*;
use crate::ids::ReportId;
use crate::testing::{NOW, given};

const GATEWAY: &str = "acme-gateway";
const ROUTER: &str = "Acme Router";

fn case_id() -> CaseId {
    CaseId::for_report(ReportId::for_request("web-form", "req-1"))
}

fn plan_id() -> PlanId {
    PlanId::for_case(case_id())
}

fn key() -> CaseKey {
    CaseKey::new(2026, 1).expect("valid key")
}

fn action_id(request: &str) -> ActionId {
    ActionId::for_request(plan_id(), request)
}

fn products() -> Vec<AffectedProduct> {
    vec![
        AffectedProduct {
            product: GATEWAY.into(),
            versions: VersionSpec::Range("vers:semver/>=2.0.0|<2.4.1".into()),
        },
        AffectedProduct {
            product: ROUTER.into(),
            versions: VersionSpec::Explicit(vec!["1.0".into(), "1.1".into()]),
        },
    ]
}

fn target(product: &str) -> AffectedProduct {
    AffectedProduct { product: product.into(), versions: VersionSpec::Range("vers:semver/<2.4.1".into()) }
}

fn opened(severity: Option<CvssSeverity>) -> PlanEvent {
    PlanEvent::RemediationPlanOpened {
        plan_id: plan_id(),
        case_id: case_id(),
        case_key: key(),
        severity,
        sla_policy: "default@1".into(),
        affected_products: products(),
        opened_at: NOW,
    }
}

fn opened_critical() -> PlanEvent {
    opened(Some(CvssSeverity::Critical))
}

fn plan_action(request: &str, product: &str, action: RemediationAction) -> PlanCommand {
    PlanCommand::PlanAction {
        action_id: action_id(request),
        target: target(product),
        action,
        owner_team: "gateway-team".into(),
        target_release: "2.4.1".into(),
        due_override: None,
        description: "parameterise the query".into(),
    }
}

/// Plans a fix of the gateway with its due date overridden.
fn plan_overridden(request: &str, due_at: OffsetDateTime, reason: &str) -> PlanCommand {
    PlanCommand::PlanAction {
        action_id: action_id(request),
        target: target(GATEWAY),
        action: RemediationAction::Fix,
        owner_team: "gateway-team".into(),
        target_release: "2.4.1".into(),
        due_override: Some((due_at, reason.into())),
        description: "parameterise the query".into(),
    }
}

fn planned(request: &str, product: &str, action: RemediationAction, due_at: OffsetDateTime) -> PlanEvent {
    PlanEvent::RemediationActionPlanned {
        plan_id: plan_id(),
        case_id: case_id(),
        action_id: action_id(request),
        target: target(product),
        action,
        owner_team: "gateway-team".into(),
        target_release: Some("2.4.1".into()),
        due_at,
        due_date_override_reason: None,
        description: "parameterise the query".into(),
        planned_at: NOW,
    }
}

fn overridden(request: &str, due_at: OffsetDateTime) -> PlanEvent {
    PlanEvent::RemediationActionPlanned {
        plan_id: plan_id(),
        case_id: case_id(),
        action_id: action_id(request),
        target: target(GATEWAY),
        action: RemediationAction::Fix,
        owner_team: "gateway-team".into(),
        target_release: Some("2.4.1".into()),
        due_at,
        due_date_override_reason: Some("customer contract".into()),
        description: "parameterise the query".into(),
        planned_at: NOW,
    }
}

fn released(request: Option<&str>, product: &str) -> PlanEvent {
    PlanEvent::ReleaseRecorded {
        plan_id: plan_id(),
        case_id: case_id(),
        action_id: request.map(action_id),
        product: product.into(),
        fixed_version: "2.4.1".into(),
        released_at: NOW,
        release_notes_url: Some("https://acme.example/notes/2.4.1".into()),
        recorded_at: NOW,
    }
}

fn verified(request: &str) -> PlanEvent {
    PlanEvent::RemediationVerified {
        plan_id: plan_id(),
        case_id: case_id(),
        action_id: action_id(request),
        verification_note: "reproduced against 2.4.1: fixed".into(),
        verified_at: NOW,
    }
}

fn breached(request: &str, deadline: OffsetDateTime) -> PlanEvent {
    PlanEvent::SlaBreached {
        case_id: case_id(),
        action_id: action_id(request),
        product: GATEWAY.into(),
        deadline,
        breached_at: deadline,
        severity: Some(CvssSeverity::Critical),
        sla_policy: "default@1".into(),
    }
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// The fields a command was refused on.
fn refused_fields(result: Result<Vec<PlanEvent>, PlanError>) -> Vec<String> {
    match result {
        Err(PlanError::Validation(violations)) => violations.into_iter().map(|v| v.field).collect(),
        other => panic!("expected field violations, got {other:?}"),
    }
}

/// A plan deciding under `policy`, rebuilt from `events`.
fn plan_under(policy: RemediationPolicy, events: &[PlanEvent]) -> Plan {
    let mut plan = Plan::with_policy(policy);
    for event in events {
        plan.apply(event);
    }
    plan
}

fn policy(json: &str) -> RemediationPolicy {
    serde_json::from_str(json).expect("valid policy")
}

// --- Open -------------------------------------------------------------------

#[test]
fn open_records_the_plan_with_the_policy_label() {
    let plan = given::<Plan>([])
        .when(PlanCommand::Open {
            case_id: case_id(),
            case_key: key(),
            severity: Some(CvssSeverity::Critical),
            products: products(),
        })
        .then([opened_critical()]);
    let details = plan.details().expect("opened");
    assert_eq!(details.id, PlanId::for_case(case_id()));
    assert_eq!(details.sla_policy, "default@1");
    assert_eq!(details.opened_at, NOW);
    assert_eq!(plan.version(), 1);
    assert!(!plan.is_complete(), "a plan without actions is not complete");
}

#[test]
fn opening_twice_is_a_no_op() {
    given::<Plan>([opened_critical()])
        .when(PlanCommand::Open { case_id: case_id(), case_key: key(), severity: None, products: vec![] })
        .then_nothing();
}

#[test]
fn opening_for_another_case_is_refused() {
    let other = CaseId::for_report(ReportId::for_request("web-form", "req-2"));
    let result = given::<Plan>([opened_critical()])
        .when(PlanCommand::Open { case_id: other, case_key: key(), severity: None, products: vec![] })
        .result();
    assert_eq!(refused_fields(result), ["case_id"]);
}

#[test]
fn open_checks_the_products_against_the_contract() {
    let mut entries = products();
    entries
        .push(AffectedProduct { product: " ACME-gateway ".into(), versions: VersionSpec::Range("*".into()) });
    entries.push(AffectedProduct { product: "x".into(), versions: VersionSpec::Explicit(vec![]) });
    entries.push(AffectedProduct { product: "y".into(), versions: VersionSpec::Range("r".repeat(501)) });
    let result = given::<Plan>([])
        .when(PlanCommand::Open { case_id: case_id(), case_key: key(), severity: None, products: entries })
        .result();
    assert_eq!(
        refused_fields(result),
        ["products[2].product", "products[3].versions", "products[4].versions"]
    );

    let too_many: Vec<AffectedProduct> =
        (0..=MAX_AFFECTED_PRODUCTS).map(|i| target(&format!("p{i}"))).collect();
    let result = given::<Plan>([])
        .when(PlanCommand::Open { case_id: case_id(), case_key: key(), severity: None, products: too_many })
        .result();
    assert_eq!(refused_fields(result), ["products"]);
}

#[test]
fn commands_on_a_plan_not_opened_are_not_found() {
    let commands = [
        plan_action("a1", GATEWAY, RemediationAction::Fix),
        PlanCommand::RecordRelease {
            action_id: None,
            product: GATEWAY.into(),
            fixed_version: "2.4.1".into(),
            released_at: NOW,
            release_notes_url: String::new(),
        },
        PlanCommand::SetProductStatus {
            product: GATEWAY.into(),
            version: "2.4.1".into(),
            status: ProductStatus::Fixed,
            justification: None,
            statement: String::new(),
        },
        PlanCommand::Verify { action_id: action_id("a1"), note: String::new() },
        PlanCommand::RecomputeDueDates { severity: None, reason: String::new() },
    ];
    for command in commands {
        given::<Plan>([]).when(command).then_error(PlanError::NotFound);
    }
}

// --- PlanAction -------------------------------------------------------------

#[test]
fn an_action_is_due_when_the_policy_says_for_the_plan_severity() {
    for (severity, window) in [
        (Some(CvssSeverity::Critical), 7),
        (Some(CvssSeverity::High), 30),
        (Some(CvssSeverity::Medium), 90),
        (Some(CvssSeverity::Low), 180),
        (Some(CvssSeverity::None), 180),
        (None, 90),
    ] {
        // Planned two days after opening: the window counts from the opening.
        let plan = given::<Plan>([opened(severity)])
            .at(NOW + days(2))
            .when(plan_action("a1", GATEWAY, RemediationAction::Fix))
            .then_ok();
        let action = plan.details().and_then(|d| d.action(action_id("a1"))).expect("planned");
        assert_eq!(action.due_at, NOW + days(window), "{severity:?}");
        assert_eq!(action.planned_at, NOW + days(2));
    }
}

#[test]
fn plan_action_records_the_action() {
    let plan = given::<Plan>([opened_critical()])
        .when(plan_action("a1", GATEWAY, RemediationAction::Fix))
        .then([planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))]);
    assert_eq!(plan.next_due(), Some(NOW + days(7)));
}

#[test]
fn the_target_product_is_matched_without_case_and_recorded_as_the_plan_spells_it() {
    given::<Plan>([opened_critical()])
        .when(plan_action("a1", "  ACME-GATEWAY ", RemediationAction::Fix))
        .then([planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))]);
}

#[test]
fn a_target_product_not_in_the_plan_is_refused() {
    let result = given::<Plan>([opened_critical()])
        .when(plan_action("a1", "acme-toaster", RemediationAction::Fix))
        .result();
    assert_eq!(refused_fields(result), ["target.product"]);
}

#[test]
fn plan_action_checks_every_field_at_once() {
    let result = given::<Plan>([opened_critical()])
        .when(PlanCommand::PlanAction {
            action_id: action_id("a1"),
            target: AffectedProduct { product: GATEWAY.into(), versions: VersionSpec::Explicit(vec![]) },
            action: RemediationAction::Fix,
            owner_team: " ".into(),
            target_release: "v".repeat(MAX_VERSION_CHARS + 1),
            due_override: None,
            description: "d".repeat(64 * 1024 + 1),
        })
        .result();
    assert_eq!(refused_fields(result), ["target.versions", "owner_team", "target_release", "description"]);
}

#[test]
fn an_overridden_due_date_needs_a_reason() {
    let result =
        given::<Plan>([opened_critical()]).when(plan_overridden("a1", NOW + days(60), "  ")).result();
    assert_eq!(refused_fields(result), ["due_override.reason"]);
}

#[test]
fn an_overridden_due_date_is_kept_with_its_reason() {
    let plan = given::<Plan>([opened_critical()])
        .when(plan_overridden("a1", NOW + days(60), " customer contract "))
        .then([overridden("a1", NOW + days(60))]);
    assert_eq!(plan.next_due(), Some(NOW + days(60)));
}

#[test]
fn an_overridden_due_date_before_the_opening_is_refused() {
    let result =
        given::<Plan>([opened_critical()]).when(plan_overridden("a1", NOW - days(1), "backdated")).result();
    assert_eq!(refused_fields(result), ["due_override.due_at"]);
}

#[test]
fn the_same_action_id_replans_the_action() {
    let plan =
        given::<Plan>([opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))])
            .when(plan_action("a1", ROUTER, RemediationAction::Workaround))
            .then([planned("a1", ROUTER, RemediationAction::Workaround, NOW + days(7))]);
    let details = plan.details().expect("opened");
    assert_eq!(details.actions.len(), 1);
    assert_eq!(details.actions[0].action, RemediationAction::Workaround);
    assert_eq!(details.actions[0].target.product, ROUTER);
}

#[test]
fn replanning_an_action_as_it_stands_is_a_no_op() {
    given::<Plan>([opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))])
        .when(plan_action("a1", GATEWAY, RemediationAction::Fix))
        .then_nothing();
}

#[test]
fn a_plan_holds_at_most_the_contract_number_of_actions() {
    let mut history = vec![opened_critical()];
    history.extend(
        (0..MAX_ACTIONS).map(|i| planned(&format!("a{i}"), GATEWAY, RemediationAction::Fix, NOW + days(7))),
    );
    let result = given::<Plan>(history.clone())
        .when(plan_action("one-more", GATEWAY, RemediationAction::Fix))
        .result();
    assert_eq!(refused_fields(result), ["action_id"]);
    // Re-planning one of them is still fine.
    given::<Plan>(history).when(plan_action("a0", ROUTER, RemediationAction::Fix)).then_ok();
}

// --- Policy -----------------------------------------------------------------

#[test]
fn the_policy_defaults_are_the_documented_ones() {
    let policy = RemediationPolicy::default();
    assert_eq!(policy.name(), "default@1");
    for (severity, window) in [
        (Some(CvssSeverity::Critical), "7d"),
        (Some(CvssSeverity::High), "30d"),
        (Some(CvssSeverity::Medium), "90d"),
        (Some(CvssSeverity::Low), "180d"),
        (Some(CvssSeverity::None), "180d"),
        (None, "90d"),
    ] {
        assert_eq!(policy.window(severity, GATEWAY).to_string(), window, "{severity:?}");
    }
    assert_eq!(policy.validate(), vec![]);
    assert_eq!(serde_json::from_str::<RemediationPolicy>("{}").expect("valid"), policy);
}

#[test]
fn a_product_window_applies_to_its_product_and_falls_back_to_the_global_ones() {
    let policy = policy(
        r#"{"name": "strict", "version": 3, "critical": "5d",
            "products": {"ACME-Gateway": {"critical": "3d", "high": "12d"}}}"#,
    );
    assert_eq!(policy.name(), "strict@3");
    assert_eq!(policy.validate(), vec![]);
    assert_eq!(policy.due_at(NOW, Some(CvssSeverity::Critical), GATEWAY), NOW + days(3));
    assert_eq!(policy.due_at(NOW, Some(CvssSeverity::High), "acme-gateway"), NOW + days(12));
    assert_eq!(policy.due_at(NOW, Some(CvssSeverity::Medium), GATEWAY), NOW + days(90));
    assert_eq!(policy.due_at(NOW, Some(CvssSeverity::Critical), ROUTER), NOW + days(5));
}

#[test]
fn planned_actions_follow_the_per_product_policy() {
    let policy = policy(r#"{"products": {"acme-gateway": {"critical": "3d"}}}"#);
    let plan = plan_under(policy, &[opened_critical()]);
    let events = plan.handle(plan_action("a1", GATEWAY, RemediationAction::Fix), NOW).expect("accepted");
    assert_eq!(events, [planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(3))]);
    let events = plan.handle(plan_action("a2", ROUTER, RemediationAction::Fix), NOW).expect("accepted");
    assert_eq!(events, [planned("a2", ROUTER, RemediationAction::Fix, NOW + days(7))]);
}

#[test]
fn an_opened_plan_records_the_label_of_its_policy() {
    let plan = Plan::with_policy(RemediationPolicy::named("acme", 4));
    let events = plan
        .handle(
            PlanCommand::Open { case_id: case_id(), case_key: key(), severity: None, products: products() },
            NOW,
        )
        .expect("accepted");
    let [PlanEvent::RemediationPlanOpened { sla_policy, .. }] = events.as_slice() else {
        panic!("unexpected events {events:?}")
    };
    assert_eq!(sla_policy, "acme@4");
}

#[test]
fn policy_configuration_typos_are_refused() {
    for json in [
        r#"{"critcal": "7d"}"#,
        r#"{"critical": "7 days"}"#,
        r#"{"products": {"acme-gateway": {"hihg": "1d"}}}"#,
        r#"{"critical": "-1d"}"#,
    ] {
        assert!(serde_json::from_str::<RemediationPolicy>(json).is_err(), "{json}");
    }
}

#[test]
fn policy_validate_lists_every_problem_by_field() {
    let policy = policy(
        r#"{"name": "a@b", "critical": "0s", "high": "100d",
            "products": {"gw": {"low": "1d"}, "GW": {}}}"#,
    );
    let fields: Vec<String> = policy.validate().into_iter().map(|v| v.field).collect();
    assert_eq!(
        fields,
        [
            "name",
            "critical",
            "high",
            "products.GW.critical",
            "products.GW.high",
            "products.gw",
            "products.gw.critical",
            "products.gw.high",
            "products.gw.medium",
        ]
    );
}

#[test]
fn the_policy_round_trips_through_its_configuration() {
    let policy = policy(r#"{"version": 2, "products": {"acme-gateway": {"critical": "3d"}}}"#);
    let json = serde_json::to_value(&policy).expect("serializes");
    assert_eq!(json["critical"], "7d");
    assert_eq!(json["products"]["acme-gateway"], serde_json::json!({"critical": "3d"}));
    assert_eq!(serde_json::from_value::<RemediationPolicy>(json).expect("deserializes"), policy);
}

// --- RecomputeDueDates --------------------------------------------------------

#[test]
fn due_dates_move_when_the_severity_changes() {
    let plan = given::<Plan>([
        opened(Some(CvssSeverity::High)),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(30)),
        planned("a2", ROUTER, RemediationAction::Workaround, NOW + days(30)),
    ])
    .at(NOW + days(3))
    .when(PlanCommand::RecomputeDueDates {
        severity: Some(CvssSeverity::Critical),
        reason: "rescored after exploit published".into(),
    })
    .then([PlanEvent::RemediationDueDatesRecomputed {
        plan_id: plan_id(),
        case_id: case_id(),
        severity: Some(CvssSeverity::Critical),
        sla_policy: "default@1".into(),
        changes: vec![
            DueDateChange {
                action_id: action_id("a1"),
                previous_due_at: NOW + days(30),
                due_at: NOW + days(7),
            },
            DueDateChange {
                action_id: action_id("a2"),
                previous_due_at: NOW + days(30),
                due_at: NOW + days(7),
            },
        ],
        reason: "rescored after exploit published".into(),
        recomputed_at: NOW + days(3),
    }]);
    let details = plan.details().expect("opened");
    assert_eq!(details.severity, Some(CvssSeverity::Critical));
    assert!(details.actions.iter().all(|a| a.due_at == NOW + days(7)));
    assert_eq!(plan.next_due(), Some(NOW + days(7)));
}

#[test]
fn recomputing_keeps_overridden_due_dates_and_does_not_list_them() {
    let plan = given::<Plan>([
        opened(Some(CvssSeverity::High)),
        overridden("a1", NOW + days(60)),
        planned("a2", ROUTER, RemediationAction::Fix, NOW + days(30)),
    ])
    .when(PlanCommand::RecomputeDueDates {
        severity: Some(CvssSeverity::Critical),
        reason: "rescored".into(),
    })
    .then_ok();
    let details = plan.details().expect("opened");
    assert_eq!(details.action(action_id("a1")).map(|a| a.due_at), Some(NOW + days(60)));
    assert_eq!(details.action(action_id("a2")).map(|a| a.due_at), Some(NOW + days(7)));
}

#[test]
fn recomputing_when_nothing_changes_is_a_no_op() {
    given::<Plan>([opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))])
        .when(PlanCommand::RecomputeDueDates {
            severity: Some(CvssSeverity::Critical),
            reason: "again".into(),
        })
        .then_nothing();
    given::<Plan>([opened(Some(CvssSeverity::High)), overridden("a1", NOW + days(60))])
        .when(PlanCommand::RecomputeDueDates { severity: Some(CvssSeverity::High), reason: "again".into() })
        .then_nothing();
}

#[test]
fn a_new_severity_is_recorded_even_without_actions_and_later_actions_follow_it() {
    let plan = given::<Plan>([opened(Some(CvssSeverity::Low))])
        .when(PlanCommand::RecomputeDueDates {
            severity: Some(CvssSeverity::Critical),
            reason: "rescored".into(),
        })
        .then([PlanEvent::RemediationDueDatesRecomputed {
            plan_id: plan_id(),
            case_id: case_id(),
            severity: Some(CvssSeverity::Critical),
            sla_policy: "default@1".into(),
            changes: vec![],
            reason: "rescored".into(),
            recomputed_at: NOW,
        }]);
    let events = plan.handle(plan_action("a1", GATEWAY, RemediationAction::Fix), NOW).expect("accepted");
    assert_eq!(events, [planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))]);
}

#[test]
fn a_new_policy_moves_the_due_dates_and_is_recorded() {
    let history = [opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))];
    let plan = plan_under(policy(r#"{"version": 2, "critical": "5d"}"#), &history);
    let events = plan
        .handle(
            PlanCommand::RecomputeDueDates {
                severity: Some(CvssSeverity::Critical),
                reason: "policy v2".into(),
            },
            NOW,
        )
        .expect("accepted");
    let [PlanEvent::RemediationDueDatesRecomputed { sla_policy, changes, .. }] = events.as_slice() else {
        panic!("unexpected events {events:?}")
    };
    assert_eq!(sla_policy, "default@2");
    assert_eq!(changes.iter().map(|c| c.due_at).collect::<Vec<_>>(), [NOW + days(5)]);
}

#[test]
fn a_recomputation_reason_is_bounded() {
    let result = given::<Plan>([opened_critical()])
        .when(PlanCommand::RecomputeDueDates { severity: None, reason: "r".repeat(MAX_REASON_CHARS + 1) })
        .result();
    assert_eq!(refused_fields(result), ["reason"]);
}

// --- RecordRelease ------------------------------------------------------------

fn record_release(request: Option<&str>, product: &str, url: &str) -> PlanCommand {
    PlanCommand::RecordRelease {
        action_id: request.map(action_id),
        product: product.into(),
        fixed_version: " 2.4.1 ".into(),
        released_at: NOW,
        release_notes_url: url.into(),
    }
}

#[test]
fn a_release_is_recorded_with_the_plan_spelling_of_the_product() {
    given::<Plan>([opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))])
        .when(record_release(Some("a1"), "ACME-gateway", "https://acme.example/notes/2.4.1"))
        .then([released(Some("a1"), GATEWAY)]);
}

#[test]
fn a_release_of_a_product_not_in_the_plan_is_refused() {
    let result = given::<Plan>([opened_critical()])
        .when(record_release(None, "acme-toaster", "https://acme.example/notes"))
        .result();
    assert_eq!(refused_fields(result), ["product"]);
}

#[test]
fn release_notes_must_be_https_and_versions_bounded() {
    for url in
        ["http://acme.example/notes", "ftp://acme.example", "https://", "https://acme.example/a b", "notes"]
    {
        let result = given::<Plan>([opened_critical()]).when(record_release(None, GATEWAY, url)).result();
        assert_eq!(refused_fields(result), ["release_notes_url"], "{url}");
    }
    let long = format!("https://acme.example/{}", "n".repeat(MAX_URL_CHARS));
    let result = given::<Plan>([opened_critical()]).when(record_release(None, GATEWAY, &long)).result();
    assert_eq!(refused_fields(result), ["release_notes_url"]);
    let result = given::<Plan>([opened_critical()])
        .when(PlanCommand::RecordRelease {
            action_id: None,
            product: GATEWAY.into(),
            fixed_version: " ".into(),
            released_at: NOW,
            release_notes_url: String::new(),
        })
        .result();
    assert_eq!(refused_fields(result), ["fixed_version"]);
}

#[test]
fn a_release_without_notes_is_recorded_without_a_url() {
    let events = given::<Plan>([opened_critical()]).when(record_release(None, GATEWAY, "  ")).result();
    let Ok(events) = events else { panic!("refused: {events:?}") };
    assert!(matches!(events.as_slice(), [PlanEvent::ReleaseRecorded { release_notes_url: None, .. }]));
}

#[test]
fn a_release_for_an_unknown_action_is_not_found() {
    given::<Plan>([opened_critical()])
        .when(record_release(Some("nope"), GATEWAY, ""))
        .then_error(PlanError::ActionNotFound { plan_id: plan_id(), action_id: action_id("nope") });
}

#[test]
fn a_release_for_an_action_of_another_product_is_refused() {
    let result =
        given::<Plan>([opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))])
            .when(record_release(Some("a1"), ROUTER, ""))
            .result();
    assert_eq!(refused_fields(result), ["product"]);
}

#[test]
fn recording_the_same_release_again_is_a_no_op() {
    given::<Plan>([
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
        released(Some("a1"), GATEWAY),
    ])
    .when(record_release(Some("a1"), GATEWAY, "https://acme.example/notes/2.4.1"))
    .then_nothing();
}

// --- SetProductStatus -----------------------------------------------------------

fn set_status(product: &str, status: ProductStatus, justification: Option<VexJustification>) -> PlanCommand {
    PlanCommand::SetProductStatus {
        product: product.into(),
        version: "2.4.0".into(),
        status,
        justification,
        statement: "update to 2.4.1".into(),
    }
}

fn status_set(status: ProductStatus, justification: Option<VexJustification>) -> PlanEvent {
    PlanEvent::ProductStatusSet {
        plan_id: plan_id(),
        case_id: case_id(),
        product: GATEWAY.into(),
        version: "2.4.0".into(),
        status,
        justification,
        statement: "update to 2.4.1".into(),
        set_at: NOW,
    }
}

#[test]
fn not_affected_needs_a_justification() {
    let result = given::<Plan>([opened_critical()])
        .when(set_status(GATEWAY, ProductStatus::KnownNotAffected, None))
        .result();
    assert_eq!(refused_fields(result), ["justification"]);
    given::<Plan>([opened_critical()])
        .when(set_status(
            GATEWAY,
            ProductStatus::KnownNotAffected,
            Some(VexJustification::ComponentNotPresent),
        ))
        .then([status_set(ProductStatus::KnownNotAffected, Some(VexJustification::ComponentNotPresent))]);
}

#[test]
fn a_justification_is_refused_for_any_other_status() {
    for status in [ProductStatus::KnownAffected, ProductStatus::Fixed, ProductStatus::UnderInvestigation] {
        let result = given::<Plan>([opened_critical()])
            .when(set_status(GATEWAY, status, Some(VexJustification::InlineMitigationsAlreadyExist)))
            .result();
        assert_eq!(refused_fields(result), ["justification"], "{status:?}");
        given::<Plan>([opened_critical()])
            .when(set_status(GATEWAY, status, None))
            .then([status_set(status, None)]);
    }
}

#[test]
fn a_status_for_a_product_not_in_the_plan_is_refused() {
    let result = given::<Plan>([opened_critical()])
        .when(set_status("acme-toaster", ProductStatus::Fixed, None))
        .result();
    assert_eq!(refused_fields(result), ["product"]);
}

#[test]
fn a_status_replaces_the_previous_one_of_the_same_version_and_the_same_one_is_a_no_op() {
    let plan = given::<Plan>([opened_critical(), status_set(ProductStatus::KnownAffected, None)])
        .when(set_status("ACME-GATEWAY", ProductStatus::Fixed, None))
        .then([status_set(ProductStatus::Fixed, None)]);
    let details = plan.details().expect("opened");
    assert_eq!(details.product_statuses.len(), 1);
    assert_eq!(details.product_statuses[0].status, ProductStatus::Fixed);
    assert_eq!(plan.unresolved_products(), [ROUTER]);
    given::<Plan>([opened_critical(), status_set(ProductStatus::Fixed, None)])
        .when(set_status(GATEWAY, ProductStatus::Fixed, None))
        .then_nothing();
}

#[test]
fn a_status_version_is_required_and_bounded() {
    for version in [String::new(), "v".repeat(MAX_STATUS_VERSION_CHARS + 1)] {
        let result = given::<Plan>([opened_critical()])
            .when(PlanCommand::SetProductStatus {
                product: GATEWAY.into(),
                version,
                status: ProductStatus::Fixed,
                justification: None,
                statement: String::new(),
            })
            .result();
        assert_eq!(refused_fields(result), ["version"]);
    }
}

// --- Verify -------------------------------------------------------------------

#[test]
fn verify_records_the_verification() {
    let plan = given::<Plan>([
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Mitigation, NOW + days(7)),
    ])
    .when(PlanCommand::Verify { action_id: action_id("a1"), note: "reproduced against 2.4.1: fixed".into() })
    .then([verified("a1")]);
    assert!(plan.is_complete());
}

#[test]
fn replanning_keeps_a_verification_only_for_the_same_kind_and_product() {
    let history = [
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Mitigation, NOW + days(7)),
        verified("a1"),
    ];
    let plan = given::<Plan>(history.clone())
        .when(PlanCommand::PlanAction {
            action_id: action_id("a1"),
            target: target(GATEWAY),
            action: RemediationAction::Mitigation,
            owner_team: "ops".into(),
            target_release: String::new(),
            due_override: None,
            description: "WAF rule".into(),
        })
        .then_ok();
    assert!(plan.is_complete());
    let plan = given::<Plan>(history).when(plan_action("a1", GATEWAY, RemediationAction::Fix)).then_ok();
    assert!(!plan.is_complete());
    assert_eq!(
        plan.details().and_then(|d| d.action(action_id("a1"))).map(|a| a.verification.is_some()),
        Some(false)
    );
}

#[test]
fn verifying_an_unknown_action_is_not_found() {
    given::<Plan>([opened_critical()])
        .when(PlanCommand::Verify { action_id: action_id("nope"), note: String::new() })
        .then_error(PlanError::ActionNotFound { plan_id: plan_id(), action_id: action_id("nope") });
}

#[test]
fn verifying_twice_is_a_no_op() {
    given::<Plan>([
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
        verified("a1"),
    ])
    .when(PlanCommand::Verify { action_id: action_id("a1"), note: "again".into() })
    .then_nothing();
}

// --- Overdue actions, breaches, completion ----------------------------------------

fn overdue(request: &str, product: &str, due_at: OffsetDateTime) -> OverdueAction {
    OverdueAction { action_id: action_id(request), product: product.into(), due_at }
}

#[test]
fn an_action_is_overdue_from_its_due_date_on() {
    let plan = Plan::from_events(&[
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
    ]);
    assert_eq!(plan.overdue_actions(NOW + days(7) - Duration::SECOND), vec![]);
    assert_eq!(plan.overdue_actions(NOW + days(7)), vec![overdue("a1", GATEWAY, NOW + days(7))]);
    assert_eq!(plan.overdue_actions(NOW + days(30)), vec![overdue("a1", GATEWAY, NOW + days(7))]);
}

#[test]
fn a_release_naming_the_action_stops_its_clock() {
    for action in [RemediationAction::Fix, RemediationAction::Workaround] {
        let plan = Plan::from_events(&[
            opened_critical(),
            planned("a1", GATEWAY, action, NOW + days(7)),
            released(Some("a1"), GATEWAY),
        ]);
        assert_eq!(plan.overdue_actions(NOW + days(8)), vec![], "{action:?}");
        assert_eq!(plan.next_due(), None);
        assert!(plan.is_complete());
    }
}

#[test]
fn any_release_of_the_product_stops_a_fix_but_not_a_workaround() {
    let history =
        |action| [opened_critical(), planned("a1", GATEWAY, action, NOW + days(7)), released(None, GATEWAY)];
    let fix = Plan::from_events(&history(RemediationAction::Fix));
    assert_eq!(fix.overdue_actions(NOW + days(8)), vec![]);
    let workaround = Plan::from_events(&history(RemediationAction::Workaround));
    assert_eq!(workaround.overdue_actions(NOW + days(8)), vec![overdue("a1", GATEWAY, NOW + days(7))]);
    // A release of another product stops nothing.
    let other = Plan::from_events(&[
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
        released(None, ROUTER),
    ]);
    assert_eq!(other.overdue_actions(NOW + days(8)).len(), 1);
}

#[test]
fn a_verified_action_is_never_overdue() {
    let plan = Plan::from_events(&[
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Mitigation, NOW + days(7)),
        verified("a1"),
    ]);
    assert_eq!(plan.overdue_actions(NOW + days(8)), vec![]);
}

#[test]
fn a_deadline_breaches_exactly_once() {
    let mut history = vec![opened_critical(), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7))];
    history.push(breached("a1", NOW + days(7)));
    let plan = Plan::from_events(&history);
    assert_eq!(plan.overdue_actions(NOW + days(8)), vec![]);
    assert_eq!(plan.next_due(), None, "nothing left to wake up for");
    // The same breach redelivered changes nothing.
    history.push(breached("a1", NOW + days(7)));
    let plan = Plan::from_events(&history);
    assert_eq!(plan.details().map(|d| d.breaches.len()), Some(1));
    assert_eq!(plan.overdue_actions(NOW + days(100)), vec![]);
}

#[test]
fn a_moved_due_date_is_a_new_deadline_that_breaches_again_once() {
    let plan = given::<Plan>([
        opened(Some(CvssSeverity::High)),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(30)),
        breached("a1", NOW + days(30)),
    ])
    .at(NOW + days(31))
    .when(PlanCommand::RecomputeDueDates {
        severity: Some(CvssSeverity::Critical),
        reason: "rescored".into(),
    })
    .then_ok();
    assert_eq!(plan.overdue_actions(NOW + days(31)), vec![overdue("a1", GATEWAY, NOW + days(7))]);
    let plan = given::<Plan>(
        [opened(Some(CvssSeverity::High)), planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(30))]
            .into_iter()
            .chain([breached("a1", NOW + days(30))])
            .chain([PlanEvent::RemediationDueDatesRecomputed {
                plan_id: plan_id(),
                case_id: case_id(),
                severity: Some(CvssSeverity::Critical),
                sla_policy: "default@1".into(),
                changes: vec![DueDateChange {
                    action_id: action_id("a1"),
                    previous_due_at: NOW + days(30),
                    due_at: NOW + days(7),
                }],
                reason: "rescored".into(),
                recomputed_at: NOW + days(31),
            }])
            .chain([breached("a1", NOW + days(7))]),
    )
    .when(PlanCommand::RecomputeDueDates { severity: Some(CvssSeverity::Critical), reason: "again".into() })
    .then_nothing();
    assert_eq!(plan.overdue_actions(NOW + days(40)), vec![]);
}

#[test]
fn replanning_with_a_new_due_date_can_breach_again() {
    let plan = given::<Plan>([
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
        breached("a1", NOW + days(7)),
    ])
    .at(NOW + days(8))
    .when(plan_overridden("a1", NOW + days(14), "vendor patch slipped"))
    .then_ok();
    assert_eq!(plan.overdue_actions(NOW + days(10)), vec![]);
    assert_eq!(plan.next_due(), Some(NOW + days(14)));
    assert_eq!(plan.overdue_actions(NOW + days(14)), vec![overdue("a1", GATEWAY, NOW + days(14))]);
}

#[test]
fn overdue_actions_come_earliest_first_and_next_due_is_the_earliest_running() {
    let plan = Plan::from_events(&[
        opened_critical(),
        overridden("late", NOW + days(20)),
        planned("early", ROUTER, RemediationAction::Workaround, NOW + days(7)),
        planned("done", GATEWAY, RemediationAction::Mitigation, NOW + days(3)),
        verified("done"),
    ]);
    assert_eq!(plan.next_due(), Some(NOW + days(7)));
    assert_eq!(
        plan.overdue_actions(NOW + days(21)),
        vec![overdue("early", ROUTER, NOW + days(7)), overdue("late", GATEWAY, NOW + days(20))]
    );
    assert_eq!(Plan::default().next_due(), None);
    assert_eq!(Plan::default().overdue_actions(NOW), vec![]);
}

#[test]
fn a_plan_is_complete_when_every_action_is_released_or_verified() {
    let mut history = vec![opened_critical()];
    assert!(!Plan::from_events(&history).is_complete());
    history.push(planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)));
    history.push(planned("a2", ROUTER, RemediationAction::Workaround, NOW + days(7)));
    assert!(!Plan::from_events(&history).is_complete());
    history.push(released(None, GATEWAY));
    assert!(!Plan::from_events(&history).is_complete());
    history.push(verified("a2"));
    assert!(Plan::from_events(&history).is_complete());
}

#[test]
fn the_summary_counts_actions_and_maps_product_statuses() {
    let plan = Plan::from_events(&[
        opened_critical(),
        planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)),
        planned("a2", ROUTER, RemediationAction::Workaround, NOW + days(7)),
        overridden("a3", NOW + days(60)),
        planned("a4", ROUTER, RemediationAction::Mitigation, NOW + days(7)),
        released(Some("a1"), GATEWAY),
        verified("a1"),
        verified("a4"),
        status_set(ProductStatus::Fixed, None),
    ]);
    let summary = plan.summary(NOW + days(8)).expect("opened");
    assert_eq!(
        summary,
        PlanSummary {
            actions: 4,
            open: 1,
            released: 2, // a1 by id, a3 as a fix of the released product
            verified: 2,
            overdue: 1,
            product_statuses: BTreeMap::from([
                (GATEWAY.to_owned(), vec![("2.4.0".to_owned(), ProductStatus::Fixed)]),
                (ROUTER.to_owned(), vec![]),
            ]),
        }
    );
    assert_eq!(Plan::default().summary(NOW), None);
}

// --- Events -------------------------------------------------------------------

#[test]
fn events_carry_the_protobuf_names_and_round_trip_through_json() {
    let events = [
        (opened_critical(), "RemediationPlanOpened"),
        (planned("a1", GATEWAY, RemediationAction::Fix, NOW + days(7)), "RemediationActionPlanned"),
        (released(Some("a1"), GATEWAY), "ReleaseRecorded"),
        (
            status_set(ProductStatus::KnownNotAffected, Some(VexJustification::VulnerableCodeNotPresent)),
            "ProductStatusSet",
        ),
        (verified("a1"), "RemediationVerified"),
        (
            PlanEvent::RemediationDueDatesRecomputed {
                plan_id: plan_id(),
                case_id: case_id(),
                severity: None,
                sla_policy: "default@1".into(),
                changes: vec![],
                reason: String::new(),
                recomputed_at: NOW,
            },
            "RemediationDueDatesRecomputed",
        ),
        (breached("a1", NOW + days(7)), "SlaBreached"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.case_id(), case_id());
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], name);
        assert_eq!(serde_json::from_value::<PlanEvent>(json).expect("deserializes"), event);
    }
    assert_eq!(Plan::AGGREGATE_TYPE, "remediation");
}

#[test]
fn https_urls_are_checked_for_scheme_host_and_spaces() {
    for url in ["https://acme.example", "HTTPS://acme.example/a?b#c", "https://user@acme.example:8443/x"] {
        assert_eq!(check_https_url(url), Ok(()), "{url}");
    }
    for url in ["", "acme.example", "http://acme.example", "https:///path", "https://:443/", "https://a b"] {
        assert!(check_https_url(url).is_err(), "{url:?}");
    }
}

#[test]
fn an_action_for_a_product_known_not_affected_or_fixed_is_done_and_never_overdue() {
    let mut history =
        vec![opened_critical(), planned("a1", GATEWAY, RemediationAction::Workaround, NOW + days(1))];
    assert!(!Plan::from_events(&history).is_complete());
    assert_eq!(Plan::from_events(&history).overdue_actions(NOW + days(2)).len(), 1);
    history.push(status_set(ProductStatus::KnownNotAffected, Some(VexJustification::ComponentNotPresent)));
    let plan = Plan::from_events(&history);
    assert!(plan.is_complete(), "nothing left to do for a product that is not affected");
    assert_eq!(plan.overdue_actions(NOW + days(2)), vec![]);
    // Back to affected: the action runs again.
    history.push(status_set(ProductStatus::KnownAffected, None));
    let plan = Plan::from_events(&history);
    assert!(!plan.is_complete());
    assert_eq!(plan.overdue_actions(NOW + days(2)).len(), 1);
}

#[test]
fn a_product_is_settled_by_statuses_that_all_leave_nothing_to_do() {
    use ProductStatus::{Fixed, KnownAffected, KnownNotAffected};
    let statuses =
        [("Portal", Some(KnownNotAffected)), (" portal ", Some(Fixed)), ("Gateway", Some(KnownAffected))];
    // Case and surrounding spaces do not make another product.
    assert!(is_product_settled("PORTAL", statuses));
    assert!(!is_product_settled("gateway", statuses), "a known affected version is work left");
    assert!(!is_product_settled("agent", statuses), "no status yet is not settled");
    // A status this build does not know settles nothing.
    assert!(!is_product_settled("portal", [("portal", Some(Fixed)), ("portal", None)]));
    assert!(same_product("Ünïcode ", "ünïcode") && !same_product("portal", "portal2"));
}
