//! Remediation's command handling and reads: load the plan or advisory from
//! its stream, let the domain decide, append with an expectation, retry a
//! conflict once. Every event id derives from the caller's request id and
//! the event's type, so a retried request finds its own events and answers
//! as the first attempt did.

use std::sync::Arc;
use std::time::Duration;

use psirt_domain::Scopes;
use psirt_domain::remediation::MAX_URL_CHARS;
use psirt_domain::remediation::{PlanCommand, RemediationPolicy};
use psirt_domain::validation::{Text, fields};
use psirt_domain::{
    ActionId, Advisory, AdvisoryCommand, AdvisoryError, AdvisoryFormat, AdvisoryId, CaseId, EventId,
    PlanError, PlanEvent, PlanId,
};
use psirt_eventstore::repository::by_type;
use psirt_eventstore::{CommandError, EventStore, Metadata, RecordedEvent, Repository, Request, StoreError};
use psirt_kit::request::{PageBytes, Violations};
use psirt_kit::{ApiError, FieldViolation, Principal, Refusal, Role};
use psirt_proto::remediation as api;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tracing::{instrument, warn};

use crate::documents::{self, Format};
use crate::reactions;
use crate::{mapping, readmodel, scope, view};

/// Most read-model pages one list call looks at to fill its page with items
/// of cases in the caller's product scopes.
const MAX_SCOPED_READS: u32 = 8;

/// The current affected product names of a case.
fn products(facts: &view::CaseFacts) -> Vec<&str> {
    facts.products.iter().map(|p| p.product.as_str()).collect()
}

/// `NOT_FOUND` as `resource` (what the call answers for a missing case) when
/// none of the case's current products is in `scopes`.
fn check_facts_scope(
    scopes: &Scopes,
    facts: &view::CaseFacts,
    case_id: CaseId,
    resource: &'static str,
) -> Result<()> {
    if scopes.permits(&products(facts)) {
        Ok(())
    } else {
        Err(ApiError::not_found(resource, case_id.to_string()).into())
    }
}

/// Everything a handler can fail with; one exhaustive mapping to a status.
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Advisory(#[from] AdvisoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event does not decode: {0}")]
    Corrupt(#[from] psirt_eventstore::DecodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<psirt_eventstore::ReadError> for RemediationError {
    fn from(e: psirt_eventstore::ReadError) -> Self {
        match e {
            psirt_eventstore::ReadError::Store(e) => Self::Store(e),
            psirt_eventstore::ReadError::Decode(e) => Self::Corrupt(e),
        }
    }
}

fn violations(v: Vec<psirt_domain::FieldViolation>, rename: &dyn Fn(&str) -> String) -> ApiError {
    ApiError::InvalidArgument(
        v.into_iter().map(|v| FieldViolation::new(rename(&v.field), v.description)).collect(),
    )
}

impl From<RemediationError> for ApiError {
    fn from(err: RemediationError) -> Self {
        match err {
            RemediationError::Plan(PlanError::NotFound) => ApiError::failed_precondition(
                "the case has no remediation plan: it is opened when the case is accepted",
                None::<String>,
            ),
            RemediationError::Plan(PlanError::ActionNotFound { action_id, .. }) => {
                ApiError::not_found("remediation action", action_id.to_string())
            }
            RemediationError::Plan(PlanError::Validation(v)) => violations(v, &|f| f.to_owned()),
            RemediationError::Advisory(AdvisoryError::NoDraft) => ApiError::failed_precondition(
                "the advisory has no draft to publish: draft it first",
                None::<String>,
            ),
            RemediationError::Advisory(e @ AdvisoryError::EmbargoInEffect { .. }) => {
                ApiError::failed_precondition(e.to_string(), Some("EMBARGOED"))
            }
            RemediationError::Advisory(e @ AdvisoryError::UnresolvedProducts { .. }) => {
                ApiError::failed_precondition(e.to_string(), Some("PRODUCT_STATUS_MISSING"))
            }
            RemediationError::Advisory(AdvisoryError::Validation(v)) => violations(v, &|f| f.to_owned()),
            RemediationError::Store(e) => e.into(),
            RemediationError::Database(e) => ApiError::Unavailable(format!("read model: {e}")),
            RemediationError::Corrupt(e) => ApiError::internal(e),
            RemediationError::Api(e) => e,
        }
    }
}

/// A failed command of the shared path as this service reports it.
fn from_command<D: Into<RemediationError>>(
    resource: &'static str,
    err: CommandError<D, RemediationError>,
) -> RemediationError {
    match psirt_kit::refusal(resource, err) {
        Refusal::Api(e) => e.into(),
        Refusal::Domain(e) => e.into(),
        Refusal::Rejected(e) => e,
    }
}

impl From<RemediationError> for tonic::Status {
    fn from(err: RemediationError) -> Self {
        ApiError::from(err).into()
    }
}

type Result<T> = std::result::Result<T, RemediationError>;

/// Settings of the remediation handlers (`[remediation]` in the config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemediationSettings {
    /// Page size of `ListOverdue` and `ListAdvisories` when the request gives none.
    pub default_page_size: u32,
    /// Largest page.
    pub max_page_size: u32,
    /// How often the scheduler looks for actions past their due date, in ms.
    pub overdue_check_interval_ms: u64,
    /// Time to remediate per severity, and per product.
    pub policy: RemediationPolicy,
}

impl Default for RemediationSettings {
    fn default() -> Self {
        Self {
            default_page_size: 100,
            max_page_size: 1000,
            overdue_check_interval_ms: 60_000,
            policy: RemediationPolicy::default(),
        }
    }
}

/// The remediation application core, shared by the gRPC handlers.
#[derive(Clone)]
pub struct Remediation {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    plans: Repository<mapping::PlanCodec>,
    advisories: Repository<mapping::AdvisoryCodec>,
    pool: AnyPool,
    settings: RemediationSettings,
    documents: documents::Settings,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_case_id(value: &str) -> Result<CaseId> {
    value.trim().parse().map_err(|_| {
        ApiError::invalid_argument("case_id", format!("{value:?} is not a case id (a UUID)")).into()
    })
}

fn check_request_id(value: &str) -> Result<String> {
    let id = psirt_kit::request::request_id(value)?;
    Ok(if id.is_empty() { uuid::Uuid::now_v7().to_string() } else { id })
}

fn metadata(principal: &Principal, request_id: &str) -> Metadata {
    Metadata {
        causation_id: Some(request_id.to_owned()),
        correlation_id: Some(request_id.to_owned()),
        actor: Some(principal.subject.clone()),
        actor_scopes: Some(principal.scopes.to_string()),
    }
}

/// The event id of a command's event: the aggregate, the caller, the
/// request and the event type.
fn command_event_id(
    aggregate: uuid::Uuid,
    principal: &Principal,
    request_id: &str,
    event_type: &str,
) -> EventId {
    EventId::derive(aggregate, &format!("{}\u{1f}{request_id}\u{1f}{event_type}", principal.subject))
}

/// A page token of the list `scope` (the kit's one format).
fn encode_token(scope: &str, parts: &[String]) -> String {
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    psirt_kit::request::page_token::encode(scope, &parts)
}

fn decode_token(token: &str, scope: &str, parts: usize) -> Result<Vec<String>> {
    Ok(psirt_kit::request::page_token::decode(token, scope, parts)?)
}

impl Remediation {
    pub fn new(
        store: EventStore,
        pool: AnyPool,
        settings: RemediationSettings,
        documents: documents::Settings,
    ) -> Self {
        let plans = Repository::new(store.clone(), mapping::PlanCodec { policy: settings.policy.clone() });
        let advisories = Repository::new(store.clone(), mapping::AdvisoryCodec);
        Self { inner: Arc::new(Inner { store, plans, advisories, pool, settings, documents }) }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    fn page_size(&self, requested: i32) -> Result<u32> {
        let s = &self.inner.settings;
        match requested {
            0 => Ok(s.default_page_size),
            n if n < 0 => {
                Err(ApiError::invalid_argument("page_size", "page size must not be negative").into())
            }
            n => Ok(u32::try_from(n).unwrap_or(u32::MAX).min(s.max_page_size)),
        }
    }

    async fn case_events(&self, case_id: CaseId) -> Result<Vec<RecordedEvent>> {
        Ok(self.inner.store.load(&psirt_eventstore::subject("case", case_id)).await?)
    }

    /// `NOT_FOUND` (as `resource`, the answer of this call for a missing
    /// case) when the case exists but none of its current products is in
    /// `scopes`; read from the case's own events, so a change of products
    /// counts at once. A missing case is left to the call's own answer.
    async fn check_scope(&self, scopes: &Scopes, case_id: CaseId, resource: &'static str) -> Result<()> {
        if scopes.is_all() {
            return Ok(());
        }
        let events = self.case_events(case_id).await?;
        if events.is_empty() {
            return Ok(());
        }
        check_facts_scope(scopes, &view::case_facts(&events)?, case_id, resource)
    }

    /// Whether the case is in `scopes` by the read model's case facts (for
    /// lists); `cache` keeps the answers of this call.
    async fn projected_in_scope(
        &self,
        scopes: &Scopes,
        case_id: &str,
        cache: &mut std::collections::HashMap<String, bool>,
    ) -> Result<bool> {
        if scopes.is_all() {
            return Ok(true);
        }
        if let Some(known) = cache.get(case_id) {
            return Ok(*known);
        }
        let facts = readmodel::facts(&self.inner.pool, case_id).await?.unwrap_or_default();
        let permitted = scopes.permits(&products(&facts));
        cache.insert(case_id.to_owned(), permitted);
        Ok(permitted)
    }

    /// Carries out one plan command on the shared command path (load,
    /// idempotency, expected version, decide, append, one retry); returns
    /// the plan view after it.
    async fn execute_plan(
        &self,
        principal: &Principal,
        case_id: CaseId,
        request_id: &str,
        expected_version: Option<u64>,
        event_type: &str,
        command: PlanCommand,
    ) -> Result<api::Plan> {
        // Out of the caller's scopes: the case is missing to it, before any
        // answer that depends on the plan.
        self.check_scope(&principal.scopes, case_id, "case").await?;
        let plan_id = PlanId::for_case(case_id);
        let event_id = |t: &str| command_event_id(plan_id.into(), principal, request_id, t).into();
        let request = Request {
            expected: expected_version,
            idempotency: vec![event_id(event_type)],
            ..Request::new(plan_id, metadata(principal, request_id))
        };
        let decide = |_: &psirt_eventstore::Loaded<psirt_domain::Plan>| Ok(Some(command.clone()));
        match self.inner.plans.execute::<RemediationError>(&request, &by_type(&event_id), decide).await {
            Ok(executed) => self.plan_view(&executed.loaded.events),
            Err(CommandError::NotFound { .. }) => {
                if self.case_events(case_id).await?.is_empty() {
                    return Err(ApiError::not_found("case", case_id.to_string()).into());
                }
                Err(PlanError::NotFound.into())
            }
            Err(e) => Err(from_command("remediation plan", e)),
        }
    }

    fn plan_view(&self, events: &[RecordedEvent]) -> Result<api::Plan> {
        let mut plan = view::plan(events)?;
        view::refresh_overdue(&mut plan, now_ms());
        Ok(plan)
    }

    /// The plan of a case, from its stream (reads its own writes).
    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn get_plan(&self, req: api::GetPlanRequest) -> Result<api::Plan> {
        let case_id = parse_case_id(&req.case_id)?;
        self.check_scope(&scope::current(), case_id, "case").await?;
        let events = self.inner.store.load(&mapping::plan_subject(PlanId::for_case(case_id))).await?;
        if events.is_empty() {
            if self.case_events(case_id).await?.is_empty() {
                return Err(ApiError::not_found("case", case_id.to_string()).into());
            }
            return Err(ApiError::not_found("remediation plan", case_id.to_string()).into());
        }
        self.plan_view(&events)
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn plan_action(
        &self,
        principal: &Principal,
        req: api::PlanActionRequest,
    ) -> Result<(api::Plan, String)> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let plan_id = PlanId::for_case(case_id);
        let action_id = if req.action_id.trim().is_empty() {
            ActionId::for_request(plan_id, &request_id)
        } else {
            req.action_id.trim().parse().map_err(|_| {
                ApiError::invalid_argument(
                    "action_id",
                    format!("{:?} is not an action id (a UUID)", req.action_id),
                )
            })?
        };
        let mut bad = Violations::new();
        let action = bad.require("action", mapping::action_from_proto(req.action), "action is required");
        let target = bad.require("target", req.target.as_ref(), "target product and versions are required");
        if let Some(target) = target {
            bad.text("target.product", &target.product, fields::PRODUCT);
        }
        bad.text("owner_team", &req.owner_team, Text::NAME);
        bad.text("target_release", &req.target_release, fields::VERSION.with_min(0));
        bad.text("due_date_override_reason", &req.due_date_override_reason, fields::REASON);
        bad.text("description", &req.description, Text::FREE);
        let (action, target) = bad.finish_with(action.zip(target))?;
        let due_override = match (req.due_at_override.as_ref(), req.due_date_override_reason.trim()) {
            (None, "") => None,
            (None, _) => {
                return Err(ApiError::invalid_argument(
                    "due_at_override",
                    "a due date override reason needs a due_at_override",
                )
                .into());
            }
            (Some(at), reason) => Some((
                mapping::from_ts(Some(at))
                    .ok_or_else(|| ApiError::invalid_argument("due_at_override", "not a valid timestamp"))?,
                reason.to_owned(),
            )),
        };
        let command = PlanCommand::PlanAction {
            action_id,
            target: mapping::product_from_proto(target),
            action,
            owner_team: req.owner_team.clone(),
            target_release: req.target_release.clone(),
            due_override,
            description: req.description.clone(),
        };
        let plan = self
            .execute_plan(
                principal,
                case_id,
                &request_id,
                req.expected_version,
                "RemediationActionPlanned",
                command,
            )
            .await?;
        Ok((plan, action_id.to_string()))
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn record_release(
        &self,
        principal: &Principal,
        req: api::RecordReleaseRequest,
    ) -> Result<api::Plan> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let action_id = if req.action_id.trim().is_empty() {
            None
        } else {
            Some(req.action_id.trim().parse().map_err(|_| {
                ApiError::invalid_argument(
                    "action_id",
                    format!("{:?} is not an action id (a UUID)", req.action_id),
                )
            })?)
        };
        let mut bad = Violations::new();
        let released_at = bad.require(
            "released_at",
            mapping::from_ts(req.released_at.as_ref()),
            "the release date is required",
        );
        bad.text("product", &req.product, fields::PRODUCT);
        bad.text("fixed_version", &req.fixed_version, fields::VERSION);
        bad.max_chars("release_notes_url", &req.release_notes_url, MAX_URL_CHARS);
        let released_at = bad.finish_with(released_at)?;
        let command = PlanCommand::RecordRelease {
            action_id,
            product: req.product.clone(),
            fixed_version: req.fixed_version.clone(),
            released_at,
            release_notes_url: req.release_notes_url.clone(),
        };
        self.execute_plan(principal, case_id, &request_id, req.expected_version, "ReleaseRecorded", command)
            .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn set_product_status(
        &self,
        principal: &Principal,
        req: api::SetProductStatusRequest,
    ) -> Result<api::Plan> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let mut bad = Violations::new();
        let status = bad.require("status", mapping::status_from_proto(req.status), "status is required");
        bad.text("product", &req.product, fields::PRODUCT);
        bad.text("version", &req.version, fields::VERSION_OR_RANGE);
        bad.text("statement", &req.statement, Text::FREE);
        let status = bad.finish_with(status)?;
        let command = PlanCommand::SetProductStatus {
            product: req.product.clone(),
            version: req.version.clone(),
            status,
            justification: mapping::justification_from_proto(req.justification),
            statement: req.statement.clone(),
        };
        self.execute_plan(principal, case_id, &request_id, req.expected_version, "ProductStatusSet", command)
            .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn verify(
        &self,
        principal: &Principal,
        req: api::VerifyRemediationRequest,
    ) -> Result<api::Plan> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let action_id: ActionId = req.action_id.trim().parse().map_err(|_| {
            ApiError::invalid_argument(
                "action_id",
                format!("{:?} is not an action id (a UUID)", req.action_id),
            )
        })?;
        let mut bad = Violations::new();
        bad.text("verification_note", &req.verification_note, Text::FREE);
        bad.finish()?;
        let command = PlanCommand::Verify { action_id, note: req.verification_note.clone() };
        self.execute_plan(
            principal,
            case_id,
            &request_id,
            req.expected_version,
            "RemediationVerified",
            command,
        )
        .await
    }

    /// Open actions past due, across cases, oldest due date first.
    #[instrument(skip_all)]
    pub async fn list_overdue(&self, req: api::ListOverdueRequest) -> Result<api::ListOverdueResponse> {
        let mut bad = Vec::new();
        for (field, value) in [("owner_team", &req.owner_team), ("product", &req.product)] {
            let rule = fields::text(&format!("ListOverdueRequest.{field}"));
            if let Some(problem) = rule.problem(value) {
                bad.push(psirt_kit::FieldViolation::new(field, format!("{field} {problem}")));
            }
        }
        if !bad.is_empty() {
            return Err(ApiError::InvalidArgument(bad).into());
        }
        let limit = self.page_size(req.page_size)?;
        let after = if req.page_token.is_empty() {
            None
        } else {
            let parts = decode_token(&req.page_token, "overdue", 3)?;
            let due = parts[0]
                .parse()
                .map_err(|_| ApiError::invalid_argument("page_token", "page token is not valid"))?;
            Some((due, parts[1].clone(), parts[2].clone()))
        };
        // Actions of cases out of the caller's product scopes are left out:
        // pages are read until this one is full (or MAX_SCOPED_READS were
        // looked at); the next page starts after the last action looked at,
        // so only actions out of scope are skipped.
        let scopes = scope::current();
        let mut cache = std::collections::HashMap::new();
        let mut after = after;
        let mut kept = Vec::new();
        let mut looked_at = None;
        let mut more;
        let mut reads = 0;
        'read: loop {
            reads += 1;
            let mut rows = readmodel::overdue(
                &self.inner.pool,
                now_ms(),
                req.owner_team.trim(),
                req.product.trim(),
                after.clone(),
                limit + 1,
            )
            .await?;
            let rows_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            for row in rows {
                if kept.len() == limit as usize {
                    more = true;
                    break 'read;
                }
                looked_at = Some(row.clone());
                if self.projected_in_scope(&scopes, &row.0, &mut cache).await? {
                    kept.push(row);
                }
            }
            more = rows_more;
            if !rows_more || kept.len() == limit as usize || reads >= MAX_SCOPED_READS {
                break;
            }
            after = looked_at.clone().map(|(case_id, action_id, due)| (due, case_id, action_id));
        }
        let mut rows = &kept[..];
        let mut cut = false;
        let mut actions = Vec::with_capacity(rows.len());
        // Bounded in bytes too: the page ends before the first action that does not fit.
        let mut page = PageBytes::current();
        for (index, (case_id, action_id, _)) in rows.iter().enumerate() {
            let Some(mut plan) = readmodel::plan(&self.inner.pool, case_id).await? else { continue };
            view::refresh_overdue(&mut plan, now_ms());
            if let Some(action) = plan.actions.iter().find(|a| &a.action_id == action_id) {
                let overdue = api::OverdueAction {
                    case_id: plan.case_id.clone(),
                    case_key: plan.case_key.clone(),
                    action: Some(action.clone()),
                    severity: plan.severity,
                };
                if !page.admit(&overdue) {
                    cut = true;
                    rows = &rows[..index];
                    break;
                }
                actions.push(overdue);
            }
        }
        let next_page_token = match (rows.last(), looked_at) {
            (Some((c, a, due)), _) if cut => {
                encode_token("overdue", &[due.to_string(), c.clone(), a.clone()])
            }
            (_, Some((c, a, due))) if more => encode_token("overdue", &[due.to_string(), c, a]),
            _ => String::new(),
        };
        Ok(api::ListOverdueResponse { actions, next_page_token })
    }

    /// One scheduler pass: every open action past its due date gets one
    /// `SlaBreached` (clock REMEDIATION) on the plan's stream. The event id
    /// derives from the action and the deadline, so two replicas, a crash
    /// or the next pass never record the same deadline twice.
    pub async fn record_breaches(&self) -> Result<usize> {
        let at = now();
        let cases = readmodel::cases_with_due_actions(&self.inner.pool, now_ms(), 1000).await?;
        let mut recorded = 0;
        for case in cases {
            let Ok(case_id) = case.parse::<CaseId>() else { continue };
            let plan_id = PlanId::for_case(case_id);
            let loaded = self.inner.plans.get(plan_id).await?;
            let Some(details) = loaded.state.details() else { continue };
            let decided: Vec<PlanEvent> = loaded
                .state
                .overdue_actions(at)
                .into_iter()
                .map(|overdue| PlanEvent::SlaBreached {
                    case_id,
                    action_id: overdue.action_id,
                    product: overdue.product.clone(),
                    deadline: overdue.due_at,
                    breached_at: at,
                    severity: details.severity,
                    sla_policy: details.sla_policy.clone(),
                })
                .collect();
            if decided.is_empty() {
                continue;
            }
            // One id per action and deadline: two replicas, a crash or the
            // next pass never record the same deadline twice.
            let event_id = |event: &PlanEvent| -> uuid::Uuid {
                let key = match event {
                    PlanEvent::SlaBreached { action_id, deadline, .. } => {
                        format!("breach\u{1f}{action_id}\u{1f}{}", deadline.unix_timestamp())
                    }
                    other => psirt_domain::DomainEvent::event_type(other).to_owned(),
                };
                EventId::derive(plan_id.into(), &key).into()
            };
            let metadata = Metadata {
                causation_id: None,
                correlation_id: None,
                actor: Some(reactions::ACTOR.to_owned()),
                actor_scopes: None,
            };
            let request = Request::new(plan_id, metadata);
            match self.inner.plans.append::<RemediationError>(loaded, decided, &request, &event_id).await {
                Ok(executed) => {
                    for _ in &executed.appended {
                        recorded += 1;
                        psirt_kit::telemetry::record_sla_breach("remediation");
                    }
                }
                // Another replica or a command got there first: the next pass sees it.
                Err(CommandError::Conflict { .. }) => {}
                Err(e) => return Err(from_command("remediation plan", e)),
            }
        }
        Ok(recorded)
    }

    // -----------------------------------------------------------------------
    // Advisories
    // -----------------------------------------------------------------------

    async fn load_advisory(&self, id: AdvisoryId) -> Result<(Advisory, Vec<RecordedEvent>)> {
        let loaded = self.inner.advisories.get(id).await?;
        Ok((loaded.state, loaded.events))
    }

    fn advisory_view(&self, events: &[RecordedEvent], case_key: &str) -> Result<api::Advisory> {
        let mut advisory = view::advisory(events)?;
        advisory.case_key = case_key.to_owned();
        Ok(advisory)
    }

    /// The documents of a would-be publication, rendered and validated
    /// before anything is appended: a document that fails its schema is
    /// an INTERNAL error and nothing is published.
    fn render_publication(
        &self,
        facts: &view::CaseFacts,
        plan: &api::Plan,
        advisory: &api::Advisory,
        formats: &[AdvisoryFormat],
    ) -> Result<Vec<u8>> {
        let mut csaf = Vec::new();
        for format in formats {
            let formats: &[Format] = match format {
                AdvisoryFormat::Csaf => &[Format::Csaf, Format::CsafVex],
                AdvisoryFormat::CveJson => &[Format::CveJson],
                AdvisoryFormat::Osv => &[Format::Osv],
                AdvisoryFormat::OpenVex => &[Format::OpenVex],
            };
            for f in formats {
                let rendered = documents::render(&self.inner.documents, *f, facts, plan, advisory)
                    .map_err(|e| ApiError::internal(format!("the {f:?} document failed validation: {e}")))?;
                if *f == Format::Csaf {
                    csaf = rendered.bytes;
                }
            }
        }
        Ok(csaf)
    }

    /// Loads, decides and appends one advisory command.
    #[allow(clippy::too_many_arguments)]
    async fn execute_advisory(
        &self,
        principal: &Principal,
        case_id: CaseId,
        request_id: &str,
        expected_version: Option<u64>,
        event_types: &[&str],
        facts: &view::CaseFacts,
        decide: impl AsyncFnOnce(&Advisory) -> Result<(AdvisoryCommand, Option<PublishContext>)>,
    ) -> Result<api::Advisory> {
        let advisory_id = AdvisoryId::for_case(case_id);
        let event_id = |t: &str| command_event_id(advisory_id.into(), principal, request_id, t).into();
        let request = Request {
            must_exist: false,
            expected: expected_version,
            idempotency: event_types.iter().map(|t| event_id(t)).collect(),
            ..Request::new(advisory_id, metadata(principal, request_id))
        };
        // The decision reads other aggregates (asynchronously) and renders
        // documents before anything is stored: the repository's parts, not
        // its one-call `execute`, and no retry (the caller retries).
        let repo = &self.inner.advisories;
        let loaded =
            repo.checked_load(&request).await.map_err(|e| from_command::<AdvisoryError>("advisory", e))?;
        if request.done_in(&loaded) {
            return self.advisory_view(&loaded.events, &facts.case_key);
        }
        let (command, publish) = decide(&loaded.state).await?;
        let decided = loaded.state.handle(command, now())?;
        // Render and validate every document of a publication first.
        let mut rendered = Vec::new();
        if let Some(ctx) = &publish {
            let mut preview = loaded.events.clone();
            for event in &decided {
                let id = event_id(psirt_domain::DomainEvent::event_type(event));
                let new = mapping::advisory_event_to_new(event, id, metadata(principal, request_id));
                preview.push(RecordedEvent::from_new(&new, u64::MAX));
                let view = self.advisory_view(&preview, &facts.case_key)?;
                let formats: Vec<AdvisoryFormat> = match event {
                    psirt_domain::AdvisoryEvent::AdvisoryPublished { formats, .. }
                    | psirt_domain::AdvisoryEvent::AdvisoryRevised { formats, .. } => formats.clone(),
                    psirt_domain::AdvisoryEvent::AdvisoryDrafted { .. } => Vec::new(),
                };
                rendered.push((self.render_publication(facts, &ctx.plan, &view, &formats)?, view));
            }
        }
        let executed = repo
            .append::<RemediationError>(loaded, decided, &request, &by_type(&event_id))
            .await
            .map_err(|e| from_command("advisory", e))?;
        for (bytes, preview) in rendered {
            if bytes.is_empty() {
                continue;
            }
            // The projection writes the directory too (and `sync` at
            // start): a failure here is repaired, not lost.
            if let Err(e) = documents::write_to_directory(&self.inner.documents, &preview, &bytes) {
                warn!(error = %e, "writing the CSAF provider directory failed; the projection writes it again");
            }
        }
        self.advisory_view(&executed.loaded.events, &facts.case_key)
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn draft_advisory(
        &self,
        principal: &Principal,
        req: api::DraftAdvisoryRequest,
    ) -> Result<api::Advisory> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let mut bad = Violations::new();
        let content = bad.require("content", req.content.as_ref(), "the advisory text is required");
        bad.max_chars("tracking_id", &req.tracking_id, psirt_domain::advisory::MAX_TRACKING_ID_CHARS);
        let content = bad.finish_with(content)?;
        let content = mapping::content_from_proto(content);
        let requested = req.tracking_id.trim().to_owned();
        let facts = self.case_facts(case_id).await?;
        check_facts_scope(&principal.scopes, &facts, case_id, "case")?;
        let key = facts.case_key.clone();
        self.execute_advisory(
            principal,
            case_id,
            &request_id,
            req.expected_version,
            &["AdvisoryDrafted"],
            &facts,
            async |a| {
                let tracking_id = if !requested.is_empty() {
                    requested.clone()
                } else if let Some(d) = a.details() {
                    d.tracking_id.clone()
                } else {
                    format!("SA-{key}")
                };
                Ok((AdvisoryCommand::Draft { case_id, tracking_id, content: content.clone() }, None))
            },
        )
        .await
    }

    /// What the case's events say, read once per command; an unknown case
    /// is NOT_FOUND.
    async fn case_facts(&self, case_id: CaseId) -> Result<view::CaseFacts> {
        let events = self.case_events(case_id).await?;
        if events.is_empty() {
            return Err(ApiError::not_found("case", case_id.to_string()).into());
        }
        Ok(view::case_facts(&events)?)
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn publish_advisory(
        &self,
        principal: &Principal,
        req: api::PublishAdvisoryRequest,
    ) -> Result<api::Advisory> {
        let case_id = parse_case_id(&req.case_id)?;
        let request_id = check_request_id(&req.request_id)?;
        let mut bad = Violations::new();
        bad.text("embargo_override_reason", &req.embargo_override_reason, fields::REASON);
        bad.text("change_summary", &req.change_summary, fields::REASON);
        bad.finish()?;
        let max_formats = fields::MAX_PUBLISH_FORMATS;
        if req.formats.len() > max_formats {
            return Err(
                ApiError::invalid_argument("formats", format!("at most {max_formats} formats")).into()
            );
        }
        let mut formats = Vec::new();
        for (i, f) in req.formats.iter().enumerate() {
            match mapping::format_from_proto(*f) {
                Some(f) if !formats.contains(&f) => formats.push(f),
                Some(_) => {}
                None => {
                    return Err(ApiError::invalid_argument(
                        format!("formats[{i}]"),
                        "unknown advisory format",
                    )
                    .into());
                }
            }
        }
        let cve_possible = !self.inner.documents.cna_org_id.is_empty();
        let facts = self.case_facts(case_id).await?;
        check_facts_scope(&principal.scopes, &facts, case_id, "case")?;
        let has_cve = !facts.cve_ids.is_empty();
        if formats.is_empty() {
            // Every format the case can fill: OSV publishes under the CVE id,
            // a CVE record also needs our CNA.
            formats = vec![AdvisoryFormat::Csaf];
            if has_cve && cve_possible {
                formats.push(AdvisoryFormat::CveJson);
            }
            if has_cve {
                formats.push(AdvisoryFormat::Osv);
            }
            formats.push(AdvisoryFormat::OpenVex);
        } else if formats.contains(&AdvisoryFormat::CveJson) && (!cve_possible || !has_cve) {
            return Err(ApiError::failed_precondition(
                "a CVE record needs a CVE id on the case and advisory.cna_org_id / cna_short_name in the config",
                None::<String>,
            )
            .into());
        } else if formats.contains(&AdvisoryFormat::Osv) && !has_cve {
            return Err(ApiError::failed_precondition(
                "an OSV entry is published under the case's CVE id: assign a CVE first",
                None::<String>,
            )
            .into());
        }
        // One read of the plan's stream: the aggregate for the decision, the
        // view for the documents.
        let loaded = self.inner.plans.get(PlanId::for_case(case_id)).await?;
        if !loaded.state.exists() {
            return Err(PlanError::NotFound.into());
        }
        let unresolved = loaded.state.unresolved_products();
        let plan_view = view::plan(&loaded.events)?;
        let embargo_until = facts.embargo_until.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        let override_reason = req.embargo_override_reason.trim().to_owned();
        let change_summary = req.change_summary.trim().to_owned();
        let actor_is_admin = principal.has_role(Role::Admin);
        let ctx = PublishContext { plan: plan_view };
        self.execute_advisory(
            principal,
            case_id,
            &request_id,
            req.expected_version,
            &["AdvisoryPublished", "AdvisoryRevised"],
            &facts,
            async |_| {
                Ok((
                    AdvisoryCommand::Publish {
                        formats: formats.clone(),
                        embargo_until,
                        override_reason: (!override_reason.is_empty()).then(|| override_reason.clone()),
                        actor_is_admin,
                        unresolved_products: unresolved.clone(),
                        change_summary: (!change_summary.is_empty()).then(|| change_summary.clone()),
                    },
                    Some(ctx),
                ))
            },
        )
        .await
    }

    /// A document in one format: the frozen bytes of the latest
    /// publication, or for a draft a preview rendered now.
    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn export_advisory(
        &self,
        req: api::ExportAdvisoryRequest,
    ) -> Result<api::ExportAdvisoryResponse> {
        let case_id = parse_case_id(&req.case_id)?;
        let Some(format) = Format::from_proto(req.format) else {
            return Err(ApiError::invalid_argument("format", "format is required").into());
        };
        let (_, events) = self.load_advisory(AdvisoryId::for_case(case_id)).await?;
        if events.is_empty() {
            return Err(ApiError::not_found("advisory", case_id.to_string()).into());
        }
        let case_events = self.case_events(case_id).await?;
        let facts = view::case_facts(&case_events)?;
        // Out of the caller's scopes: as if there were no advisory.
        check_facts_scope(&scope::current(), &facts, case_id, "advisory")?;
        let advisory = self.advisory_view(&events, &facts.case_key)?;
        let file_name = format!("{}{}", documents::file_stem(&advisory.tracking_id), format.suffix());
        if !advisory.published_version.is_empty() {
            // The projection freezes a publication's documents; wait briefly
            // for it to catch up with a publication just made.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(bytes) = readmodel::published_document(
                    &self.inner.pool,
                    &advisory.case_id,
                    format,
                    &advisory.published_version,
                )
                .await?
                {
                    return Ok(api::ExportAdvisoryResponse {
                        document: bytes,
                        media_type: "application/json".to_owned(),
                        file_name,
                    });
                }
                let projected = readmodel::advisory(&self.inner.pool, &advisory.case_id).await?;
                if projected.is_some_and(|p| p.version >= advisory.version) {
                    // Projected, but this format could not be rendered: say why.
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ApiError::Unavailable(
                        "the publication is not projected yet; retry in a moment".to_owned(),
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let plan_events = self.inner.store.load(&mapping::plan_subject(PlanId::for_case(case_id))).await?;
        let plan = view::plan(&plan_events)?;
        let rendered = documents::render(&self.inner.documents, format, &facts, &plan, &advisory).map_err(
            |e| match e {
                psirt_advisory::DocumentError::MissingCveId | psirt_advisory::DocumentError::MissingCna => {
                    ApiError::failed_precondition(
                        format!(
                            "{e}: assign a CVE to the case and configure advisory.cna_org_id / cna_short_name"
                        ),
                        None::<String>,
                    )
                }
                psirt_advisory::DocumentError::InvalidRecord { .. } => {
                    ApiError::failed_precondition(e.to_string(), None::<String>)
                }
                other => ApiError::internal(other.to_string()),
            },
        )?;
        Ok(api::ExportAdvisoryResponse {
            document: rendered.bytes,
            media_type: rendered.media_type.to_owned(),
            file_name: rendered.file_name,
        })
    }

    #[instrument(skip_all)]
    pub async fn list_advisories(
        &self,
        req: api::ListAdvisoriesRequest,
    ) -> Result<api::ListAdvisoriesResponse> {
        let limit = self.page_size(req.page_size)?;
        let after = if req.page_token.is_empty() {
            None
        } else {
            let parts = decode_token(&req.page_token, "advisories", 2)?;
            let updated = parts[0]
                .parse()
                .map_err(|_| ApiError::invalid_argument("page_token", "page token is not valid"))?;
            Some((updated, parts[1].clone()))
        };
        // Advisories of cases out of the caller's product scopes are left
        // out: pages are read until this one is full (or MAX_SCOPED_READS
        // were looked at); the next page starts after the last advisory
        // looked at, so only advisories out of scope are skipped.
        let scopes = scope::current();
        let position = |a: &api::Advisory| (view::millis(a.updated_at.as_ref()), a.case_id.clone());
        let mut after = after;
        let mut advisories = Vec::new();
        let mut looked_at = None;
        let mut more;
        let mut reads = 0;
        'read: loop {
            reads += 1;
            let mut rows =
                readmodel::advisories(&self.inner.pool, req.state, after.clone(), limit + 1).await?;
            let rows_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            for mut a in rows {
                if advisories.len() == limit as usize {
                    more = true;
                    break 'read;
                }
                looked_at = Some(position(&a));
                let facts = readmodel::facts(&self.inner.pool, &a.case_id).await?;
                if !scopes.permits(&facts.as_ref().map(products).unwrap_or_default()) {
                    continue;
                }
                if let Some(facts) = facts {
                    a.case_key = facts.case_key;
                }
                advisories.push(a);
            }
            more = rows_more;
            if !rows_more || advisories.len() == limit as usize || reads >= MAX_SCOPED_READS {
                break;
            }
            after.clone_from(&looked_at);
        }
        // Bounded in bytes too: the next page starts after the last advisory kept.
        let cut = PageBytes::current().fit(&mut advisories);
        let next_page_token = match (advisories.last(), looked_at) {
            (Some(a), _) if cut => {
                let (updated, case_id) = position(a);
                encode_token("advisories", &[updated.to_string(), case_id])
            }
            (_, Some((updated, case_id))) if more => {
                encode_token("advisories", &[updated.to_string(), case_id])
            }
            _ => String::new(),
        };
        Ok(api::ListAdvisoriesResponse { advisories, next_page_token })
    }
}

/// What a publication needs beyond the advisory: the plan it reports on.
struct PublishContext {
    plan: api::Plan,
}

fn now_ms() -> i64 {
    i64::try_from(now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
