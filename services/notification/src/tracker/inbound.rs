//! Inbound synchronisation: the trackers' webhooks (served on the admin
//! port, `POST /hooks/jira` and `POST /hooks/servicenow`) and the periodic
//! reconciliation that reads linked tickets back to repair missed webhooks.
//!
//! A webhook is only a trigger: the ticket's status is read from the
//! tracker (`GET issue` / the record), so a late, repeated or replayed
//! webhook cannot drive a stale command. A status that differs from the
//! link's last recorded one (the baseline at link time, our own recorded
//! transitions, earlier inbound changes) drives the command of the matching
//! inbound rule on the case, through the triage service's API, with the
//! request id `ticket-<link id>-<n>` for the link's n-th inbound change: a
//! webhook and a reconciliation pass that see the same change drive it
//! once. Then the change is recorded as an inbound `ExternalTicketUpdated`
//! (after the link version it was compared with). A refusal by triage (the
//! case is not in a state that allows the command) is recorded with the
//! change; an unavailable triage or tracker leaves the change unrecorded,
//! so the tracker's retry or the next reconciliation pass drives it again.
//! A reconciliation pass goes on past a ticket it cannot handle.
//!
//! Authentication: Jira signs with `X-Hub-Signature: sha256=<hex
//! HMAC-SHA256 of the body>` when the webhook has a secret; only where
//! `[jira] webhook_query_token` opts in, the URL may carry `?token=<secret>`
//! instead (Jira Data Center, which cannot sign: the secret then lands in
//! access logs). ServiceNow sends `Authorization: Bearer <secret>`. The secrets are named by
//! `[jira] webhook_secret` and `[servicenow] webhook_secret`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use psirt_kit::Shutdown;
use psirt_proto::{events, triage};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use sqlx::AnyPool;
use tonic::Code;
use tracing::{info, warn};

use super::{InboundCommand, InboundRule, Link, TicketState, Trackers, load_link};
use crate::readmodel;
use crate::worker::WorkError;

/// Largest inbound webhook body.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;
/// Links read back per request to a tracker.
const RECONCILE_PAGE: u32 = 50;
/// How far before its cursor a reconciliation pass looks: the skew
/// between our clock and the tracker's, and the minute granularity of the
/// trackers' relative dates.
pub const CURSOR_OVERLAP: Duration = Duration::from_secs(120);
/// Most pages of changed tickets one pass reads per project or table.
const MAX_CHANGED_PAGES: usize = 20;
/// Most projects or tables a pass asks for changes.
const MAX_ENDPOINTS: usize = 500;

/// The reconciler of a tracker: its lease's and cursor's name.
fn cursor_name(system: events::TicketSystem) -> String {
    format!("ticket-reconciler-{}", system.as_str_name().to_ascii_lowercase())
}

/// `[upstream]`: the services inbound changes drive commands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// gRPC URL of the triage service.
    pub triage_url: String,
    /// Name of the secret in `[secrets]` holding the bearer token (a JWT
    /// with the `tracker-sync` role, which may only close, reopen and
    /// escalate cases) sent to triage; empty: none (triage runs with
    /// `auth.mode = "none"`).
    pub token_secret: String,
    /// Timeout of one command.
    #[serde(with = "psirt_kit::config::duration")]
    pub timeout: Duration,
    /// PEM CA certificate to trust for an `https://` `triage_url`, besides the
    /// system's and the public roots. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for a triage that demands mutual TLS (with
    /// `tls_client_key_file`). Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_client_cert_file`. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_key_file: Option<PathBuf>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            triage_url: "http://127.0.0.1:50052".to_owned(),
            token_secret: String::new(),
            timeout: Duration::from_secs(10),
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
        }
    }
}

impl UpstreamSettings {
    pub fn problems(&self, secret_names: &dyn Fn(&str) -> bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(self.triage_url.starts_with("http://") || self.triage_url.starts_with("https://"))
            || self.triage_url.parse::<tonic::transport::Uri>().is_err()
        {
            out.push(("triage_url".to_owned(), "must be an http(s) URL".to_owned()));
        }
        if !self.token_secret.is_empty() && !secret_names(&self.token_secret) {
            out.push(("token_secret".to_owned(), "must name a secret of [secrets]".to_owned()));
        }
        if self.tls_client_cert_file.is_some() != self.tls_client_key_file.is_some() {
            out.push((
                "tls_client_cert_file".to_owned(),
                "tls_client_cert_file and tls_client_key_file must be set together".to_owned(),
            ));
        }
        let tls_set = self.tls_ca_file.is_some() || self.tls_client_cert_file.is_some();
        if tls_set && !self.triage_url.starts_with("https://") {
            out.push(("tls_ca_file".to_owned(), "TLS files need an https:// triage_url".to_owned()));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&self.timeout) {
            out.push(("timeout".to_owned(), "must be between 100ms and 5m".to_owned()));
        }
        out
    }
}

/// Why an inbound change could not be applied now (the caller retries).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Work(#[from] WorkError),
    #[error("triage is unavailable: {0}")]
    Triage(String),
    #[error("the tracker did not answer: {0}")]
    Tracker(String),
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// No link for the ticket (yet).
    UnknownTicket,
    /// The link already had this status.
    Unchanged,
    /// Recorded; the note says what the rule did.
    Recorded(String),
}

pub struct Inbound {
    trackers: Trackers,
    pool: AnyPool,
    triage: triage::triage_service_client::TriageServiceClient<tonic::transport::Channel>,
    /// The secrets, read at each use: a rotated file applies from the
    /// next request on.
    secrets: crate::Secrets,
    /// Names in `secrets` (empty: none) of the token sent to triage and of
    /// the webhooks' secrets.
    token: String,
    timeout: Duration,
    jira_secret: String,
    /// `[jira] webhook_query_token`: `?token=` accepted.
    jira_query_token: bool,
    servicenow_secret: String,
    owner: String,
}

fn secret_text(secrets: &crate::Secrets, name: &str) -> Option<SecretString> {
    if name.is_empty() {
        return None;
    }
    secrets.get(name)
}

/// Constant-time comparison of two byte strings (the length may leak).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Inbound {
    pub fn new(
        trackers: Trackers,
        pool: AnyPool,
        upstream: &UpstreamSettings,
        secrets: &crate::Secrets,
        jira: &super::jira::JiraSettings,
        servicenow_webhook_secret: &str,
    ) -> anyhow::Result<Self> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(upstream.triage_url.clone())?
            .connect_timeout(Duration::from_secs(5));
        if upstream.triage_url.starts_with("https://") {
            let identity =
                upstream.tls_client_cert_file.as_deref().zip(upstream.tls_client_key_file.as_deref());
            let tls = psirt_kit::grpc::client_tls(upstream.tls_ca_file.as_deref(), identity)
                .context("upstream.tls_* (TLS to triage)")?;
            endpoint = endpoint.tls_config(tls).context("upstream.tls_* (TLS to triage)")?;
        }
        let channel = endpoint.connect_lazy();
        Ok(Self {
            trackers,
            pool,
            triage: triage::triage_service_client::TriageServiceClient::new(channel),
            secrets: secrets.clone(),
            token: upstream.token_secret.clone(),
            timeout: upstream.timeout,
            jira_secret: jira.webhook_secret.clone(),
            jira_query_token: jira.webhook_query_token,
            servicenow_secret: servicenow_webhook_secret.to_owned(),
            owner: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// `POST /hooks/jira` and `POST /hooks/servicenow`.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/hooks/jira", post(jira_hook))
            .route("/hooks/servicenow", post(servicenow_hook))
            .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
            .with_state(self)
    }

    fn rules(&self, system: events::TicketSystem) -> &[InboundRule] {
        match system {
            events::TicketSystem::Servicenow => {
                self.trackers.servicenow.as_ref().map_or(&[], |s| &s.settings().inbound)
            }
            _ => self.trackers.jira.as_ref().map_or(&[], |j| &j.settings().inbound),
        }
    }

    /// Applies a status a linked ticket has now (from a webhook or a
    /// reconciliation pass).
    /// A tracker says a ticket changed: the webhook is only a trigger. The
    /// ticket's status is read from the tracker itself, so a late, repeated
    /// or replayed webhook cannot drive a stale command.
    pub async fn changed(
        &self,
        system: events::TicketSystem,
        external_id: &str,
    ) -> Result<Applied, InboundError> {
        let Some(link_id) = readmodel::ticket_by_external_id(&self.pool, system as i32, external_id)
            .await
            .map_err(WorkError::from)?
        else {
            return Ok(Applied::UnknownTicket);
        };
        let Some(link) = load_link(&self.trackers.store, &link_id).await? else {
            return Ok(Applied::UnknownTicket);
        };
        if link.deleted {
            return Ok(Applied::Unchanged);
        }
        let current = match system {
            events::TicketSystem::Servicenow => match &self.trackers.servicenow {
                Some(sn) => sn.state(&link).await,
                None => return Ok(Applied::UnknownTicket),
            },
            _ => match &self.trackers.jira {
                Some(jira) => jira.state(&link.key).await,
                None => return Ok(Applied::UnknownTicket),
            },
        };
        let state = match current {
            Ok(state) => state,
            Err(f) if f.gone => {
                self.trackers.record_deleted(&link_id).await?;
                return Ok(Applied::Recorded("the ticket no longer exists; recorded as deleted".to_owned()));
            }
            Err(f) => return Err(InboundError::Tracker(f.error)),
        };
        self.apply(system, &link_id, &state).await
    }

    /// Applies a status a linked ticket has now (read from the tracker).
    pub async fn apply(
        &self,
        system: events::TicketSystem,
        link_id: &str,
        state: &TicketState,
    ) -> Result<Applied, InboundError> {
        for _ in 0..5 {
            let Some(link) = load_link(&self.trackers.store, link_id).await? else {
                return Ok(Applied::UnknownTicket);
            };
            if link.deleted || link.status.eq_ignore_ascii_case(&state.name) {
                return Ok(Applied::Unchanged);
            }
            // The n-th inbound change of a link drives its command under one
            // request id however often it is retried, and whatever else is
            // appended to the link meanwhile.
            let n = link.inbound_changes + 1;
            let rule = self.rules(system).iter().find(|r| r.status.eq_ignore_ascii_case(&state.name));
            let note = match rule {
                Some(rule) if rule.command != InboundCommand::None => {
                    self.drive(rule, &link, state, n).await?
                }
                _ => String::new(),
            };
            let discriminator = format!("in:{n}:{}", state.name);
            if self
                .trackers
                .record(&link, state, events::TicketUpdateDirection::Inbound, &discriminator, note.clone())
                .await?
            {
                info!(key = %link.key, status = %state.name, note = %note, "ticket change recorded");
                return Ok(Applied::Recorded(note));
            }
        }
        Ok(Applied::Unchanged)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(token) = secret_text(&self.secrets, &self.token)
            && let Ok(value) = format!("Bearer {}", token.expose_secret()).parse()
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Drives the rule's command; the note says what came of it.
    async fn drive(
        &self,
        rule: &InboundRule,
        link: &Link,
        state: &TicketState,
        n: u64,
    ) -> Result<String, InboundError> {
        let mut client = self.triage.clone();
        let request_id = format!("ticket-{}-{n}", link.link_id);
        let origin = format!("{} moved to {:?}", link.key, state.name);
        // The tracker's own resolution (Jira's "Won't Fix", ServiceNow's
        // close code and notes) is what the case records; only a ticket
        // without one falls back to saying where the closure came from.
        let root_cause = if state.resolution.trim().is_empty() {
            format!("Closed from the tracker: {origin}.")
        } else {
            format!("{} (resolution of {} in the tracker)", state.resolution.trim(), link.key)
        };
        let result = match rule.command {
            InboundCommand::None => return Ok(String::new()),
            InboundCommand::CloseCase => client
                .close_case(self.request(triage::CloseCaseRequest {
                    case_id: link.case_id.clone(),
                    request_id,
                    expected_version: None,
                    resolution: resolution(&rule.resolution).into(),
                    root_cause,
                    lessons_learned: String::new(),
                }))
                .await
                .map(|_| ()),
            InboundCommand::ReopenCase => client
                .reopen_case(self.request(triage::ReopenCaseRequest {
                    case_id: link.case_id.clone(),
                    request_id,
                    expected_version: None,
                    reason: format!("Reopened from the tracker: {origin}."),
                }))
                .await
                .map(|_| ()),
            InboundCommand::EscalateCase => client
                .escalate_case(self.request(triage::EscalateCaseRequest {
                    case_id: link.case_id.clone(),
                    request_id,
                    expected_version: None,
                    level: level(&rule.level).into(),
                    reason: format!("Escalated from the tracker: {origin}."),
                    incident: false,
                }))
                .await
                .map(|_| ()),
        };
        let command = serde_json::to_value(rule.command)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match result {
            Ok(()) => Ok(format!("{command} driven on the case")),
            Err(status)
                if matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Unknown
                        | Code::Internal
                        | Code::ResourceExhausted
                        | Code::Aborted
                        | Code::Unauthenticated
                        | Code::PermissionDenied
                ) =>
            {
                Err(InboundError::Triage(format!("{:?}: {}", status.code(), status.message())))
            }
            Err(status) => {
                warn!(key = %link.key, command, code = ?status.code(), message = status.message(), "triage refused the command of a ticket change");
                Ok(format!("{command} refused by triage: {}", status.message()))
            }
        }
    }

    /// Reads linked tickets back every `interval` of each tracker until
    /// `shutdown`. One replica reconciles at a time (a lease per tracker).
    pub async fn reconcile_forever(self: Arc<Self>, shutdown: Shutdown) {
        let jira =
            self.trackers.jira.as_ref().map(|j| j.settings().reconcile_interval).filter(|d| !d.is_zero());
        let sn = self
            .trackers
            .servicenow
            .as_ref()
            .map(|s| s.settings().reconcile_interval)
            .filter(|d| !d.is_zero());
        let mut tasks = Vec::new();
        for (system, interval) in [(events::TicketSystem::Jira, jira), (events::TicketSystem::Servicenow, sn)]
        {
            let Some(interval) = interval else { continue };
            let me = Arc::clone(&self);
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let lease = cursor_name(system);
                loop {
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(interval) => {}
                    }
                    let now = crate::worker::now_ms();
                    let lease_ms = i64::try_from(interval.as_millis().saturating_mul(2)).unwrap_or(i64::MAX);
                    match readmodel::acquire_lease(&me.pool, &lease, &me.owner, now, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            warn!(error = %e, "reconciliation cannot take its lease");
                            continue;
                        }
                    }
                    match me.reconcile(system).await {
                        Ok(n) if n > 0 => info!(
                            system = system.as_str_name(),
                            changes = n,
                            "reconciliation repaired ticket changes"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            warn!(system = system.as_str_name(), error = %e, "reconciliation pass failed")
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// One reconciliation pass of `system`; the number of changes recorded.
    ///
    /// The first pass (no cursor yet) reads every linked ticket back. Each
    /// complete pass then moves the tracker's cursor (kept in the read
    /// model, so a restart goes on from it) to when it started, and later
    /// passes ask the tracker only for the tickets of the subscriptions'
    /// projects or tables updated since the cursor, less
    /// [`CURSOR_OVERLAP`] for the clocks' skew and the minute granularity.
    /// A pass that fails leaves the cursor where it was; one that would
    /// read more than [`MAX_CHANGED_PAGES`] pages of changes reads every
    /// linked ticket instead.
    pub async fn reconcile(&self, system: events::TicketSystem) -> Result<usize, anyhow::Error> {
        let name = cursor_name(system);
        let started = crate::worker::now_ms();
        let changes = match readmodel::cursor(&self.pool, &name).await? {
            None => self.reconcile_all(system).await?,
            Some(at) => {
                let overlap = i64::try_from(CURSOR_OVERLAP.as_millis()).unwrap_or(i64::MAX);
                let minutes = started.saturating_sub(at).saturating_add(overlap) / 60_000 + 1;
                match self.reconcile_changed(system, minutes).await? {
                    Some(changes) => changes,
                    None => {
                        warn!(
                            system = system.as_str_name(),
                            "too many changed tickets for one pass; reading every linked ticket"
                        );
                        self.reconcile_all(system).await?
                    }
                }
            }
        };
        readmodel::set_cursor(&self.pool, &name, started).await?;
        Ok(changes)
    }

    /// The tickets updated in the last `minutes`, applied; `None` when
    /// there were more than [`MAX_CHANGED_PAGES`] pages of them.
    async fn reconcile_changed(
        &self,
        system: events::TicketSystem,
        minutes: i64,
    ) -> Result<Option<usize>, anyhow::Error> {
        let channel = match system {
            events::TicketSystem::Servicenow => events::DeliveryChannel::Servicenow,
            _ => events::DeliveryChannel::Jira,
        };
        let endpoints = readmodel::endpoints_of_channel(&self.pool, channel as i32, MAX_ENDPOINTS).await?;
        let mut states: Vec<(String, TicketState)> = Vec::new();
        match system {
            events::TicketSystem::Servicenow => {
                let Some(sn) = &self.trackers.servicenow else { return Ok(Some(0)) };
                for table in &endpoints {
                    let (found, complete) = sn
                        .changed_since(table, minutes, MAX_CHANGED_PAGES)
                        .await
                        .map_err(|f| anyhow::anyhow!("ServiceNow table {table}: {}", f.error))?;
                    if !complete {
                        return Ok(None);
                    }
                    states.extend(found);
                }
            }
            _ => {
                let Some(jira) = &self.trackers.jira else { return Ok(Some(0)) };
                for projects in endpoints.chunks(20) {
                    let (found, complete) = jira
                        .changed_since(projects, minutes, MAX_CHANGED_PAGES)
                        .await
                        .map_err(|f| anyhow::anyhow!("Jira search: {}", f.error))?;
                    if !complete {
                        return Ok(None);
                    }
                    states.extend(found);
                }
            }
        }
        let mut changes = 0;
        let mut failures = 0;
        for (external_id, state) in states {
            // Tickets of the projects that are not linked to a case are none of ours.
            let Some(link_id) =
                readmodel::ticket_by_external_id(&self.pool, system as i32, &external_id).await?
            else {
                continue;
            };
            match self.apply(system, &link_id, &state).await {
                Ok(Applied::Recorded(_)) => changes += 1,
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    warn!(external_id, error = %e, "reconciliation could not apply a ticket change");
                }
            }
        }
        if failures > 0 {
            anyhow::bail!("{changes} changes recorded, {failures} failures (see the warnings above)");
        }
        Ok(Some(changes))
    }

    /// One pass over every linked ticket of `system` (but those recorded
    /// as deleted); the number of changes recorded.
    async fn reconcile_all(&self, system: events::TicketSystem) -> Result<usize, anyhow::Error> {
        let mut after = String::new();
        let mut changes = 0;
        let mut failures = 0;
        loop {
            let page =
                readmodel::tickets_of_system(&self.pool, system as i32, &after, RECONCILE_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.link_id.clone();
            let full = page.len() == RECONCILE_PAGE as usize;
            let page: Vec<_> = page.into_iter().filter(|t| !t.deleted).collect();
            // external id (issue key or sys_id) -> link id, for this page
            let links: HashMap<&str, &str> = page
                .iter()
                .map(|t| {
                    let id = if system == events::TicketSystem::Servicenow { &t.sys_id } else { &t.key };
                    (id.as_str(), t.link_id.as_str())
                })
                .collect();
            let mut states: Vec<(String, TicketState)> = Vec::new();
            match system {
                events::TicketSystem::Servicenow => {
                    let Some(sn) = &self.trackers.servicenow else { return Ok(changes) };
                    let mut by_table: BTreeMap<String, Vec<String>> = BTreeMap::new();
                    for t in &page {
                        let link = Link { url: t.url.clone(), ..Link::default() };
                        if let Some(table) = super::servicenow::ServiceNow::table_of(&link) {
                            by_table.entry(table.to_owned()).or_default().push(t.sys_id.clone());
                        }
                    }
                    for (table, ids) in by_table {
                        match sn.states(&table, &ids).await {
                            Ok(found) => states.extend(found),
                            Err(f) => {
                                failures += 1;
                                warn!(table, error = %f.error, "reconciliation could not read ServiceNow records");
                            }
                        }
                    }
                }
                _ => {
                    let Some(jira) = &self.trackers.jira else { return Ok(changes) };
                    let keys: Vec<String> = page.iter().map(|t| t.key.clone()).collect();
                    match jira.states(&keys).await {
                        Ok(found) => states = found,
                        Err(f) => {
                            failures += 1;
                            warn!(error = %f.error, "reconciliation could not read Jira issues");
                        }
                    }
                }
            }
            // One ticket's trouble (triage refusing to answer, say) does not
            // keep the others from being reconciled.
            for (external_id, state) in states {
                let Some(link_id) = links.get(external_id.as_str()) else { continue };
                match self.apply(system, link_id, &state).await {
                    Ok(Applied::Recorded(_)) => changes += 1,
                    Ok(_) => {}
                    Err(e) => {
                        failures += 1;
                        warn!(external_id, error = %e, "reconciliation could not apply a ticket change");
                    }
                }
            }
            if !full {
                break;
            }
        }
        if failures > 0 {
            anyhow::bail!("{changes} changes recorded, {failures} failures (see the warnings above)");
        }
        Ok(changes)
    }
}

fn resolution(name: &str) -> events::CaseResolution {
    match name {
        "fixed" => events::CaseResolution::Fixed,
        "mitigated" => events::CaseResolution::Mitigated,
        "suspended" => events::CaseResolution::Suspended,
        "wont_fix" => events::CaseResolution::WontFix,
        "rejected" => events::CaseResolution::Rejected,
        "duplicate" => events::CaseResolution::Duplicate,
        "end_of_life" => events::CaseResolution::EndOfLife,
        _ => events::CaseResolution::Unspecified,
    }
}

fn level(name: &str) -> events::EscalationLevel {
    match name {
        "team" => events::EscalationLevel::Team,
        "management" => events::EscalationLevel::Management,
        "executive" => events::EscalationLevel::Executive,
        _ => events::EscalationLevel::Unspecified,
    }
}

/// Whether a Jira webhook carries the secret: a valid `X-Hub-Signature`
/// over the body, or, only when `query_token` opts in, `?token=`.
pub fn jira_authentic(
    secret: &[u8],
    headers: &HeaderMap,
    query: Option<&HashMap<String, String>>,
    body: &[u8],
) -> bool {
    if let Some(signature) = headers.get("x-hub-signature").and_then(|v| v.to_str().ok())
        && let Some(hex_sig) = signature.strip_prefix("sha256=")
        && let Ok(bytes) = hex::decode(hex_sig.trim())
        && let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret)
    {
        mac.update(body);
        return mac.verify_slice(&bytes).is_ok();
    }
    query.and_then(|q| q.get("token")).is_some_and(|t| same(t.as_bytes(), secret))
}

/// Whether a ServiceNow webhook carries the secret: `Authorization: Bearer
/// <secret>`, compared as bytes (a secret that is not ASCII is sent as its
/// UTF-8 bytes, which `HeaderValue::to_str` refuses).
fn bearer_authentic(secret: &[u8], headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|t| same(t.trim_ascii(), secret))
}

fn answer(result: Result<Applied, InboundError>) -> (StatusCode, String) {
    match result {
        Ok(Applied::Recorded(note)) => {
            (StatusCode::OK, if note.is_empty() { "recorded".to_owned() } else { note })
        }
        Ok(Applied::Unchanged) => (StatusCode::OK, "unchanged".to_owned()),
        Ok(Applied::UnknownTicket) => (StatusCode::ACCEPTED, "no linked case for this ticket".to_owned()),
        Err(e) => {
            warn!(error = %e, "inbound ticket change not applied; the tracker should retry");
            (StatusCode::SERVICE_UNAVAILABLE, "not applied, retry later".to_owned())
        }
    }
}

async fn jira_hook(
    State(inbound): State<Arc<Inbound>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(secret) = secret_text(&inbound.secrets, &inbound.jira_secret) else {
        return (StatusCode::NOT_FOUND, "Jira webhooks are not configured".to_owned());
    };
    let query = inbound.jira_query_token.then_some(&query);
    if !jira_authentic(secret.expose_secret().as_bytes(), &headers, query, &body) {
        return (StatusCode::UNAUTHORIZED, "bad or missing signature".to_owned());
    }
    match jira_issue_key(&body) {
        Ok(key) => answer(inbound.changed(events::TicketSystem::Jira, &key).await),
        Err(refusal) => refusal.answer(),
    }
}

async fn servicenow_hook(
    State(inbound): State<Arc<Inbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(secret) = secret_text(&inbound.secrets, &inbound.servicenow_secret) else {
        return (StatusCode::NOT_FOUND, "ServiceNow webhooks are not configured".to_owned());
    };
    if !bearer_authentic(secret.expose_secret().as_bytes(), &headers) {
        return (StatusCode::UNAUTHORIZED, "bad or missing token".to_owned());
    }
    let settings = inbound.trackers.servicenow.as_ref().map(|s| s.settings());
    match servicenow_sys_id(settings, &body) {
        Ok(sys_id) => answer(inbound.changed(events::TicketSystem::Servicenow, &sys_id).await),
        Err(refusal) => refusal.answer(),
    }
}

/// Why the body of an authenticated webhook drives no change; each has its
/// answer to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefusal {
    /// 400: the body is not JSON.
    #[error("body is not JSON")]
    NotJson,
    /// 200: a Jira event that is not an issue change (Jira sends others
    /// to the same hook); nothing to do.
    #[error("not an issue change; ignored")]
    NotAnIssueChange,
    /// 404: ServiceNow hooks have a secret but no `[servicenow]` tracker.
    #[error("ServiceNow is not configured")]
    NotConfigured,
    /// 400: a ServiceNow body without the record's `sys_id` and state.
    #[error("expected sys_id and state")]
    NoRecord,
}

impl BodyRefusal {
    /// The status and text the hook answers with.
    pub fn answer(self) -> (StatusCode, String) {
        let status = match self {
            Self::NotJson | Self::NoRecord => StatusCode::BAD_REQUEST,
            Self::NotAnIssueChange => StatusCode::OK,
            Self::NotConfigured => StatusCode::NOT_FOUND,
        };
        (status, self.to_string())
    }
}

/// The issue key a Jira webhook body (`jira:issue_updated`) names.
pub fn jira_issue_key(body: &[u8]) -> Result<String, BodyRefusal> {
    let json = serde_json::from_slice::<Value>(body).map_err(|_| BodyRefusal::NotJson)?;
    super::jira::parse_webhook(&json).map(|(key, _)| key).ok_or(BodyRefusal::NotAnIssueChange)
}

/// The `sys_id` of the record a ServiceNow webhook body names; `settings`
/// are the `[servicenow]` tracker's, `None` when there is none.
pub fn servicenow_sys_id(
    settings: Option<&super::servicenow::ServiceNowSettings>,
    body: &[u8],
) -> Result<String, BodyRefusal> {
    let json = serde_json::from_slice::<Value>(body).map_err(|_| BodyRefusal::NotJson)?;
    let settings = settings.ok_or(BodyRefusal::NotConfigured)?;
    super::servicenow::parse_webhook(settings, &json).map(|(sys_id, _)| sys_id).ok_or(BodyRefusal::NoRecord)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_webhooks_authenticate_by_signature_or_token() {
        let secret = b"a-webhook-secret-of-some-length";
        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature", good.parse().expect("header"));
        assert!(jira_authentic(secret, &headers, None, body));
        assert!(!jira_authentic(secret, &headers, None, b"{}"), "another body");
        headers.insert("x-hub-signature", "sha256=00".parse().expect("header"));
        assert!(!jira_authentic(secret, &headers, None, body));
        let query = HashMap::from([("token".to_owned(), String::from_utf8_lossy(secret).into_owned())]);
        assert!(jira_authentic(secret, &HeaderMap::new(), Some(&query), body), "opted in: ?token=");
        let wrong = HashMap::from([("token".to_owned(), "nope".to_owned())]);
        assert!(!jira_authentic(secret, &HeaderMap::new(), Some(&wrong), body));
        assert!(!jira_authentic(secret, &HeaderMap::new(), None, body));
    }

    #[test]
    fn servicenow_webhooks_authenticate_by_bearer_token() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer s3cr3t-token-value".parse().expect("header"));
        assert!(bearer_authentic(b"s3cr3t-token-value", &headers));
        assert!(!bearer_authentic(b"other-token-value!", &headers));
    }

    /// Properties of the hooks' authentication: whatever a caller sends,
    /// only the secret (or its HMAC over the body) gets in; no panic on odd
    /// lengths, encodings or header bytes.
    mod properties {
        use axum::http::HeaderValue;
        use proptest::prelude::*;

        use super::*;

        /// Secrets are text of at least 16 bytes (`secrets::MIN_SECRET_BYTES`).
        fn secret() -> impl Strategy<Value = String> {
            prop_oneof!["[ -~]{16,48}", "\\PC{16,32}"]
        }

        fn mac(secret: &[u8], body: &[u8]) -> Vec<u8> {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }

        fn signed(value: &str) -> Option<HeaderMap> {
            let mut headers = HeaderMap::new();
            headers.insert("x-hub-signature", HeaderValue::from_str(value).ok()?);
            Some(headers)
        }

        fn bearer(value: &[u8]) -> Option<HeaderMap> {
            let mut headers = HeaderMap::new();
            headers.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_bytes(value).ok()?);
            Some(headers)
        }

        /// A signature header: hex of some bytes (odd lengths, other cases,
        /// blanks), or any text.
        fn signature_value() -> impl Strategy<Value = String> {
            prop_oneof![
                (proptest::collection::vec(any::<u8>(), 0..40), any::<bool>(), "[ ]{0,2}").prop_map(
                    |(bytes, upper, blank)| {
                        let hex = hex::encode(bytes);
                        let hex = if upper { hex.to_ascii_uppercase() } else { hex };
                        format!("sha256={blank}{hex}{blank}")
                    }
                ),
                "sha256=[0-9a-fA-F]{0,70}",
                "[ -~]{0,80}",
                "\\PC{0,40}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The constant-time comparison is equality.
            #[test]
            fn same_is_equality(
                a in proptest::collection::vec(any::<u8>(), 0..40),
                b in proptest::collection::vec(any::<u8>(), 0..40),
                copy in any::<bool>(),
            ) {
                let b = if copy { a.clone() } else { b };
                prop_assert_eq!(same(&a, &b), a == b);
            }

            /// The HMAC of the body under the secret always gets in, in
            /// either case of hex and with blanks around it.
            #[test]
            fn the_right_jira_signature_always_verifies(
                secret in secret(),
                body in proptest::collection::vec(any::<u8>(), 0..512),
                upper in any::<bool>(),
                blank in "[ \t]{0,2}",
            ) {
                let hex = hex::encode(mac(secret.as_bytes(), &body));
                let hex = if upper { hex.to_ascii_uppercase() } else { hex };
                let headers = signed(&format!("sha256={blank}{hex}{blank}")).expect("visible ASCII");
                prop_assert!(jira_authentic(secret.as_bytes(), &headers, None, &body));
            }

            /// Any other signature header (other bytes, the MAC of another
            /// body or under another key, one bit off, cut short or
            /// extended, not hex at all) never gets in without the token.
            #[test]
            fn any_other_jira_signature_never_verifies(
                secret in secret(),
                other_secret in secret(),
                body in proptest::collection::vec(any::<u8>(), 0..256),
                other_body in proptest::collection::vec(any::<u8>(), 0..256),
                value in signature_value(),
                bit in 0..256usize,
                cut in 1..32usize,
                kind in 0..6u8,
            ) {
                let right = mac(secret.as_bytes(), &body);
                let value = match kind {
                    0 => value,
                    1 => format!("sha256={}", hex::encode(mac(secret.as_bytes(), &other_body))),
                    2 => format!("sha256={}", hex::encode(mac(other_secret.as_bytes(), &body))),
                    3 => {
                        let mut flipped = right.clone();
                        flipped[bit / 8] ^= 1 << (bit % 8);
                        format!("sha256={}", hex::encode(flipped))
                    }
                    4 => format!("sha256={}", &hex::encode(&right)[..64 - cut]),
                    _ => format!("sha256={}00", hex::encode(&right)),
                };
                let Some(headers) = signed(&value) else { return Ok(()) };
                let decoded = value.strip_prefix("sha256=").and_then(|h| hex::decode(h.trim()).ok());
                let authentic = jira_authentic(secret.as_bytes(), &headers, None, &body);
                prop_assert_eq!(authentic, decoded.as_deref() == Some(right.as_slice()), "{}", value);
            }

            /// The query token gets in when it is the secret, and only then.
            #[test]
            fn only_the_secret_jira_token_gets_in(
                secret in secret(),
                token in "\\PC{0,48}",
                kind in 0..5u8,
            ) {
                let token = match kind {
                    0 => token,
                    1 => secret.clone(),
                    2 => secret[..secret.char_indices().last().map_or(0, |(i, _)| i)].to_owned(),
                    3 => format!("{secret}x"),
                    _ => format!(" {secret}"),
                };
                let query = HashMap::from([("token".to_owned(), token.clone())]);
                let authentic = jira_authentic(secret.as_bytes(), &HeaderMap::new(), Some(&query), b"{}");
                prop_assert_eq!(authentic, token == secret);
                // Not opted in: the query is never looked at.
                let no_body: &[u8] = b"{}";
                let opted_out = jira_authentic(secret.as_bytes(), &HeaderMap::new(), None, no_body);
                prop_assert!(!opted_out, "the query is not looked at");
            }

            /// `Authorization: Bearer <secret>` gets in (blanks around the
            /// token are forgiven); any other value, other bytes than
            /// UTF-8 included, does not.
            #[test]
            fn only_the_secret_bearer_token_gets_in(
                secret in secret(),
                token in proptest::collection::vec(any::<u8>(), 0..48),
                text in "[ -~]{0,48}",
                kind in 0..7u8,
            ) {
                let value: Vec<u8> = match kind {
                    0 => [b"Bearer ".as_slice(), &token].concat(),
                    1 => text.into_bytes(),
                    2 => format!("Bearer {secret}").into_bytes(),
                    3 => format!("Bearer  {secret} ").into_bytes(),
                    4 => format!("bearer {secret}").into_bytes(),
                    5 => format!("Basic {secret}").into_bytes(),
                    _ => format!("Bearer {}", &secret[..secret.char_indices().last().map_or(0, |(i, _)| i)]).into_bytes(),
                };
                let Some(headers) = bearer(&value) else { return Ok(()) };
                let expected = value
                    .strip_prefix(b"Bearer ")
                    .is_some_and(|t| t.trim_ascii() == secret.as_bytes());
                prop_assert_eq!(bearer_authentic(secret.as_bytes(), &headers), expected, "{:?}", value);
                prop_assert!(!bearer_authentic(secret.as_bytes(), &HeaderMap::new()));
            }
        }
    }
}
