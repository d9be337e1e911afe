//! The notification service in-process: real nats-server, real PostgreSQL
//! and SQLite, real gRPC, and a real HTTP receiver (axum on a free port).
//! Case events are appended to the stream as triage would write them.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use psirt_domain::{CaseId, ReportId, SubscriptionId};
use psirt_proto::{common, events, notification as api};
use psirt_testkit::{BACKENDS, Backend, eventually};
use support::*;
use time::OffsetDateTime;
use tonic::Code;
use tonic_types::StatusExt;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_matching_event_reaches_the_webhook_once_as_a_signed_cloudevent() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let receiver = Receiver::start(&[], 200).await?;
        let sub = h.subscribe("sub-1", trusted(webhook("Legal", &receiver.url()))).await?;
        let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
        let delivery = delivery_of(case, "accepted", &sub);

        let delivered = h.wait_for_status(delivery, api::DeliveryStatus::Delivered).await?;
        assert_eq!((delivered.attempts, delivered.series, delivered.last_http_status), (1, 1, 200));
        assert_eq!(delivered.case_id, case.to_string());
        assert_eq!(delivered.event_type, ACCEPTED);
        h.routed_everything().await?;

        let requests = receiver.requests();
        assert_eq!(requests.len(), 1, "{backend:?}: one CloudEvent for the one matching event");
        let r = &requests[0];
        verify_signature(r);
        assert_eq!(r.json["specversion"], "1.0");
        assert_eq!(r.id, delivery.to_string(), "the CloudEvent id is the delivery id");
        assert_eq!(r.json["type"], ACCEPTED);
        assert_eq!(r.json["subject"], case.to_string());
        assert_eq!(r.json["source"], "urn:psirt:notification");
        assert_eq!(r.json["datacontenttype"], "application/json");
        assert!(r.json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(r.json["data"]["caseId"], case.to_string());
        assert_eq!(r.json["data"]["severity"], "SEVERITY_RATING_HIGH");
        assert_eq!(r.json["data"]["affectedProducts"][0]["product"], "acme-gateway");

        // The case's other event did not match: one delivery in all.
        let all = h
            .deliveries(api::ListDeliveriesRequest { case_id: case.to_string(), ..Default::default() })
            .await?;
        assert_eq!(all.len(), 1);
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_non_matching_event_sends_nothing() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let receiver = Receiver::start(&[], 200).await?;
    let critical_only = events::SubscriptionSettings {
        min_severity: common::SeverityRating::Critical.into(),
        ..webhook("Execs", &receiver.url())
    };
    h.subscribe("sub-critical", critical_only).await?;
    let (low, accepted_seq) = h.accepted_case(common::SeverityRating::Low, false).await?;

    h.routed_everything().await?;
    assert_eq!(h.store.stream_last_sequence().await?, accepted_seq, "routing appended nothing");
    assert!(h.deliveries(api::ListDeliveriesRequest::default()).await?.is_empty());
    assert_eq!(receiver.count(), 0);

    // A matching event after it is delivered, and it is the only one.
    let (critical, _) = h.accepted_case(common::SeverityRating::Critical, false).await?;
    eventually(DEADLINE, "the critical case's delivery", || async { (receiver.count() >= 1).then_some(()) })
        .await?;
    h.routed_everything().await?;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json["subject"], critical.to_string());
    assert_ne!(requests[0].json["subject"], low.to_string());
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_status_filter_delivers_only_events_of_cases_in_those_statuses() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let receiver = Receiver::start(&[], 200).await?;
    let accepted_only = events::SubscriptionSettings {
        case_statuses: vec![common::CaseStatus::Accepted.into()],
        ..webhook("Remediation leads", &receiver.url())
    };
    let subscription = h.subscribe("sub-accepted", accepted_only).await?;
    assert_eq!(
        subscription.settings.as_ref().map(|s| s.case_statuses.clone()),
        Some(vec![common::CaseStatus::Accepted as i32]),
        "the filter is stored"
    );
    // CaseOpened (RECEIVED) does not match; CaseAccepted (ACCEPTED) does.
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    h.wait_for_status(delivery_of(case, "accepted", &subscription), api::DeliveryStatus::Delivered).await?;
    h.routed_everything().await?;
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the acceptance: {:?}",
        requests.iter().map(|r| &r.json["type"]).collect::<Vec<_>>()
    );
    assert_eq!(requests[0].json["type"], "psirt.events.v1.CaseAccepted");
    // An unspecified status is refused.
    let bad = h
        .client()
        .await?
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "sub-bad-status".to_owned(),
            settings: Some(events::SubscriptionSettings {
                case_statuses: vec![common::CaseStatus::Unspecified.into()],
                ..webhook("Bad", &receiver.url())
            }),
        })
        .await
        .expect_err("unspecified status");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_embargoed_case_reaches_an_untrusted_webhook_without_details() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let receiver = Receiver::start(&[], 200).await?;
    let untrusted = h.subscribe("sub-untrusted", webhook("Support", &receiver.url())).await?;
    let trusted = h
        .subscribe(
            "sub-trusted",
            events::SubscriptionSettings { trusted: true, ..webhook("PSIRT core", &receiver.url()) },
        )
        .await?;
    let (case, _) = h.accepted_case(common::SeverityRating::Critical, true).await?;

    let redacted =
        h.wait_for_status(delivery_of(case, "accepted", &untrusted), api::DeliveryStatus::Delivered).await?;
    assert!(redacted.redacted);
    let full =
        h.wait_for_status(delivery_of(case, "accepted", &trusted), api::DeliveryStatus::Delivered).await?;
    assert!(!full.redacted);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let notice = requests.iter().find(|r| r.id == redacted.delivery_id).expect("redacted delivery received");
    verify_signature(notice);
    let data = notice.json["data"].as_object().expect("data object");
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["caseId", "caseKey", "redacted", "status"]), "only id, key and status");
    assert_eq!(data["caseId"], case.to_string());
    assert!(data["caseKey"].as_str().is_some_and(|k| k.starts_with("PSIRT-2026-")));
    assert_eq!(data["status"], "CASE_STATUS_ACCEPTED");
    assert!(!String::from_utf8_lossy(&notice.body).contains("acme-gateway"), "no product leaks");

    let detailed = requests.iter().find(|r| r.id == full.delivery_id).expect("trusted delivery received");
    assert_eq!(detailed.json["data"]["affectedProducts"][0]["product"], "acme-gateway");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_failing_three_times_gets_four_attempts_and_the_delivery_ends_delivered()
-> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let receiver = Receiver::start(&[500, 500, 500], 200).await?;
        let sub = h.subscribe("sub-flaky", webhook("Flaky", &receiver.url())).await?;
        let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
        let id = delivery_of(case, "accepted", &sub);

        let delivered = h.wait_for_status(id, api::DeliveryStatus::Delivered).await?;
        assert_eq!((delivered.attempts, delivered.total_attempts), (4, 4));
        let requests = receiver.requests();
        assert_eq!(requests.len(), 4, "{backend:?}: three failures and the success");
        assert!(requests.iter().all(|r| r.id == id.to_string()), "the same CloudEvent id on every attempt");
        for r in &requests {
            verify_signature(r);
        }
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_always_failing_receiver_ends_dead_and_redelivery_sends_it_again() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start_with(backend, |c| c.delivery.max_attempts = 3).await?;
        let receiver = Receiver::start(&[], 503).await?;
        let sub = h.subscribe("sub-down", webhook("Down", &receiver.url())).await?;
        let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
        let id = delivery_of(case, "accepted", &sub);

        let dead = h.wait_for_status(id, api::DeliveryStatus::Dead).await?;
        assert_eq!(dead.attempts, 3);
        assert_eq!(dead.last_http_status, 503);
        assert_eq!(receiver.count(), 3, "{backend:?}: the configured attempts, no more");
        let dead_list = h
            .deliveries(api::ListDeliveriesRequest {
                status: api::DeliveryStatus::Dead.into(),
                ..Default::default()
            })
            .await?;
        assert_eq!(dead_list.len(), 1, "visible as dead");

        receiver.answer(200);
        let mut client = h.client().await?;
        let request = api::RedeliverDeliveryRequest {
            delivery_id: id.to_string(),
            request_id: "redeliver-1".to_owned(),
            expected_version: Some(dead.version),
        };
        let pending =
            client.redeliver_delivery(request.clone()).await?.into_inner().delivery.expect("delivery");
        assert_eq!(
            (pending.status, pending.series, pending.attempts),
            (api::DeliveryStatus::Pending as i32, 2, 0)
        );
        let delivered = h.wait_for_status(id, api::DeliveryStatus::Delivered).await?;
        assert_eq!((delivered.series, delivered.attempts, delivered.total_attempts), (2, 1, 4));
        let requests = receiver.requests();
        assert_eq!(requests.len(), 4);
        assert!(requests.iter().all(|r| r.id == id.to_string()));

        // The same request again appends nothing; a new one is refused now.
        let again = client.redeliver_delivery(request).await?.into_inner().delivery.expect("delivery");
        assert_eq!(again.series, 2);
        let refused = client
            .redeliver_delivery(api::RedeliverDeliveryRequest {
                delivery_id: id.to_string(),
                request_id: "redeliver-2".to_owned(),
                expected_version: None,
            })
            .await
            .expect_err("delivered");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_and_timeouts_are_honoured() -> anyhow::Result<()> {
    let mut h =
        Harness::start_with(Backend::Sqlite, |c| c.webhook.timeout = Duration::from_millis(200)).await?;
    let receiver = Receiver::scripted(
        vec![
            Reply { status: 429, retry_after: Some("1"), delay: Duration::ZERO },
            // Answers after the timeout: a retryable failure.
            Reply { status: 200, retry_after: None, delay: Duration::from_secs(2) },
        ],
        200,
    )
    .await?;
    let sub = h.subscribe("sub-busy", webhook("Busy", &receiver.url())).await?;
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    let delivered =
        h.wait_for_status(delivery_of(case, "accepted", &sub), api::DeliveryStatus::Delivered).await?;
    assert_eq!(delivered.attempts, 3, "429, timeout, success");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(waited >= Duration::from_secs(1), "Retry-After: 1 honoured, waited {waited:?}");
    assert!(requests.iter().all(|r| r.id == delivered.delivery_id));
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_error_parks_the_delivery_at_once() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let receiver = Receiver::start(&[], 404).await?;
    let sub = h.subscribe("sub-gone", webhook("Gone", &receiver.url())).await?;
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    let dead = h.wait_for_status(delivery_of(case, "accepted", &sub), api::DeliveryStatus::Dead).await?;
    assert_eq!((dead.attempts, dead.last_http_status), (1, 404));
    assert_eq!(receiver.count(), 1);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_the_same_events_again_schedules_and_sends_nothing_twice() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let receiver = Receiver::start(&[], 200).await?;
        let sub = h.subscribe("sub-replay", webhook("Replay", &receiver.url())).await?;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
            ids.push(delivery_of(case, "accepted", &sub));
        }
        for id in &ids {
            h.wait_for_status(*id, api::DeliveryStatus::Delivered).await?;
        }
        h.routed_everything().await?;
        let last = h.store.stream_last_sequence().await?;

        // Routing starts over from the first event, as after losing its
        // database: every event is routed again.
        h.restart_after(&[
            "DELETE FROM notification_routes",
            "DELETE FROM notification_cases",
            "UPDATE projection_checkpoints SET last_sequence = 0 WHERE name = 'notification-routing'",
        ])
        .await?;
        h.routed_everything().await?;
        assert_eq!(
            h.store.stream_last_sequence().await?,
            last,
            "{backend:?}: nothing appended by the replay"
        );
        let all = h.deliveries(api::ListDeliveriesRequest::default()).await?;
        assert_eq!(all.len(), 3);
        assert!(
            all.iter().all(|d| d.status == api::DeliveryStatus::Delivered as i32 && d.total_attempts == 1)
        );
        assert_eq!(receiver.count(), 3, "each sent once");
        h.stop().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_subscription_drops_its_pending_deliveries() -> anyhow::Result<()> {
    let mut h = Harness::start_with(Backend::Sqlite, |c| c.delivery.max_attempts = 100).await?;
    let receiver = Receiver::start(&[], 503).await?;
    let sub = h.subscribe("sub-retiring", webhook("Retiring", &receiver.url())).await?;
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    eventually(DEADLINE, "a first attempt", || async { (receiver.count() >= 1).then_some(()) }).await?;
    h.client()
        .await?
        .delete_subscription(api::DeleteSubscriptionRequest {
            subscription_id: sub.subscription_id.clone(),
            request_id: "retire".to_owned(),
            reason: "endpoint retired".to_owned(),
            ..Default::default()
        })
        .await?;
    let dead = h.wait_for_status(delivery_of(case, "accepted", &sub), api::DeliveryStatus::Dead).await?;
    assert_eq!(dead.last_error, "subscription deleted");
    let attempts = receiver.count();
    assert_eq!(u32::try_from(attempts)?, dead.total_attempts, "no attempt after the drop");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_of_one_case_arrive_in_stream_order() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    // The first attempts fail, so later events wait behind the first one.
    let receiver = Receiver::start(&[500, 500], 200).await?;
    let all_events =
        events::SubscriptionSettings { event_types: vec![], ..webhook("Everything", &receiver.url()) };
    let sub = h.subscribe("sub-all", all_events).await?;
    let case = CaseId::for_report(ReportId::new());
    let mut expected = Vec::new();
    for i in 0..10 {
        let tag = format!("assigned-{i}");
        h.case_event(
            case,
            &tag,
            &events::CaseAssigned {
                case_id: case.to_string(),
                assignee: format!("analyst-{i}"),
                assigned_at: ts(OffsetDateTime::now_utc()),
                ..Default::default()
            },
        )
        .await?;
        expected.push(delivery_of(case, &tag, &sub).to_string());
    }
    eventually(DEADLINE, "ten deliveries", || async {
        let done = h
            .deliveries(api::ListDeliveriesRequest {
                case_id: case.to_string(),
                status: api::DeliveryStatus::Delivered.into(),
                ..Default::default()
            })
            .await
            .ok()?;
        (done.len() == 10).then_some(())
    })
    .await?;
    let mut seen: Vec<String> = Vec::new();
    for r in receiver.requests() {
        if seen.last() != Some(&r.id) {
            seen.push(r.id.clone());
        }
    }
    assert_eq!(seen, expected, "in stream order, each delivered before the next is tried");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_field_violations_and_nothing_appended() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let before = h.store.stream_last_sequence().await?;
    let mut client = h.client().await?;
    let bad = events::SubscriptionSettings {
        name: String::new(),
        channel: events::DeliveryChannel::Webhook.into(),
        endpoint: "http://hooks.example.com/psirt".to_owned(),
        event_types: vec!["psirt.events.v1.NoSuchEvent".to_owned(), "CaseAccepted".to_owned()],
        products: vec!["x".repeat(201)],
        secret_ref: "unknown-secret".to_owned(),
        enabled: true,
        ..Default::default()
    };
    let status = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "bad-1".to_owned(),
            settings: Some(bad),
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: BTreeSet<String> = status
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    let expected: BTreeSet<String> = [
        "settings.name",
        "settings.endpoint",
        "settings.event_types[0]",
        "settings.event_types[1]",
        "settings.products[0]",
        "settings.secret_ref",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(fields, expected);

    let missing = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "bad 2".to_owned(),
            settings: None,
        })
        .await
        .expect_err("invalid");
    assert_eq!(missing.code(), Code::InvalidArgument);

    // A tracker subscription names a project and carries no secret: the
    // credentials are the service's [jira] configuration.
    let jira = events::SubscriptionSettings {
        channel: events::DeliveryChannel::Jira.into(),
        endpoint: "https://jira.example.com/projects/SEC".to_owned(),
        ..webhook("Jira", "https://hooks.example.com")
    };
    let refused = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "bad-3".to_owned(),
            settings: Some(jira),
        })
        .await
        .expect_err("a URL is no project key, and the secret is not the subscription's");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: BTreeSet<String> = refused
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["settings.endpoint", "settings.secret_ref"].map(str::to_owned).into());

    for (field, status) in [
        (
            "subscription_id",
            client
                .update_subscription(api::UpdateSubscriptionRequest {
                    subscription_id: "nope".to_owned(),
                    settings: Some(webhook("x", "https://hooks.example.com")),
                    ..Default::default()
                })
                .await
                .expect_err("bad id"),
        ),
        (
            "case_id",
            client
                .list_deliveries(api::ListDeliveriesRequest {
                    case_id: "nope".to_owned(),
                    ..Default::default()
                })
                .await
                .expect_err("bad id"),
        ),
        (
            "page_token",
            client
                .list_subscriptions(api::ListSubscriptionsRequest {
                    page_token: "zz".to_owned(),
                    ..Default::default()
                })
                .await
                .expect_err("bad token"),
        ),
        (
            "delivery_id",
            client.redeliver_delivery(api::RedeliverDeliveryRequest::default()).await.expect_err("no id"),
        ),
    ] {
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let violations = status.get_details_bad_request().expect("field violations").field_violations;
        assert_eq!(violations[0].field, field);
    }
    assert_eq!(h.store.stream_last_sequence().await?, before, "nothing appended");
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_are_created_once_listed_updated_and_deleted() -> anyhow::Result<()> {
    for backend in BACKENDS {
        let mut h = Harness::start(backend).await?;
        let mut client = h.client().await?;
        let first = h.subscribe("create-1", webhook("One", "https://hooks.example.com/1")).await?;
        let again = h.subscribe("create-1", webhook("One", "https://hooks.example.com/1")).await?;
        assert_eq!(first, again, "a retried create returns the same subscription");
        let clash = client
            .create_subscription(api::CreateSubscriptionRequest {
                request_id: "create-1".to_owned(),
                settings: Some(webhook("Other", "https://hooks.example.com/1")),
            })
            .await
            .expect_err("same request id, other settings");
        assert_eq!(clash.code(), Code::AlreadyExists);
        for i in 2..=3 {
            h.subscribe(&format!("create-{i}"), webhook(&format!("Sub {i}"), "https://hooks.example.com/x"))
                .await?;
        }
        let page = eventually(DEADLINE, "three subscriptions listed", || {
            let mut client = client.clone();
            async move {
                let page = client
                    .list_subscriptions(api::ListSubscriptionsRequest { page_size: 2, ..Default::default() })
                    .await
                    .ok()?
                    .into_inner();
                (!page.next_page_token.is_empty()).then_some(page)
            }
        })
        .await?;
        assert_eq!(page.subscriptions.len(), 2);
        assert_eq!(page.subscriptions[0].subscription_id, first.subscription_id);
        let rest = client
            .list_subscriptions(api::ListSubscriptionsRequest {
                page_size: 2,
                page_token: page.next_page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!((rest.subscriptions.len(), rest.next_page_token.as_str()), (1, ""));

        let stale = client
            .update_subscription(api::UpdateSubscriptionRequest {
                subscription_id: first.subscription_id.clone(),
                request_id: "update-0".to_owned(),
                expected_version: Some(first.version + 100),
                settings: Some(webhook("One", "https://hooks.example.com/1")),
            })
            .await
            .expect_err("stale version");
        assert_eq!(stale.code(), Code::Aborted);
        let updated = client
            .update_subscription(api::UpdateSubscriptionRequest {
                subscription_id: first.subscription_id.clone(),
                request_id: "update-1".to_owned(),
                expected_version: Some(first.version),
                settings: Some(events::SubscriptionSettings {
                    trusted: true,
                    ..webhook("One", "https://hooks.example.com/1")
                }),
            })
            .await?
            .into_inner()
            .subscription
            .expect("subscription");
        assert!(updated.settings.as_ref().is_some_and(|s| s.trusted));
        assert!(updated.version > first.version);

        client
            .delete_subscription(api::DeleteSubscriptionRequest {
                subscription_id: first.subscription_id.clone(),
                request_id: "delete-1".to_owned(),
                reason: "team moved".to_owned(),
                ..Default::default()
            })
            .await?;
        let after_delete = client
            .update_subscription(api::UpdateSubscriptionRequest {
                subscription_id: first.subscription_id.clone(),
                request_id: "update-2".to_owned(),
                settings: Some(webhook("One", "https://hooks.example.com/1")),
                ..Default::default()
            })
            .await
            .expect_err("deleted");
        assert_eq!(after_delete.code(), Code::FailedPrecondition);
        let missing = client
            .delete_subscription(api::DeleteSubscriptionRequest {
                subscription_id: SubscriptionId::for_request("nobody", "x").to_string(),
                request_id: "delete-2".to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("unknown");
        assert_eq!(missing.code(), Code::NotFound);
        eventually(DEADLINE, "the deleted subscription gone from the list", || {
            let mut client = client.clone();
            async move {
                let all = client
                    .list_subscriptions(api::ListSubscriptionsRequest::default())
                    .await
                    .ok()?
                    .into_inner();
                (all.subscriptions.len() == 2).then_some(())
            }
        })
        .await?;
        let tickets = client
            .list_external_tickets(api::ListExternalTicketsRequest {
                case_id: CaseId::for_report(ReportId::new()).to_string(),
            })
            .await?
            .into_inner();
        assert!(tickets.tickets.is_empty());
        h.stop().await?;
    }
    Ok(())
}

/// One ticket per case and tracker subscription: a second subscription of
/// the same tracker on the same project would make a second ticket per
/// case, so it is refused (the first one is updated instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tracker_project_takes_one_subscription() -> anyhow::Result<()> {
    let mut h = Harness::start(Backend::Sqlite).await?;
    let mut client = h.client().await?;
    let jira = |name: &str, project: &str| events::SubscriptionSettings {
        name: name.to_owned(),
        channel: events::DeliveryChannel::Jira.into(),
        endpoint: project.to_owned(),
        enabled: true,
        ..Default::default()
    };
    let first = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "jira-sec".to_owned(),
            settings: Some(jira("SEC", "SEC")),
        })
        .await?
        .into_inner()
        .subscription
        .expect("created");
    eventually(Duration::from_secs(20), "subscription listed", || {
        let mut client = client.clone();
        async move {
            let listed = client.list_subscriptions(api::ListSubscriptionsRequest::default()).await.ok()?;
            (!listed.into_inner().subscriptions.is_empty()).then_some(())
        }
    })
    .await?;
    let before = h.store.stream_last_sequence().await?;
    let refused = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "jira-sec-again".to_owned(),
            settings: Some(jira("SEC again", "SEC")),
        })
        .await
        .expect_err("a second subscription on SEC");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .expect("violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["settings.endpoint"]);
    assert!(refused.message().contains(&first.subscription_id), "{}", refused.message());
    assert_eq!(h.store.stream_last_sequence().await?, before, "nothing appended");

    // Another project is free; the first subscription may still be updated.
    client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "jira-ops".to_owned(),
            settings: Some(jira("OPS", "OPS")),
        })
        .await?;
    client
        .update_subscription(api::UpdateSubscriptionRequest {
            subscription_id: first.subscription_id.clone(),
            request_id: "rename".to_owned(),
            expected_version: None,
            settings: Some(jira("SEC project", "SEC")),
        })
        .await?;
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_to_internal_addresses_are_refused_at_connect_unless_allowed() -> anyhow::Result<()> {
    // No allow list: the loopback receiver is refused, by address literal
    // and by a name that resolves to it; nothing reaches it.
    let mut h = Harness::start_with(Backend::Sqlite, |c| c.webhook.allowed_networks.clear()).await?;
    let receiver = Receiver::start(&[], 200).await?;
    let by_name = receiver.url().replace("127.0.0.1", "localhost");
    let literal = h.subscribe("sub-literal", trusted(webhook("Literal", &receiver.url()))).await?;
    let named = h.subscribe("sub-named", trusted(webhook("Named", &by_name))).await?;
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    for sub in [&literal, &named] {
        let dead = h.wait_for_status(delivery_of(case, "accepted", sub), api::DeliveryStatus::Dead).await?;
        assert_eq!(dead.attempts, 1, "refused at once, not retried");
        assert!(dead.last_error.contains("loopback"), "{}", dead.last_error);
    }
    assert_eq!(receiver.count(), 0, "nothing was sent");
    h.stop().await?;

    // Allowed: the same receiver gets both.
    let mut h = Harness::start(Backend::Sqlite).await?;
    let literal = h.subscribe("sub-literal", trusted(webhook("Literal", &receiver.url()))).await?;
    let named = h.subscribe("sub-named", trusted(webhook("Named", &by_name))).await?;
    let (case, _) = h.accepted_case(common::SeverityRating::High, false).await?;
    for sub in [&literal, &named] {
        h.wait_for_status(delivery_of(case, "accepted", sub), api::DeliveryStatus::Delivered).await?;
    }
    assert_eq!(receiver.count(), 2);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_principal_has_at_most_its_quota_of_subscriptions() -> anyhow::Result<()> {
    // The count is SQL on the read model: both databases.
    for backend in BACKENDS {
        subscription_quota_on(backend).await?;
    }
    Ok(())
}

async fn subscription_quota_on(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start_with(backend, |c| c.notification.max_subscriptions_per_owner = 2).await?;
    h.subscribe("quota-1", webhook("One", "https://hooks.example.com/1")).await?;
    h.subscribe("quota-2", webhook("Two", "https://hooks.example.com/2")).await?;
    // The count comes from the read model: wait until it lists both.
    eventually(DEADLINE, "both subscriptions listed", || async {
        let list = h
            .client()
            .await
            .ok()?
            .list_subscriptions(api::ListSubscriptionsRequest::default())
            .await
            .ok()?
            .into_inner();
        (list.subscriptions.len() == 2).then_some(())
    })
    .await?;
    let refused =
        h.subscribe("quota-3", webhook("Three", "https://hooks.example.com/3")).await.expect_err("a third");
    let status = refused.downcast_ref::<tonic::Status>().expect("a gRPC status");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("at most 2"), "{}", status.message());
    // A retried create of an existing subscription is no new one.
    h.subscribe("quota-2", webhook("Two", "https://hooks.example.com/2")).await?;
    let list =
        h.client().await?.list_subscriptions(api::ListSubscriptionsRequest::default()).await?.into_inner();
    assert_eq!(list.subscriptions.len(), 2, "nothing appended");
    h.stop().await
}
