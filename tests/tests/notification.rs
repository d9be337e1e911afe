//! The real `psirt-notification` binary, killed with SIGKILL in the middle of
//! a burst of webhook deliveries and started again: the receiver (a plain
//! HTTP/1.1 server on a free port) ends with every delivery, by CloudEvent
//! id, and no delivery is recorded as delivered twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Service, sqlite, tempfile_dir};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamSettings};
use psirt_proto::notification::notification_service_client::NotificationServiceClient;
use psirt_proto::{events, notification as api};
use psirt_testkit::{NatsServer, eventually};

const CASES: usize = 50;
const EVENTS_PER_CASE: usize = 10;
const DELIVERIES: usize = CASES * EVENTS_PER_CASE;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// `DeliveryId::for_event`: UUIDv5 under the delivery namespace of the
/// event's 16 bytes, then the subscription's. Written out here so that a
/// change of the derivation (which would break idempotency) fails a test.
fn delivery_id(event: uuid::Uuid, subscription: uuid::Uuid) -> String {
    const DELIVERY: uuid::Uuid = uuid::Uuid::from_u128(0x65e3a0af_0747_57a4_b3df_b7677cfa17ef);
    let mut name = Vec::with_capacity(32);
    name.extend_from_slice(event.as_bytes());
    name.extend_from_slice(subscription.as_bytes());
    uuid::Uuid::new_v5(&DELIVERY, &name).to_string()
}

fn build() -> anyhow::Result<()> {
    let status =
        std::process::Command::new(env!("CARGO")).args(["build", "-p", "psirt-notification"]).status()?;
    anyhow::ensure!(status.success(), "build failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_notification_during_a_burst_loses_no_delivery() -> anyhow::Result<()> {
    build()?;
    let nats = NatsServer::start().await?;
    let dir = tempfile_dir::Dir::new("notification-crash")?;
    let key = dir.0.join("hook.key");
    std::fs::write(&key, SECRET)?;
    let env = [
        ("PSIRT_SECRETS__E2E_HOOK__FILE", key.display().to_string()),
        ("PSIRT_DELIVERY__POLL_INTERVAL", "20ms".to_owned()),
        ("PSIRT_DELIVERY__LEASE", "1s".to_owned()),
        ("PSIRT_PROJECTION__LEASE_MS", "1000".to_owned()),
        ("PSIRT_PROJECTION__RETRY_PAUSE_MS", "100".to_owned()),
        ("PSIRT_WEBHOOK__MAX_CONCURRENCY_PER_ENDPOINT", "8".to_owned()),
    ];
    let mut service = Service::start_with("notification", &nats, sqlite(&dir, "notification"), &env).await?;
    let (url, seen) = common::webhook_receiver().await?;
    let mut client = NotificationServiceClient::new(service.channel().await?);
    let subscription = client
        .create_subscription(api::CreateSubscriptionRequest {
            request_id: "e2e-burst".to_owned(),
            settings: Some(events::SubscriptionSettings {
                name: "Burst receiver".to_owned(),
                channel: events::DeliveryChannel::Webhook.into(),
                endpoint: url,
                event_types: vec!["psirt.events.v1.CaseAssigned".to_owned()],
                secret_ref: "e2e_hook".to_owned(),
                enabled: true,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .subscription
        .ok_or_else(|| anyhow::anyhow!("no subscription"))?;
    let subscription_id: uuid::Uuid = subscription.subscription_id.parse()?;

    // The burst: events of many cases, all appended before the crash.
    let store = EventStore::open(nats.connect().await?, &StreamSettings::managed()).await?;
    let mut expected = BTreeSet::new();
    let mut pending = Vec::with_capacity(DELIVERIES);
    for c in 0..CASES {
        let case_id = uuid::Uuid::new_v4();
        for i in 0..EVENTS_PER_CASE {
            let event_id = uuid::Uuid::new_v4();
            expected.insert(delivery_id(event_id, subscription_id));
            let event = events::CaseAssigned {
                case_id: case_id.to_string(),
                assignee: format!("analyst-{c}-{i}"),
                assigned_at: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
                ..Default::default()
            };
            let new = NewEvent::from_message(
                event_id,
                format!("psirt.evt.case.{case_id}"),
                &event,
                Metadata { actor: Some("psirt-e2e".to_owned()), ..Metadata::default() },
            );
            pending.push(store.start_append(new, ExpectedVersion::Any).await?);
        }
    }
    for append in pending {
        append.wait().await?;
    }

    eventually(Duration::from_secs(60), "a part of the burst delivered", || async {
        (seen.lock().expect("seen").len() >= DELIVERIES / 5).then_some(())
    })
    .await?;
    service.kill_9()?;
    let at_crash = seen.lock().expect("seen").len();
    assert!(at_crash < DELIVERIES, "the crash came in the middle of the burst");

    service.spawn(&nats).await?;
    service.ready().await?;
    eventually(Duration::from_secs(120), "every delivery received", || async {
        (seen.lock().expect("seen").len() >= DELIVERIES).then_some(())
    })
    .await?;
    let received: BTreeMap<String, usize> =
        seen.lock().expect("seen").iter().map(|(id, s)| (id.clone(), s.count)).collect();
    let ids: BTreeSet<String> = received.keys().cloned().collect();
    assert_eq!(ids, expected, "every delivery by id, none missing, none foreign");
    let resent = received.values().filter(|n| **n > 1).count();
    eprintln!("{at_crash} of {DELIVERIES} received before the crash; {resent} sent again with the same id");

    // Every delivery recorded as delivered exactly once.
    let client = NotificationServiceClient::new(service.channel().await?);
    let delivered = eventually(Duration::from_secs(60), "every delivery recorded as delivered", || {
        let mut client = client.clone();
        async move {
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = client
                    .list_deliveries(api::ListDeliveriesRequest {
                        status: api::DeliveryStatus::Delivered.into(),
                        page_size: 1000,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                all.extend(page.deliveries);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            (all.len() == DELIVERIES).then_some(all)
        }
    })
    .await?;
    for d in &delivered {
        let events = store.load(&format!("psirt.evt.delivery.{}", d.delivery_id)).await?;
        let succeeded = events.iter().filter(|e| e.event_type == "psirt.events.v1.DeliverySucceeded").count();
        assert_eq!(succeeded, 1, "delivery {} recorded as delivered once", d.delivery_id);
    }
    service.stop()?;
    Ok(())
}
