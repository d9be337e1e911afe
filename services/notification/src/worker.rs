//! The delivery worker: sends due deliveries and records each attempt.
//!
//! One replica sends at a time (a lease in `notification_leases`). Each pass
//! asks the read model for due deliveries that head their (subscription,
//! case) chain, so a chain is delivered in stream order, and starts at most
//! `max_in_flight` sends, at most `max_concurrency_per_endpoint` to one
//! endpoint. Before sending, the delivery is loaded from its stream (the
//! read model may lag): only a pending delivery whose attempt is due is
//! sent.
//!
//! Delivery guarantee: at least once with a stable id. The outcome of an
//! attempt is appended before the delivery can be picked again; if the
//! append fails, the outcome is kept and recorded on the next pass instead
//! of sending again. Only a crash between the peer's answer and the append
//! sends the same CloudEvent id once more, so receivers deduplicate on it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use psirt_domain::notification::Channel;
use psirt_domain::notification::{
    self, AttemptKind, AttemptResult, Delivery, DeliveryEvent, Exposure, RetryPolicy, Scheduled,
};
use psirt_domain::{CaseFacts, DeliveryCommand, DeliveryId, DeliveryStatus, EventId, SubscriptionSettings};
use psirt_eventstore::{CommandError, EventStore, Metadata, RecordedEvent, Repository, Request, StoreError};
use psirt_kit::Shutdown;
use psirt_proto::events as api_events;
use psirt_proto::notification as api;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, warn};

use crate::config::{DeliverySettings, WebhookSettings};
use crate::email::Mailer;
use crate::secrets::Secrets;
use crate::tracker::{TrackerDelivery, Trackers};
use crate::{content, mapping, readmodel, webhook};

/// The lease name of the worker.
pub const LEASE: &str = "delivery-worker";

/// The actor of the events the worker appends.
pub const ACTOR: &str = "psirt-notification";

/// Why a delivery could not be worked on this pass (it stays due).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event does not decode: {0}")]
    Corrupt(#[from] psirt_eventstore::DecodeError),
}

/// What one delivery may say (see [`notification::exposure`]).
struct Shown {
    exposure: Exposure,
    /// The case as the destination may see it (only key and status when
    /// redacted).
    facts: CaseFacts,
    case_id: String,
    /// The link to the case for people who may look (`delivery.case_link`).
    link: String,
}

/// A delivery loaded from its stream.
pub struct LoadedDelivery {
    pub delivery: Delivery,
    pub events: Vec<RecordedEvent>,
}

/// Loads a delivery from its stream.
pub async fn load_delivery(store: &EventStore, id: DeliveryId) -> Result<LoadedDelivery, WorkError> {
    let events = store.load(&mapping::delivery_subject(id)).await?;
    let mut delivery = Delivery::default();
    for e in &events {
        if let Some(event) = mapping::delivery_event_from_recorded(e)? {
            delivery.apply(&event);
        }
    }
    Ok(LoadedDelivery { delivery, events })
}

/// The id of an event the worker appends: the delivery, the series, the
/// attempt and the event type. Two workers recording the same attempt
/// write the same ids, so an attempt is recorded once.
pub fn attempt_event_id(delivery: DeliveryId, series: u32, attempt: u32, event_type: &str) -> EventId {
    EventId::derive(delivery.into(), &format!("{event_type}\u{1f}{series}\u{1f}{attempt}"))
}

/// An outcome whose append failed: recorded before anything is sent again.
struct Unrecorded {
    series: u32,
    attempt: u32,
    result: AttemptResult,
    attempted_at: OffsetDateTime,
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The scheme and authority of a URL: deliveries to one of them share a
/// concurrency limit.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{}", authority.to_ascii_lowercase())
}

/// An event as canonical proto3 JSON, through the descriptors.
pub fn event_json(descriptors: &DescriptorPool, e: &RecordedEvent) -> Option<Value> {
    let descriptor = descriptors.get_message_by_name(&e.event_type)?;
    let message = DynamicMessage::decode(descriptor, e.payload.as_ref()).ok()?;
    message.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new()).ok()
}

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    deliveries: Repository<mapping::DeliveryCodec>,
    pool: AnyPool,
    settings: DeliverySettings,
    webhook: WebhookSettings,
    sender: webhook::Sender,
    secrets: Secrets,
    mailer: Mailer,
    trackers: Trackers,
    descriptors: &'static DescriptorPool,
    owner: String,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    unrecorded: Mutex<HashMap<DeliveryId, Unrecorded>>,
}

impl Worker {
    pub fn new(
        store: EventStore,
        pool: AnyPool,
        settings: DeliverySettings,
        webhook: WebhookSettings,
        secrets: Secrets,
        channels: (Mailer, Trackers),
        descriptors: &'static DescriptorPool,
    ) -> anyhow::Result<Self> {
        let egress = crate::egress::Egress::new(&webhook.allowed_networks)?;
        let sender = webhook::Sender::new(&webhook.user_agent, egress)?;
        Ok(Self {
            inner: Arc::new(Inner {
                deliveries: Repository::new(store.clone(), mapping::DeliveryCodec),
                store,
                pool,
                settings,
                webhook,
                sender,
                secrets,
                mailer: channels.0,
                trackers: channels.1,
                descriptors,
                owner: uuid::Uuid::now_v7().to_string(),
                endpoints: Mutex::new(HashMap::new()),
                unrecorded: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn policy(&self) -> RetryPolicy {
        self.inner.settings.retry_policy()
    }

    /// Runs passes until `shutdown`, then waits (bounded) for the sends in
    /// flight to be recorded and releases the lease.
    pub async fn run(self, shutdown: Shutdown) {
        let s = &self.inner.settings;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut held = false;
        loop {
            while let Some(done) = tasks.try_join_next_with_id() {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        warn!(error = %e, "delivery task failed");
                        e.id()
                    }
                };
                if let Some(delivery) = in_flight.remove(&id) {
                    busy.remove(&delivery);
                }
            }
            if shutdown.is_triggered() {
                break;
            }
            match readmodel::acquire_lease(
                &self.inner.pool,
                LEASE,
                &self.inner.owner,
                now_ms(),
                millis(s.lease),
            )
            .await
            {
                Ok(now_held) => {
                    if now_held != held {
                        info!(held = now_held, "delivery worker lease changed");
                    }
                    held = now_held;
                }
                Err(e) => {
                    warn!(error = %e, "delivery worker cannot renew its lease");
                    held = false;
                }
            }
            let room = s.max_in_flight.saturating_sub(tasks.len());
            if held && room > 0 {
                let limit = u32::try_from(room.min(s.batch_size)).unwrap_or(u32::MAX);
                match readmodel::due(
                    &self.inner.pool,
                    now_ms(),
                    limit.saturating_add(u32::try_from(busy.len()).unwrap_or(0)),
                )
                .await
                {
                    Ok(due) => {
                        for delivery in due {
                            if tasks.len() >= s.max_in_flight || busy.contains(&delivery.delivery_id) {
                                continue;
                            }
                            busy.insert(delivery.delivery_id.clone());
                            let id = delivery.delivery_id.clone();
                            let worker = self.clone();
                            let handle = tasks.spawn(async move {
                                if let Err(e) = worker.process(&delivery).await {
                                    warn!(delivery_id = %delivery.delivery_id, error = %e, "delivery attempt not completed, retrying later");
                                }
                            });
                            in_flight.insert(handle.id(), id);
                        }
                    }
                    Err(e) => warn!(error = %e, "delivery worker cannot read due deliveries"),
                }
            }
            tokio::select! {
                () = shutdown.wait() => {}
                () = tokio::time::sleep(s.poll_interval) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                    if let Some(delivery) = in_flight.remove(&id) {
                        busy.remove(&delivery);
                    }
                }
            }
        }
        let grace = self.inner.webhook.timeout + Duration::from_secs(5);
        let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        if let Err(e) = readmodel::release_lease(&self.inner.pool, LEASE, &self.inner.owner).await {
            warn!(error = %e, "delivery worker could not release its lease");
        }
        info!("delivery worker stopped");
    }

    /// One delivery: load, decide whether it is due, send, record.
    pub async fn process(&self, row: &api::Delivery) -> Result<(), WorkError> {
        let Ok(id) = row.delivery_id.parse::<DeliveryId>() else { return Ok(()) };
        let loaded = load_delivery(&self.inner.store, id).await?;
        let stashed = self.inner.unrecorded.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if let Some(stashed) = stashed {
            let d = &loaded.delivery;
            // Recorded after all when the store answered late: drop it.
            if d.status() == Some(DeliveryStatus::Pending)
                && d.series() == stashed.series
                && d.attempts() + 1 == stashed.attempt
            {
                return self.record(id, loaded, stashed.result, stashed.attempted_at).await;
            }
            return Ok(());
        }
        if loaded.delivery.status() != Some(DeliveryStatus::Pending) {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        if loaded.delivery.next_attempt_at().is_some_and(|at| at > now + time::Duration::milliseconds(50)) {
            return Ok(());
        }
        let Some(scheduled) = loaded.delivery.scheduled().cloned() else { return Ok(()) };
        let settings =
            match readmodel::subscription(&self.inner.pool, &scheduled.subscription_id.to_string()).await? {
                // Scheduled before the read model saw the subscription: next pass.
                None => return Ok(()),
                Some((_, true)) => return self.abandon(id, "subscription deleted").await,
                Some((view, false)) => match view.settings.as_ref().map(mapping::settings_from_proto) {
                    Some(Ok(settings)) => settings,
                    _ => return self.abandon(id, "subscription settings unreadable").await,
                },
            };
        let shown = self.shown(&scheduled, &settings).await?;
        if shown.exposure == Exposure::Withheld {
            return self.abandon(id, "report events never go to an untrusted destination").await;
        }
        // The attempt continues the trace of the event it delivers: the span
        // that scheduled it (routing's, itself a child of the producer).
        let span = loaded
            .events
            .iter()
            .rev()
            .find(|e| e.event_type == <api_events::DeliveryScheduled as prost::Name>::full_name())
            .map_or_else(tracing::Span::none, |e| {
                let name = format!(
                    "notification-delivery {} {}",
                    settings.channel.as_str(),
                    content::short_type(&scheduled.event_type)
                );
                psirt_projection::caused_span(&name, "client", e)
            });
        async move {
            let attempted_at = OffsetDateTime::now_utc();
            let result = self.attempt(&scheduled, &settings, &shown).await?;
            debug!(delivery_id = %id, outcome = ?result.kind, status = ?result.http_status, "delivery attempted");
            metrics::attempted(settings.channel.as_str(), result.kind, result.duration_ms);
            self.record(id, loaded, result, attempted_at).await
        }
        .instrument(span)
        .await
    }

    /// What the delivery may say, decided now from what is known of the
    /// case now: a delivery routing recorded as redacted stays so, and a
    /// trust taken back since applies to deliveries still pending.
    async fn shown(&self, s: &Scheduled, settings: &SubscriptionSettings) -> Result<Shown, WorkError> {
        let facts = match s.case_id {
            Some(case_id) => self.case_facts(&case_id.to_string()).await?,
            None => None,
        };
        let exposure = notification::exposure(settings.trusted && !s.redacted, &s.event_type, facts.as_ref());
        let facts = match exposure {
            Exposure::Full | Exposure::Public => facts.unwrap_or_default(),
            Exposure::Redacted | Exposure::Withheld => {
                facts.as_ref().map(CaseFacts::redacted).unwrap_or_default()
            }
        };
        let case_id = s.case_id.map(|c| c.to_string()).unwrap_or_default();
        let link = self.inner.settings.case_link(&case_id, facts.case_key.as_deref().unwrap_or_default());
        Ok(Shown { exposure, facts, case_id, link })
    }

    async fn attempt(
        &self,
        scheduled: &Scheduled,
        settings: &SubscriptionSettings,
        shown: &Shown,
    ) -> Result<AttemptResult, WorkError> {
        let permanent = |error: String| AttemptResult {
            kind: AttemptKind::PermanentFailure,
            http_status: None,
            error,
            retry_after: None,
            external_reference: String::new(),
            duration_ms: 0,
        };
        let semaphore =
            {
                let mut endpoints = self.inner.endpoints.lock().unwrap_or_else(|e| e.into_inner());
                Arc::clone(endpoints.entry(origin(&settings.endpoint)).or_insert_with(|| {
                    Arc::new(Semaphore::new(self.inner.webhook.max_concurrency_per_endpoint))
                }))
            };
        if settings.channel != Channel::Webhook {
            let Some(event) = self.inner.store.get(scheduled.event_sequence).await? else {
                return Ok(permanent(format!("event {} is not on the stream", scheduled.event_id)));
            };
            if event.id != Some(scheduled.event_id.into_uuid()) {
                return Ok(permanent(format!("event {} is not on the stream", scheduled.event_id)));
            }
            let values = content::values(&content::Subject {
                case_id: &shown.case_id,
                facts: &shown.facts,
                event_type: &scheduled.event_type,
                event_id: &scheduled.event_id.to_string(),
                event_time: event.stored_at,
                delivery_id: &scheduled.delivery_id.to_string(),
                redacted: shown.exposure == Exposure::Redacted,
                link: &shown.link,
            });
            let _permit = semaphore.acquire_owned().await;
            return match settings.channel {
                Channel::Email => {
                    Ok(self.inner.mailer.send(&settings.endpoint, &values, &scheduled.event_type).await)
                }
                _ => {
                    let delivery =
                        TrackerDelivery { settings, scheduled, facts: &shown.facts, values: &values };
                    self.inner.trackers.deliver(&delivery).await
                }
            };
        }
        let Some(secret) = self.inner.secrets.get(&settings.secret_ref) else {
            return Ok(permanent(format!("secret {:?} is not configured", settings.secret_ref)));
        };
        let Some(body) = self.body(scheduled, shown).await? else {
            return Ok(permanent(format!("event {} is not on the stream", scheduled.event_id)));
        };
        let _permit = semaphore.acquire_owned().await;
        let secret = secret.expose_secret().as_bytes();
        Ok(self.inner.sender.send(&settings.endpoint, body, secret, self.inner.webhook.timeout).await)
    }

    /// The CloudEvent of a delivery; `None` when the event is gone. Its
    /// data is the event itself ([`Exposure::Full`]), the disclosed case's
    /// public facts, or a notice with the case id, key, status and link.
    async fn body(&self, s: &Scheduled, shown: &Shown) -> Result<Option<Vec<u8>>, WorkError> {
        let Some(event) = self.inner.store.get(s.event_sequence).await? else { return Ok(None) };
        if event.id != Some(s.event_id.into_uuid()) {
            return Ok(None);
        }
        let facts = &shown.facts;
        let status = facts
            .status
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(|s| format!("CASE_STATUS_{}", s.to_ascii_uppercase())))
            .unwrap_or_else(|| "CASE_STATUS_UNSPECIFIED".to_owned());
        let case_key = facts.case_key.clone().unwrap_or_default();
        let mut data = match shown.exposure {
            Exposure::Full => match event_json(self.inner.descriptors, &event) {
                Some(data) => data,
                None => return Ok(None),
            },
            Exposure::Public => json!({
                "caseId": shown.case_id,
                "caseKey": case_key,
                "status": status,
                "title": facts.title.clone().unwrap_or_default(),
                "severity": facts.severity.map(|s| s.to_string()).unwrap_or_default(),
                "products": facts.products,
                "cveIds": facts.cve_ids,
                "redacted": false,
            }),
            Exposure::Redacted | Exposure::Withheld => {
                json!({ "caseId": shown.case_id, "caseKey": case_key, "status": status, "redacted": true })
            }
        };
        if shown.exposure != Exposure::Full
            && !shown.link.is_empty()
            && let Some(object) = data.as_object_mut()
        {
            object.insert("link".to_owned(), json!(shown.link));
        }
        let delivery_id = s.delivery_id.to_string();
        let cloud_event = webhook::CloudEvent {
            id: &delivery_id,
            source: &self.inner.webhook.source,
            event_type: &s.event_type,
            subject: &shown.case_id,
            time: event.stored_at,
            data,
        };
        Ok(Some(cloud_event.to_body()))
    }

    /// What routing knows of a case now; `None` when nothing is known or
    /// the row does not read (untrusted destinations then get notices).
    async fn case_facts(&self, case_id: &str) -> Result<Option<CaseFacts>, WorkError> {
        let row = sqlx::query("SELECT facts FROM notification_cases WHERE case_id = $1")
            .bind(case_id)
            .fetch_optional(&self.inner.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("facts")?;
        Ok(serde_json::from_str(&text)
            .inspect_err(|e| warn!(case_id, error = %e, "case facts unreadable; treated as unknown"))
            .ok())
    }

    async fn abandon(&self, id: DeliveryId, reason: &str) -> Result<(), WorkError> {
        self.decide_and_append(id, None, |_| DeliveryCommand::Abandon { reason: reason.to_owned() }).await
    }

    /// Records an attempt's outcome. If NATS cannot take it, the outcome is
    /// kept and recorded on the next pass instead of sending again.
    async fn record(
        &self,
        id: DeliveryId,
        loaded: LoadedDelivery,
        result: AttemptResult,
        attempted_at: OffsetDateTime,
    ) -> Result<(), WorkError> {
        let policy = self.policy();
        let (series, attempt) = (loaded.delivery.series(), loaded.delivery.attempts() + 1);
        let channel = loaded.delivery.scheduled().map(|s| s.channel.as_str());
        let command = |_: &Delivery| DeliveryCommand::RecordAttempt {
            result: result.clone(),
            attempted_at,
            policy,
            jitter: rand::random::<f64>(),
        };
        match self.decide_and_append(id, channel, command).await {
            Err(WorkError::Store(e)) => {
                self.inner
                    .unrecorded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, Unrecorded { series, attempt, result: result.clone(), attempted_at });
                Err(WorkError::Store(e))
            }
            other => other,
        }
    }

    /// Decides a worker's command on the delivery and appends it through the
    /// shared command path. Event ids derive from the delivery, the series
    /// and the attempt the decision was made on, so two workers recording
    /// the same attempt write the same ids. A delivery that no longer takes
    /// the command (redelivered, recorded by another worker) is left alone,
    /// and so is one that kept changing: the next pass sees it.
    async fn decide_and_append(
        &self,
        id: DeliveryId,
        channel: Option<&'static str>,
        command: impl Fn(&Delivery) -> DeliveryCommand,
    ) -> Result<(), WorkError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        // (series << 32) | attempt of the state the decision is made on.
        let decided_on = AtomicU64::new(0);
        let decide = |loaded: &psirt_eventstore::Loaded<Delivery>| {
            let d = &loaded.state;
            decided_on.store((u64::from(d.series()) << 32) | u64::from(d.attempts() + 1), Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(Some(command(d)))
        };
        let event_id = |event: &DeliveryEvent| -> uuid::Uuid {
            let at = decided_on.load(Ordering::SeqCst);
            let (series, attempt) = ((at >> 32) as u32, (at & 0xffff_ffff) as u32);
            attempt_event_id(id, series, attempt, psirt_domain::DomainEvent::event_type(event)).into()
        };
        let metadata = Metadata {
            causation_id: Some(id.to_string()),
            correlation_id: None,
            actor: Some(ACTOR.to_owned()),
            actor_scopes: None,
        };
        let request = Request { must_exist: false, ..Request::new(id, metadata) };
        match self.inner.deliveries.execute(&request, &event_id, decide).await {
            Ok(executed) => {
                if let Some(channel) = channel {
                    for event in &executed.appended {
                        metrics::finished(channel, psirt_domain::DomainEvent::event_type(event));
                    }
                }
                Ok(())
            }
            Err(CommandError::Domain(err)) => {
                debug!(delivery_id = %id, error = %err, "the delivery no longer takes the command");
                Ok(())
            }
            Err(CommandError::Conflict { .. }) => {
                debug!(delivery_id = %id, "the delivery kept changing; the next pass sees it");
                Ok(())
            }
            Err(CommandError::Store(e)) => Err(e.into()),
            Err(CommandError::Decode(e)) => Err(e.into()),
            Err(err) => Err(WorkError::Store(StoreError::Other(err.to_string()))),
        }
    }
}

mod metrics {
    use std::sync::OnceLock;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Histogram};
    use psirt_domain::notification::AttemptKind;

    fn attempts() -> &'static Counter<u64> {
        static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
        COUNTER.get_or_init(|| {
            opentelemetry::global::meter("psirt")
                .u64_counter("psirt.notification.attempts")
                .with_description("delivery attempts, by channel and outcome")
                .build()
        })
    }

    fn duration() -> &'static Histogram<f64> {
        static HISTOGRAM: OnceLock<Histogram<f64>> = OnceLock::new();
        HISTOGRAM.get_or_init(|| {
            opentelemetry::global::meter("psirt")
                .f64_histogram("psirt.notification.attempt.duration")
                .with_unit("s")
                .with_description("duration of delivery attempts")
                .build()
        })
    }

    fn deliveries() -> &'static Counter<u64> {
        static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
        COUNTER.get_or_init(|| {
            opentelemetry::global::meter("psirt")
                .u64_counter("psirt.notification.deliveries")
                .with_description("deliveries finished, by channel and outcome (delivered, dead)")
                .build()
        })
    }

    /// Counts a delivery that reached an end: `event_type` is the event
    /// just appended; only `DeliverySucceeded` and `DeliveryDeadLettered` count.
    pub(crate) fn finished(channel: &'static str, event_type: &str) {
        let outcome = match event_type {
            "DeliverySucceeded" => "delivered",
            "DeliveryDeadLettered" => "dead",
            _ => return,
        };
        deliveries().add(1, &[KeyValue::new("channel", channel), KeyValue::new("outcome", outcome)]);
    }

    pub(crate) fn attempted(channel: &'static str, kind: AttemptKind, duration_ms: u32) {
        let outcome = match kind {
            AttemptKind::Succeeded => "succeeded",
            AttemptKind::RetryableFailure => "retryable_failure",
            AttemptKind::PermanentFailure => "permanent_failure",
        };
        let labels = [KeyValue::new("channel", channel), KeyValue::new("outcome", outcome)];
        attempts().add(1, &labels);
        duration().record(f64::from(duration_ms) / 1000.0, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_group_by_scheme_and_authority() {
        assert_eq!(origin("https://Hooks.example.com:8443/a/b?x"), "https://hooks.example.com:8443");
        assert_eq!(origin("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }

    #[test]
    fn attempt_ids_differ_by_series_attempt_and_type() {
        let d = DeliveryId::from_uuid(uuid::Uuid::from_u128(7));
        let a = attempt_event_id(d, 1, 1, "DeliveryAttempted");
        assert_eq!(a, attempt_event_id(d, 1, 1, "DeliveryAttempted"));
        assert_ne!(a, attempt_event_id(d, 2, 1, "DeliveryAttempted"));
        assert_ne!(a, attempt_event_id(d, 1, 2, "DeliveryAttempted"));
        assert_ne!(a, attempt_event_id(d, 1, 1, "DeliverySucceeded"));
    }
}
