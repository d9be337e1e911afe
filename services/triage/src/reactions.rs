//! Triage's reactions to intake: `ReportReceived` opens the case intake
//! promised, `DuplicateSuspected` links the two reports' cases. Run as a
//! projection (`triage-reactions`) so reactions follow stream order, take
//! the lease, and commit case-key numbers with their checkpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use psirt_domain::{Case, CaseCommand, CaseEvent, CaseId, CaseKey, DuplicateHint, EventId, ReportId};
use psirt_eventstore::{CommandError, EventStore, Metadata, RecordedEvent, Repository, Request, StoreError};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::events;
use sqlx::AnyConnection;
use time::OffsetDateTime;
use tracing::{Instrument as _, info, warn};

use crate::mapping;
use crate::plan_state;

pub const PROJECTION_NAME: &str = "triage-reactions";

/// The actor of events the reactions append.
pub const ACTOR: &str = "psirt-triage";

pub struct Reactions {
    pub store: EventStore,
    cases: Repository<mapping::CaseCodec>,
    /// Events after this sequence are new to every runner (see
    /// [`Projection::session_started`]): no case was opened for them yet,
    /// so they need no existence check. `u64::MAX` before a session.
    fresh_after: AtomicU64,
    /// The key counters as this session's batches left them (per year):
    /// read once per session rather than once per batch.
    counters: Mutex<HashMap<i32, u32>>,
}

impl Reactions {
    pub fn new(store: EventStore) -> Self {
        let cases = Repository::new(store.clone(), mapping::CaseCodec);
        Self { store, cases, fresh_after: AtomicU64::new(u64::MAX), counters: Mutex::default() }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, HashMap<i32, u32>> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// NATS trouble must roll the batch back and retry it, like a database
/// failure; the runner knows only those two kinds of error.
fn retry(e: StoreError) -> ApplyError {
    ApplyError::Database(sqlx::Error::Protocol(format!("event store: {e}")))
}

fn metadata(cause: &RecordedEvent) -> Metadata {
    Metadata {
        causation_id: cause.id.map(|id| id.to_string()),
        correlation_id: cause.metadata.correlation_id.clone().or_else(|| cause.id.map(|id| id.to_string())),
        actor: Some(ACTOR.to_owned()),
        actor_scopes: None,
    }
}

impl Reactions {
    /// The case as stored, for the key it holds.
    async fn stored_case(&self, id: CaseId) -> Result<Case, sqlx::Error> {
        match self.cases.get(id).await {
            Ok(loaded) => Ok(loaded.state),
            Err(psirt_eventstore::ReadError::Store(e)) => Err(sql(e)),
            Err(psirt_eventstore::ReadError::Decode(e)) => Err(sqlx::Error::Decode(Box::new(e))),
        }
    }

    /// Carries out a reaction's command on the case through the shared
    /// command path. A command the case refuses (no such case, a move its
    /// status does not allow) is logged and skipped: it must not stall the
    /// reactions behind it.
    async fn react(
        &self,
        cause: &RecordedEvent,
        case_id: CaseId,
        command: CaseCommand,
        event_id: &(dyn Fn(&CaseEvent) -> uuid::Uuid + Sync),
    ) -> Result<(), ApplyError> {
        let request = Request { must_exist: false, ..Request::new(case_id, metadata(cause)) };
        let decide =
            |_: &psirt_eventstore::Loaded<Case>| Ok::<_, std::convert::Infallible>(Some(command.clone()));
        // Boxed: the command path's future holds the case twice (before and after).
        match Box::pin(self.cases.execute(&request, event_id, decide)).await {
            Ok(_) => Ok(()),
            Err(CommandError::Domain(err)) => {
                tracing::debug!(case_id = %case_id, error = %err, "the case refused a reaction; skipped");
                Ok(())
            }
            Err(CommandError::Store(err)) => Err(retry(err)),
            Err(CommandError::Decode(err)) => Err(err.into()),
            Err(err) => Err(ApplyError::Database(sqlx::Error::Protocol(err.to_string()))),
        }
    }

    async fn link(&self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let e: events::DuplicateSuspected = event.decode()?;
        let bad = |field: &str, value: &str| psirt_eventstore::DecodeError::Payload {
            event_type: event.event_type.clone(),
            sequence: event.sequence,
            message: format!("{field} {value:?} is not an id"),
        };
        let report: ReportId = e.report_id.parse().map_err(|_| bad("report_id", &e.report_id))?;
        let other: ReportId =
            e.other_report_id.parse().map_err(|_| bad("other_report_id", &e.other_report_id))?;
        let case_id = CaseId::for_report(report);
        let other_case = CaseId::for_report(other);
        let cause = event.id.map_or_else(|| format!("seq-{}", event.sequence), |id| id.to_string());
        let event_id = EventId::derive(case_id.into(), &format!("linked-from\u{1f}{cause}"));
        let reason = if e.reason.trim().is_empty() {
            "suspected duplicate (intake)".to_owned()
        } else {
            e.reason.clone()
        };
        let hint = DuplicateHint {
            report_id: Some(report),
            other_report_id: Some(other),
            match_kind: mapping::match_from_proto(e.match_kind),
            similarity: e.similarity,
            suspected_at: e.suspected_at.as_ref().and_then(mapping::from_timestamp),
        };
        let command = CaseCommand::LinkSuspectedDuplicate { other: other_case, reason, hint };
        let id: uuid::Uuid = event_id.into();
        self.react(event, case_id, command, &|_| id).await
    }
}

impl Reactions {
    /// Moves the case along as remediation progresses: the first planned
    /// action starts remediation, a plan with every action done fixes the
    /// case, a published advisory discloses it. A move the case's status does
    /// not allow (a revision of a disclosed case, a plan completed again) is
    /// skipped: the status machine stays the case's own.
    async fn progress(&self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let t = event.event_type.as_str();
        let bad = |message: String| psirt_eventstore::DecodeError::Payload {
            event_type: event.event_type.clone(),
            sequence: event.sequence,
            message,
        };
        let (case_id, command) = if psirt_eventstore::is_type::<events::RemediationActionPlanned>(t) {
            let e: events::RemediationActionPlanned = event.decode()?;
            (e.case_id, CaseCommand::StartRemediation { plan_id: e.plan_id })
        } else if psirt_eventstore::is_type::<events::ReleaseRecorded>(t)
            || psirt_eventstore::is_type::<events::RemediationVerified>(t)
            || psirt_eventstore::is_type::<events::ProductStatusSet>(t)
        {
            // Whether the plan is complete, from the plan's stream up to this event.
            let stream = self.store.load(&event.subject).await.map_err(retry)?;
            let mut plan = plan_state::PlanState::default();
            for e in stream.iter().filter(|e| e.sequence <= event.sequence) {
                plan.apply(e)?;
            }
            if !plan.is_complete() {
                return Ok(());
            }
            let command = CaseCommand::MarkFixed {
                plan_id: plan.plan_id.clone(),
                fixed_versions: plan.releases.clone(),
            };
            (plan.case_id.clone(), command)
        } else if psirt_eventstore::is_type::<events::AdvisoryPublished>(t) {
            let e: events::AdvisoryPublished = event.decode()?;
            (e.case_id, CaseCommand::Disclose { advisory_id: e.advisory_id, tracking_id: e.tracking_id })
        } else {
            return Ok(());
        };
        let case_id: CaseId =
            case_id.parse().map_err(|_| bad(format!("case_id {case_id:?} is not an id")))?;
        let cause = event.id.map_or_else(|| format!("seq-{}", event.sequence), |id| id.to_string());
        let event_id = |moved: &CaseEvent| -> uuid::Uuid {
            let event_type = psirt_domain::DomainEvent::event_type(moved);
            EventId::derive(case_id.into(), &format!("{event_type}-from\u{1f}{cause}")).into()
        };
        self.react(event, case_id, command, &event_id).await
    }
}

/// A case open decided and sent, waiting for JetStream's acknowledgement.
struct PendingOpen {
    case_id: CaseId,
    key: CaseKey,
    report_id: ReportId,
    append: psirt_eventstore::PendingAppend,
}

impl Reactions {
    /// Decides the `CaseOpened` for a `ReportReceived`, taking the next
    /// number of its year from `counters` (in memory: the batch writes the
    /// counters once, with its checkpoint).
    async fn prepare_open(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
        counters: &mut HashMap<i32, u32>,
    ) -> Result<Option<(CaseId, CaseKey, ReportId, psirt_eventstore::NewEvent)>, ApplyError> {
        let e: events::ReportReceived = event.decode()?;
        let report_id: ReportId =
            e.report_id.parse().map_err(|_| psirt_eventstore::DecodeError::Payload {
                event_type: event.event_type.clone(),
                sequence: event.sequence,
                message: format!("report_id {:?} is not an id", e.report_id),
            })?;
        let case_id = CaseId::for_report(report_id);
        let received_at = e.received_at.as_ref().and_then(mapping::from_timestamp).unwrap_or(event.stored_at);
        let year = received_at.year();
        let last = match counters.get(&year) {
            Some(last) => *last,
            None => current_number(conn, year).await?,
        };
        let number = last + 1;
        let key = CaseKey::new(u16::try_from(year).unwrap_or(9999), number).map_err(|err| {
            psirt_eventstore::DecodeError::Payload {
                event_type: event.event_type.clone(),
                sequence: event.sequence,
                message: format!("no case key for year {year}: {err}"),
            }
        })?;
        let command = CaseCommand::Open {
            case_id,
            key,
            report_id: Some(report_id),
            title: e.title.clone(),
            channel: psirt_codec::report::channel_from_proto(e.channel),
            report_received_at: Some(received_at),
        };
        let opened = match Case::default().handle(command, OffsetDateTime::now_utc()) {
            Ok(opened) => opened,
            Err(err) => {
                warn!(report_id = %report_id, sequence = event.sequence, error = %err, "report cannot open a case");
                counters.insert(year, last);
                return Ok(None);
            }
        };
        let Some(opened) = opened.into_iter().next() else { return Ok(None) };
        counters.insert(year, number);
        let cause = event.id.map_or_else(|| format!("seq-{}", event.sequence), |id| id.to_string());
        let event_id = EventId::derive(case_id.into(), &format!("opened-from\u{1f}{cause}"));
        Ok(Some((case_id, key, report_id, mapping::to_new_event(&opened, event_id, metadata(event), None))))
    }
}

/// The last case number handed out in `year` (0 for none).
async fn current_number(conn: &mut AnyConnection, year: i32) -> Result<u32, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT last_seq FROM triage_case_keys WHERE year = $1")
        .bind(year)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map_or(0, |(seq,)| u32::try_from(seq).unwrap_or(u32::MAX)))
}

async fn store_number(conn: &mut AnyConnection, year: i32, value: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO triage_case_keys (year, last_seq) VALUES ($1, $2)
         ON CONFLICT (year) DO UPDATE SET last_seq = excluded.last_seq",
    )
    .bind(year)
    .bind(i64::from(value))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn sql(e: StoreError) -> sqlx::Error {
    sqlx::Error::Protocol(format!("event store: {e}"))
}

impl Projection for Reactions {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    /// Opens all the batch's cases with their appends in flight together
    /// (one round trip per batch, not per report), then links duplicates in
    /// stream order. A redelivered batch numbers its reports exactly as the
    /// first delivery did (same order, same counter), so its appends are
    /// recognised duplicates carrying the same keys.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        batch: &[RecordedEvent],
    ) -> Result<Vec<(usize, psirt_eventstore::DecodeError)>, sqlx::Error> {
        let mut undecodable = Vec::new();
        // What this session's batches left: a failure ends the session, and
        // the next one starts from the database again.
        let mut counters: HashMap<i32, u32> = self.counters().clone();
        let fresh_after = self.fresh_after.load(Ordering::Acquire);
        let mut pending = Vec::new();
        // Which of the batch's cases exist already (a redelivery, a replay):
        // asked all at once, so those never take a new number.
        let opens: Vec<(usize, &RecordedEvent)> = batch
            .iter()
            .enumerate()
            .filter(|(_, e)| psirt_eventstore::is_type::<events::ReportReceived>(&e.event_type))
            .collect();
        let exists = futures::future::join_all(opens.iter().map(|(_, event)| async move {
            if event.sequence > fresh_after {
                return Ok(false);
            }
            let report: Option<ReportId> =
                event.decode::<events::ReportReceived>().ok().and_then(|e| e.report_id.parse().ok());
            match report {
                Some(report) => self
                    .store
                    .last_event(&mapping::subject(CaseId::for_report(report)))
                    .await
                    .map(|e| e.is_some()),
                None => Ok(false),
            }
        }))
        .await;
        let mut settled_existing: HashMap<i32, u32> = HashMap::new();
        let mut fresh = Vec::new();
        for ((index, event), exists) in opens.iter().zip(exists) {
            if !exists.map_err(sql)? {
                fresh.push((*index, *event));
                continue;
            }
            let report: Option<ReportId> =
                event.decode::<events::ReportReceived>().ok().and_then(|e| e.report_id.parse().ok());
            if let Some(report) = report {
                let case = self.stored_case(CaseId::for_report(report)).await?;
                if let Some(stored) = case.details().map(|d| d.key) {
                    let entry = settled_existing.entry(i32::from(stored.year())).or_insert(0);
                    *entry = (*entry).max(stored.sequence());
                }
            }
        }
        // A counter behind the stream (a restored database) moves past the
        // keys already handed out before new ones are numbered.
        for (year, value) in &settled_existing {
            let current = current_number(conn, *year).await?;
            counters.insert(*year, current.max(*value));
        }
        for (index, event) in fresh {
            // The case opens in the report's trace: the append carries the
            // context of this event's span on.
            let span = psirt_projection::event_span(PROJECTION_NAME, event);
            let prepared = async {
                match self.prepare_open(conn, event, &mut counters).await? {
                    Some((case_id, key, report_id, new)) => {
                        let append = self
                            .store
                            .start_append(new, psirt_eventstore::ExpectedVersion::NoStream)
                            .await
                            .map_err(|e| ApplyError::Database(sql(e)))?;
                        Ok(Some(PendingOpen { case_id, key, report_id, append }))
                    }
                    None => Ok(None),
                }
            }
            .instrument(span)
            .await;
            match prepared {
                Ok(Some(open)) => pending.push(open),
                Ok(None) => {}
                Err(ApplyError::Undecodable(err)) => undecodable.push((index, err)),
                Err(ApplyError::Database(err)) => return Err(err),
            }
        }
        let mut settled = counters.clone();
        for open in pending {
            match open.append.wait().await {
                Ok(appended) if !appended.duplicate => {
                    info!(case_id = %open.case_id, case_key = %open.key, report_id = %open.report_id, "case opened");
                }
                // Opened before: the stored key is the truth; never hand it
                // out again.
                Ok(_) | Err(StoreError::Conflict { .. }) => {
                    let case = self.stored_case(open.case_id).await?;
                    if let Some(stored) = case.details().map(|d| d.key) {
                        let year = i32::from(stored.year());
                        let entry = settled.entry(year).or_insert(0);
                        *entry = (*entry).max(stored.sequence());
                    }
                }
                Err(err) => return Err(sql(err)),
            }
        }
        for (year, value) in &settled {
            store_number(conn, *year, *value).await?;
        }
        self.counters().extend(settled);
        for (index, event) in batch.iter().enumerate() {
            let result = if psirt_eventstore::is_type::<events::DuplicateSuspected>(&event.event_type) {
                self.link(event).instrument(psirt_projection::event_span(PROJECTION_NAME, event)).await
            } else if event.subject.starts_with(plan_state::PLAN_PREFIX)
                || event.subject.starts_with(plan_state::ADVISORY_PREFIX)
            {
                self.progress(event).instrument(psirt_projection::event_span(PROJECTION_NAME, event)).await
            } else {
                Ok(())
            };
            match result {
                Ok(()) => {}
                Err(ApplyError::Undecodable(err)) => undecodable.push((index, err)),
                Err(ApplyError::Database(err)) => return Err(err),
            }
        }
        undecodable.sort_by_key(|(index, _)| *index);
        Ok(undecodable)
    }

    fn session_started(&self, _checkpoint: u64, stream_last: u64) {
        self.counters().clear();
        self.fresh_after.store(stream_last, Ordering::Release);
    }

    /// One event is a batch of one: a single path opens cases.
    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        let undecodable = self.apply_batch(conn, std::slice::from_ref(event)).await?;
        match undecodable.into_iter().next() {
            Some((_, err)) => Err(err.into()),
            None => Ok(()),
        }
    }

    /// Reactions are never replayed: the events they appended are facts,
    /// and the key counter must keep counting.
    async fn reset(&self, _conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}
