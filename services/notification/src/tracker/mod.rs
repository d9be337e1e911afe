//! Tracker adapters (Jira, ServiceNow): one ticket per case and tracker
//! subscription, kept in step both ways.
//!
//! Outbound, per delivery of a tracker subscription: a case without a
//! ticket gets one on a `create_on` event (the tracker is searched for the
//! case key first, so a crash between creating and linking links the
//! ticket made before the crash instead of creating a second; this relies
//! on the tracker's search index, which Jira Cloud updates within seconds,
//! well inside the retry's backoff), then `ExternalTicketLinked` is
//! appended under the link id derived from the case and the subscription,
//! followed by the ticket's status then as the baseline. Later events of a linked
//! case become comments (each carrying its delivery id, and not added again
//! when a comment with it exists) and, when the case reaches a status of
//! the transition map, a workflow change, recorded as an outbound
//! `ExternalTicketUpdated` before it is made (so the tracker's webhook
//! for it finds nothing changed and drives no inbound rule).
//!
//! Inbound: the trackers' webhooks (see [`inbound`]; a webhook only
//! triggers a read of the ticket's status from the tracker) and a periodic
//! reconciliation read the status of linked tickets; a change drives the
//! configured command on the case through the triage service's API, with
//! request id `ticket-<link>-<n>` for the link's n-th inbound change, then
//! is recorded as an inbound `ExternalTicketUpdated`, so a webhook and a
//! reconciliation pass that see the same change drive it once.

pub mod inbound;
pub mod jira;
pub mod servicenow;

use std::sync::Arc;
use std::time::{Duration, Instant};

use psirt_domain::notification::{AttemptKind, AttemptResult, Channel, Scheduled, SubscriptionSettings};
use psirt_domain::template::Values;
use psirt_domain::{CaseFacts, CaseId, CaseStatus, EventId, LinkId};
use psirt_eventstore::{EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StoreError};
use psirt_proto::events;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::mapping::ts;
use crate::webhook::parse_retry_after;
use crate::worker::WorkError;

/// The actor of the events the adapters append.
pub const ACTOR: &str = "psirt-notification";

/// How a tracker authenticates us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// HTTP Basic; the secret is `user:token` (Jira API token) or `user:password`.
    #[default]
    Basic,
    /// `Authorization: Bearer <secret>` (Jira personal access token, OAuth token).
    Bearer,
}

/// Credentials for one tracker: a named secret, read at each request (so a
/// rotated credentials file is used from the next request on).
#[derive(Clone)]
pub struct Auth {
    mode: AuthMode,
    secrets: crate::Secrets,
    name: String,
}

impl Auth {
    /// Fixed credentials.
    pub fn new(mode: AuthMode, secret: &[u8]) -> anyhow::Result<Self> {
        let text = std::str::from_utf8(secret).map_err(|_| anyhow::anyhow!("credentials are not UTF-8"))?;
        Self::named(mode, crate::Secrets::fixed([("credentials", text)]), "credentials")
    }

    /// The secret `name` of `secrets`, checked now.
    pub fn named(mode: AuthMode, secrets: crate::Secrets, name: &str) -> anyhow::Result<Self> {
        let secret =
            secrets.get(name).ok_or_else(|| anyhow::anyhow!("secret {name:?} is not in [secrets]"))?;
        if mode == AuthMode::Basic && !secret.expose_secret().contains(':') {
            anyhow::bail!("basic credentials must be user:token");
        }
        Ok(Self { mode, secrets, name: name.to_owned() })
    }

    fn secret(&self) -> SecretString {
        self.secrets.get(&self.name).unwrap_or_else(|| SecretString::from(String::new()))
    }

    /// `text` without the credentials (a peer may echo them in an error).
    fn redact(&self, text: &str) -> String {
        let secret = self.secret();
        let secret = secret.expose_secret();
        let mut out = text.to_owned();
        let mut parts = vec![secret];
        if let Some((_, token)) = secret.split_once(':') {
            parts.push(token);
        }
        for part in parts.into_iter().filter(|p| p.len() >= 4) {
            out = out.replace(part, "[redacted]");
        }
        out
    }

    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let secret = self.secret();
        let secret = secret.expose_secret();
        match self.mode {
            AuthMode::Basic => {
                let (user, token) = secret.split_once(':').unwrap_or((secret, ""));
                request.basic_auth(user, Some(token))
            }
            AuthMode::Bearer => request.bearer_auth(secret),
        }
    }
}

/// A failed request to a tracker, classified like a webhook answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: AttemptKind,
    pub http_status: Option<u16>,
    pub error: String,
    pub retry_after: Option<Duration>,
    /// The tracker says the ticket does not exist: 404 with the tracker's
    /// own JSON error (Jira's `errorMessages`, ServiceNow's `error`), so a
    /// wrong base URL (an HTML 404 of some proxy) is never taken for a
    /// deleted ticket.
    pub gone: bool,
}

impl Failure {
    pub fn bad_answer(what: &str) -> Self {
        Self {
            kind: AttemptKind::RetryableFailure,
            http_status: None,
            error: what.to_owned(),
            retry_after: None,
            gone: false,
        }
    }

    /// The end of a delivery to a ticket that no longer exists: a
    /// terminal result (not retried, not dead-lettered) that says so.
    fn gone(key: &str, tracker: &str) -> Self {
        Self {
            kind: AttemptKind::Succeeded,
            http_status: Some(404),
            error: format!("{tracker} ticket {key} no longer exists (deleted); nothing was sent to it"),
            retry_after: None,
            gone: true,
        }
    }

    fn permanent(error: impl Into<String>) -> Self {
        Self {
            kind: AttemptKind::PermanentFailure,
            http_status: None,
            error: error.into(),
            retry_after: None,
            gone: false,
        }
    }

    fn into_result(self, duration_ms: u32) -> AttemptResult {
        AttemptResult {
            kind: self.kind,
            http_status: self.http_status,
            error: self.error,
            retry_after: self.retry_after,
            external_reference: String::new(),
            duration_ms,
        }
    }
}

/// JSON over HTTP with credentials, a timeout and no redirects.
pub struct Http {
    client: reqwest::Client,
    auth: Auth,
    timeout: Duration,
}

/// The most of an error answer kept in a delivery's error.
const MAX_ERROR_BODY: usize = 500;
/// The largest answer read from a tracker.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Longest text sent in one field (Jira refuses more than 32,767 characters).
pub const MAX_FIELD_CHARS: usize = 32_000;

/// `text` cut to `max` characters.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Http {
    pub fn new(auth: Auth, user_agent: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client, auth, timeout })
    }

    pub async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> Result<Value, Failure> {
        let request = self.client.get(url).query(query);
        self.run(request).await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        let request = self.client.request(method, url).json(body);
        self.run(request).await
    }

    async fn run(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let request = self
            .auth
            .apply(request)
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("timed out after {:?}", self.timeout)
                } else {
                    e.to_string()
                };
                return Err(Failure {
                    kind: AttemptKind::RetryableFailure,
                    http_status: None,
                    error,
                    retry_after: None,
                    gone: false,
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
        // A body cut short or over the limit is a failed attempt, never an
        // empty answer (an empty search would create a second ticket).
        let mut response = response;
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(Failure::bad_answer(&format!(
                            "answer larger than {MAX_ANSWER_BYTES} bytes"
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::bad_answer(&format!("answer cut short: {e}"))),
            }
        }
        let kind = psirt_domain::notification::classify_http_status(status);
        if kind != AttemptKind::Succeeded {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(MAX_ERROR_BODY).collect();
            let gone = status == 404 && tracker_error(&bytes);
            return Err(Failure {
                kind,
                http_status: Some(status),
                error: self.auth.redact(&format!("HTTP {status}: {text}")),
                retry_after,
                gone,
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Failure::bad_answer(&format!("answer is not JSON: {e}")))
    }
}

/// Whether an error answer is a tracker's own JSON error: Jira's
/// `{"errorMessages": [...]}` or ServiceNow's `{"error": {...}}`.
fn tracker_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v.get("errorMessages").is_some_and(Value::is_array) || v.get("error").is_some_and(Value::is_object)
    })
}

/// Normalised workflow state of a ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Category {
    #[default]
    Unknown,
    Open,
    InProgress,
    Done,
    /// The tracker answers 404 for the ticket.
    Deleted,
}

impl Category {
    fn to_proto(self) -> events::TicketStatusCategory {
        match self {
            Self::Unknown => events::TicketStatusCategory::Unspecified,
            Self::Open => events::TicketStatusCategory::Open,
            Self::InProgress => events::TicketStatusCategory::InProgress,
            Self::Done => events::TicketStatusCategory::Done,
            Self::Deleted => events::TicketStatusCategory::Deleted,
        }
    }
}

/// A ticket's status in the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketState {
    pub name: String,
    pub category: Category,
    /// The tracker's resolution, when it has one (Jira's
    /// `fields.resolution.name`, ServiceNow's close code and notes); at most
    /// [`MAX_RESOLUTION_CHARS`] characters.
    pub resolution: String,
}

/// The most of a tracker's resolution kept.
pub const MAX_RESOLUTION_CHARS: usize = 1000;

impl TicketState {
    pub fn named(name: &str) -> Self {
        Self { name: name.to_owned(), category: category_from_name(name), resolution: String::new() }
    }
}

/// The category of a status known only by name.
pub fn category_from_name(name: &str) -> Category {
    let n = name.to_ascii_lowercase();
    if ["done", "closed", "resolved", "fixed", "cancel", "complete"].iter().any(|w| n.contains(w)) {
        Category::Done
    } else if ["progress", "review", "work", "hold"].iter().any(|w| n.contains(w)) {
        Category::InProgress
    } else if ["open", "new", "to do", "todo", "backlog"].iter().any(|w| n.contains(w)) {
        Category::Open
    } else {
        Category::Unknown
    }
}

/// A ticket as the tracker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Issue key or record number.
    pub key: String,
    /// Jira issue id or ServiceNow sys_id.
    pub id: String,
    pub url: String,
    pub state: Option<TicketState>,
}

/// A base URL: https, or http to a loopback host.
pub fn check_base_url(url: &str) -> Result<(), String> {
    psirt_domain::notification::check_webhook_url(url)
        .map_err(|p| p.replace("endpoint", "base_url").replace("use secret_ref", "use credentials_secret"))
}

/// The [`CommonSettings`] of a tracker section (`[jira]`, `[servicenow]`),
/// whose structs name the shared settings alike.
macro_rules! common_settings {
    ($section:expr) => {
        $crate::tracker::CommonSettings {
            base_url: &$section.base_url,
            credentials_secret: &$section.credentials_secret,
            webhook_secret: &$section.webhook_secret,
            create_on: &$section.create_on,
            inbound: &$section.inbound,
            reconcile_interval: $section.reconcile_interval,
            timeout: $section.timeout,
        }
    };
}
pub(crate) use common_settings;

/// The settings both trackers have, checked once for both.
pub(crate) struct CommonSettings<'a> {
    pub base_url: &'a str,
    pub credentials_secret: &'a str,
    pub webhook_secret: &'a str,
    pub create_on: &'a [String],
    pub inbound: &'a [InboundRule],
    pub reconcile_interval: Duration,
    pub timeout: Duration,
}

impl CommonSettings<'_> {
    /// Every problem, as (key relative to the tracker's section, problem).
    pub(crate) fn problems(&self, secret_names: &dyn Fn(&str) -> bool, push: &mut dyn FnMut(&str, String)) {
        if let Err(p) = check_base_url(self.base_url) {
            push("base_url", p);
        }
        if !secret_names(self.credentials_secret) {
            push("credentials_secret", "must name a secret of [secrets]".to_owned());
        }
        if !self.webhook_secret.is_empty() && !secret_names(self.webhook_secret) {
            push("webhook_secret", "must name a secret of [secrets]".to_owned());
        }
        check_event_types(self.create_on, &mut |p| push("create_on", p));
        for (i, rule) in self.inbound.iter().enumerate() {
            rule.problems(&mut |p| push(&format!("inbound[{i}]"), p));
        }
        if self.reconcile_interval != Duration::ZERO
            && !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&self.reconcile_interval)
        {
            push("reconcile_interval", "must be 0s (off) or between 1s and 24h".to_owned());
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.timeout) {
            push("timeout", "must be between 100ms and 5m".to_owned());
        }
    }
}

fn check_event_types(types: &[String], push: &mut dyn FnMut(String)) {
    for t in types {
        let ok = t
            .strip_prefix(psirt_domain::notification::EVENTS_PACKAGE)
            .and_then(|r| r.strip_prefix('.'))
            .is_some_and(|n| {
                n.starts_with(|c: char| c.is_ascii_uppercase())
                    && n.chars().all(|c| c.is_ascii_alphanumeric())
            });
        if !ok {
            push(format!("{t:?} is not an event type such as psirt.events.v1.CaseAccepted"));
        }
    }
}

pub fn parse_case_status(s: &str) -> Option<CaseStatus> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// The status a case reaches with an event of this type, if it changes it.
pub fn status_after(event_type: &str) -> Option<CaseStatus> {
    Some(match event_type.strip_prefix("psirt.events.v1.")? {
        "TriageStarted" | "CaseReopened" => CaseStatus::Triage,
        "CaseAccepted" => CaseStatus::Accepted,
        "CaseRejected" => CaseStatus::Rejected,
        "CaseMarkedDuplicate" => CaseStatus::Duplicate,
        "RemediationStarted" => CaseStatus::Remediating,
        "CaseFixed" => CaseStatus::Fixed,
        "CaseDisclosed" => CaseStatus::Disclosed,
        "CaseClosed" => CaseStatus::Closed,
        _ => return None,
    })
}

/// A command an inbound status change drives on the case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundCommand {
    /// Record the change only.
    #[default]
    None,
    /// `TriageService.CloseCase` with the rule's `resolution`.
    CloseCase,
    /// `TriageService.ReopenCase`.
    ReopenCase,
    /// `TriageService.EscalateCase` at the rule's `level`.
    EscalateCase,
}

/// An inbound rule: the status a linked ticket moved to (Jira status name
/// or ServiceNow state value, case-insensitive) and the command it drives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundRule {
    pub status: String,
    pub command: InboundCommand,
    /// For `close_case`: `fixed`, `mitigated`, `suspended`, `wont_fix`,
    /// `rejected`, `duplicate` or `end_of_life`.
    pub resolution: String,
    /// For `escalate_case`: `team`, `management` or `executive`.
    pub level: String,
}

pub const RESOLUTIONS: [&str; 7] =
    ["fixed", "mitigated", "suspended", "wont_fix", "rejected", "duplicate", "end_of_life"];
pub const LEVELS: [&str; 3] = ["team", "management", "executive"];

impl InboundRule {
    fn problems(&self, push: &mut dyn FnMut(String)) {
        if self.status.trim().is_empty() {
            push("status must name a tracker status".to_owned());
        }
        match self.command {
            InboundCommand::CloseCase if !RESOLUTIONS.contains(&self.resolution.as_str()) => {
                push(format!("close_case needs resolution, one of {}", RESOLUTIONS.join(", ")));
            }
            InboundCommand::EscalateCase if !LEVELS.contains(&self.level.as_str()) => {
                push(format!("escalate_case needs level, one of {}", LEVELS.join(", ")));
            }
            _ => {}
        }
    }
}

/// A link folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub link_id: String,
    pub case_id: String,
    pub system: i32,
    pub key: String,
    pub sys_id: String,
    pub url: String,
    /// The last status recorded, either way.
    pub status: String,
    /// Inbound changes recorded so far: names the next one's command.
    pub inbound_changes: u64,
    /// The tracker said the ticket no longer exists (recorded as status
    /// category DELETED): nothing is sent to it or read of it any more.
    pub deleted: bool,
    pub version: u64,
}

pub fn link_subject(id: &str) -> String {
    psirt_eventstore::subject("ticket", id)
}

pub async fn load_link(store: &EventStore, link_id: &str) -> Result<Option<Link>, WorkError> {
    let events = store.load(&link_subject(link_id)).await?;
    Ok(fold_link(&events)?)
}

fn fold_link(events: &[RecordedEvent]) -> Result<Option<Link>, psirt_eventstore::DecodeError> {
    let mut link: Option<Link> = None;
    for e in events {
        if psirt_eventstore::is_type::<events::ExternalTicketLinked>(&e.event_type) {
            let m: events::ExternalTicketLinked = e.decode()?;
            link = Some(Link {
                link_id: m.link_id,
                case_id: m.case_id,
                system: m.system,
                key: m.key,
                sys_id: m.sys_id,
                url: m.url,
                status: String::new(),
                inbound_changes: 0,
                deleted: false,
                version: e.sequence,
            });
        } else if psirt_eventstore::is_type::<events::ExternalTicketUpdated>(&e.event_type)
            && let Some(l) = link.as_mut()
        {
            let m: events::ExternalTicketUpdated = e.decode()?;
            if !m.external_status.is_empty() {
                l.status = m.external_status;
            }
            if m.direction == events::TicketUpdateDirection::Inbound as i32 {
                l.inbound_changes += 1;
            }
            if m.status_category == events::TicketStatusCategory::Deleted as i32 {
                l.deleted = true;
            }
            l.version = e.sequence;
        }
    }
    Ok(link)
}

fn succeeded(reference: &str, duration_ms: u32) -> AttemptResult {
    AttemptResult {
        kind: AttemptKind::Succeeded,
        http_status: Some(200),
        error: String::new(),
        retry_after: None,
        external_reference: reference.to_owned(),
        duration_ms,
    }
}

fn elapsed_ms(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)
}

/// The configured trackers.
#[derive(Clone)]
pub struct Trackers {
    pub(crate) store: EventStore,
    pub(crate) jira: Option<Arc<jira::Jira>>,
    pub(crate) servicenow: Option<Arc<servicenow::ServiceNow>>,
}

/// What a tracker delivery knows.
pub struct TrackerDelivery<'a> {
    pub settings: &'a SubscriptionSettings,
    pub scheduled: &'a Scheduled,
    pub facts: &'a CaseFacts,
    pub values: &'a Values,
}

impl Trackers {
    /// Delivers one event to a tracker subscription.
    pub async fn deliver(&self, d: &TrackerDelivery<'_>) -> Result<AttemptResult, WorkError> {
        let started = Instant::now();
        let Some(case_id) = d.scheduled.case_id else { return Ok(succeeded("", 0)) };
        let link_id = LinkId::for_ticket(case_id, d.scheduled.subscription_id).to_string();
        let outcome = match d.settings.channel {
            Channel::Jira => match &self.jira {
                Some(jira) => self.deliver_jira(jira, d, case_id, &link_id).await?,
                None => Err(Failure::permanent("Jira is not configured ([jira] base_url)")),
            },
            Channel::ServiceNow => match &self.servicenow {
                Some(sn) => self.deliver_servicenow(sn, d, case_id, &link_id).await?,
                None => Err(Failure::permanent("ServiceNow is not configured ([servicenow] base_url)")),
            },
            Channel::Webhook | Channel::Email => Err(Failure::permanent("not a tracker channel")),
        };
        Ok(match outcome {
            Ok(reference) => succeeded(&reference, elapsed_ms(started)),
            Err(f) => f.into_result(elapsed_ms(started)),
        })
    }

    async fn deliver_jira(
        &self,
        jira: &jira::Jira,
        d: &TrackerDelivery<'_>,
        case_id: CaseId,
        link_id: &str,
    ) -> Result<Result<String, Failure>, WorkError> {
        let project = d.settings.endpoint.as_str();
        let settings = jira.settings();
        let Some(link) = load_link(&self.store, link_id).await? else {
            if !settings.create_on.iter().any(|t| t == &d.scheduled.event_type) {
                return Ok(Ok(String::new()));
            }
            let Some(case_key) = d.facts.case_key.as_deref() else {
                return Ok(Err(Failure::bad_answer("the case key is not known yet")));
            };
            let found = match jira.find(project, case_key).await {
                Ok(found) => found,
                Err(f) => return Ok(Err(f)),
            };
            let mut ticket = match found {
                Some(t) => {
                    info!(case_key, key = %t.key, "found the case's Jira issue; linking it");
                    t
                }
                None => match jira.create(project, d.values, d.facts.severity).await {
                    Ok(t) => t,
                    Err(f) => return Ok(Err(f)),
                },
            };
            if ticket.state.is_none() {
                // The baseline status: a later change is measured against it.
                ticket.state = jira.state(&ticket.key).await.ok();
            }
            self.link(link_id, case_id, events::TicketSystem::Jira, &ticket).await?;
            return Ok(Ok(ticket.key));
        };
        if link.deleted {
            return Ok(Err(Failure::gone(&link.key, "Jira")));
        }
        let values = d.values.clone().with("ticket.key", link.key.clone());
        let marker = format!("psirt-delivery:{}", d.scheduled.delivery_id);
        if let Err(f) = jira.comment(&link.key, &values, &marker).await {
            return self.failed(&link, f, "Jira").await;
        }
        let wanted =
            status_after(&d.scheduled.event_type).and_then(|s| settings.transitions.get(&s.to_string()));
        if let Some(name) = wanted {
            match jira.find_transition(&link.key, name).await {
                Ok(Some((id, target))) => {
                    // Recorded before it is made: the tracker's webhook for
                    // our own transition then finds the status unchanged
                    // and drives no inbound rule.
                    self.record_outbound(link_id, &target, &d.scheduled.delivery_id.to_string()).await?;
                    if let Err(f) = jira.transition(&link.key, &id).await {
                        return self.failed(&link, f, "Jira").await;
                    }
                }
                Ok(None) => {
                    warn!(key = %link.key, transition = %name, "the Jira workflow offers no such transition now")
                }
                Err(f) => return self.failed(&link, f, "Jira").await,
            }
        }
        Ok(Ok(link.key))
    }

    async fn deliver_servicenow(
        &self,
        sn: &servicenow::ServiceNow,
        d: &TrackerDelivery<'_>,
        case_id: CaseId,
        link_id: &str,
    ) -> Result<Result<String, Failure>, WorkError> {
        let table = d.settings.endpoint.as_str();
        let settings = sn.settings();
        let Some(link) = load_link(&self.store, link_id).await? else {
            if !settings.create_on.iter().any(|t| t == &d.scheduled.event_type) {
                return Ok(Ok(String::new()));
            }
            let Some(case_key) = d.facts.case_key.as_deref() else {
                return Ok(Err(Failure::bad_answer("the case key is not known yet")));
            };
            let found = match sn.find(table, case_key).await {
                Ok(found) => found,
                Err(f) => return Ok(Err(f)),
            };
            let ticket = match found {
                Some(t) => t,
                None => match sn.create(table, d.values, d.facts.severity).await {
                    Ok(t) => t,
                    Err(f) => return Ok(Err(f)),
                },
            };
            self.link(link_id, case_id, events::TicketSystem::Servicenow, &ticket).await?;
            return Ok(Ok(ticket.key));
        };
        if link.deleted {
            return Ok(Err(Failure::gone(&link.key, "ServiceNow")));
        }
        let values = d.values.clone().with("ticket.key", link.key.clone());
        let marker = format!("psirt-delivery:{}", d.scheduled.delivery_id);
        let state = status_after(&d.scheduled.event_type).and_then(|s| settings.states.get(&s.to_string()));
        if let Some(state) = state {
            // Recorded before it is set, as for Jira transitions.
            let target = servicenow::state_of(settings, state, "");
            self.record_outbound(link_id, &target, &d.scheduled.delivery_id.to_string()).await?;
        }
        if let Err(f) = sn.update(&link, &values, &marker, state.map(String::as_str)).await {
            return self.failed(&link, f, "ServiceNow").await;
        }
        Ok(Ok(link.key))
    }

    /// A failed request to a linked ticket: when the tracker says the
    /// ticket is gone, that is recorded (once) and ends the delivery.
    async fn failed(
        &self,
        link: &Link,
        f: Failure,
        tracker: &str,
    ) -> Result<Result<String, Failure>, WorkError> {
        if !f.gone {
            return Ok(Err(f));
        }
        self.record_deleted(&link.link_id).await?;
        Ok(Err(Failure::gone(&link.key, tracker)))
    }

    /// Records, once, that a linked ticket no longer exists: an inbound
    /// `ExternalTicketUpdated` of category DELETED keeping the last status.
    /// Nothing is sent to or read of the ticket afterwards, and no new
    /// ticket is created for the link (deleting the ticket is taken as the
    /// tracker's people's decision; a new subscription gets a new ticket).
    pub(crate) async fn record_deleted(&self, link_id: &str) -> Result<(), WorkError> {
        for _ in 0..5 {
            let Some(link) = load_link(&self.store, link_id).await? else { return Ok(()) };
            if link.deleted {
                return Ok(());
            }
            let state = TicketState {
                name: link.status.clone(),
                category: Category::Deleted,
                resolution: String::new(),
            };
            let note = "The tracker answers 404 Not Found for this ticket (deleted, or out of our \
                        credentials' reach); nothing more is sent to it."
                .to_owned();
            let direction = events::TicketUpdateDirection::Inbound;
            if self.record(&link, &state, direction, "deleted", note).await? {
                warn!(key = %link.key, "a linked ticket no longer exists in the tracker; recorded, nothing more is sent to it");
                return Ok(());
            }
        }
        Ok(())
    }

    async fn link(
        &self,
        link_id: &str,
        case_id: CaseId,
        system: events::TicketSystem,
        ticket: &Ticket,
    ) -> Result<(), WorkError> {
        let uuid: uuid::Uuid = link_id.parse().unwrap_or_default();
        let event = events::ExternalTicketLinked {
            link_id: link_id.to_owned(),
            case_id: case_id.to_string(),
            action_id: String::new(),
            system: system.into(),
            key: ticket.key.clone(),
            url: ticket.url.clone(),
            sys_id: if system == events::TicketSystem::Servicenow {
                ticket.id.clone()
            } else {
                String::new()
            },
            linked_at: ts(OffsetDateTime::now_utc()),
        };
        let new = NewEvent::from_message(
            EventId::derive(uuid, "linked").into(),
            link_subject(link_id),
            &event,
            metadata(&case_id.to_string()),
        );
        match self.store.append(new, ExpectedVersion::NoStream).await {
            Ok(appended) => {
                // The status the ticket has now is the baseline, not a change.
                if let Some(state) = &ticket.state {
                    let link = Link {
                        link_id: link_id.to_owned(),
                        case_id: case_id.to_string(),
                        system: system as i32,
                        key: ticket.key.clone(),
                        version: appended.sequence,
                        ..Link::default()
                    };
                    let direction = events::TicketUpdateDirection::Outbound;
                    self.record(&link, state, direction, "baseline", String::new()).await?;
                }
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a change we make, once (its id derives from the delivery),
    /// after whatever the link holds by then.
    async fn record_outbound(
        &self,
        link_id: &str,
        state: &TicketState,
        delivery_id: &str,
    ) -> Result<(), WorkError> {
        let discriminator = format!("out:{delivery_id}");
        for _ in 0..5 {
            let Some(link) = load_link(&self.store, link_id).await? else { return Ok(()) };
            let direction = events::TicketUpdateDirection::Outbound;
            if self.record(&link, state, direction, &discriminator, String::new()).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Appends an `ExternalTicketUpdated` after the link's version; false
    /// when the link moved on meanwhile (someone else recorded a change).
    async fn record(
        &self,
        link: &Link,
        state: &TicketState,
        direction: events::TicketUpdateDirection,
        discriminator: &str,
        comment: String,
    ) -> Result<bool, WorkError> {
        let uuid: uuid::Uuid = link.link_id.parse().unwrap_or_default();
        let event = events::ExternalTicketUpdated {
            link_id: link.link_id.clone(),
            case_id: link.case_id.clone(),
            system: link.system,
            key: link.key.clone(),
            direction: direction.into(),
            external_status: state.name.chars().take(100).collect(),
            status_category: state.category.to_proto().into(),
            external_assignee: String::new(),
            comment,
            updated_at: ts(OffsetDateTime::now_utc()),
        };
        let new = NewEvent::from_message(
            EventId::derive(uuid, discriminator).into(),
            link_subject(&link.link_id),
            &event,
            metadata(&link.case_id),
        );
        match self.store.append(new, ExpectedVersion::Exactly(link.version)).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

fn metadata(case_id: &str) -> Metadata {
    Metadata {
        causation_id: None,
        correlation_id: Some(case_id.to_owned()),
        actor: Some(ACTOR.to_owned()),
        actor_scopes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_fall_into_categories() {
        assert_eq!(category_from_name("Done"), Category::Done);
        assert_eq!(category_from_name("In Review"), Category::InProgress);
        assert_eq!(category_from_name("To Do"), Category::Open);
        assert_eq!(category_from_name("Triage"), Category::Unknown);
    }

    #[test]
    fn events_that_move_a_case_name_its_status() {
        assert_eq!(status_after("psirt.events.v1.CaseFixed"), Some(CaseStatus::Fixed));
        assert_eq!(status_after("psirt.events.v1.CveAssigned"), None);
        assert_eq!(parse_case_status("remediating"), Some(CaseStatus::Remediating));
        assert_eq!(parse_case_status("shipped"), None);
    }

    #[test]
    fn inbound_rules_need_their_arguments() {
        let mut problems = Vec::new();
        let rule = InboundRule {
            status: "Done".into(),
            command: InboundCommand::CloseCase,
            ..InboundRule::default()
        };
        rule.problems(&mut |p| problems.push(p));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let rule = InboundRule { resolution: "wont_fix".into(), ..rule };
        problems.clear();
        rule.problems(&mut |p| problems.push(p));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn basic_credentials_need_a_user() {
        assert!(Auth::new(AuthMode::Basic, b"token-only-without-user").is_err());
        assert!(Auth::new(AuthMode::Basic, b"bot@example.com:token").is_ok());
        assert!(Auth::new(AuthMode::Bearer, b"token-only-without-user").is_ok());
    }
}
