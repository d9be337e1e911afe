//! Triage's application core, one room per concern:
//!
//! - this module: the error type, settings, request plumbing and the one
//!   command path (`execute`, on the shared `Repository`);
//! - [`commands`]: the case decisions (`StartTriage` … `ReopenCase`);
//! - [`queries`]: `GetCase`, `ListCases`, the timeline, filters and page tokens;
//! - [`sla`]: the scheduler pass that records missed deadlines;
//! - [`embargo`]: an agreed local disclosure time resolved in its IANA zone.
//!
//! Every event id is derived from the caller's request id and the event's
//! type, so a retried request finds its own events and answers as the first
//! attempt did.

mod commands;
pub mod embargo;
mod queries;
mod sla;

pub use embargo::{ResolvedEmbargo, resolve_embargo};

use std::sync::{Arc, LazyLock};

use psirt_domain::validation::{Text, fields};
use psirt_domain::{
    Case, CaseCommand, CaseError, CaseId, CaseKey, CaseStatus, EmbargoTerms, SeverityEvidence, SlaPolicy,
    SsvcInputs, ssvc,
};
use psirt_eventstore::repository::by_type;
use psirt_eventstore::{EventStore, Metadata, ReadError, RecordedEvent, Repository, Request, StoreError};
use psirt_kit::request::Violations;
use psirt_kit::{ApiError, FieldViolation, Principal, Refusal};
use psirt_proto::{common, triage};
use sqlx::AnyPool;
use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::{debug, instrument};

use crate::mapping;
use crate::readmodel::{self, SortField};
use crate::{scope, view};

/// The current affected product names of a case.
fn case_products(case: &psirt_domain::CaseDetails) -> Vec<&str> {
    case.affected_products.iter().map(|p| p.product.as_str()).collect()
}

/// Everything a handler can fail with; one exhaustive mapping to a status.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error(transparent)]
    Domain(#[from] CaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read model: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event does not decode: {0}")]
    Corrupt(#[from] psirt_eventstore::DecodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A domain error as the API reports it; `rename` maps the domain's field
/// paths to the request's.
fn domain_error(err: CaseError, rename: &(dyn Fn(&str) -> String + Sync)) -> ApiError {
    match err {
        CaseError::AlreadyExists { id } => ApiError::AlreadyExists { resource: "case", id: id.to_string() },
        CaseError::NotFound => ApiError::not_found("case", ""),
        CaseError::InvalidTransition(t) => ApiError::failed_precondition(
            format!(
                "case is {}: it cannot go to {}",
                mapping::status_name(t.from),
                mapping::status_name(t.to)
            ),
            Some(mapping::status_name(t.from)),
        ),
        CaseError::NotAllowed { id, status, command } => ApiError::failed_precondition(
            format!("case {id} is {}: {command} is not allowed", mapping::status_name(status)),
            Some(mapping::status_name(status)),
        ),
        CaseError::SeverityNotAssessed { id } => ApiError::failed_precondition(
            format!("case {id} is TRIAGE without a severity assessment: assess it before accepting"),
            Some(mapping::status_name(CaseStatus::Triage)),
        ),
        CaseError::DuplicateOfSelf => ApiError::InvalidArgument(vec![FieldViolation::new(
            rename("other"),
            "a case cannot duplicate itself",
        )]),
        CaseError::Closed { id } => ApiError::failed_precondition(
            format!("case {id} is CLOSED: reopen it first"),
            Some(mapping::status_name(CaseStatus::Closed)),
        ),
        CaseError::NotClosed { id, status } => ApiError::failed_precondition(
            format!("case {id} is {}, not CLOSED, so it cannot be reopened", mapping::status_name(status)),
            Some(mapping::status_name(status)),
        ),
        CaseError::Validation(v) => {
            // Escalations only go up: a lower level is refused by the
            // case's state, not by the request's shape.
            if let [only] = v.as_slice()
                && only.field == "level"
            {
                return ApiError::failed_precondition(only.description.clone(), None::<String>);
            }
            ApiError::InvalidArgument(
                v.into_iter().map(|v| FieldViolation::new(rename(&v.field), v.description)).collect(),
            )
        }
    }
}

impl From<TriageError> for ApiError {
    fn from(err: TriageError) -> Self {
        match err {
            TriageError::Domain(e) => domain_error(e, &|f| f.to_owned()),
            TriageError::Store(e) => e.into(),
            TriageError::Database(e) => ApiError::Unavailable(format!("read model: {e}")),
            TriageError::Corrupt(e) => ApiError::internal(e),
            TriageError::Api(e) => e,
        }
    }
}

impl From<TriageError> for tonic::Status {
    fn from(err: TriageError) -> Self {
        ApiError::from(err).into()
    }
}

type Result<T> = std::result::Result<T, TriageError>;

/// Settings of the triage handlers (`[triage]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriageSettings {
    /// Page size of `ListCases` when the request gives none.
    pub default_page_size: u32,
    /// Largest page of `ListCases` and `GetCaseTimeline`.
    pub max_page_size: u32,
    /// Time to acknowledge and to triage per severity rating.
    pub sla: SlaPolicy,
    /// How often the SLA scheduler looks for missed deadlines, in ms.
    pub sla_check_interval_ms: u64,
}

impl Default for TriageSettings {
    fn default() -> Self {
        Self {
            default_page_size: 50,
            max_page_size: 1000,
            sla: SlaPolicy::default(),
            sla_check_interval_ms: 30_000,
        }
    }
}

/// A case loaded from its events.
/// A case as loaded from its events.
type Loaded = psirt_eventstore::Loaded<Case>;

impl From<ReadError> for TriageError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Store(e) => e.into(),
            ReadError::Decode(e) => e.into(),
        }
    }
}

/// The triage application core, shared by the gRPC handlers.
#[derive(Clone)]
pub struct Triage {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    cases: Repository<mapping::CaseCodec>,
    pool: AnyPool,
    settings: TriageSettings,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_case_id(field: &str, value: &str) -> Result<CaseId> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid_argument(field, format!("{value:?} is not a case id (a UUID)")).into())
}

fn same(field: &str) -> String {
    field.to_owned()
}

/// What one command is: its name in event ids, the type of the event it
/// exists for, and how the domain's field names read in its request.
struct Command<'a> {
    name: &'static str,
    event_type: &'static str,
    case_id: CaseId,
    request_id: &'a str,
    expected_version: Option<u64>,
    rename: &'a (dyn Fn(&str) -> String + Sync),
}

impl Triage {
    pub fn new(store: EventStore, pool: AnyPool, settings: TriageSettings) -> Self {
        let cases = Repository::new(store.clone(), mapping::CaseCodec);
        Self { inner: Arc::new(Inner { store, cases, pool, settings }) }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub fn store(&self) -> &EventStore {
        &self.inner.store
    }

    async fn load(&self, id: CaseId) -> Result<Loaded> {
        Ok(self.inner.cases.get(id).await?)
    }

    /// The view of a case after `loaded`: the read model's row (for what
    /// other aggregates contributed) with the case events it has not seen yet.
    async fn view_of(&self, id: CaseId, events: &[RecordedEvent]) -> Result<triage::Case> {
        let mut case =
            readmodel::get(&self.inner.pool, &id.to_string()).await.ok().flatten().unwrap_or_default();
        self.fold_into(&mut case, events)?;
        view::refresh(&mut case, now());
        Ok(case)
    }

    /// Folds the case events the view has not seen (above its version) into
    /// it and recomputes its SLA schedule.
    fn fold_into(&self, case: &mut triage::Case, events: &[RecordedEvent]) -> Result<()> {
        let seen = case.version;
        for e in events.iter().filter(|e| e.sequence > seen) {
            view::apply_case_event(case, e)?;
        }
        view::schedule(case, &self.inner.settings.sla);
        Ok(())
    }

    /// Carries out one command on the shared command path (load,
    /// idempotency, expected version, decide, append, one retry). Returns
    /// the case view after the command.
    async fn execute(
        &self,
        principal: &Principal,
        command: Command<'_>,
        decide: impl Fn(&Loaded) -> Result<CaseCommand>,
    ) -> Result<triage::Case> {
        let Command { name, event_type, case_id, request_id, expected_version, rename } = command;
        let key =
            if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id.to_owned() };
        let event_id = |t: &str| mapping::command_event_id(case_id, name, &principal.subject, &key, t).into();
        let metadata = Metadata {
            causation_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            correlation_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            actor: Some(principal.subject.clone()),
            actor_scopes: Some(principal.scopes.to_string()),
        };
        let request = Request {
            expected: expected_version,
            idempotency: vec![event_id(event_type)],
            ..Request::new(case_id, metadata)
        };
        // A case out of the caller's product scopes is missing to it: the
        // check comes first in `decide`, before any state-dependent answer.
        let out_of_scope = |loaded: &Loaded| {
            loaded.state.details().is_some_and(|case| !principal.scopes.permits(&case_products(case)))
        };
        let not_found = || TriageError::from(ApiError::not_found("case", case_id.to_string()));
        let result = self
            .inner
            .cases
            .execute(&request, &by_type(&event_id), |loaded| {
                if out_of_scope(loaded) {
                    return Err(not_found());
                }
                decide(loaded).map(Some)
            })
            .await
            .map_err(|e| match psirt_kit::refusal("case", e) {
                Refusal::Api(e) => e.into(),
                Refusal::Domain(e) => domain_error(e, rename).into(),
                Refusal::Rejected(e) => e,
            });
        let executed = match result {
            // A retry of a request carried out earlier is answered without
            // deciding: its case must still be in scope.
            Ok(executed) if executed.already_done && out_of_scope(&executed.loaded) => {
                return Err(not_found());
            }
            Ok(executed) => executed,
            // Refused before `decide` (a wrong expected version, a
            // conflict): no answer about a case out of scope.
            Err(e) => {
                let missing = matches!(&e, TriageError::Api(ApiError::NotFound { .. }));
                if !missing
                    && !principal.scopes.is_all()
                    && let Ok(loaded) = self.load(case_id).await
                    && out_of_scope(&loaded)
                {
                    return Err(not_found());
                }
                return Err(e);
            }
        };
        self.view_of(case_id, &executed.loaded.events).await
    }

    fn prepare<'a>(&self, case_id: &str, request_id: &'a str) -> Result<(CaseId, &'a str)> {
        let id = parse_case_id("case_id", case_id)?;
        let request_id = request_id.trim();
        psirt_kit::request::request_id(request_id)?;
        Ok((id, request_id))
    }
}
