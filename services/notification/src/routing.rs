//! Routing, run as a projection (`notification-routing`): every event on the
//! stream is matched against the subscriptions as they stood at that point
//! of the stream, and each match appends a `DeliveryScheduled` with the id
//! derived from the event and the subscription. A redelivered or replayed
//! event names the same delivery, whose stream exists already: nothing is
//! appended twice.
//!
//! The projection keeps what routing needs in its own tables, in the
//! transaction of its checkpoint: the subscriptions (`notification_routes`)
//! and the facts of each case (`notification_cases`).

use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use psirt_domain::notification::{self, CaseFacts, EventFacts, Scheduled, SubscriptionSettings};
use psirt_domain::{
    CaseId, CaseStatus, DeliveryEvent, DeliveryId, EventId, SubscriptionEvent, SubscriptionId,
};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, RecordedEvent, StoreError};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::events;
use sqlx::{AnyConnection, Row};
use tracing::warn;

use crate::mapping;

pub const PROJECTION_NAME: &str = "notification-routing";

/// The actor of the events routing appends.
pub const ACTOR: &str = "psirt-notification";

pub struct Routing {
    pub store: EventStore,
    pub descriptors: &'static DescriptorPool,
}

/// NATS trouble rolls the batch back and retries it, like a database failure.
fn retry(e: StoreError) -> ApplyError {
    ApplyError::Database(sqlx::Error::Protocol(format!("event store: {e}")))
}

fn bad_json(what: &str, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Database(sqlx::Error::Decode(format!("stored {what} does not decode: {e}").into()))
}

/// The event id of the first `DeliveryScheduled` of a delivery.
pub fn scheduled_event_id(delivery: DeliveryId) -> EventId {
    EventId::derive(delivery.into(), "scheduled")
}

/// The `case_id` field of any event that has one (read through the
/// descriptors, so new event types route by case without code here).
pub fn case_id_of(descriptors: &DescriptorPool, e: &RecordedEvent) -> Option<CaseId> {
    let descriptor = descriptors.get_message_by_name(&e.event_type)?;
    let field = descriptor.get_field_by_name("case_id")?;
    let message = DynamicMessage::decode(descriptor, e.payload.as_ref()).ok()?;
    match message.get_field(&field).as_ref() {
        Value::String(s) if !s.is_empty() => s.parse().ok(),
        _ => None,
    }
}

async fn load_facts(conn: &mut AnyConnection, case_id: CaseId) -> Result<Option<CaseFacts>, ApplyError> {
    let row = sqlx::query("SELECT facts FROM notification_cases WHERE case_id = $1")
        .bind(case_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let text: String = row.try_get("facts")?;
            // Unreadable facts are unknown facts: routing goes on, and
            // untrusted destinations get redacted notices of the case.
            Ok(serde_json::from_str(&text)
                .inspect_err(|e| warn!(%case_id, error = %e, "case facts unreadable; treated as unknown"))
                .ok())
        }
    }
}

async fn save_facts(conn: &mut AnyConnection, case_id: CaseId, facts: &CaseFacts) -> Result<(), ApplyError> {
    let text = serde_json::to_string(facts).map_err(|e| bad_json("case facts", e))?;
    sqlx::query(
        "INSERT INTO notification_cases (case_id, facts) VALUES ($1, $2) \
         ON CONFLICT (case_id) DO UPDATE SET facts = excluded.facts",
    )
    .bind(case_id.to_string())
    .bind(text)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The case facts after `e`, if `e` changes them.
fn fold_facts(facts: &mut CaseFacts, e: &RecordedEvent) -> Result<bool, ApplyError> {
    let t = e.event_type.as_str();
    let status = |s| Some(s);
    if psirt_eventstore::is_type::<events::CaseOpened>(t) {
        let m: events::CaseOpened = e.decode()?;
        facts.case_key = Some(m.case_key);
        facts.title = Some(m.title);
        facts.status = status(CaseStatus::Received);
    } else if psirt_eventstore::is_type::<events::CveAssigned>(t) {
        let m: events::CveAssigned = e.decode()?;
        if !facts.cve_ids.contains(&m.cve_id) {
            facts.cve_ids.push(m.cve_id);
        }
    } else if psirt_eventstore::is_type::<events::SeverityAssessed>(t) {
        let m: events::SeverityAssessed = e.decode()?;
        facts.severity = mapping::rating_from_proto(m.severity).or(facts.severity);
    } else if psirt_eventstore::is_type::<events::AffectedProductsSet>(t) {
        let m: events::AffectedProductsSet = e.decode()?;
        facts.products = m.products.into_iter().map(|p| p.product).collect();
    } else if psirt_eventstore::is_type::<events::CaseAccepted>(t) {
        let m: events::CaseAccepted = e.decode()?;
        if !m.case_key.is_empty() {
            facts.case_key = Some(m.case_key);
        }
        facts.severity = mapping::rating_from_proto(m.severity).or(facts.severity);
        if !m.affected_products.is_empty() {
            facts.products = m.affected_products.into_iter().map(|p| p.product).collect();
        }
        facts.status = status(CaseStatus::Accepted);
    } else if psirt_eventstore::is_type::<events::EmbargoSet>(t) {
        facts.embargoed = true;
    } else if psirt_eventstore::is_type::<events::CaseDisclosed>(t) {
        facts.embargoed = false;
        facts.disclosed = true;
        facts.status = status(CaseStatus::Disclosed);
    } else if psirt_eventstore::is_type::<events::CaseReopened>(t) {
        // What comes after a reopening is not public until disclosed again.
        facts.disclosed = false;
        facts.status = status(CaseStatus::Triage);
    } else {
        let next = match t.strip_prefix("psirt.events.v1.") {
            Some("TriageStarted") => CaseStatus::Triage,
            Some("CaseRejected") => CaseStatus::Rejected,
            Some("CaseMarkedDuplicate") => CaseStatus::Duplicate,
            Some("RemediationStarted") => CaseStatus::Remediating,
            Some("CaseFixed") => CaseStatus::Fixed,
            Some("CaseClosed") => CaseStatus::Closed,
            _ => return Ok(false),
        };
        facts.status = Some(next);
    }
    Ok(true)
}

fn is_case_event(e: &RecordedEvent) -> bool {
    e.subject.starts_with("psirt.evt.case.")
}

impl Routing {
    async fn fold_subscription(&self, conn: &mut AnyConnection, e: &RecordedEvent) -> Result<(), ApplyError> {
        let Some(event) = mapping::subscription_event_from_recorded(e)? else { return Ok(()) };
        match event {
            SubscriptionEvent::SubscriptionCreated { subscription_id, settings, .. }
            | SubscriptionEvent::SubscriptionUpdated { subscription_id, settings, .. } => {
                let text = serde_json::to_string(&settings).map_err(|e| bad_json("settings", e))?;
                sqlx::query(
                    "INSERT INTO notification_routes (subscription_id, settings) VALUES ($1, $2) \
                     ON CONFLICT (subscription_id) DO UPDATE SET settings = excluded.settings",
                )
                .bind(subscription_id.to_string())
                .bind(text)
                .execute(&mut *conn)
                .await?;
            }
            SubscriptionEvent::SubscriptionDeleted { subscription_id, .. } => {
                sqlx::query("DELETE FROM notification_routes WHERE subscription_id = $1")
                    .bind(subscription_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn routes(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<(SubscriptionId, SubscriptionSettings)>, ApplyError> {
        let rows =
            sqlx::query("SELECT subscription_id, settings FROM notification_routes ORDER BY subscription_id")
                .fetch_all(&mut *conn)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("subscription_id")?;
            let text: String = row.try_get("settings")?;
            let id = id.parse().map_err(|e| bad_json("subscription id", e))?;
            let settings: SubscriptionSettings =
                serde_json::from_str(&text).map_err(|e| bad_json("settings", e))?;
            if settings.enabled {
                out.push((id, settings));
            }
        }
        Ok(out)
    }
}

impl Projection for Routing {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, conn: &mut AnyConnection, e: &RecordedEvent) -> Result<(), ApplyError> {
        if e.event_type.starts_with("psirt.events.v1.Subscription") {
            return self.fold_subscription(conn, e).await;
        }
        if !notification::is_routable(&e.event_type) {
            return Ok(());
        }
        let case_id = case_id_of(self.descriptors, e);
        let mut facts = match case_id {
            Some(id) => load_facts(conn, id).await?,
            None => None,
        };
        if let Some(id) = case_id
            && is_case_event(e)
        {
            let mut next = facts.clone().unwrap_or_default();
            if fold_facts(&mut next, e)? {
                save_facts(conn, id, &next).await?;
            }
            facts = Some(next);
        }
        let routes = self.routes(conn).await?;
        let Some(event_id) = e.id.map(EventId::from_uuid) else { return Ok(()) };
        if routes.is_empty() {
            return Ok(());
        }
        let escalation_level = if psirt_eventstore::is_type::<events::CaseEscalated>(&e.event_type) {
            let m: events::CaseEscalated = e.decode()?;
            mapping::escalation_from_proto(m.level)
        } else {
            None
        };
        let event_facts = EventFacts { event_type: &e.event_type, case: facts.as_ref(), escalation_level };
        let mut pending = Vec::new();
        for (subscription_id, settings) in &routes {
            if !notification::matches(settings, &event_facts) {
                continue;
            }
            let delivery_id = DeliveryId::for_event(event_id, *subscription_id);
            let scheduled = Scheduled {
                delivery_id,
                subscription_id: *subscription_id,
                case_id,
                event_id,
                event_type: e.event_type.clone(),
                event_sequence: e.sequence,
                channel: settings.channel,
                redacted: notification::redacted(settings, &event_facts),
                // The cause's time, not the clock: a replay schedules the same event.
                scheduled_at: e.stored_at,
            };
            let new = mapping::delivery_event_to_new(
                &DeliveryEvent::DeliveryScheduled(scheduled),
                scheduled_event_id(delivery_id).into(),
                Metadata {
                    causation_id: Some(event_id.to_string()),
                    correlation_id: e.metadata.correlation_id.clone().or_else(|| Some(event_id.to_string())),
                    actor: Some(ACTOR.to_owned()),
                    actor_scopes: None,
                },
            );
            pending.push(self.store.start_append(new, ExpectedVersion::NoStream).await.map_err(retry)?);
        }
        for append in pending {
            match append.wait().await {
                // The delivery exists already (scheduled by an earlier run
                // of this event, and attempted since).
                Ok(_) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(retry(e)),
            }
        }
        Ok(())
    }

    /// Routing starts over from the first event: the subscriptions and case
    /// facts are folded again in stream order, so every event meets the
    /// subscriptions it met the first time, and names the same deliveries
    /// (whose streams exist: nothing is appended twice).
    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM notification_routes").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM notification_cases").execute(&mut *conn).await?;
        Ok(())
    }
}
