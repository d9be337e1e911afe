//! Notifications: who hears about which event, and how each delivery fares.
//!
//! - [`Subscription`]: a routing rule (event types, minimum severity,
//!   products, case status, escalation level) and a destination (channel,
//!   endpoint, secret name), trusted or not with undisclosed details.
//! - [`matches`]: whether an event, described by its [`EventFacts`], goes to
//!   a subscription; [`exposure`]: how much of it a destination learns
//!   (untrusted ones: a redacted notice until the case is disclosed, never
//!   a reporter's report).
//! - [`Delivery`]: one event to one subscription, scheduled, attempted,
//!   then delivered or dead-lettered after [`RetryPolicy::max_attempts`];
//!   a dead delivery can be redelivered (a new attempt series).
//! - [`RetryPolicy`]: exponential backoff with full jitter, capped, and
//!   honouring the peer's `Retry-After`. The jitter comes in with the
//!   command, so decisions stay pure and tests fix it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::case::{CaseStatus, EscalationLevel};
use crate::cvss_vector::CvssSeverity;
use crate::ids::{CaseId, DeliveryId, EventId, SubscriptionId};
use crate::validation::FieldViolation;

/// Longest subscription name.
pub const MAX_SUBSCRIPTION_NAME_CHARS: usize = 200;
/// Longest endpoint (URL, address, project key).
pub const MAX_ENDPOINT_CHARS: usize = 2048;
/// Most event types one subscription may filter on.
pub const MAX_EVENT_TYPES: usize = 100;
/// Longest event type name.
pub const MAX_EVENT_TYPE_CHARS: usize = 200;
/// Most products one subscription may filter on.
pub const MAX_FILTER_PRODUCTS: usize = 100;
/// Longest product in a filter.
pub const MAX_FILTER_PRODUCT_CHARS: usize = 200;
/// Longest secret name.
pub const MAX_SECRET_REF_CHARS: usize = 200;
/// Longest reason for a deletion.
pub const MAX_DELETE_REASON_CHARS: usize = 1000;
/// Longest error recorded for an attempt.
pub const MAX_ERROR_CHARS: usize = 2000;
/// Longest external reference a destination may return.
pub const MAX_EXTERNAL_REFERENCE_CHARS: usize = crate::validation::MAX_EXTERNAL_REFERENCE_CHARS;
/// The package of every event type; filters name types inside it.
pub const EVENTS_PACKAGE: &str = "psirt.events.v1";

/// Where a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// HTTP POST of a CloudEvent, signed with HMAC-SHA256.
    Webhook,
    Email,
    Jira,
    ServiceNow,
}

impl Channel {
    /// Whether the channel keeps a ticket per case in an external tracker.
    pub const fn is_tracker(self) -> bool {
        matches!(self, Self::Jira | Self::ServiceNow)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::Jira => "jira",
            Self::ServiceNow => "servicenow",
        }
    }
}

/// A subscription's routing rule and destination. Every filter must match;
/// an empty filter matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSettings {
    pub name: String,
    pub channel: Channel,
    /// The URL of a webhook.
    pub endpoint: String,
    /// Fully-qualified event type names; empty: all.
    pub event_types: Vec<String>,
    /// Only events of cases with at least this severity (so not of cases
    /// not yet assessed); `None`: any.
    pub min_severity: Option<CvssSeverity>,
    /// Only events of cases affecting one of these products (without case); empty: any.
    pub products: Vec<String>,
    /// Only events of cases in one of these statuses; empty: any.
    pub case_statuses: Vec<CaseStatus>,
    /// For `CaseEscalated`: only at or above this level; `None`: any.
    pub min_escalation_level: Option<EscalationLevel>,
    /// May receive the details of undisclosed cases and report events;
    /// otherwise only redacted notices until disclosure (see [`exposure`]).
    pub trusted: bool,
    /// Name of the secret that signs (webhook) or authenticates (adapters).
    pub secret_ref: String,
    pub enabled: bool,
}

/// Every problem with `settings`, with field names as in the API message.
pub fn validate_settings(settings: &SubscriptionSettings) -> Vec<FieldViolation> {
    let mut v = Vec::new();
    let name = settings.name.trim();
    if name.is_empty() {
        v.push(FieldViolation::new("name", "name must not be empty"));
    } else if name.chars().count() > MAX_SUBSCRIPTION_NAME_CHARS {
        v.push(FieldViolation::new(
            "name",
            format!("name must be at most {MAX_SUBSCRIPTION_NAME_CHARS} characters"),
        ));
    } else if let Err(problem) = crate::validation::single_line_text(name) {
        v.push(FieldViolation::new("name", format!("name {problem}")));
    }
    let endpoint = match settings.channel {
        Channel::Webhook => check_webhook_url(&settings.endpoint),
        Channel::Email => check_email_recipients(&settings.endpoint),
        Channel::Jira => check_jira_project(&settings.endpoint),
        Channel::ServiceNow => check_servicenow_table(&settings.endpoint),
    };
    if let Err(problem) = endpoint {
        v.push(FieldViolation::new("endpoint", problem));
    }
    if settings.event_types.len() > MAX_EVENT_TYPES {
        v.push(FieldViolation::new("event_types", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    for (i, t) in settings.event_types.iter().enumerate().take(MAX_EVENT_TYPES) {
        if let Err(problem) = check_event_type(t) {
            v.push(FieldViolation::new(format!("event_types[{i}]"), problem));
        }
    }
    if settings.products.len() > MAX_FILTER_PRODUCTS {
        v.push(FieldViolation::new("products", format!("at most {MAX_FILTER_PRODUCTS} products")));
    }
    for (i, p) in settings.products.iter().enumerate().take(MAX_FILTER_PRODUCTS) {
        let p = p.trim();
        if p.is_empty() {
            v.push(FieldViolation::new(format!("products[{i}]"), "product must not be empty"));
        } else if p.chars().count() > MAX_FILTER_PRODUCT_CHARS {
            v.push(FieldViolation::new(
                format!("products[{i}]"),
                format!("product must be at most {MAX_FILTER_PRODUCT_CHARS} characters"),
            ));
        } else if let Err(problem) = crate::validation::single_line_text(p) {
            v.push(FieldViolation::new(format!("products[{i}]"), format!("product {problem}")));
        }
    }
    if settings.case_statuses.len() > CaseStatus::ALL.len() {
        v.push(FieldViolation::new("case_statuses", "each status at most once"));
    }
    let secret = settings.secret_ref.trim();
    if secret.is_empty() {
        match settings.channel {
            Channel::Webhook => {
                v.push(FieldViolation::new("secret_ref", "a webhook needs the name of its signing secret"));
            }
            Channel::Email | Channel::Jira | Channel::ServiceNow => {}
        }
    } else if settings.channel.is_tracker() {
        v.push(FieldViolation::new(
            "secret_ref",
            "leave empty: tracker credentials are configured in the service's [jira] or [servicenow] section",
        ));
    } else if secret.chars().count() > MAX_SECRET_REF_CHARS {
        v.push(FieldViolation::new(
            "secret_ref",
            format!("secret name must be at most {MAX_SECRET_REF_CHARS} characters"),
        ));
    } else if !secret.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        v.push(FieldViolation::new("secret_ref", "secret name must consist of A-Z a-z 0-9 - _ ."));
    }
    v
}

/// A fully-qualified event type of the events package (`psirt.events.v1.CaseAccepted`).
fn check_event_type(t: &str) -> Result<(), String> {
    if t.chars().count() > MAX_EVENT_TYPE_CHARS {
        return Err(format!("event type must be at most {MAX_EVENT_TYPE_CHARS} characters"));
    }
    let Some(name) = t.strip_prefix(EVENTS_PACKAGE).and_then(|r| r.strip_prefix('.')) else {
        return Err(format!(
            "event type must be a message of {EVENTS_PACKAGE}, e.g. {EVENTS_PACKAGE}.CaseAccepted"
        ));
    };
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(format!("{t:?} is not an event type name")) }
}

/// Most recipients of one e-mail subscription.
pub const MAX_EMAIL_RECIPIENTS: usize = 50;

/// E-mail recipients: one address or several separated by commas.
pub fn check_email_recipients(endpoint: &str) -> Result<(), String> {
    if endpoint.trim().is_empty() {
        return Err("endpoint must name at least one e-mail address".into());
    }
    if endpoint.chars().count() > MAX_ENDPOINT_CHARS {
        return Err(format!("endpoint must be at most {MAX_ENDPOINT_CHARS} characters"));
    }
    let addresses: Vec<&str> = endpoint.split(',').map(str::trim).collect();
    if addresses.len() > MAX_EMAIL_RECIPIENTS {
        return Err(format!("at most {MAX_EMAIL_RECIPIENTS} recipients"));
    }
    for a in addresses {
        crate::validation::check_email(a).map_err(|problem| format!("{a:?}: {problem}"))?;
    }
    Ok(())
}

/// The recipients of an e-mail subscription's endpoint.
pub fn email_recipients(endpoint: &str) -> impl Iterator<Item = &str> {
    endpoint.split(',').map(str::trim).filter(|a| !a.is_empty())
}

/// A Jira project key: an upper-case letter, then upper-case letters,
/// digits or underscores, 2..=10 characters (Jira's default rule).
pub fn check_jira_project(endpoint: &str) -> Result<(), String> {
    let mut chars = endpoint.chars();
    let ok = (2..=10).contains(&endpoint.len())
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("endpoint must be a Jira project key such as SEC (A-Z, 0-9, _; 2..10)".into())
    }
}

/// A ServiceNow table name: lower-case letters, digits and underscores,
/// 1..=80 characters (`incident`, `sn_vul_vulnerable_item`, `u_psirt_case`).
pub fn check_servicenow_table(endpoint: &str) -> Result<(), String> {
    let ok = (1..=80).contains(&endpoint.len())
        && endpoint.starts_with(|c: char| c.is_ascii_lowercase())
        && endpoint.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("endpoint must be a ServiceNow table name such as incident (a-z, 0-9, _)".into())
    }
}

/// A webhook URL: `https://host[:port][/path][?query]`, or `http://` to a
/// loopback host (a receiver on the same machine, as in tests). No user
/// info (credentials in a URL end up in logs), no fragment, no whitespace.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("endpoint must not be empty".into());
    }
    if url.chars().count() > MAX_ENDPOINT_CHARS {
        return Err(format!("endpoint must be at most {MAX_ENDPOINT_CHARS} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
        return Err("endpoint must be an ASCII URL without whitespace".into());
    }
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("endpoint must be an https URL".into());
    };
    if rest.contains('#') {
        return Err("endpoint must not have a fragment".into());
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("endpoint must not carry credentials; use secret_ref".into());
    }
    let host = host_of(authority).ok_or_else(|| "endpoint has no valid host".to_owned())?;
    if !https && !is_loopback(host) {
        return Err("endpoint must be an https URL (http only to a loopback host)".into());
    }
    Ok(())
}

/// The host of `host[:port]` or `[v6][:port]`, if well-formed.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':');
        if !rest[end + 1..].is_empty() && port.is_none() {
            return None;
        }
        (&rest[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return None;
    }
    let valid = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    valid.then_some(host)
}

fn is_loopback(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

/// What routing knows of a case at the position of an event in the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaseFacts {
    pub case_key: Option<String>,
    /// The title of the report that opened the case.
    pub title: Option<String>,
    /// CVE ids assigned to the case, in assignment order.
    pub cve_ids: Vec<String>,
    pub severity: Option<CvssSeverity>,
    /// Affected product identifiers.
    pub products: Vec<String>,
    pub status: Option<CaseStatus>,
    /// An embargo was set and the case is not disclosed yet.
    pub embargoed: bool,
    /// The case is disclosed (its advisory public) and not reopened since.
    pub disclosed: bool,
}

impl CaseFacts {
    /// Whether the case's facts are public: disclosed, and not reopened
    /// since. (Rows written before `disclosed` existed say so by status.)
    pub fn is_public(&self) -> bool {
        self.disclosed || self.status == Some(CaseStatus::Disclosed)
    }

    /// What a redacted notice may say of the case: its key and status.
    pub fn redacted(&self) -> Self {
        Self { case_key: self.case_key.clone(), status: self.status, ..Self::default() }
    }
}

/// What routing looks at in one event.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    /// Fully-qualified event type.
    pub event_type: &'a str,
    /// The case the event belongs to, if any, as known at the event.
    pub case: Option<&'a CaseFacts>,
    /// The level of a `CaseEscalated`.
    pub escalation_level: Option<EscalationLevel>,
}

/// Events of the notification service itself are never routed: a
/// subscription to every event would otherwise schedule a delivery of each
/// delivery's own events, without end.
pub fn is_routable(event_type: &str) -> bool {
    let Some(name) = event_type.strip_prefix(EVENTS_PACKAGE).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    !(name.starts_with("Subscription") || name.starts_with("Delivery"))
}

/// Whether `facts` goes to a subscription with `settings`: enabled, and
/// every filter matches.
pub fn matches(settings: &SubscriptionSettings, facts: &EventFacts<'_>) -> bool {
    if !settings.enabled || !is_routable(facts.event_type) {
        return false;
    }
    if exposure(settings.trusted, facts.event_type, facts.case) == Exposure::Withheld {
        return false;
    }
    if !settings.event_types.is_empty() && !settings.event_types.iter().any(|t| t == facts.event_type) {
        return false;
    }
    if let Some(min) = settings.min_severity
        && facts.case.and_then(|c| c.severity).is_none_or(|s| s < min)
    {
        return false;
    }
    if !settings.products.is_empty() {
        let Some(case) = facts.case else { return false };
        let hit = settings
            .products
            .iter()
            .any(|want| case.products.iter().any(|p| p.trim().eq_ignore_ascii_case(want.trim())));
        if !hit {
            return false;
        }
    }
    if !settings.case_statuses.is_empty()
        && !facts.case.and_then(|c| c.status).is_some_and(|s| settings.case_statuses.contains(&s))
    {
        return false;
    }
    if let (Some(min), Some(level)) = (settings.min_escalation_level, facts.escalation_level)
        && level < min
    {
        return false;
    }
    true
}

/// The events of a reporter's report: their text, proof of concept and
/// personal data. They never go to an untrusted destination, redacted or not.
pub const REPORT_EVENT_TYPES: [&str; 4] = [
    "psirt.events.v1.ReportReceived",
    "psirt.events.v1.ReportAcknowledged",
    "psirt.events.v1.ReporterMessageAdded",
    "psirt.events.v1.DuplicateSuspected",
];

/// Whether `event_type` is an event of a reporter's report.
pub fn is_report_event(event_type: &str) -> bool {
    REPORT_EVENT_TYPES.contains(&event_type)
}

/// What a destination learns of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// The whole event (trusted destinations only).
    Full,
    /// The case is disclosed: its public facts (key, status, title,
    /// severity, products, CVEs), never the event's own payload.
    Public,
    /// A notice: event type, case key, time, status and a link.
    Redacted,
    /// Nothing: a report event for an untrusted destination.
    Withheld,
}

/// What a destination learns of an event, given what is known of its case
/// (`None`: not known, or unreadable).
///
/// A trusted destination learns everything. An untrusted one never learns
/// of report events, and of every other event only a redacted notice until
/// the case is disclosed; after that, the case's public facts. Not knowing
/// the case means redacted.
pub fn exposure(trusted: bool, event_type: &str, case: Option<&CaseFacts>) -> Exposure {
    if trusted {
        Exposure::Full
    } else if is_report_event(event_type) {
        Exposure::Withheld
    } else if case.is_some_and(CaseFacts::is_public) {
        Exposure::Public
    } else {
        Exposure::Redacted
    }
}

/// Whether a delivery to `settings` goes without the event's own details
/// (anything but [`Exposure::Full`]); recorded with the delivery.
pub fn redacted(settings: &SubscriptionSettings, facts: &EventFacts<'_>) -> bool {
    exposure(settings.trusted, facts.event_type, facts.case) != Exposure::Full
}

// ---------------------------------------------------------------------------
// The subscription aggregate
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionCommand {
    /// Creates the subscription; the same settings again is a no-op (a
    /// retried request).
    Create { subscription_id: SubscriptionId, settings: SubscriptionSettings },
    /// Replaces the settings; the same settings again is a no-op.
    Update { settings: SubscriptionSettings },
    /// Deletes the subscription; deleting it again is a no-op.
    Delete { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    SubscriptionCreated {
        subscription_id: SubscriptionId,
        settings: SubscriptionSettings,
        created_at: OffsetDateTime,
    },
    SubscriptionUpdated {
        subscription_id: SubscriptionId,
        settings: SubscriptionSettings,
        updated_at: OffsetDateTime,
    },
    SubscriptionDeleted {
        subscription_id: SubscriptionId,
        reason: String,
        deleted_at: OffsetDateTime,
    },
}

impl SubscriptionEvent {
    /// The subscription the event is about.
    pub fn subscription_id(&self) -> SubscriptionId {
        match self {
            Self::SubscriptionCreated { subscription_id, .. }
            | Self::SubscriptionUpdated { subscription_id, .. }
            | Self::SubscriptionDeleted { subscription_id, .. } => *subscription_id,
        }
    }
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::SubscriptionCreated { .. } => "SubscriptionCreated",
            Self::SubscriptionUpdated { .. } => "SubscriptionUpdated",
            Self::SubscriptionDeleted { .. } => "SubscriptionDeleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("invalid subscription: {}", crate::validation::join(.0))]
    Validation(Vec<FieldViolation>),
    #[error("subscription not found")]
    NotFound,
    #[error("the subscription is deleted")]
    Deleted,
    /// The id (from the request id) is taken by a subscription with other settings.
    #[error("a subscription with this id exists with other settings")]
    AlreadyExists,
}

/// A subscription, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    id: Option<SubscriptionId>,
    settings: Option<SubscriptionSettings>,
    deleted: bool,
    version: u64,
}

impl Subscription {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    pub fn id(&self) -> Option<SubscriptionId> {
        self.id
    }

    pub fn settings(&self) -> Option<&SubscriptionSettings> {
        self.settings.as_ref()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    pub fn handle(
        &self,
        command: SubscriptionCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        match command {
            SubscriptionCommand::Create { subscription_id, settings } => {
                let settings = normalise(settings);
                if let Some(existing) = &self.settings {
                    if self.deleted {
                        return Err(SubscriptionError::Deleted);
                    }
                    return if *existing == settings {
                        Ok(vec![])
                    } else {
                        Err(SubscriptionError::AlreadyExists)
                    };
                }
                reject(validate_settings(&settings))?;
                Ok(vec![SubscriptionEvent::SubscriptionCreated {
                    subscription_id,
                    settings,
                    created_at: now,
                }])
            }
            SubscriptionCommand::Update { settings } => {
                let (id, existing) = self.live()?;
                let settings = normalise(settings);
                reject(validate_settings(&settings))?;
                if *existing == settings {
                    return Ok(vec![]);
                }
                Ok(vec![SubscriptionEvent::SubscriptionUpdated {
                    subscription_id: id,
                    settings,
                    updated_at: now,
                }])
            }
            SubscriptionCommand::Delete { reason } => {
                let Some(id) = self.id else { return Err(SubscriptionError::NotFound) };
                if self.deleted {
                    return Ok(vec![]);
                }
                let reason = reason.trim().to_owned();
                let mut violations = Vec::new();
                if !crate::validation::Text::block_chars(0, MAX_DELETE_REASON_CHARS).check(
                    &mut violations,
                    "reason",
                    &reason,
                ) {
                    return Err(SubscriptionError::Validation(violations));
                }
                Ok(vec![SubscriptionEvent::SubscriptionDeleted {
                    subscription_id: id,
                    reason,
                    deleted_at: now,
                }])
            }
        }
    }

    fn live(&self) -> Result<(SubscriptionId, &SubscriptionSettings), SubscriptionError> {
        match (self.id, &self.settings) {
            (Some(_), Some(_)) if self.deleted => Err(SubscriptionError::Deleted),
            (Some(id), Some(settings)) => Ok((id, settings)),
            _ => Err(SubscriptionError::NotFound),
        }
    }

    pub fn apply(&mut self, event: &SubscriptionEvent) {
        match event {
            SubscriptionEvent::SubscriptionCreated { subscription_id, settings, .. } => {
                self.id = Some(*subscription_id);
                self.settings = Some(settings.clone());
            }
            SubscriptionEvent::SubscriptionUpdated { settings, .. } => self.settings = Some(settings.clone()),
            SubscriptionEvent::SubscriptionDeleted { .. } => self.deleted = true,
        }
        self.version += 1;
    }
}

/// Trims what a client may pad, and orders nothing: filters keep the
/// client's order so an update with the same lists is a no-op.
fn normalise(mut s: SubscriptionSettings) -> SubscriptionSettings {
    s.name = s.name.trim().to_owned();
    s.endpoint = s.endpoint.trim().to_owned();
    s.secret_ref = s.secret_ref.trim().to_owned();
    for p in &mut s.products {
        *p = p.trim().to_owned();
    }
    for t in &mut s.event_types {
        *t = t.trim().to_owned();
    }
    s
}

fn reject(violations: Vec<FieldViolation>) -> Result<(), SubscriptionError> {
    if violations.is_empty() { Ok(()) } else { Err(SubscriptionError::Validation(violations)) }
}

impl Aggregate for Subscription {
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;

    const AGGREGATE_TYPE: &'static str = "subscription";

    fn handle(&self, command: Self::Command, now: OffsetDateTime) -> Result<Vec<Self::Event>, Self::Error> {
        Subscription::handle(self, command, now)
    }

    fn apply(&mut self, event: &Self::Event) {
        Subscription::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

// ---------------------------------------------------------------------------
// Retry policy
// ---------------------------------------------------------------------------

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts per series before the delivery is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// The backoff cap of the first retry; doubles with every attempt.
    pub initial_backoff: Duration,
    /// The most the exponential backoff grows to.
    pub max_backoff: Duration,
    /// The most a peer's `Retry-After` is honoured for.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Every problem, as (field, description).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=100).contains(&self.max_attempts) {
            out.push(("max_attempts", "must be between 1 and 100".to_owned()));
        }
        if self.initial_backoff.is_zero() {
            out.push(("initial_backoff_ms", "must be at least 1".to_owned()));
        }
        if self.max_backoff < self.initial_backoff {
            out.push(("max_backoff_ms", "must be at least initial_backoff_ms".to_owned()));
        }
        if self.max_retry_after > Duration::from_secs(86_400) {
            out.push(("max_retry_after_ms", "must be at most one day".to_owned()));
        }
        out
    }

    /// The wait after failed attempt `attempt` (from 1): a uniform draw
    /// (`jitter` in `[0, 1]`) below `initial * 2^(attempt-1)` capped at
    /// `max_backoff` ("full jitter"), but never shorter than the peer's
    /// `Retry-After` (itself capped at `max_retry_after`).
    pub fn backoff(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let ceiling = self.initial_backoff.saturating_mul(1u32 << exponent.min(31)).min(self.max_backoff);
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 1.0 };
        let drawn = ceiling.mul_f64(jitter);
        match retry_after {
            Some(wait) => drawn.max(wait.min(self.max_retry_after)),
            None => drawn,
        }
    }
}

// ---------------------------------------------------------------------------
// The delivery aggregate
// ---------------------------------------------------------------------------

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Given up; an operator may redeliver it.
    Dead,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// How an attempt classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptKind {
    Succeeded,
    /// Timeouts, connection errors, HTTP 408, 429 and 5xx.
    RetryableFailure,
    /// Anything else (HTTP 3xx and 4xx but 408/429): retrying cannot help.
    PermanentFailure,
}

/// How an HTTP status classifies: 2xx success; 408, 429, 5xx retryable; the rest permanent.
pub fn classify_http_status(status: u16) -> AttemptKind {
    match status {
        200..=299 => AttemptKind::Succeeded,
        408 | 429 | 500..=599 => AttemptKind::RetryableFailure,
        _ => AttemptKind::PermanentFailure,
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub kind: AttemptKind,
    /// HTTP status, if there was a response.
    pub http_status: Option<u16>,
    /// Empty on success.
    pub error: String,
    /// The peer's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// What the destination returned to identify the delivery, if anything.
    pub external_reference: String,
    pub duration_ms: u32,
}

/// The first event of a delivery; a redelivery repeats it with a new time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub delivery_id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub case_id: Option<CaseId>,
    pub event_id: EventId,
    pub event_type: String,
    pub event_sequence: u64,
    pub channel: Channel,
    pub redacted: bool,
    pub scheduled_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryCommand {
    /// Schedules the delivery; scheduling it again is a no-op.
    Schedule(Scheduled),
    /// Records one attempt of the current series.
    RecordAttempt {
        result: AttemptResult,
        attempted_at: OffsetDateTime,
        policy: RetryPolicy,
        /// Uniform in `[0, 1]`, drawn by the caller for the backoff.
        jitter: f64,
    },
    /// Schedules a dead delivery again (a new attempt series); a pending
    /// one is left alone.
    Redeliver,
    /// Gives a pending delivery up without an attempt (its subscription was
    /// deleted); anything else is left alone.
    Abandon { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub delivery_id: DeliveryId,
    pub subscription_id: SubscriptionId,
    pub case_id: Option<CaseId>,
    /// Attempt number within the series, from 1.
    pub attempt: u32,
    pub kind: AttemptKind,
    pub http_status: Option<u16>,
    pub error: String,
    pub duration_ms: u32,
    pub attempted_at: OffsetDateTime,
    pub next_attempt_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEvent {
    DeliveryScheduled(Scheduled),
    DeliveryAttempted(Attempted),
    DeliverySucceeded {
        delivery_id: DeliveryId,
        subscription_id: SubscriptionId,
        case_id: Option<CaseId>,
        attempts: u32,
        external_reference: String,
        delivered_at: OffsetDateTime,
    },
    DeliveryDeadLettered {
        delivery_id: DeliveryId,
        subscription_id: SubscriptionId,
        case_id: Option<CaseId>,
        attempts: u32,
        last_error: String,
        dead_lettered_at: OffsetDateTime,
    },
}

impl DeliveryEvent {
    /// The delivery the event is about.
    pub fn delivery_id(&self) -> DeliveryId {
        match self {
            Self::DeliveryScheduled(s) => s.delivery_id,
            Self::DeliveryAttempted(a) => a.delivery_id,
            Self::DeliverySucceeded { delivery_id, .. } | Self::DeliveryDeadLettered { delivery_id, .. } => {
                *delivery_id
            }
        }
    }
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::DeliveryScheduled(_) => "DeliveryScheduled",
            Self::DeliveryAttempted(_) => "DeliveryAttempted",
            Self::DeliverySucceeded { .. } => "DeliverySucceeded",
            Self::DeliveryDeadLettered { .. } => "DeliveryDeadLettered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery not found")]
    NotFound,
    /// An attempt on a delivery that is not waiting for one.
    #[error("the delivery is {}, not pending", .0.as_str())]
    NotPending(DeliveryStatus),
    /// Only a dead delivery is redelivered.
    #[error("the delivery was delivered; only a dead delivery can be redelivered")]
    AlreadyDelivered,
}

/// A delivery, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    scheduled: Option<Scheduled>,
    status: Option<DeliveryStatus>,
    /// Attempt series, from 1; a redelivery starts the next.
    series: u32,
    /// Attempts in the current series.
    attempts: u32,
    total_attempts: u32,
    next_attempt_at: Option<OffsetDateTime>,
    version: u64,
}

fn clip(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n').take(max).collect()
}

impl Delivery {
    pub fn scheduled(&self) -> Option<&Scheduled> {
        self.scheduled.as_ref()
    }

    pub fn status(&self) -> Option<DeliveryStatus> {
        self.status
    }

    pub fn series(&self) -> u32 {
        self.series
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn total_attempts(&self) -> u32 {
        self.total_attempts
    }

    /// When the next attempt is due (pending deliveries only).
    pub fn next_attempt_at(&self) -> Option<OffsetDateTime> {
        self.next_attempt_at
    }

    pub fn handle(
        &self,
        command: DeliveryCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        match command {
            DeliveryCommand::Schedule(scheduled) => {
                if self.scheduled.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![DeliveryEvent::DeliveryScheduled(scheduled)])
            }
            DeliveryCommand::Redeliver => {
                let Some(scheduled) = &self.scheduled else { return Err(DeliveryError::NotFound) };
                match self.status {
                    Some(DeliveryStatus::Dead) => Ok(vec![DeliveryEvent::DeliveryScheduled(Scheduled {
                        scheduled_at: now,
                        ..scheduled.clone()
                    })]),
                    Some(DeliveryStatus::Delivered) => Err(DeliveryError::AlreadyDelivered),
                    _ => Ok(vec![]),
                }
            }
            DeliveryCommand::Abandon { reason } => {
                let Some(s) = &self.scheduled else { return Err(DeliveryError::NotFound) };
                if self.status != Some(DeliveryStatus::Pending) {
                    return Ok(vec![]);
                }
                Ok(vec![DeliveryEvent::DeliveryDeadLettered {
                    delivery_id: s.delivery_id,
                    subscription_id: s.subscription_id,
                    case_id: s.case_id,
                    attempts: self.attempts,
                    last_error: clip(&reason, MAX_ERROR_CHARS),
                    dead_lettered_at: now,
                }])
            }
            DeliveryCommand::RecordAttempt { result, attempted_at, policy, jitter } => {
                let Some(s) = &self.scheduled else { return Err(DeliveryError::NotFound) };
                match self.status {
                    Some(DeliveryStatus::Pending) => {}
                    Some(other) => return Err(DeliveryError::NotPending(other)),
                    None => return Err(DeliveryError::NotFound),
                }
                let attempt = self.attempts + 1;
                let error = clip(&result.error, MAX_ERROR_CHARS);
                let exhausted = attempt >= policy.max_attempts.max(1);
                let next_attempt_at =
                    (result.kind == AttemptKind::RetryableFailure && !exhausted).then(|| {
                        let wait = policy.backoff(attempt, jitter, result.retry_after);
                        attempted_at + time::Duration::try_from(wait).unwrap_or(time::Duration::MAX)
                    });
                let mut events = vec![DeliveryEvent::DeliveryAttempted(Attempted {
                    delivery_id: s.delivery_id,
                    subscription_id: s.subscription_id,
                    case_id: s.case_id,
                    attempt,
                    kind: result.kind,
                    http_status: result.http_status,
                    error: error.clone(),
                    duration_ms: result.duration_ms,
                    attempted_at,
                    next_attempt_at,
                })];
                match result.kind {
                    AttemptKind::Succeeded => events.push(DeliveryEvent::DeliverySucceeded {
                        delivery_id: s.delivery_id,
                        subscription_id: s.subscription_id,
                        case_id: s.case_id,
                        attempts: attempt,
                        external_reference: clip(&result.external_reference, MAX_EXTERNAL_REFERENCE_CHARS),
                        delivered_at: now,
                    }),
                    AttemptKind::RetryableFailure if !exhausted => {}
                    AttemptKind::RetryableFailure | AttemptKind::PermanentFailure => {
                        events.push(DeliveryEvent::DeliveryDeadLettered {
                            delivery_id: s.delivery_id,
                            subscription_id: s.subscription_id,
                            case_id: s.case_id,
                            attempts: attempt,
                            last_error: error,
                            dead_lettered_at: now,
                        });
                    }
                }
                Ok(events)
            }
        }
    }

    pub fn apply(&mut self, event: &DeliveryEvent) {
        match event {
            DeliveryEvent::DeliveryScheduled(s) => {
                self.scheduled = Some(s.clone());
                self.status = Some(DeliveryStatus::Pending);
                self.series += 1;
                self.attempts = 0;
                self.next_attempt_at = Some(s.scheduled_at);
            }
            DeliveryEvent::DeliveryAttempted(a) => {
                self.attempts = a.attempt;
                self.total_attempts += 1;
                self.next_attempt_at = a.next_attempt_at;
            }
            DeliveryEvent::DeliverySucceeded { .. } => {
                self.status = Some(DeliveryStatus::Delivered);
                self.next_attempt_at = None;
            }
            DeliveryEvent::DeliveryDeadLettered { .. } => {
                self.status = Some(DeliveryStatus::Dead);
                self.next_attempt_at = None;
            }
        }
        self.version += 1;
    }
}

impl Aggregate for Delivery {
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;

    const AGGREGATE_TYPE: &'static str = "delivery";

    fn handle(&self, command: Self::Command, now: OffsetDateTime) -> Result<Vec<Self::Event>, Self::Error> {
        Delivery::handle(self, command, now)
    }

    fn apply(&mut self, event: &Self::Event) {
        Delivery::apply(self, event);
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests;
