//! The API's views (`Subscription`, `Delivery`, `ExternalTicket`) folded
//! from events: the same code serves the read model and the reads that
//! answer from the stream right after a command.

use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_proto::{events, notification as api};

/// Folds one event into a subscription view; other event types leave it as it is.
pub fn fold_subscription(
    view: Option<api::Subscription>,
    e: &RecordedEvent,
) -> Result<Option<api::Subscription>, DecodeError> {
    let t = e.event_type.as_str();
    if psirt_eventstore::is_type::<events::SubscriptionCreated>(t) {
        let m: events::SubscriptionCreated = e.decode()?;
        return Ok(Some(api::Subscription {
            subscription_id: m.subscription_id,
            settings: m.settings,
            version: e.sequence,
            created_at: m.created_at,
            updated_at: m.created_at,
        }));
    }
    let Some(mut view) = view else { return Ok(None) };
    if psirt_eventstore::is_type::<events::SubscriptionUpdated>(t) {
        let m: events::SubscriptionUpdated = e.decode()?;
        view.settings = m.settings;
        view.updated_at = m.updated_at;
    } else if psirt_eventstore::is_type::<events::SubscriptionDeleted>(t) {
        let m: events::SubscriptionDeleted = e.decode()?;
        view.updated_at = m.deleted_at;
    } else {
        return Ok(Some(view));
    }
    view.version = e.sequence;
    Ok(Some(view))
}

/// Whether the event deletes its subscription.
pub fn is_subscription_deleted(e: &RecordedEvent) -> bool {
    psirt_eventstore::is_type::<events::SubscriptionDeleted>(&e.event_type)
}

/// Folds one event into a delivery view.
pub fn fold_delivery(
    view: Option<api::Delivery>,
    e: &RecordedEvent,
) -> Result<Option<api::Delivery>, DecodeError> {
    let t = e.event_type.as_str();
    if psirt_eventstore::is_type::<events::DeliveryScheduled>(t) {
        let m: events::DeliveryScheduled = e.decode()?;
        let previous = view.unwrap_or_default();
        return Ok(Some(api::Delivery {
            delivery_id: m.delivery_id,
            subscription_id: m.subscription_id,
            case_id: m.case_id,
            event_id: m.event_id,
            event_type: m.event_type,
            event_sequence: m.event_sequence,
            channel: m.channel,
            redacted: m.redacted,
            status: api::DeliveryStatus::Pending.into(),
            attempts: 0,
            total_attempts: previous.total_attempts,
            series: previous.series + 1,
            last_http_status: previous.last_http_status,
            last_error: previous.last_error,
            scheduled_at: m.scheduled_at,
            next_attempt_at: m.scheduled_at,
            last_attempt_at: previous.last_attempt_at,
            finished_at: None,
            version: e.sequence,
        }));
    }
    let Some(mut view) = view else { return Ok(None) };
    if psirt_eventstore::is_type::<events::DeliveryAttempted>(t) {
        let m: events::DeliveryAttempted = e.decode()?;
        view.attempts = m.attempt;
        view.total_attempts += 1;
        view.last_http_status = m.http_status;
        view.last_error = m.error;
        view.last_attempt_at = m.attempted_at;
        view.next_attempt_at = m.next_attempt_at;
    } else if psirt_eventstore::is_type::<events::DeliverySucceeded>(t) {
        let m: events::DeliverySucceeded = e.decode()?;
        view.status = api::DeliveryStatus::Delivered.into();
        view.next_attempt_at = None;
        view.finished_at = m.delivered_at;
    } else if psirt_eventstore::is_type::<events::DeliveryDeadLettered>(t) {
        let m: events::DeliveryDeadLettered = e.decode()?;
        view.status = api::DeliveryStatus::Dead.into();
        view.next_attempt_at = None;
        view.last_error = m.last_error;
        view.finished_at = m.dead_lettered_at;
    } else {
        return Ok(Some(view));
    }
    view.version = e.sequence;
    Ok(Some(view))
}

/// Folds one event into an external ticket view.
pub fn fold_ticket(
    view: Option<api::ExternalTicket>,
    e: &RecordedEvent,
) -> Result<Option<api::ExternalTicket>, DecodeError> {
    let t = e.event_type.as_str();
    if psirt_eventstore::is_type::<events::ExternalTicketLinked>(t) {
        let m: events::ExternalTicketLinked = e.decode()?;
        return Ok(Some(api::ExternalTicket {
            link_id: m.link_id,
            case_id: m.case_id,
            action_id: m.action_id,
            system: m.system,
            key: m.key,
            url: m.url,
            external_status: String::new(),
            status_category: events::TicketStatusCategory::Unspecified.into(),
            linked_at: m.linked_at,
            updated_at: m.linked_at,
        }));
    }
    let Some(mut view) = view else { return Ok(None) };
    if psirt_eventstore::is_type::<events::ExternalTicketUpdated>(t) {
        let m: events::ExternalTicketUpdated = e.decode()?;
        view.external_status = m.external_status;
        view.status_category = m.status_category;
        view.updated_at = m.updated_at;
        if !m.key.is_empty() {
            view.key = m.key;
        }
    }
    Ok(Some(view))
}
