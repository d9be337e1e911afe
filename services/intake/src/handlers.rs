//! Intake's command handling: load the report, let the domain decide, append
//! with an expectation, retry a conflict once. Every command's event id is
//! derived from the caller's request id, so a retried request finds its own
//! event and answers as the first attempt did.

use std::net::IpAddr;
use std::sync::Arc;

use psirt_domain::validation::Text;
use psirt_domain::{
    CaseId, EventId, MessageDirection, Report, ReportCommand, ReportError, ReportEvent, ReportId,
};
use psirt_eventstore::{
    CommandError, EventStore, Executed, Metadata, ReadError, Repository, Request, StoreError,
};
use psirt_kit::quota::{self, Rate, RateLimiter};
use psirt_kit::request::{PageBytes, Violations, page_token};
use psirt_kit::{ApiError, FieldViolation, Principal, Refusal, Role};
use psirt_proto::intake;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tracing::{instrument, warn};

use crate::dedup::DedupFilter;
use crate::mapping::{self, millis};
use crate::readmodel;

/// Everything a handler can fail with; one exhaustive mapping to a status.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Domain(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event does not decode: {0}")]
    Corrupt(#[from] psirt_eventstore::DecodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn violations(v: Vec<psirt_domain::FieldViolation>) -> Vec<FieldViolation> {
    v.into_iter().map(|v| FieldViolation::new(v.field, v.description)).collect()
}

impl From<IntakeError> for ApiError {
    fn from(err: IntakeError) -> Self {
        match err {
            IntakeError::Domain(e) => match e {
                ReportError::Validation(v) => ApiError::InvalidArgument(violations(v)),
                ReportError::NotFound => ApiError::not_found("report", ""),
                ReportError::AlreadyExists { id } => {
                    ApiError::AlreadyExists { resource: "report", id: id.to_string() }
                }
                ReportError::AlreadyAcknowledged { id } => ApiError::failed_precondition(
                    format!("report {id} was already acknowledged"),
                    Some("acknowledged"),
                ),
                ReportError::DuplicateOfSelf => {
                    ApiError::invalid_argument("other_report_id", "a report cannot be a duplicate of itself")
                }
                ReportError::TooManyMessages { id, limit } => {
                    ApiError::ResourceExhausted(format!("report {id} holds its {limit} messages already"))
                }
            },
            IntakeError::Store(e) => e.into(),
            IntakeError::Database(e) => ApiError::Unavailable(format!("read model: {e}")),
            IntakeError::Corrupt(e) => ApiError::internal(e),
            IntakeError::Api(e) => e,
        }
    }
}

impl From<CommandError<ReportError, IntakeError>> for IntakeError {
    fn from(err: CommandError<ReportError, IntakeError>) -> Self {
        match psirt_kit::refusal("report", err) {
            Refusal::Api(e) => e.into(),
            Refusal::Domain(e) => e.into(),
            Refusal::Rejected(e) => e,
        }
    }
}

impl From<ReadError> for IntakeError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Store(e) => e.into(),
            ReadError::Decode(e) => e.into(),
        }
    }
}

impl From<IntakeError> for tonic::Status {
    fn from(err: IntakeError) -> Self {
        ApiError::from(err).into()
    }
}

type Result<T> = std::result::Result<T, IntakeError>;

/// Settings of the intake handlers (`[intake]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// How far back an open report counts for the duplicate hint, in days.
    pub duplicate_window_days: u32,
    /// Page size of `ListReports` when the request gives none.
    pub default_page_size: u32,
    /// Largest page of `ListReports`.
    pub max_page_size: u32,
    /// Text of the acknowledgement when `AcknowledgeReport` gives none.
    pub acknowledgement_template: String,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            duplicate_window_days: 30,
            default_page_size: 50,
            max_page_size: 1000,
            acknowledgement_template:
                "Thank you for your report. Our product security team has received it and will respond after triage."
                    .to_owned(),
        }
    }
}

/// `[quotas]`: limits per caller. Rates are per replica (see
/// `docs/operations.md`); the counts are exact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeQuotas {
    /// `SubmitReport` by a reporter, or by an unauthenticated caller (keyed
    /// by its client address).
    pub submit_reports: Rate,
    /// `AddReporterMessage` by a reporter or an unauthenticated caller.
    pub reporter_messages: Rate,
    /// `SubmitReport` by staff and internal systems (analyst, engineer,
    /// admin): feeds and gateways submit in bulk, but not without end.
    pub staff_submit_reports: Rate,
    /// `AddReporterMessage` by staff.
    pub staff_messages: Rate,
    /// Most messages one report holds, both directions.
    pub max_messages_per_report: u32,
    /// Most open reports (their case not closed) one reporter may have;
    /// 0: no limit. Staff are not counted.
    pub max_open_reports_per_reporter: u32,
}

impl Default for IntakeQuotas {
    fn default() -> Self {
        Self {
            submit_reports: Rate::new(30, 60),
            reporter_messages: Rate::new(60, 120),
            staff_submit_reports: Rate::new(60_000, 5000),
            staff_messages: Rate::new(60_000, 5000),
            max_messages_per_report: 1000,
            max_open_reports_per_reporter: 100,
        }
    }
}

impl IntakeQuotas {
    /// Every problem, as (key, problem), keys relative to `[quotas]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, rate) in [
            ("submit_reports", self.submit_reports),
            ("reporter_messages", self.reporter_messages),
            ("staff_submit_reports", self.staff_submit_reports),
            ("staff_messages", self.staff_messages),
        ] {
            out.extend(rate.problems(key));
        }
        if !(1..=100_000).contains(&self.max_messages_per_report) {
            out.push(("max_messages_per_report".to_owned(), "must be between 1 and 100000".to_owned()));
        }
        if self.max_open_reports_per_reporter > 1_000_000 {
            out.push(("max_open_reports_per_reporter".to_owned(), "must be at most 1000000".to_owned()));
        }
        out
    }
}

/// The rate limiters of one replica.
struct Limiters {
    submit: RateLimiter,
    messages: RateLimiter,
    staff_submit: RateLimiter,
    staff_messages: RateLimiter,
}

impl Limiters {
    fn new(q: &IntakeQuotas) -> Self {
        Self {
            submit: RateLimiter::new(q.submit_reports),
            messages: RateLimiter::new(q.reporter_messages),
            staff_submit: RateLimiter::new(q.staff_submit_reports),
            staff_messages: RateLimiter::new(q.staff_messages),
        }
    }
}

/// The quota key of a caller: its principal, or, unauthenticated, its address.
fn caller(principal: &Principal, peer: Option<IpAddr>) -> String {
    quota::caller_key((!principal.is_anonymous()).then_some(principal.subject.as_str()), peer)
}

/// A report as loaded from its events.
type Loaded = psirt_eventstore::Loaded<Report>;

/// The `Report` view of a loaded report.
fn view(loaded: &Loaded) -> intake::Report {
    let mut view = intake::Report::default();
    // The codec decodes every event of a report subject: the two align.
    for (event, recorded) in loaded.domain.iter().zip(&loaded.events) {
        mapping::fold(&mut view, event, recorded.sequence);
    }
    view
}

/// The intake application core, shared by the gRPC handlers.
#[derive(Clone)]
pub struct Intake {
    inner: Arc<Inner>,
}

struct Inner {
    reports: Repository<mapping::ReportCodec>,
    pool: AnyPool,
    settings: IntakeSettings,
    quotas: IntakeQuotas,
    limiters: Limiters,
    dedup: DedupFilter,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_report_id(field: &str, value: &str) -> Result<ReportId> {
    value.trim().parse().map_err(|_| {
        ApiError::invalid_argument(field, format!("{value:?} is not a report id (a UUID)")).into()
    })
}

fn metadata(principal: &Principal, request_id: &str, correlation: Option<String>) -> Metadata {
    Metadata {
        causation_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
        correlation_id: correlation.or_else(|| (!request_id.is_empty()).then(|| request_id.to_owned())),
        actor: Some(principal.subject.clone()),
        actor_scopes: Some(principal.scopes.to_string()),
    }
}

/// What a caller may see of a report: a reporter never learns of other
/// reports (the duplicate hints would confirm that someone else reported
/// the same undisclosed flaw).
fn for_caller(principal: &Principal, mut view: intake::Report) -> intake::Report {
    if !is_staff(principal) {
        view.suspected_duplicate_report_ids.clear();
    }
    view
}

/// Reporters see and write to their own reports only; staff see all.
fn is_staff(principal: &Principal) -> bool {
    principal.roles.iter().any(|r| matches!(r, Role::Analyst | Role::Engineer | Role::Admin))
}

impl Intake {
    pub fn new(store: EventStore, pool: AnyPool, settings: IntakeSettings, quotas: IntakeQuotas) -> Self {
        let reports = Repository::new(store, mapping::ReportCodec);
        let limiters = Limiters::new(&quotas);
        Self {
            inner: Arc::new(Inner {
                reports,
                pool,
                settings,
                quotas,
                limiters,
                dedup: DedupFilter::default(),
            }),
        }
    }

    /// The submission quotas, checked before anything is read or appended:
    /// the rate of the caller's class, and a reporter's open reports.
    async fn admit_submission(&self, principal: &Principal, peer: Option<IpAddr>) -> Result<()> {
        let key = caller(principal, peer);
        let staff = is_staff(principal);
        let limiter = if staff { &self.inner.limiters.staff_submit } else { &self.inner.limiters.submit };
        limiter.admit(&key, "SubmitReport")?;
        let max_open = self.inner.quotas.max_open_reports_per_reporter;
        if !staff && !principal.is_anonymous() && max_open > 0 {
            let open = readmodel::open_reports_of(&self.inner.pool, &principal.subject).await?;
            if open >= i64::from(max_open) {
                return Err(ApiError::ResourceExhausted(format!(
                    "{open} open reports: at most {max_open} per reporter until some are closed"
                ))
                .into());
            }
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Loads the duplicate keys the read model gained since the last call
    /// into the in-memory filter.
    pub async fn refresh_dedup_filter(&self) -> Result<usize> {
        let window = time::Duration::days(i64::from(self.inner.settings.duplicate_window_days));
        let start = millis(now() - window);
        Ok(self.inner.dedup.refresh(&self.inner.pool, start).await?)
    }

    async fn load(&self, id: ReportId) -> Result<Loaded> {
        Ok(self.inner.reports.get(id).await?)
    }

    async fn load_visible(&self, principal: &Principal, id: ReportId) -> Result<Loaded> {
        let loaded = self.load(id).await?;
        if !loaded.state.exists() {
            return Err(ApiError::not_found("report", id.to_string()).into());
        }
        // Not-found rather than denied: a reporter must not learn which
        // report ids exist, nor staff of reports on products outside their
        // scopes.
        let visible = if is_staff(principal) {
            loaded.state.details().is_some_and(|d| principal.scopes.permits(&d.affected_products))
        } else {
            loaded.creator() == Some(principal.subject.as_str())
        };
        if !visible {
            return Err(ApiError::not_found("report", id.to_string()).into());
        }
        Ok(loaded)
    }

    /// `SubmitReport`.
    #[instrument(skip_all, fields(report_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        peer: Option<IpAddr>,
        req: intake::SubmitReportRequest,
    ) -> Result<intake::SubmitReportResponse> {
        let request_id = psirt_kit::request::request_id(&req.request_id)?;
        self.admit_submission(principal, peer).await?;
        let report_id = if request_id.is_empty() {
            ReportId::new()
        } else {
            ReportId::for_request(&principal.subject, &request_id)
        };
        tracing::Span::current().record("report_id", tracing::field::display(report_id));
        let submit = mapping::submission(report_id, &request_id, req)?;
        let event_id: uuid::Uuid = EventId::derive(report_id.into(), "received").into();
        let request = Request {
            must_exist: false,
            idempotency: vec![event_id],
            context: request_id.clone(),
            ..Request::new(report_id, metadata(principal, &request_id, None))
        };
        // Decided on the empty report before any IO: bad input appends
        // nothing. A retry of this very request (inside or beyond the
        // duplicate window) answers with the report as stored.
        let executed = self
            .inner
            .reports
            .create::<IntakeError>(&request, &|_| event_id, ReportCommand::Submit(Box::new(submit)))
            .await?;
        if executed.already_done && executed.loaded.creator() != Some(principal.subject.as_str()) {
            // The id is scoped by principal, so this cannot happen unless
            // ids collide; never hand out someone else's report.
            return Err(ApiError::AlreadyExists { resource: "report", id: report_id.to_string() }.into());
        }
        let Some(received) = executed.loaded.domain.first().cloned() else {
            return Err(ApiError::internal("submission stored no event").into());
        };
        let mut view = view(&executed.loaded);
        self.link_duplicates(principal, &request_id, report_id, &received, &mut view).await;
        let view = for_caller(principal, view);
        Ok(intake::SubmitReportResponse {
            report_id: report_id.to_string(),
            case_id: CaseId::for_report(report_id).to_string(),
            suspected_duplicate_report_ids: view.suspected_duplicate_report_ids.clone(),
            report: Some(view),
        })
    }

    /// Links open reports of the last window with the same normalised title
    /// and product. A hint only: a failure is logged, never fails the
    /// submission that is already stored.
    async fn link_duplicates(
        &self,
        principal: &Principal,
        request_id: &str,
        report_id: ReportId,
        received: &ReportEvent,
        view: &mut intake::Report,
    ) {
        let ReportEvent::ReportReceived { title, affected_products, received_at, .. } = received else {
            return;
        };
        let keys = psirt_domain::dedup_keys(title, affected_products);
        let seen = self.inner.dedup.may_contain(&keys);
        self.inner.dedup.insert(&keys);
        if !seen {
            // certainly no earlier report with these keys: skip the query
            return;
        }
        let window = time::Duration::days(i64::from(self.inner.settings.duplicate_window_days));
        let since = millis(*received_at - window);
        let others = match readmodel::find_duplicates(&self.inner.pool, &keys, since, report_id).await {
            Ok(others) => others,
            Err(e) => {
                warn!(report_id = %report_id, error = %e, "duplicate check failed");
                return;
            }
        };
        for other in others {
            if view.suspected_duplicate_report_ids.contains(&other.to_string()) {
                continue;
            }
            let event_id = EventId::derive(report_id.into(), &format!("duplicate\u{1f}{other}"));
            let command = ReportCommand::SuspectDuplicate {
                other,
                reason: "same normalised title and affected product as an open report of the last 30 days"
                    .to_owned(),
            };
            let result = self.execute(principal, report_id, None, event_id, request_id, command).await;
            match result {
                Ok(executed) => *view = self::view(&executed.loaded),
                Err(e) => {
                    warn!(report_id = %report_id, other = %other, error = %e, "failed to link suspected duplicate")
                }
            }
        }
    }

    /// Carries out one command with one event on the shared command path
    /// (load, idempotency, expected version, decide, append, one retry).
    async fn execute(
        &self,
        principal: &Principal,
        report_id: ReportId,
        expected_version: Option<u64>,
        event_id: EventId,
        request_id: &str,
        command: ReportCommand,
    ) -> Result<Executed<Report>> {
        let event_id: uuid::Uuid = event_id.into();
        let request = Request {
            expected: expected_version,
            idempotency: vec![event_id],
            context: request_id.to_owned(),
            ..Request::new(report_id, metadata(principal, request_id, None))
        };
        let decide = |_: &Loaded| Ok::<_, IntakeError>(Some(command.clone()));
        Ok(self.inner.reports.execute(&request, &|_| event_id, decide).await?)
    }

    /// `GetReport`: read from the event stream, so a report is visible the
    /// moment `SubmitReport` returned.
    pub async fn get(&self, principal: &Principal, req: intake::GetReportRequest) -> Result<intake::Report> {
        let id = parse_report_id("report_id", &req.report_id)?;
        let mut view = match self.load_visible(principal, id).await {
            Ok(loaded) => view(&loaded),
            // The stream away (no JetStream quorum): staff still read the
            // report as the read model has it, which may lag the latest
            // write. Reporters do not: the read model does not say whose
            // report it is.
            Err(IntakeError::Store(StoreError::Unavailable(cause))) if is_staff(principal) => {
                match readmodel::get(&self.inner.pool, id).await? {
                    Some(projected) if !principal.scopes.permits(&projected.affected_products) => {
                        return Err(ApiError::not_found("report", id.to_string()).into());
                    }
                    Some(projected) => {
                        tracing::warn!(report_id = %id, cause = %cause, "report read from the read model, the stream is unavailable");
                        return Ok(projected);
                    }
                    None => return Err(StoreError::Unavailable(cause).into()),
                }
            }
            Err(e) => return Err(e),
        };
        // A later report names this one as its suspected duplicate in its
        // own events; the read model has the link back.
        if let Ok(Some(projected)) = readmodel::get(&self.inner.pool, id).await {
            for other in projected.suspected_duplicate_report_ids {
                if !view.suspected_duplicate_report_ids.contains(&other) {
                    view.suspected_duplicate_report_ids.push(other);
                }
            }
        }
        Ok(for_caller(principal, view))
    }

    /// `AcknowledgeReport`.
    pub async fn acknowledge(
        &self,
        principal: &Principal,
        req: intake::AcknowledgeReportRequest,
    ) -> Result<intake::Report> {
        let id = parse_report_id("report_id", &req.report_id)?;
        psirt_kit::request::request_id(&req.request_id)?;
        let request_id = req.request_id.trim();
        let key = if request_id.is_empty() { "acknowledge" } else { request_id };
        // Acknowledging twice is refused by the domain; the same request
        // retried finds its own event.
        let event_id = mapping::command_event_id(id, "acknowledge", &principal.subject, key);
        let template = self.inner.settings.acknowledgement_template.clone();
        let mut bad = Violations::new();
        if let Some(message) = &req.message {
            bad.text("message", message, Text::FREE);
        }
        bad.finish()?;
        let message = req.message.filter(|m| !m.trim().is_empty()).unwrap_or(template);
        let command = ReportCommand::Acknowledge { message };
        self.load_visible(principal, id).await?;
        let executed =
            self.execute(principal, id, req.expected_version, event_id, request_id, command).await?;
        Ok(view(&executed.loaded))
    }

    /// `AddReporterMessage`.
    pub async fn add_message(
        &self,
        principal: &Principal,
        peer: Option<IpAddr>,
        req: intake::AddReporterMessageRequest,
    ) -> Result<intake::AddReporterMessageResponse> {
        let id = parse_report_id("report_id", &req.report_id)?;
        psirt_kit::request::request_id(&req.request_id)?;
        let staff = is_staff(principal);
        let limiter = if staff { &self.inner.limiters.staff_messages } else { &self.inner.limiters.messages };
        limiter.admit(&caller(principal, peer), "AddReporterMessage")?;
        let mut bad = Violations::new();
        let direction = if staff {
            bad.require(
                "direction",
                mapping::direction_from_proto(req.direction),
                "direction must be INBOUND or OUTBOUND",
            )
        } else {
            // A reporter writes to the team, never as the team.
            Some(MessageDirection::Inbound)
        };
        let author = if req.author.trim().is_empty() { principal.subject.clone() } else { req.author };
        bad.text("author", &author, Text::NAME);
        bad.text("body", &req.body, Text::FREE_REQUIRED);
        let direction = bad.finish_with(direction)?;
        // Existence, ownership and scope, with not-found semantics.
        self.load_visible(principal, id).await?;
        let request_id = req.request_id.trim().to_owned();
        let key = if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id.clone() };
        let event_id = mapping::command_event_id(id, "message", &principal.subject, &key);
        let body = req.body;
        let max_messages = self.inner.quotas.max_messages_per_report;
        let command = ReportCommand::AddMessage { direction, author, body, max_messages };
        let loaded =
            self.execute(principal, id, req.expected_version, event_id, &request_id, command).await?.loaded;
        let message_id = loaded
            .events
            .iter()
            .zip(&loaded.domain)
            .find(|(e, _)| e.id == Some(event_id.into()))
            .and_then(|(_, d)| match d {
                ReportEvent::ReporterMessageAdded { message_id, .. } => Some(message_id.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(intake::AddReporterMessageResponse {
            message_id,
            report: Some(for_caller(principal, view(&loaded))),
        })
    }

    /// `ListReports`, from the read model.
    pub async fn list(
        &self,
        principal: &Principal,
        req: intake::ListReportsRequest,
    ) -> Result<intake::ListReportsResponse> {
        if !is_staff(principal) {
            return Err(
                ApiError::PermissionDenied("listing reports needs the analyst role".to_owned()).into()
            );
        }
        let mut bad = Vec::new();
        if req.page_size < 0 {
            bad.push(FieldViolation::new("page_size", "page size must not be negative"));
        }
        let settings = &self.inner.settings;
        let limit = match u32::try_from(req.page_size) {
            Ok(0) | Err(_) => settings.default_page_size,
            Ok(n) => n.min(settings.max_page_size),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            match decode_page_token(&req.page_token) {
                Some(pos) => Some(pos),
                None => {
                    bad.push(FieldViolation::new("page_token", "not a page token of this API"));
                    None
                }
            }
        };
        let status = match req.status {
            0 => None,
            v if intake::ReportStatus::try_from(v).is_ok() => Some(v),
            _ => {
                bad.push(FieldViolation::new("status", "unknown report status"));
                None
            }
        };
        let channel = match req.channel {
            0 => None,
            v if mapping::channel_from_proto(v).is_some() => Some(v),
            _ => {
                bad.push(FieldViolation::new("channel", "unknown channel"));
                None
            }
        };
        let time_ms = |field: &str, t: Option<&prost_types::Timestamp>, bad: &mut Vec<FieldViolation>| match t
        {
            None => None,
            Some(t) => match mapping::from_timestamp(t) {
                Some(t) => Some(millis(t)),
                None => {
                    bad.push(FieldViolation::new(field, "not a valid timestamp"));
                    None
                }
            },
        };
        let received_after_ms = time_ms("received_after", req.received_after.as_ref(), &mut bad);
        let received_before_ms = time_ms("received_before", req.received_before.as_ref(), &mut bad);
        if !bad.is_empty() {
            return Err(ApiError::InvalidArgument(bad).into());
        }
        let query =
            readmodel::ListQuery { status, channel, received_after_ms, received_before_ms, after, limit };
        let (fetched, more) = readmodel::list(&self.inner.pool, &query).await?;
        let position = |r: &intake::Report| {
            let ms = r.received_at.as_ref().and_then(mapping::from_timestamp).map(millis)?;
            Some(encode_page_token(ms, &r.report_id))
        };
        let last_read = fetched.last().and_then(position);
        // Reports on products outside the caller's scopes are left out; the
        // next page goes on after the last report read, so a short page
        // skips nothing.
        let mut reports: Vec<intake::Report> =
            fetched.into_iter().filter(|r| principal.scopes.permits(&r.affected_products)).collect();
        // Bounded in bytes too: then the next page starts after the last report kept.
        let cut = PageBytes::current().fit(&mut reports);
        let next_page_token = if cut {
            reports.last().and_then(position).unwrap_or_default()
        } else if more {
            last_read.unwrap_or_default()
        } else {
            String::new()
        };
        Ok(intake::ListReportsResponse { reports, next_page_token })
    }
}

/// A `ListReports` position: received at (ms) and report id.
fn encode_page_token(ms: i64, report_id: &str) -> String {
    page_token::encode("reports", &[&ms.to_string(), report_id])
}

fn decode_page_token(token: &str) -> Option<(i64, String)> {
    let parts = page_token::decode(token, "reports", 2).ok()?;
    let id: ReportId = parts[1].parse().ok()?;
    Some((parts[0].parse().ok()?, id.to_string()))
}
