//! Notifications: one test per rule, given past events, when a command,
//! then new events or an error. Fixed clock and fixed jitter.

use super::*;
use crate::ids::ReportId;
use crate::testing::{NOW, given};

fn sub_id() -> SubscriptionId {
    SubscriptionId::for_request("admin", "req-1")
}

fn case_id() -> CaseId {
    CaseId::for_report(ReportId::for_request("web-form", "req-1"))
}

fn settings() -> SubscriptionSettings {
    SubscriptionSettings {
        name: "Legal on critical cases".into(),
        channel: Channel::Webhook,
        endpoint: "https://hooks.example.com/psirt".into(),
        event_types: vec![],
        min_severity: None,
        products: vec![],
        case_statuses: vec![],
        min_escalation_level: None,
        trusted: false,
        secret_ref: "legal-hook".into(),
        enabled: true,
    }
}

fn created() -> SubscriptionEvent {
    SubscriptionEvent::SubscriptionCreated {
        subscription_id: sub_id(),
        settings: settings(),
        created_at: NOW,
    }
}

fn fields(err: SubscriptionError) -> Vec<String> {
    match err {
        SubscriptionError::Validation(v) => v.into_iter().map(|v| v.field).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn create_appends_created() {
    given::<Subscription>([])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: settings() })
        .then([created()]);
}

#[test]
fn create_again_with_the_same_settings_is_a_no_op() {
    given::<Subscription>([created()])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: settings() })
        .then_nothing();
}

#[test]
fn create_again_with_other_settings_is_refused() {
    let other = SubscriptionSettings { name: "Other".into(), ..settings() };
    given::<Subscription>([created()])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: other })
        .then_error(SubscriptionError::AlreadyExists);
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let bad = SubscriptionSettings {
        name: " ".into(),
        endpoint: "http://hooks.example.com/x".into(),
        event_types: vec!["CaseAccepted".into(), "psirt.events.v1.CaseAccepted".into()],
        products: vec![String::new(), "x".repeat(MAX_FILTER_PRODUCT_CHARS + 1)],
        secret_ref: "bad secret".into(),
        ..settings()
    };
    let err = given::<Subscription>([])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: bad })
        .result()
        .expect_err("invalid");
    assert_eq!(
        fields(err),
        ["name", "endpoint", "event_types[0]", "products[0]", "products[1]", "secret_ref"]
    );
}

#[test]
fn lists_over_the_limit_are_refused() {
    let bad = SubscriptionSettings {
        event_types: vec!["psirt.events.v1.CaseAccepted".into(); MAX_EVENT_TYPES + 1],
        products: vec!["p".into(); MAX_FILTER_PRODUCTS + 1],
        ..settings()
    };
    let err = given::<Subscription>([])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: bad })
        .result()
        .expect_err("invalid");
    assert_eq!(fields(err), ["event_types", "products"]);
}

#[test]
fn webhook_urls_must_be_https_except_to_loopback() {
    for ok in [
        "https://hooks.example.com/psirt?x=1",
        "https://hooks.example.com:8443",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]:9000/",
    ] {
        assert_eq!(check_webhook_url(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "ftp://example.com",
        "http://example.com/hook",
        "http://10.0.0.1/hook",
        "https://user:pw@example.com/",
        "https://example.com/#frag",
        "https://exa mple.com/",
        "https://:443/",
        "https://example.com:99999/",
        "hooks.example.com",
    ] {
        assert!(check_webhook_url(bad).is_err(), "{bad}");
    }
    let long = format!("https://example.com/{}", "a".repeat(MAX_ENDPOINT_CHARS));
    assert!(check_webhook_url(&long).is_err());
}

#[test]
fn every_channel_checks_its_own_endpoint() {
    let with = |channel, endpoint: &str, secret: &str| SubscriptionSettings {
        channel,
        endpoint: endpoint.into(),
        secret_ref: secret.into(),
        ..settings()
    };
    for ok in [
        with(Channel::Email, "legal@example.com", ""),
        with(Channel::Email, "legal@example.com, pr@example.com", ""),
        with(Channel::Jira, "SEC", ""),
        with(Channel::Jira, "PSIRT_2", ""),
        with(Channel::ServiceNow, "incident", ""),
        with(Channel::ServiceNow, "sn_vul_vulnerable_item", ""),
    ] {
        let problems = validate_settings(&ok);
        assert!(problems.is_empty(), "{ok:?}: {problems:?}");
    }
    for (bad, field) in [
        (with(Channel::Email, "not-an-address", ""), "endpoint"),
        (with(Channel::Email, "", ""), "endpoint"),
        (with(Channel::Email, &vec!["a@example.com"; MAX_EMAIL_RECIPIENTS + 1].join(","), ""), "endpoint"),
        (with(Channel::Jira, "sec", ""), "endpoint"),
        (with(Channel::Jira, "S", ""), "endpoint"),
        (with(Channel::Jira, "https://jira.example.com", ""), "endpoint"),
        (with(Channel::ServiceNow, "Incident", ""), "endpoint"),
        (with(Channel::ServiceNow, "incident; drop", ""), "endpoint"),
        (with(Channel::Jira, "SEC", "jira-creds"), "secret_ref"),
        (with(Channel::ServiceNow, "incident", "sn-creds"), "secret_ref"),
    ] {
        let err = given::<Subscription>([])
            .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: bad.clone() })
            .result()
            .expect_err("refused");
        assert_eq!(fields(err), [field], "{bad:?}");
    }
    assert_eq!(
        email_recipients(" a@example.com ,b@example.com").collect::<Vec<_>>(),
        ["a@example.com", "b@example.com"]
    );
}

#[test]
fn a_webhook_needs_a_secret() {
    let bad = SubscriptionSettings { secret_ref: String::new(), ..settings() };
    let err = given::<Subscription>([])
        .when(SubscriptionCommand::Create { subscription_id: sub_id(), settings: bad })
        .result()
        .expect_err("no secret");
    assert_eq!(fields(err), ["secret_ref"]);
}

#[test]
fn update_replaces_the_settings_and_the_same_settings_is_a_no_op() {
    let new = SubscriptionSettings { trusted: true, ..settings() };
    let sub = given::<Subscription>([created()])
        .when(SubscriptionCommand::Update { settings: new.clone() })
        .then([SubscriptionEvent::SubscriptionUpdated {
            subscription_id: sub_id(),
            settings: new.clone(),
            updated_at: NOW,
        }]);
    assert_eq!(sub.settings(), Some(&new));
    given::<Subscription>([created()])
        .when(SubscriptionCommand::Update { settings: settings() })
        .then_nothing();
}

#[test]
fn update_of_a_missing_or_deleted_subscription_is_refused() {
    given::<Subscription>([])
        .when(SubscriptionCommand::Update { settings: settings() })
        .then_error(SubscriptionError::NotFound);
    let deleted = SubscriptionEvent::SubscriptionDeleted {
        subscription_id: sub_id(),
        reason: String::new(),
        deleted_at: NOW,
    };
    given::<Subscription>([created(), deleted])
        .when(SubscriptionCommand::Update { settings: settings() })
        .then_error(SubscriptionError::Deleted);
}

#[test]
fn delete_appends_deleted_once() {
    let deleted = SubscriptionEvent::SubscriptionDeleted {
        subscription_id: sub_id(),
        reason: "team moved".into(),
        deleted_at: NOW,
    };
    let sub = given::<Subscription>([created()])
        .when(SubscriptionCommand::Delete { reason: " team moved ".into() })
        .then([deleted.clone()]);
    assert!(sub.is_deleted());
    given::<Subscription>([created(), deleted])
        .when(SubscriptionCommand::Delete { reason: "again".into() })
        .then_nothing();
    given::<Subscription>([])
        .when(SubscriptionCommand::Delete { reason: String::new() })
        .then_error(SubscriptionError::NotFound);
}

// --- routing ---------------------------------------------------------------

fn case(severity: Option<CvssSeverity>) -> CaseFacts {
    CaseFacts {
        case_key: Some("PSIRT-2026-0001".into()),
        severity,
        products: vec!["acme-gateway".into()],
        status: Some(CaseStatus::Accepted),
        embargoed: false,
        ..CaseFacts::default()
    }
}

fn facts<'a>(event_type: &'a str, case: Option<&'a CaseFacts>) -> EventFacts<'a> {
    EventFacts { event_type, case, escalation_level: None }
}

const ACCEPTED: &str = "psirt.events.v1.CaseAccepted";

#[test]
fn an_empty_filter_matches_every_routable_event() {
    let c = case(None);
    assert!(matches(&settings(), &facts(ACCEPTED, Some(&c))));
    assert!(matches(&settings(), &facts("psirt.events.v1.AdvisoryPublished", None)));
    let trusted = SubscriptionSettings { trusted: true, ..settings() };
    assert!(matches(&trusted, &facts("psirt.events.v1.ReportReceived", None)));
}

#[test]
fn notification_events_are_never_routed() {
    for t in [
        "psirt.events.v1.DeliveryScheduled",
        "psirt.events.v1.DeliveryAttempted",
        "psirt.events.v1.SubscriptionCreated",
    ] {
        assert!(!matches(&settings(), &facts(t, None)), "{t}");
    }
    assert!(!is_routable("other.Thing"));
}

#[test]
fn a_disabled_subscription_matches_nothing() {
    let s = SubscriptionSettings { enabled: false, ..settings() };
    assert!(!matches(&s, &facts(ACCEPTED, Some(&case(None)))));
}

#[test]
fn event_types_filter() {
    let s = SubscriptionSettings { event_types: vec![ACCEPTED.into()], ..settings() };
    let c = case(None);
    assert!(matches(&s, &facts(ACCEPTED, Some(&c))));
    assert!(!matches(&s, &facts("psirt.events.v1.CaseOpened", Some(&c))));
}

#[test]
fn min_severity_needs_an_assessed_case_at_or_above_it() {
    let s = SubscriptionSettings { min_severity: Some(CvssSeverity::High), ..settings() };
    assert!(matches(&s, &facts(ACCEPTED, Some(&case(Some(CvssSeverity::Critical))))));
    assert!(matches(&s, &facts(ACCEPTED, Some(&case(Some(CvssSeverity::High))))));
    assert!(!matches(&s, &facts(ACCEPTED, Some(&case(Some(CvssSeverity::Medium))))));
    assert!(!matches(&s, &facts(ACCEPTED, Some(&case(None)))));
    assert!(!matches(&s, &facts(ACCEPTED, None)));
}

#[test]
fn products_match_without_case() {
    let s = SubscriptionSettings { products: vec!["ACME-Gateway".into()], ..settings() };
    assert!(matches(&s, &facts(ACCEPTED, Some(&case(None)))));
    let other = SubscriptionSettings { products: vec!["acme-router".into()], ..settings() };
    assert!(!matches(&other, &facts(ACCEPTED, Some(&case(None)))));
    assert!(!matches(&s, &facts(ACCEPTED, None)));
}

#[test]
fn case_status_filter() {
    let s =
        SubscriptionSettings { case_statuses: vec![CaseStatus::Fixed, CaseStatus::Accepted], ..settings() };
    assert!(matches(&s, &facts(ACCEPTED, Some(&case(None)))));
    let fixed_only = SubscriptionSettings { case_statuses: vec![CaseStatus::Fixed], ..settings() };
    assert!(!matches(&fixed_only, &facts(ACCEPTED, Some(&case(None)))));
}

#[test]
fn escalation_level_filter_applies_to_escalations_only() {
    let s = SubscriptionSettings { min_escalation_level: Some(EscalationLevel::Management), ..settings() };
    let c = case(None);
    let escalated = |level| EventFacts {
        event_type: "psirt.events.v1.CaseEscalated",
        case: Some(&c),
        escalation_level: Some(level),
    };
    assert!(matches(&s, &escalated(EscalationLevel::Executive)));
    assert!(!matches(&s, &escalated(EscalationLevel::Team)));
    assert!(matches(&s, &facts(ACCEPTED, Some(&c))));
}

#[test]
fn untrusted_destinations_get_redacted_notices_until_disclosure() {
    let trusted = SubscriptionSettings { trusted: true, ..settings() };
    let mut c = case(None);
    // No embargo, not disclosed: still redacted.
    assert_eq!(exposure(false, ACCEPTED, Some(&c)), Exposure::Redacted);
    assert!(redacted(&settings(), &facts(ACCEPTED, Some(&c))));
    c.embargoed = true;
    assert_eq!(exposure(false, ACCEPTED, Some(&c)), Exposure::Redacted);
    assert!(!redacted(&trusted, &facts(ACCEPTED, Some(&c))));
    // Unknown facts: redacted.
    assert_eq!(exposure(false, ACCEPTED, None), Exposure::Redacted);
    assert_eq!(exposure(true, ACCEPTED, None), Exposure::Full);
    // Disclosed: the public facts, never the whole event.
    c.embargoed = false;
    c.disclosed = true;
    assert_eq!(exposure(false, ACCEPTED, Some(&c)), Exposure::Public);
    assert!(redacted(&settings(), &facts(ACCEPTED, Some(&c))), "public facts are not the full event");
    // Rows written before `disclosed` existed say so by status.
    let old_row = CaseFacts { status: Some(CaseStatus::Disclosed), ..CaseFacts::default() };
    assert!(old_row.is_public());
    let redacted_facts =
        CaseFacts { title: Some("t".into()), products: vec!["p".into()], ..c.clone() }.redacted();
    assert_eq!((redacted_facts.title, redacted_facts.products.len()), (None, 0));
}

#[test]
fn report_events_never_reach_untrusted_destinations() {
    let trusted = SubscriptionSettings { trusted: true, ..settings() };
    let mut c = case(None);
    c.disclosed = true;
    for event_type in REPORT_EVENT_TYPES {
        assert_eq!(exposure(false, event_type, Some(&c)), Exposure::Withheld, "{event_type}");
        assert!(!matches(&settings(), &facts(event_type, Some(&c))), "{event_type}");
        assert!(!matches(&settings(), &facts(event_type, None)), "{event_type}");
        assert!(matches(&trusted, &facts(event_type, None)), "{event_type}");
    }
}

// --- backoff ---------------------------------------------------------------

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(60),
    }
}

#[test]
fn backoff_grows_exponentially_with_full_jitter_and_a_cap() {
    let p = policy();
    assert_eq!(p.backoff(1, 1.0, None), Duration::from_secs(1));
    assert_eq!(p.backoff(2, 1.0, None), Duration::from_secs(2));
    assert_eq!(p.backoff(3, 1.0, None), Duration::from_secs(4));
    assert_eq!(p.backoff(4, 0.5, None), Duration::from_secs(4));
    assert_eq!(p.backoff(10, 1.0, None), Duration::from_secs(10), "capped");
    assert_eq!(p.backoff(100, 1.0, None), Duration::from_secs(10), "no overflow");
    assert_eq!(p.backoff(3, 0.0, None), Duration::ZERO, "full jitter draws from zero");
    assert_eq!(p.backoff(1, f64::NAN, None), Duration::from_secs(1));
}

#[test]
fn backoff_honours_retry_after_up_to_its_cap() {
    let p = policy();
    assert_eq!(p.backoff(1, 0.5, Some(Duration::from_secs(30))), Duration::from_secs(30));
    assert_eq!(p.backoff(1, 0.5, Some(Duration::from_secs(3600))), Duration::from_secs(60));
    assert_eq!(p.backoff(4, 1.0, Some(Duration::from_millis(10))), Duration::from_secs(8));
}

#[test]
fn policy_problems_are_named() {
    let bad = RetryPolicy { max_attempts: 0, initial_backoff: Duration::ZERO, ..policy() };
    let fields: Vec<_> = bad.problems().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["max_attempts", "initial_backoff_ms"]);
    assert!(RetryPolicy::default().problems().is_empty());
}

#[test]
fn http_statuses_classify() {
    assert_eq!(classify_http_status(200), AttemptKind::Succeeded);
    assert_eq!(classify_http_status(204), AttemptKind::Succeeded);
    for s in [408, 429, 500, 503] {
        assert_eq!(classify_http_status(s), AttemptKind::RetryableFailure, "{s}");
    }
    for s in [301, 400, 401, 404, 410] {
        assert_eq!(classify_http_status(s), AttemptKind::PermanentFailure, "{s}");
    }
}

// --- deliveries ------------------------------------------------------------

fn delivery_id() -> DeliveryId {
    DeliveryId::for_event(EventId::derive(case_id().into(), "accepted"), sub_id())
}

fn scheduled_at(at: OffsetDateTime) -> Scheduled {
    Scheduled {
        delivery_id: delivery_id(),
        subscription_id: sub_id(),
        case_id: Some(case_id()),
        event_id: EventId::derive(case_id().into(), "accepted"),
        event_type: ACCEPTED.into(),
        event_sequence: 42,
        channel: Channel::Webhook,
        redacted: false,
        scheduled_at: at,
    }
}

fn scheduled() -> DeliveryEvent {
    DeliveryEvent::DeliveryScheduled(scheduled_at(NOW))
}

fn result(kind: AttemptKind, status: Option<u16>, retry_after: Option<Duration>) -> AttemptResult {
    AttemptResult {
        kind,
        http_status: status,
        error: if kind == AttemptKind::Succeeded { String::new() } else { format!("HTTP {status:?}") },
        retry_after,
        external_reference: String::new(),
        duration_ms: 12,
    }
}

fn attempt(result: AttemptResult) -> DeliveryCommand {
    DeliveryCommand::RecordAttempt { result, attempted_at: NOW, policy: policy(), jitter: 1.0 }
}

fn attempted(n: u32, kind: AttemptKind, status: Option<u16>, next: Option<OffsetDateTime>) -> DeliveryEvent {
    DeliveryEvent::DeliveryAttempted(Attempted {
        delivery_id: delivery_id(),
        subscription_id: sub_id(),
        case_id: Some(case_id()),
        attempt: n,
        kind,
        http_status: status,
        error: if kind == AttemptKind::Succeeded { String::new() } else { format!("HTTP {status:?}") },
        duration_ms: 12,
        attempted_at: NOW,
        next_attempt_at: next,
    })
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

#[test]
fn schedule_once() {
    let d = given::<Delivery>([]).when(DeliveryCommand::Schedule(scheduled_at(NOW))).then([scheduled()]);
    assert_eq!(d.status(), Some(DeliveryStatus::Pending));
    assert_eq!(d.next_attempt_at(), Some(NOW));
    given::<Delivery>([scheduled()]).when(DeliveryCommand::Schedule(scheduled_at(NOW))).then_nothing();
}

#[test]
fn a_success_records_the_attempt_and_the_delivery() {
    let d = given::<Delivery>([scheduled()])
        .when(attempt(result(AttemptKind::Succeeded, Some(200), None)))
        .then([
            attempted(1, AttemptKind::Succeeded, Some(200), None),
            DeliveryEvent::DeliverySucceeded {
                delivery_id: delivery_id(),
                subscription_id: sub_id(),
                case_id: Some(case_id()),
                attempts: 1,
                external_reference: String::new(),
                delivered_at: NOW,
            },
        ]);
    assert_eq!(d.status(), Some(DeliveryStatus::Delivered));
}

#[test]
fn a_retryable_failure_schedules_the_next_attempt_with_backoff() {
    let d = given::<Delivery>([scheduled()])
        .when(attempt(result(AttemptKind::RetryableFailure, Some(500), None)))
        .then([attempted(1, AttemptKind::RetryableFailure, Some(500), Some(NOW + secs(1)))]);
    assert_eq!(d.next_attempt_at(), Some(NOW + secs(1)));
    given::<Delivery>([
        scheduled(),
        attempted(1, AttemptKind::RetryableFailure, Some(500), Some(NOW + secs(1))),
    ])
    .when(attempt(result(AttemptKind::RetryableFailure, Some(503), None)))
    .then([attempted(2, AttemptKind::RetryableFailure, Some(503), Some(NOW + secs(2)))]);
}

#[test]
fn retry_after_postpones_the_next_attempt() {
    given::<Delivery>([scheduled()])
        .when(attempt(result(AttemptKind::RetryableFailure, Some(429), Some(Duration::from_secs(30)))))
        .then([attempted(1, AttemptKind::RetryableFailure, Some(429), Some(NOW + secs(30)))]);
}

#[test]
fn the_last_retryable_failure_dead_letters() {
    let history = [
        scheduled(),
        attempted(1, AttemptKind::RetryableFailure, Some(500), Some(NOW + secs(1))),
        attempted(2, AttemptKind::RetryableFailure, Some(500), Some(NOW + secs(2))),
    ];
    let d = given::<Delivery>(history)
        .when(attempt(result(AttemptKind::RetryableFailure, Some(500), None)))
        .then([
            attempted(3, AttemptKind::RetryableFailure, Some(500), None),
            DeliveryEvent::DeliveryDeadLettered {
                delivery_id: delivery_id(),
                subscription_id: sub_id(),
                case_id: Some(case_id()),
                attempts: 3,
                last_error: "HTTP Some(500)".into(),
                dead_lettered_at: NOW,
            },
        ]);
    assert_eq!(d.status(), Some(DeliveryStatus::Dead));
    assert_eq!(d.total_attempts(), 3);
}

#[test]
fn a_permanent_failure_dead_letters_at_once() {
    given::<Delivery>([scheduled()])
        .when(attempt(result(AttemptKind::PermanentFailure, Some(404), None)))
        .then([
            attempted(1, AttemptKind::PermanentFailure, Some(404), None),
            DeliveryEvent::DeliveryDeadLettered {
                delivery_id: delivery_id(),
                subscription_id: sub_id(),
                case_id: Some(case_id()),
                attempts: 1,
                last_error: "HTTP Some(404)".into(),
                dead_lettered_at: NOW,
            },
        ]);
}

#[test]
fn attempts_on_settled_or_missing_deliveries_are_refused() {
    given::<Delivery>([])
        .when(attempt(result(AttemptKind::Succeeded, Some(200), None)))
        .then_error(DeliveryError::NotFound);
    let done =
        given::<Delivery>([scheduled()]).when(attempt(result(AttemptKind::Succeeded, Some(200), None)));
    let events = done.result().expect("delivered");
    let mut history = vec![scheduled()];
    history.extend(events);
    given::<Delivery>(history)
        .when(attempt(result(AttemptKind::Succeeded, Some(200), None)))
        .then_error(DeliveryError::NotPending(DeliveryStatus::Delivered));
}

#[test]
fn redeliver_starts_a_new_series_for_a_dead_delivery_only() {
    let later = NOW + secs(3600);
    let dead = vec![
        scheduled(),
        attempted(1, AttemptKind::PermanentFailure, Some(400), None),
        DeliveryEvent::DeliveryDeadLettered {
            delivery_id: delivery_id(),
            subscription_id: sub_id(),
            case_id: Some(case_id()),
            attempts: 1,
            last_error: "bad".into(),
            dead_lettered_at: NOW,
        },
    ];
    let d = given::<Delivery>(dead)
        .at(later)
        .when(DeliveryCommand::Redeliver)
        .then([DeliveryEvent::DeliveryScheduled(scheduled_at(later))]);
    assert_eq!(d.status(), Some(DeliveryStatus::Pending));
    assert_eq!((d.series(), d.attempts(), d.total_attempts()), (2, 0, 1));
    given::<Delivery>([scheduled()]).when(DeliveryCommand::Redeliver).then_nothing();
    given::<Delivery>([]).when(DeliveryCommand::Redeliver).then_error(DeliveryError::NotFound);
    let delivered = vec![
        scheduled(),
        attempted(1, AttemptKind::Succeeded, Some(200), None),
        DeliveryEvent::DeliverySucceeded {
            delivery_id: delivery_id(),
            subscription_id: sub_id(),
            case_id: Some(case_id()),
            attempts: 1,
            external_reference: String::new(),
            delivered_at: NOW,
        },
    ];
    given::<Delivery>(delivered).when(DeliveryCommand::Redeliver).then_error(DeliveryError::AlreadyDelivered);
}

#[test]
fn errors_are_clipped_to_their_limit() {
    let mut r = result(AttemptKind::RetryableFailure, None, None);
    r.error = "x".repeat(MAX_ERROR_CHARS * 2);
    let events = given::<Delivery>([scheduled()]).when(attempt(r)).result().expect("recorded");
    let DeliveryEvent::DeliveryAttempted(a) = &events[0] else { panic!("attempted first") };
    assert_eq!(a.error.chars().count(), MAX_ERROR_CHARS);
}

#[test]
fn abandon_dead_letters_a_pending_delivery_only() {
    let dead = DeliveryEvent::DeliveryDeadLettered {
        delivery_id: delivery_id(),
        subscription_id: sub_id(),
        case_id: Some(case_id()),
        attempts: 0,
        last_error: "subscription deleted".into(),
        dead_lettered_at: NOW,
    };
    given::<Delivery>([scheduled()])
        .when(DeliveryCommand::Abandon { reason: "subscription deleted".into() })
        .then([dead.clone()]);
    given::<Delivery>([scheduled(), dead])
        .when(DeliveryCommand::Abandon { reason: "again".into() })
        .then_nothing();
}
