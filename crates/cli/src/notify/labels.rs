//! How the enum values of the notification API are shown: the labels the
//! options take (`webhook`, `dead`, `high`), in tables and key/value blocks.

use psirt_proto::common::SeverityRating;
use psirt_proto::events::{DeliveryChannel, EscalationLevel, TicketStatusCategory, TicketSystem};
use psirt_proto::notification::DeliveryStatus;

use super::parse::EVENTS_PACKAGE;
use crate::output;

/// `webhook`, matching `--channel`.
pub fn channel_label(channel: i32) -> String {
    let name = DeliveryChannel::try_from(channel).ok().map(|c| c.as_str_name());
    output::enum_label(name, "DELIVERY_CHANNEL_", channel)
}

/// `pending`, `delivered`, `dead`, matching `--status`.
pub fn delivery_status_label(status: i32) -> String {
    let name = DeliveryStatus::try_from(status).ok().map(|s| s.as_str_name());
    output::enum_label(name, "DELIVERY_STATUS_", status)
}

/// A `--min-severity` value, or `any` when unset.
pub fn min_severity_label(rating: i32) -> String {
    match SeverityRating::try_from(rating) {
        Ok(SeverityRating::Unspecified) => "any".to_owned(),
        other => output::enum_label(other.ok().map(|r| r.as_str_name()), "SEVERITY_RATING_", rating),
    }
}

/// A `--min-escalation` value, or `any` when unset.
pub fn min_escalation_label(level: i32) -> String {
    match EscalationLevel::try_from(level) {
        Ok(EscalationLevel::Unspecified) => "any".to_owned(),
        other => output::enum_label(other.ok().map(|l| l.as_str_name()), "ESCALATION_LEVEL_", level),
    }
}

pub(super) fn ticket_system_label(system: i32) -> String {
    let name = TicketSystem::try_from(system).ok().map(|s| s.as_str_name());
    output::enum_label(name, "TICKET_SYSTEM_", system)
}

pub(super) fn ticket_category_label(category: i32) -> String {
    match TicketStatusCategory::try_from(category) {
        Ok(TicketStatusCategory::Unspecified) => "-".to_owned(),
        other => output::enum_label(other.ok().map(|c| c.as_str_name()), "TICKET_STATUS_CATEGORY_", category)
            .replace('_', "-"),
    }
}

/// `CaseAccepted` for `psirt.events.v1.CaseAccepted`: the short name the
/// options accept too.
pub fn short_event_type(event_type: &str) -> &str {
    event_type.strip_prefix(EVENTS_PACKAGE).and_then(|r| r.strip_prefix('.')).unwrap_or(event_type)
}

pub(super) fn list_or(values: &[String], empty: &str) -> String {
    if values.is_empty() { empty.to_owned() } else { values.join(", ") }
}

pub(super) fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}
