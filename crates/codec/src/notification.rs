//! Between the domain's notification types and the protobuf events: one
//! place that knows both spellings.

pub use crate::convert::{rating_from_proto, rating_to_proto};
use psirt_domain::notification::{
    AttemptKind, Attempted, Channel, DeliveryEvent, Scheduled, SubscriptionEvent, SubscriptionSettings,
};
use psirt_domain::{CaseId, DeliveryId, EscalationLevel, EventId, FieldViolation, SubscriptionId};
use psirt_eventstore::{DecodeError, Encoded, EventCodec, Metadata, NewEvent, RecordedEvent};
use psirt_proto::{common, events};
use time::OffsetDateTime;

pub fn subscription_subject(id: SubscriptionId) -> String {
    psirt_eventstore::subject(<psirt_domain::Subscription as psirt_domain::Aggregate>::AGGREGATE_TYPE, id)
}

pub fn delivery_subject(id: DeliveryId) -> String {
    psirt_eventstore::subject(<psirt_domain::Delivery as psirt_domain::Aggregate>::AGGREGATE_TYPE, id)
}

pub fn ts(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    })
}

pub fn from_ts(t: Option<&prost_types::Timestamp>) -> OffsetDateTime {
    t.and_then(|t| {
        OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos.clamp(0, 999_999_999)),
        )
        .ok()
    })
    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Epoch milliseconds of a timestamp (0 when unset).
pub fn millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000)))
}

pub fn escalation_from_proto(value: i32) -> Option<EscalationLevel> {
    match events::EscalationLevel::try_from(value).unwrap_or(events::EscalationLevel::Unspecified) {
        events::EscalationLevel::Unspecified => None,
        events::EscalationLevel::Team => Some(EscalationLevel::Team),
        events::EscalationLevel::Management => Some(EscalationLevel::Management),
        events::EscalationLevel::Executive => Some(EscalationLevel::Executive),
    }
}

fn escalation_to_proto(value: Option<EscalationLevel>) -> events::EscalationLevel {
    match value {
        None => events::EscalationLevel::Unspecified,
        Some(EscalationLevel::Team) => events::EscalationLevel::Team,
        Some(EscalationLevel::Management) => events::EscalationLevel::Management,
        Some(EscalationLevel::Executive) => events::EscalationLevel::Executive,
    }
}

pub fn channel_from_proto(value: i32) -> Option<Channel> {
    match events::DeliveryChannel::try_from(value).ok()? {
        events::DeliveryChannel::Unspecified => None,
        events::DeliveryChannel::Webhook => Some(Channel::Webhook),
        events::DeliveryChannel::Email => Some(Channel::Email),
        events::DeliveryChannel::Jira => Some(Channel::Jira),
        events::DeliveryChannel::Servicenow => Some(Channel::ServiceNow),
    }
}

pub fn channel_to_proto(value: Channel) -> events::DeliveryChannel {
    match value {
        Channel::Webhook => events::DeliveryChannel::Webhook,
        Channel::Email => events::DeliveryChannel::Email,
        Channel::Jira => events::DeliveryChannel::Jira,
        Channel::ServiceNow => events::DeliveryChannel::Servicenow,
    }
}

/// The domain's settings of an API or event message; a missing channel or
/// an unknown enum value is a violation (field names as in the message).
pub fn settings_from_proto(
    s: &events::SubscriptionSettings,
) -> Result<SubscriptionSettings, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let channel = channel_from_proto(s.channel);
    if channel.is_none() {
        violations.push(FieldViolation::new("channel", "channel must be set"));
    }
    if common::SeverityRating::try_from(s.min_severity).is_err() {
        violations.push(FieldViolation::new("min_severity", "unknown severity rating"));
    }
    if events::EscalationLevel::try_from(s.min_escalation_level).is_err() {
        violations.push(FieldViolation::new("min_escalation_level", "unknown escalation level"));
    }
    let mut case_statuses = Vec::with_capacity(s.case_statuses.len());
    for (i, value) in s.case_statuses.iter().enumerate() {
        match case_status_from_proto(*value) {
            Some(status) => case_statuses.push(status),
            None => violations.push(FieldViolation::new(
                format!("case_statuses[{i}]"),
                "unknown or unspecified case status",
            )),
        }
    }
    let Some(channel) = channel else { return Err(violations) };
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(SubscriptionSettings {
        name: s.name.clone(),
        channel,
        endpoint: s.endpoint.clone(),
        event_types: s.event_types.clone(),
        min_severity: rating_from_proto(s.min_severity),
        products: s.products.clone(),
        case_statuses,
        min_escalation_level: escalation_from_proto(s.min_escalation_level),
        trusted: s.trusted,
        secret_ref: s.secret_ref.clone(),
        enabled: s.enabled,
    })
}

pub fn settings_to_proto(s: &SubscriptionSettings) -> events::SubscriptionSettings {
    events::SubscriptionSettings {
        name: s.name.clone(),
        channel: channel_to_proto(s.channel).into(),
        endpoint: s.endpoint.clone(),
        event_types: s.event_types.clone(),
        min_severity: rating_to_proto(s.min_severity).into(),
        products: s.products.clone(),
        min_escalation_level: escalation_to_proto(s.min_escalation_level).into(),
        trusted: s.trusted,
        secret_ref: s.secret_ref.clone(),
        enabled: s.enabled,
        case_statuses: s.case_statuses.iter().map(|c| case_status_to_proto(*c).into()).collect(),
    }
}

fn case_status_from_proto(value: i32) -> Option<psirt_domain::CaseStatus> {
    use psirt_domain::CaseStatus as S;
    Some(match common::CaseStatus::try_from(value).ok()? {
        common::CaseStatus::Unspecified => return None,
        common::CaseStatus::Received => S::Received,
        common::CaseStatus::Triage => S::Triage,
        common::CaseStatus::Accepted => S::Accepted,
        common::CaseStatus::Rejected => S::Rejected,
        common::CaseStatus::Duplicate => S::Duplicate,
        common::CaseStatus::Remediating => S::Remediating,
        common::CaseStatus::Fixed => S::Fixed,
        common::CaseStatus::Disclosed => S::Disclosed,
        common::CaseStatus::Closed => S::Closed,
    })
}

fn case_status_to_proto(value: psirt_domain::CaseStatus) -> common::CaseStatus {
    use psirt_domain::CaseStatus as S;
    match value {
        S::Received => common::CaseStatus::Received,
        S::Triage => common::CaseStatus::Triage,
        S::Accepted => common::CaseStatus::Accepted,
        S::Rejected => common::CaseStatus::Rejected,
        S::Duplicate => common::CaseStatus::Duplicate,
        S::Remediating => common::CaseStatus::Remediating,
        S::Fixed => common::CaseStatus::Fixed,
        S::Disclosed => common::CaseStatus::Disclosed,
        S::Closed => common::CaseStatus::Closed,
    }
}

fn corrupt(event: &RecordedEvent, message: impl Into<String>) -> DecodeError {
    DecodeError::Payload {
        event_type: event.event_type.clone(),
        sequence: event.sequence,
        message: message.into(),
    }
}

fn parse<T: std::str::FromStr>(event: &RecordedEvent, field: &str, value: &str) -> Result<T, DecodeError> {
    value.parse().map_err(|_| corrupt(event, format!("{field} {value:?} is not an id")))
}

fn optional_case(event: &RecordedEvent, value: &str) -> Result<Option<CaseId>, DecodeError> {
    if value.is_empty() { Ok(None) } else { parse(event, "case_id", value).map(Some) }
}

fn stored_settings(
    event: &RecordedEvent,
    s: Option<&events::SubscriptionSettings>,
) -> Result<SubscriptionSettings, DecodeError> {
    let s = s.ok_or_else(|| corrupt(event, "settings missing"))?;
    settings_from_proto(s).map_err(|v| corrupt(event, format!("settings: {v:?}")))
}

/// A subscription event of the stream; `None` for other types.
pub fn subscription_event_from_recorded(e: &RecordedEvent) -> Result<Option<SubscriptionEvent>, DecodeError> {
    let t = e.event_type.as_str();
    Ok(Some(if psirt_eventstore::is_type::<events::SubscriptionCreated>(t) {
        let m: events::SubscriptionCreated = e.decode()?;
        SubscriptionEvent::SubscriptionCreated {
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            settings: stored_settings(e, m.settings.as_ref())?,
            created_at: from_ts(m.created_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::SubscriptionUpdated>(t) {
        let m: events::SubscriptionUpdated = e.decode()?;
        SubscriptionEvent::SubscriptionUpdated {
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            settings: stored_settings(e, m.settings.as_ref())?,
            updated_at: from_ts(m.updated_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::SubscriptionDeleted>(t) {
        let m: events::SubscriptionDeleted = e.decode()?;
        SubscriptionEvent::SubscriptionDeleted {
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            reason: m.reason,
            deleted_at: from_ts(m.deleted_at.as_ref()),
        }
    } else {
        return Ok(None);
    }))
}

pub fn subscription_event_to_new(event: &SubscriptionEvent, id: uuid::Uuid, metadata: Metadata) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode_subscription_event(event);
    NewEvent {
        id,
        subject: subscription_subject(event.subscription_id()),
        event_type,
        schema_version,
        payload,
        metadata,
    }
}

/// The stored form of a SubscriptionEvent.
pub fn encode_subscription_event(event: &SubscriptionEvent) -> Encoded {
    match event {
        SubscriptionEvent::SubscriptionCreated { subscription_id, settings, created_at } => {
            Encoded::message(&events::SubscriptionCreated {
                subscription_id: subscription_id.to_string(),
                settings: Some(settings_to_proto(settings)),
                created_at: ts(*created_at),
            })
        }
        SubscriptionEvent::SubscriptionUpdated { subscription_id, settings, updated_at } => {
            Encoded::message(&events::SubscriptionUpdated {
                subscription_id: subscription_id.to_string(),
                settings: Some(settings_to_proto(settings)),
                updated_at: ts(*updated_at),
            })
        }
        SubscriptionEvent::SubscriptionDeleted { subscription_id, reason, deleted_at } => {
            Encoded::message(&events::SubscriptionDeleted {
                subscription_id: subscription_id.to_string(),
                reason: reason.clone(),
                deleted_at: ts(*deleted_at),
            })
        }
    }
}

fn outcome_to_proto(kind: AttemptKind) -> events::DeliveryOutcome {
    match kind {
        AttemptKind::Succeeded => events::DeliveryOutcome::Succeeded,
        AttemptKind::RetryableFailure => events::DeliveryOutcome::RetryableFailure,
        AttemptKind::PermanentFailure => events::DeliveryOutcome::PermanentFailure,
    }
}

fn outcome_from_proto(value: i32) -> AttemptKind {
    match events::DeliveryOutcome::try_from(value).unwrap_or(events::DeliveryOutcome::Unspecified) {
        events::DeliveryOutcome::Succeeded => AttemptKind::Succeeded,
        events::DeliveryOutcome::PermanentFailure => AttemptKind::PermanentFailure,
        events::DeliveryOutcome::RetryableFailure | events::DeliveryOutcome::Unspecified => {
            AttemptKind::RetryableFailure
        }
    }
}

pub fn scheduled_to_proto(s: &Scheduled) -> events::DeliveryScheduled {
    events::DeliveryScheduled {
        delivery_id: s.delivery_id.to_string(),
        subscription_id: s.subscription_id.to_string(),
        case_id: s.case_id.map(|c| c.to_string()).unwrap_or_default(),
        event_id: s.event_id.to_string(),
        event_type: s.event_type.clone(),
        event_sequence: s.event_sequence,
        channel: channel_to_proto(s.channel).into(),
        redacted: s.redacted,
        scheduled_at: ts(s.scheduled_at),
    }
}

/// A delivery event of the stream; `None` for other types.
pub fn delivery_event_from_recorded(e: &RecordedEvent) -> Result<Option<DeliveryEvent>, DecodeError> {
    let t = e.event_type.as_str();
    Ok(Some(if psirt_eventstore::is_type::<events::DeliveryScheduled>(t) {
        let m: events::DeliveryScheduled = e.decode()?;
        DeliveryEvent::DeliveryScheduled(Scheduled {
            delivery_id: parse(e, "delivery_id", &m.delivery_id)?,
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            case_id: optional_case(e, &m.case_id)?,
            event_id: parse::<EventId>(e, "event_id", &m.event_id)?,
            event_type: m.event_type,
            event_sequence: m.event_sequence,
            channel: channel_from_proto(m.channel).ok_or_else(|| corrupt(e, "channel missing"))?,
            redacted: m.redacted,
            scheduled_at: from_ts(m.scheduled_at.as_ref()),
        })
    } else if psirt_eventstore::is_type::<events::DeliveryAttempted>(t) {
        let m: events::DeliveryAttempted = e.decode()?;
        DeliveryEvent::DeliveryAttempted(Attempted {
            delivery_id: parse(e, "delivery_id", &m.delivery_id)?,
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            case_id: optional_case(e, &m.case_id)?,
            attempt: m.attempt,
            kind: outcome_from_proto(m.outcome),
            http_status: u16::try_from(m.http_status).ok().filter(|s| *s != 0),
            error: m.error,
            duration_ms: m.duration_ms,
            attempted_at: from_ts(m.attempted_at.as_ref()),
            next_attempt_at: m.next_attempt_at.as_ref().map(|t| from_ts(Some(t))),
        })
    } else if psirt_eventstore::is_type::<events::DeliverySucceeded>(t) {
        let m: events::DeliverySucceeded = e.decode()?;
        DeliveryEvent::DeliverySucceeded {
            delivery_id: parse(e, "delivery_id", &m.delivery_id)?,
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            case_id: optional_case(e, &m.case_id)?,
            attempts: m.attempts,
            external_reference: m.external_reference,
            delivered_at: from_ts(m.delivered_at.as_ref()),
        }
    } else if psirt_eventstore::is_type::<events::DeliveryDeadLettered>(t) {
        let m: events::DeliveryDeadLettered = e.decode()?;
        DeliveryEvent::DeliveryDeadLettered {
            delivery_id: parse(e, "delivery_id", &m.delivery_id)?,
            subscription_id: parse(e, "subscription_id", &m.subscription_id)?,
            case_id: optional_case(e, &m.case_id)?,
            attempts: m.attempts,
            last_error: m.last_error,
            dead_lettered_at: from_ts(m.dead_lettered_at.as_ref()),
        }
    } else {
        return Ok(None);
    }))
}

fn case_text(case_id: Option<CaseId>) -> String {
    case_id.map(|c| c.to_string()).unwrap_or_default()
}

pub fn delivery_event_to_new(event: &DeliveryEvent, id: uuid::Uuid, metadata: Metadata) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode_delivery_event(event);
    NewEvent {
        id,
        subject: delivery_subject(event.delivery_id()),
        event_type,
        schema_version,
        payload,
        metadata,
    }
}

/// The stored form of a DeliveryEvent.
pub fn encode_delivery_event(event: &DeliveryEvent) -> Encoded {
    match event {
        DeliveryEvent::DeliveryScheduled(s) => Encoded::message(&scheduled_to_proto(s)),
        DeliveryEvent::DeliveryAttempted(a) => Encoded::message(&events::DeliveryAttempted {
            delivery_id: a.delivery_id.to_string(),
            subscription_id: a.subscription_id.to_string(),
            case_id: case_text(a.case_id),
            attempt: a.attempt,
            outcome: outcome_to_proto(a.kind).into(),
            http_status: a.http_status.map_or(0, u32::from),
            error: a.error.clone(),
            duration_ms: a.duration_ms,
            attempted_at: ts(a.attempted_at),
            next_attempt_at: a.next_attempt_at.and_then(ts),
        }),
        DeliveryEvent::DeliverySucceeded {
            delivery_id,
            subscription_id,
            case_id,
            attempts,
            external_reference,
            delivered_at,
        } => Encoded::message(&events::DeliverySucceeded {
            delivery_id: delivery_id.to_string(),
            subscription_id: subscription_id.to_string(),
            case_id: case_text(*case_id),
            attempts: *attempts,
            external_reference: external_reference.clone(),
            delivered_at: ts(*delivered_at),
        }),
        DeliveryEvent::DeliveryDeadLettered {
            delivery_id,
            subscription_id,
            case_id,
            attempts,
            last_error,
            dead_lettered_at,
        } => Encoded::message(&events::DeliveryDeadLettered {
            delivery_id: delivery_id.to_string(),
            subscription_id: subscription_id.to_string(),
            case_id: case_text(*case_id),
            attempts: *attempts,
            last_error: last_error.clone(),
            dead_lettered_at: ts(*dead_lettered_at),
        }),
    }
}

/// A subscription's events on the stream, for the shared command path.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionCodec;

impl EventCodec for SubscriptionCodec {
    type Aggregate = psirt_domain::Subscription;
    type Context = ();

    fn decode(&self, event: &RecordedEvent) -> Result<Option<SubscriptionEvent>, DecodeError> {
        subscription_event_from_recorded(event)
    }

    fn encode(
        &self,
        event: &SubscriptionEvent,
        _before: &psirt_domain::Subscription,
        _context: &(),
    ) -> Encoded {
        encode_subscription_event(event)
    }
}

/// A delivery's events on the stream, for the shared command path.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryCodec;

impl EventCodec for DeliveryCodec {
    type Aggregate = psirt_domain::Delivery;
    type Context = ();

    fn decode(&self, event: &RecordedEvent) -> Result<Option<DeliveryEvent>, DecodeError> {
        delivery_event_from_recorded(event)
    }

    fn encode(&self, event: &DeliveryEvent, _before: &psirt_domain::Delivery, _context: &()) -> Encoded {
        encode_delivery_event(event)
    }
}
