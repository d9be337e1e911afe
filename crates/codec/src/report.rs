//! The report's events: the domain's form and their protobuf form on the
//! stream, in both directions.

use prost_types::Timestamp;
use psirt_domain::{
    Aggregate, CaseId, Channel, EventId, MessageDirection, MessageId, Report, ReportEvent, ReportId, Reporter,
};
use psirt_eventstore::{DecodeError, Encoded, EventCodec, Metadata, NewEvent, RecordedEvent};
use psirt_proto::{common, events};
use time::OffsetDateTime;

pub use crate::convert::{from_timestamp, millis, timestamp};
use uuid::Uuid;

/// The aggregate name in subjects: `psirt.evt.report.<id>`.
pub const AGGREGATE: &str = Report::AGGREGATE_TYPE;

pub fn subject(id: ReportId) -> String {
    psirt_eventstore::subject(AGGREGATE, id)
}

/// The report's events on the stream, for the shared command path. The
/// encoding context is the request id recorded in each event.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportCodec;

impl EventCodec for ReportCodec {
    type Aggregate = Report;
    type Context = String;

    fn decode(&self, event: &RecordedEvent) -> Result<Option<ReportEvent>, DecodeError> {
        to_domain(event).map(Some)
    }

    fn encode(&self, event: &ReportEvent, _before: &Report, request_id: &String) -> Encoded {
        encode(event, request_id)
    }
}

pub fn channel_to_proto(c: Channel) -> common::ReportChannel {
    match c {
        Channel::Web => common::ReportChannel::Web,
        Channel::Email => common::ReportChannel::Email,
        Channel::Api => common::ReportChannel::Api,
        Channel::Feed => common::ReportChannel::Feed,
        Channel::Internal => common::ReportChannel::Internal,
    }
}

/// `None` for unspecified or unknown values: validation names the field.
pub fn channel_from_proto(value: i32) -> Option<Channel> {
    match common::ReportChannel::try_from(value).ok()? {
        common::ReportChannel::Unspecified => None,
        common::ReportChannel::Web => Some(Channel::Web),
        common::ReportChannel::Email => Some(Channel::Email),
        common::ReportChannel::Api => Some(Channel::Api),
        common::ReportChannel::Feed => Some(Channel::Feed),
        common::ReportChannel::Internal => Some(Channel::Internal),
    }
}

pub fn direction_to_proto(d: MessageDirection) -> common::MessageDirection {
    match d {
        MessageDirection::Inbound => common::MessageDirection::Inbound,
        MessageDirection::Outbound => common::MessageDirection::Outbound,
    }
}

pub fn direction_from_proto(value: i32) -> Option<MessageDirection> {
    match common::MessageDirection::try_from(value).ok()? {
        common::MessageDirection::Unspecified => None,
        common::MessageDirection::Inbound => Some(MessageDirection::Inbound),
        common::MessageDirection::Outbound => Some(MessageDirection::Outbound),
    }
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

pub fn reporter_from_proto(r: Option<&common::Reporter>) -> Reporter {
    match r {
        None => Reporter::default(),
        Some(r) => Reporter { name: opt(&r.name), email: opt(&r.email), organization: opt(&r.organization) },
    }
}

pub fn reporter_to_proto(r: &Reporter) -> common::Reporter {
    common::Reporter {
        name: r.name.clone().unwrap_or_default(),
        email: r.email.clone().unwrap_or_default(),
        organization: r.organization.clone().unwrap_or_default(),
    }
}

/// Turns a domain event into the event to append. `request_id` is the
/// client's idempotency key (recorded for audit), `event_id` the
/// deterministic id derived from it.
pub fn to_new_event(
    event: &ReportEvent,
    event_id: EventId,
    request_id: &str,
    metadata: Metadata,
) -> NewEvent {
    let Encoded { event_type, schema_version, payload } = encode(event, request_id);
    let id: Uuid = event_id.into();
    NewEvent { id, subject: subject(event.report_id()), event_type, schema_version, payload, metadata }
}

/// The stored form of a report event; `request_id` is the client's key,
/// recorded in the payload for audit.
pub fn encode(event: &ReportEvent, request_id: &str) -> Encoded {
    match event {
        ReportEvent::ReportReceived {
            report_id,
            case_id,
            request_id: rid,
            title,
            description,
            reporter,
            channel,
            affected_products,
            suggested_cvss_vector,
            requested_disclosure_at,
            received_at,
            external_reference,
        } => Encoded::message(&events::ReportReceived {
            report_id: report_id.to_string(),
            case_id: case_id.to_string(),
            request_id: rid.clone().unwrap_or_default(),
            title: title.clone(),
            description: description.clone(),
            reporter: Some(reporter_to_proto(reporter)),
            channel: channel_to_proto(*channel).into(),
            affected_products: affected_products.clone(),
            suggested_cvss_vector: suggested_cvss_vector.clone().unwrap_or_default(),
            requested_disclosure_at: requested_disclosure_at.map(timestamp),
            received_at: Some(timestamp(*received_at)),
            external_reference: external_reference.clone().unwrap_or_default(),
        }),
        ReportEvent::ReportAcknowledged { report_id, message, acknowledged_at } => {
            Encoded::message(&events::ReportAcknowledged {
                report_id: report_id.to_string(),
                case_id: CaseId::for_report(*report_id).to_string(),
                request_id: request_id.to_owned(),
                message: message.clone(),
                acknowledged_at: Some(timestamp(*acknowledged_at)),
            })
        }
        ReportEvent::ReporterMessageAdded { report_id, message_id, direction, author, body, added_at } => {
            Encoded::message(&events::ReporterMessageAdded {
                report_id: report_id.to_string(),
                case_id: CaseId::for_report(*report_id).to_string(),
                request_id: request_id.to_owned(),
                message_id: message_id.to_string(),
                direction: direction_to_proto(*direction).into(),
                author: author.clone(),
                body: body.clone(),
                sent_at: Some(timestamp(*added_at)),
            })
        }
        ReportEvent::DuplicateSuspected { report_id, other, reason, suspected_at } => {
            Encoded::message(&events::DuplicateSuspected {
                report_id: report_id.to_string(),
                case_id: CaseId::for_report(*report_id).to_string(),
                other_report_id: other.to_string(),
                other_case_id: CaseId::for_report(*other).to_string(),
                match_kind: events::DuplicateMatchKind::TitleAndProduct.into(),
                reason: reason.clone(),
                suspected_at: Some(timestamp(*suspected_at)),
                ..Default::default()
            })
        }
    }
}

fn bad(event: &RecordedEvent, message: impl Into<String>) -> DecodeError {
    DecodeError::Payload {
        event_type: event.event_type.clone(),
        sequence: event.sequence,
        message: message.into(),
    }
}

fn parse_id<T: std::str::FromStr>(event: &RecordedEvent, field: &str, value: &str) -> Result<T, DecodeError> {
    value.parse().map_err(|_| bad(event, format!("{field} {value:?} is not an id")))
}

fn time_of(event: &RecordedEvent, t: Option<&Timestamp>) -> OffsetDateTime {
    t.and_then(from_timestamp).unwrap_or(event.stored_at)
}

/// Decodes a stored report event into the domain's form, for deciding
/// commands. Unknown types are an error: a report subject holds report
/// events only.
pub fn to_domain(event: &RecordedEvent) -> Result<ReportEvent, DecodeError> {
    let t = event.event_type.as_str();
    if psirt_eventstore::is_type::<events::ReportReceived>(t) {
        let e: events::ReportReceived = event.decode()?;
        Ok(ReportEvent::ReportReceived {
            report_id: parse_id(event, "report_id", &e.report_id)?,
            case_id: parse_id(event, "case_id", &e.case_id)?,
            request_id: opt(&e.request_id),
            title: e.title,
            description: e.description,
            reporter: reporter_from_proto(e.reporter.as_ref()),
            channel: channel_from_proto(e.channel).ok_or_else(|| bad(event, "unknown channel"))?,
            affected_products: e.affected_products,
            suggested_cvss_vector: opt(&e.suggested_cvss_vector),
            requested_disclosure_at: e.requested_disclosure_at.as_ref().and_then(from_timestamp),
            received_at: time_of(event, e.received_at.as_ref()),
            external_reference: opt(&e.external_reference),
        })
    } else if psirt_eventstore::is_type::<events::ReportAcknowledged>(t) {
        let e: events::ReportAcknowledged = event.decode()?;
        Ok(ReportEvent::ReportAcknowledged {
            report_id: parse_id(event, "report_id", &e.report_id)?,
            message: e.message,
            acknowledged_at: time_of(event, e.acknowledged_at.as_ref()),
        })
    } else if psirt_eventstore::is_type::<events::ReporterMessageAdded>(t) {
        let e: events::ReporterMessageAdded = event.decode()?;
        Ok(ReportEvent::ReporterMessageAdded {
            report_id: parse_id(event, "report_id", &e.report_id)?,
            message_id: parse_id::<MessageId>(event, "message_id", &e.message_id)?,
            direction: direction_from_proto(e.direction).ok_or_else(|| bad(event, "unknown direction"))?,
            author: e.author,
            body: e.body,
            added_at: time_of(event, e.sent_at.as_ref()),
        })
    } else if psirt_eventstore::is_type::<events::DuplicateSuspected>(t) {
        let e: events::DuplicateSuspected = event.decode()?;
        Ok(ReportEvent::DuplicateSuspected {
            report_id: parse_id(event, "report_id", &e.report_id)?,
            other: parse_id(event, "other_report_id", &e.other_report_id)?,
            reason: e.reason,
            suspected_at: time_of(event, e.suspected_at.as_ref()),
        })
    } else {
        Err(DecodeError::UnknownType { event_type: event.event_type.clone(), sequence: event.sequence })
    }
}

/// Deterministic id of the event a command appends: the same client
/// request (principal and request id) always yields the same event.
pub fn command_event_id(report: ReportId, command: &str, principal: &str, request_id: &str) -> EventId {
    EventId::derive(report.into(), &format!("{command}\u{1f}{principal}\u{1f}{request_id}"))
}
