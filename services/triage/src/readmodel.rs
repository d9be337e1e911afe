//! The case view read model: one row per case with its `Case` view, the
//! affected products for filtering and the timeline index. Fed by the
//! `triage-cases` projection from the events of every service.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use prost::Message;
use psirt_domain::{CaseKey, SlaPolicy};
use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_projection::sql::{ShapedStatements, params, shaped_chunks};
use psirt_projection::{ApplyError, DeferrableIndex, Pipeline, PreparesBatches, Projection};
use psirt_proto::{events, triage};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::mapping::{self, millis};
use crate::{plan_state, view};

/// Embedded migrations: portable SQL for PostgreSQL and SQLite.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const PROJECTION_NAME: &str = "triage-cases";

/// The projection that keeps `triage_cases`, `triage_case_products` and
/// `triage_case_events`.
pub struct CasesProjection {
    pub policy: SlaPolicy,
    /// What prepared batches changed that the database may not have yet.
    carry: Arc<Mutex<Carry>>,
}

impl CasesProjection {
    pub fn new(policy: SlaPolicy) -> Self {
        Self { policy, carry: Arc::default() }
    }
}

/// What the prepared batches not yet known to be committed changed, each
/// entry with the last sequence of the batch that wrote it. A batch folded
/// while the one before it is still being written reads those rows from
/// here: the database shows them only after that commit.
#[derive(Default)]
struct Carry {
    cases: HashMap<String, (u64, triage::Case)>,
    plans: HashMap<String, (u64, plan_state::PlanState)>,
    early_acks: HashMap<String, (u64, i64)>,
}

impl Carry {
    fn lock(carry: &Mutex<Carry>) -> std::sync::MutexGuard<'_, Carry> {
        carry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decode_view(bytes: &[u8]) -> Result<triage::Case, sqlx::Error> {
    triage::Case::decode(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

async fn load(conn: &mut AnyConnection, case_id: &str) -> Result<Option<triage::Case>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM triage_cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(decode_view(&row.try_get::<Vec<u8>, _>("view")?)?)),
    }
}

fn key_order(key: &str) -> i64 {
    key.parse::<CaseKey>()
        .map(|k| i64::from(k.year()) * 10_000_000_000 + i64::from(k.sequence()))
        .unwrap_or(0)
}

const CASE_UPSERT_HEAD: &str =
    "INSERT INTO triage_cases (case_id, case_key, key_order, status, rating, assignee,
             embargo_until_ms, sla_next_due_ms, opened_at_ms, updated_at_ms, version, last_sequence, view,
             ack_due_ms, ack_soon_ms, ack_met_ms, triage_due_ms, triage_soon_ms, triage_met_ms)";
const CASE_UPSERT_TAIL: &str = "ON CONFLICT (case_id) DO UPDATE SET case_key = excluded.case_key,
             key_order = excluded.key_order, status = excluded.status, rating = excluded.rating,
             assignee = excluded.assignee, embargo_until_ms = excluded.embargo_until_ms,
             sla_next_due_ms = excluded.sla_next_due_ms, opened_at_ms = excluded.opened_at_ms,
             updated_at_ms = excluded.updated_at_ms, version = excluded.version,
             last_sequence = excluded.last_sequence, view = excluded.view,
             ack_due_ms = excluded.ack_due_ms, ack_soon_ms = excluded.ack_soon_ms, ack_met_ms = excluded.ack_met_ms,
             triage_due_ms = excluded.triage_due_ms, triage_soon_ms = excluded.triage_soon_ms,
             triage_met_ms = excluded.triage_met_ms";
const CASE_COLUMNS: usize = 19;

static CASE_UPSERTS: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::insert(CASE_ROWS_PER_STATEMENT, CASE_UPSERT_HEAD, CASE_COLUMNS, CASE_UPSERT_TAIL)
});
/// Case rows per statement: 19 parameters each; see [`shaped_chunks`].
const CASE_ROWS_PER_STATEMENT: usize = 128;

/// One `triage_cases` row, computed from the view.
struct CaseRow {
    case_id: String,
    case_key: String,
    key_order: i64,
    status: i32,
    rating: i32,
    assignee: String,
    embargo_until_ms: Option<i64>,
    sla_next_due_ms: Option<i64>,
    opened_at_ms: i64,
    updated_at_ms: i64,
    version: i64,
    last_sequence: i64,
    view: Vec<u8>,
    ack: (Option<i64>, Option<i64>, Option<i64>),
    triage: (Option<i64>, Option<i64>, Option<i64>),
}

impl CaseRow {
    fn of(view: &mut triage::Case, policy: &SlaPolicy) -> Self {
        view::schedule(view, policy);
        let ms =
            |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(mapping::timestamp_millis).unwrap_or(0);
        Self {
            case_id: view.case_id.clone(),
            case_key: view.case_key.clone(),
            key_order: key_order(&view.case_key),
            status: view.status,
            rating: view.severity.as_ref().map_or(0, |s| s.rating),
            assignee: view.assignee.clone(),
            embargo_until_ms: view::embargo_until_ms(view),
            sla_next_due_ms: view::next_due_ms(view),
            opened_at_ms: ms(&view.opened_at),
            updated_at_ms: ms(&view.updated_at),
            version: to_i64(view.version),
            last_sequence: to_i64(view.last_sequence),
            view: view.encode_to_vec(),
            ack: view::clock_millis(view, events::SlaClock::Acknowledge),
            triage: view::clock_millis(view, events::SlaClock::Triage),
        }
    }
}

/// Rows one batch changes, written once at its end: a case with ten events
/// in a batch is read and stored once, timeline rows go many per statement.
#[derive(Default)]
struct Pending {
    /// Cases read or changed in this batch; `None`: known not to exist.
    cases: HashMap<String, Option<triage::Case>>,
    /// Changed cases, in the order they first changed.
    dirty: Vec<String>,
    /// The same, to look up.
    dirty_set: HashSet<String>,
    /// Earliest acknowledgement per case among the batch's events.
    batch_acks: HashMap<String, i64>,
    products_changed: HashSet<String>,
    /// (case id, sequence, event type, occurred at ms)
    index: Vec<(String, i64, String, i64)>,
    /// Earliest stored acknowledgement per case, preloaded for the cases the
    /// batch opens; a case absent here has none stored.
    acknowledged: Option<HashMap<String, i64>>,
    /// With [`CasesProjection::apply_batch_observed`]: each case as it was
    /// stored before the batch (`None`: not there), recorded when first read.
    before: Option<HashMap<String, Option<triage::Case>>>,
    /// With [`CasesProjection::apply_batch_observed`]: the changed cases as
    /// the flush stored them.
    after: Vec<triage::Case>,
    /// Remediation plan states read or changed in this batch.
    plans: HashMap<String, plan_state::PlanState>,
    /// Changed plan states, in the order they first changed.
    dirty_plans: Vec<String>,
    /// Acknowledgements of reports whose case is not open yet (earliest
    /// per case), kept for the opening to stop the clock.
    early_acks: HashMap<String, i64>,
    /// When preparing a batch ahead of its transaction: rows read from
    /// the carry-over before the database.
    carried: Option<Arc<Mutex<Carry>>>,
}

/// The rows a batch writes, computed from its fold.
struct Writes {
    /// Written by a prepared batch (a rebuild): timeline rows are appended
    /// without a conflict target.
    prepared: bool,
    rows: Vec<CaseRow>,
    /// Cases whose affected products changed: (case id, products).
    products: Vec<(String, Vec<String>)>,
    /// (case id, sequence, event type, occurred at ms)
    index: Vec<(String, i64, String, i64)>,
    /// (case id, plan state as JSON)
    plans: Vec<(String, String)>,
    early_acks: Vec<(String, i64)>,
}

/// A batch [`CasesProjection`] folded ahead of its transaction.
pub struct PreparedCases {
    undecodable: Vec<(usize, DecodeError)>,
    writes: Writes,
}

/// A case the batch changed: as stored before the batch and after it.
#[derive(Debug, Clone)]
pub struct Observed {
    pub before: Option<triage::Case>,
    pub after: triage::Case,
}

/// Ids per `IN (...)` list: far below both databases' parameter limits;
/// shorter lists in powers of two (see [`shaped_chunks`]).
const IDS_PER_STATEMENT: usize = 512;

/// Timeline rows per statement: 4 parameters each; see [`shaped_chunks`].
const INDEX_ROWS_PER_STATEMENT: usize = 1024;

const INDEX_INSERT_HEAD: &str =
    "INSERT INTO triage_case_events (case_id, sequence, event_type, occurred_at_ms)";
static INDEX_INSERTS: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::insert(
        INDEX_ROWS_PER_STATEMENT,
        INDEX_INSERT_HEAD,
        4,
        "ON CONFLICT (case_id, sequence) DO NOTHING",
    )
});
/// The same rows without a conflict target, for prepared batches: a rebuild
/// may have dropped the key index (see [`DEFERRABLE_INDEXES`]), and each
/// event is indexed once per case, so there is no conflict to resolve (a
/// duplicate would fail the batch, or the key index's creation at the end).
static INDEX_APPENDS: LazyLock<ShapedStatements> =
    LazyLock::new(|| ShapedStatements::insert(INDEX_ROWS_PER_STATEMENT, INDEX_INSERT_HEAD, 4, ""));
static VIEWS_BY_ID: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::new(IDS_PER_STATEMENT, |n| {
        format!("SELECT case_id, view FROM triage_cases WHERE case_id IN ({})", params(1, n))
    })
});
static EARLY_ACKS_BY_ID: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::new(IDS_PER_STATEMENT, |n| {
        format!(
            "SELECT case_id, acknowledged_at_ms AS at FROM triage_early_acks WHERE case_id IN ({})",
            params(1, n)
        )
    })
});

impl Pending {
    async fn case(
        &mut self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<triage::Case>, sqlx::Error> {
        self.ensure_case(conn, id).await?;
        Ok(self.cases.get(id).cloned().flatten())
    }

    /// Reads a case into the batch's map unless it is there: from the
    /// carry-over when preparing, else from the database.
    async fn ensure_case(&mut self, conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
        if self.cases.contains_key(id) {
            return Ok(());
        }
        let carried = self.carried.as_ref().and_then(|c| Carry::lock(c).cases.remove(id)).map(|(_, v)| v);
        let loaded = match carried {
            Some(case) => Some(case),
            None => load(conn, id).await?,
        };
        self.remember(id, &loaded);
        self.cases.insert(id.to_owned(), loaded);
        Ok(())
    }

    /// Like [`Pending::case`], but moves the view out; the caller must
    /// [`Pending::put`] or [`Pending::restore`] it.
    async fn take(
        &mut self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<triage::Case>, sqlx::Error> {
        self.ensure_case(conn, id).await?;
        Ok(self.cases.get_mut(id).and_then(Option::take))
    }

    /// The plan state of a case as of this point of the batch.
    async fn plan(
        &mut self,
        conn: &mut AnyConnection,
        case_id: &str,
    ) -> Result<plan_state::PlanState, sqlx::Error> {
        if let Some(state) = self.plans.get(case_id) {
            return Ok(state.clone());
        }
        let carried =
            self.carried.as_ref().and_then(|c| Carry::lock(c).plans.remove(case_id)).map(|(_, v)| v);
        let state = match carried {
            Some(state) => state,
            None => {
                let row = sqlx::query("SELECT state FROM triage_case_plans WHERE case_id = $1")
                    .bind(case_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                match row {
                    Some(row) => serde_json::from_str(&row.try_get::<String, _>("state")?).map_err(|e| {
                        sqlx::Error::Decode(format!("stored plan state does not decode: {e}").into())
                    })?,
                    None => plan_state::PlanState::default(),
                }
            }
        };
        self.plans.insert(case_id.to_owned(), state.clone());
        Ok(state)
    }

    fn put_plan(&mut self, case_id: &str, state: plan_state::PlanState) {
        if !self.dirty_plans.iter().any(|id| id == case_id) {
            self.dirty_plans.push(case_id.to_owned());
        }
        self.plans.insert(case_id.to_owned(), state);
    }

    /// A report acknowledged before its case opened.
    fn early_ack(&mut self, case_id: &str, at: i64) {
        let entry = self.early_acks.entry(case_id.to_owned()).or_insert(at);
        *entry = (*entry).min(at);
    }

    /// Notes a case as stored before the batch, when observing.
    fn remember(&mut self, id: &str, stored: &Option<triage::Case>) {
        if let Some(before) = &mut self.before {
            before.entry(id.to_owned()).or_insert_with(|| stored.clone());
        }
    }

    /// Puts back a view taken with [`Pending::take`], unchanged.
    fn restore(&mut self, case: triage::Case) {
        self.cases.insert(case.case_id.clone(), Some(case));
    }

    fn put(&mut self, case: triage::Case, products_changed: bool) {
        let id = case.case_id.clone();
        if products_changed {
            self.products_changed.insert(id.clone());
        }
        if self.dirty_set.insert(id.clone()) {
            self.dirty.push(id.clone());
        }
        self.cases.insert(id, Some(case));
    }

    fn index(&mut self, case_id: &str, event: &RecordedEvent) {
        let at = millis(view::occurred_at(event));
        if psirt_eventstore::is_type::<events::ReportAcknowledged>(&event.event_type) {
            let earliest = self.batch_acks.entry(case_id.to_owned()).or_insert(at);
            *earliest = (*earliest).min(at);
        }
        self.index.push((case_id.to_owned(), to_i64(event.sequence), event.event_type.clone(), at));
    }

    /// When the case's report was acknowledged, if that came before the case opened.
    async fn acknowledged_ms(
        &self,
        conn: &mut AnyConnection,
        case_id: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let pending = self.batch_acks.get(case_id).copied();
        if let Some(preloaded) = &self.acknowledged {
            let stored = preloaded.get(case_id).copied();
            return Ok(match (pending, stored) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            });
        }
        let stored: Option<(i64,)> =
            sqlx::query_as("SELECT acknowledged_at_ms FROM triage_early_acks WHERE case_id = $1")
                .bind(case_id)
                .fetch_optional(&mut *conn)
                .await?;
        Ok(match (pending, stored.map(|(ms,)| ms)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn flush(self, conn: &mut AnyConnection, policy: &SlaPolicy) -> Result<Vec<Observed>, sqlx::Error> {
        let (writes, observed) = self.into_writes(policy, None)?;
        writes.write(conn).await?;
        Ok(observed)
    }

    /// The rows the batch writes. With `carry_as` (the batch's last
    /// sequence, when preparing), the changed rows are also carried over
    /// for the next batch's fold.
    fn into_writes(
        mut self,
        policy: &SlaPolicy,
        carry_as: Option<u64>,
    ) -> Result<(Writes, Vec<Observed>), sqlx::Error> {
        let carried = self.carried.take();
        let mut carry = match (&carried, carry_as) {
            (Some(c), Some(_)) => Some(Carry::lock(c)),
            _ => None,
        };
        let generation = carry_as.unwrap_or(0);
        let mut writes = Writes {
            prepared: carry_as.is_some(),
            rows: Vec::new(),
            products: Vec::new(),
            index: std::mem::take(&mut self.index),
            plans: Vec::new(),
            early_acks: Vec::new(),
        };
        for id in std::mem::take(&mut self.dirty) {
            if let Some(Some(mut case)) = self.cases.remove(&id) {
                writes.rows.push(CaseRow::of(&mut case, policy));
                if self.products_changed.contains(&id) {
                    writes.products.push((
                        id.clone(),
                        case.affected_products.iter().map(|p| p.product.clone()).collect(),
                    ));
                }
                if self.before.is_some() {
                    self.after.push(case);
                } else if let Some(carry) = &mut carry {
                    carry.cases.insert(id, (generation, case));
                }
            }
        }
        for id in std::mem::take(&mut self.dirty_plans) {
            if let Some(state) = self.plans.remove(&id) {
                let text = serde_json::to_string(&state)
                    .map_err(|e| sqlx::Error::Decode(format!("plan state does not encode: {e}").into()))?;
                writes.plans.push((id.clone(), text));
                if let Some(carry) = &mut carry {
                    carry.plans.insert(id, (generation, state));
                }
            }
        }
        for (id, at) in std::mem::take(&mut self.early_acks) {
            if let Some(carry) = &mut carry {
                let earliest = carry.early_acks.get(&id).map_or(at, |(_, other)| at.min(*other));
                carry.early_acks.insert(id.clone(), (generation, earliest));
            }
            writes.early_acks.push((id, at));
        }
        drop(carry);
        let mut before = self.before.take().unwrap_or_default();
        let observed = std::mem::take(&mut self.after)
            .into_iter()
            .map(|after| Observed { before: before.remove(&after.case_id).flatten(), after })
            .collect();
        Ok((writes, observed))
    }
}

impl Writes {
    async fn write(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for chunk in shaped_chunks(&self.rows, CASE_ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(CASE_UPSERTS.get(chunk.len()));
            for row in chunk {
                query = query
                    .bind(row.case_id.as_str())
                    .bind(row.case_key.as_str())
                    .bind(row.key_order)
                    .bind(row.status)
                    .bind(row.rating)
                    .bind(row.assignee.as_str())
                    .bind(row.embargo_until_ms)
                    .bind(row.sla_next_due_ms)
                    .bind(row.opened_at_ms)
                    .bind(row.updated_at_ms)
                    .bind(row.version)
                    .bind(row.last_sequence)
                    .bind(row.view.as_slice())
                    .bind(row.ack.0)
                    .bind(row.ack.1)
                    .bind(row.ack.2)
                    .bind(row.triage.0)
                    .bind(row.triage.1)
                    .bind(row.triage.2);
            }
            query.execute(&mut *conn).await?;
        }
        // rare: the product rows of a case are replaced with their own statements
        for (case_id, products) in &self.products {
            sqlx::query("DELETE FROM triage_case_products WHERE case_id = $1")
                .bind(case_id)
                .execute(&mut *conn)
                .await?;
            for product in products {
                sqlx::query(
                    "INSERT INTO triage_case_products (case_id, product) VALUES ($1, $2)
                     ON CONFLICT (case_id, product) DO NOTHING",
                )
                .bind(case_id)
                .bind(product)
                .execute(&mut *conn)
                .await?;
            }
        }
        let index_statements = if self.prepared { &*INDEX_APPENDS } else { &*INDEX_INSERTS };
        for chunk in shaped_chunks(&self.index, INDEX_ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(index_statements.get(chunk.len()));
            for (case_id, sequence, event_type, occurred) in chunk {
                query =
                    query.bind(case_id.as_str()).bind(*sequence).bind(event_type.as_str()).bind(*occurred);
            }
            query.execute(&mut *conn).await?;
        }
        for (case_id, state) in &self.plans {
            sqlx::query(
                "INSERT INTO triage_case_plans (case_id, state) VALUES ($1, $2) \
                 ON CONFLICT (case_id) DO UPDATE SET state = excluded.state",
            )
            .bind(case_id)
            .bind(state)
            .execute(&mut *conn)
            .await?;
        }
        for (case_id, at) in &self.early_acks {
            sqlx::query(
                "INSERT INTO triage_early_acks (case_id, acknowledged_at_ms) VALUES ($1, $2) \
                 ON CONFLICT (case_id) DO UPDATE SET acknowledged_at_ms = CASE \
                 WHEN excluded.acknowledged_at_ms < triage_early_acks.acknowledged_at_ms \
                 THEN excluded.acknowledged_at_ms ELSE triage_early_acks.acknowledged_at_ms END",
            )
            .bind(case_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

impl Pending {
    /// Loads, in a few statements, every case the batch names and the stored
    /// acknowledgement times of the cases it opens: a batch then costs a
    /// handful of round trips instead of one or two per case.
    async fn preload(
        &mut self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut opened = Vec::new();
        for event in events {
            let id = if event.subject.starts_with(mapping::SUBJECT_PREFIX) {
                let id = event.subject.trim_start_matches(mapping::SUBJECT_PREFIX).to_owned();
                if psirt_eventstore::is_type::<events::CaseOpened>(&event.event_type) {
                    opened.push(id.clone());
                }
                Some(id)
            } else {
                view::foreign_case_id(event)
            };
            if let Some(id) = id
                && seen.insert(id.clone())
            {
                ids.push(id);
            }
        }
        // What the batch before changed comes from the carry-over.
        let mut carried_acks = HashMap::new();
        if let Some(carried) = &self.carried {
            let mut carry = Carry::lock(carried);
            ids.retain(|id| match carry.cases.remove(id) {
                Some((_, case)) => {
                    self.cases.insert(id.clone(), Some(case));
                    false
                }
                None => true,
            });
            opened.retain(|id| match carry.early_acks.remove(id) {
                Some((_, at)) => {
                    carried_acks.insert(id.clone(), at);
                    false
                }
                None => true,
            });
        }
        for chunk in shaped_chunks(&ids, IDS_PER_STATEMENT) {
            let mut query = sqlx::query(VIEWS_BY_ID.get(chunk.len()));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let rows = query.fetch_all(&mut *conn).await?;
            for row in rows {
                let id: String = row.try_get("case_id")?;
                let view = decode_view(&row.try_get::<Vec<u8>, _>("view")?)?;
                self.remember(&id, &Some(view.clone()));
                self.cases.insert(id, Some(view));
            }
            for id in chunk {
                if !self.cases.contains_key(id) {
                    self.remember(id, &None);
                    self.cases.insert(id.clone(), None);
                }
            }
        }
        // Acknowledgements that arrived before their case was opened: a
        // small table keyed by case (a scan of the timeline index per batch
        // was most of a rebuild's database time).
        let mut acknowledged = carried_acks;
        for chunk in shaped_chunks(&opened, IDS_PER_STATEMENT) {
            let mut query = sqlx::query(EARLY_ACKS_BY_ID.get(chunk.len()));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&mut *conn).await? {
                let id: String = row.try_get("case_id")?;
                let at: i64 = row.try_get("at")?;
                acknowledged.insert(id, at);
            }
        }
        self.acknowledged = Some(acknowledged);
        Ok(())
    }
}

impl CasesProjection {
    async fn apply_case(
        &self,
        conn: &mut AnyConnection,
        pending: &mut Pending,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let case_id = event.subject.trim_start_matches(mapping::SUBJECT_PREFIX).to_owned();
        let opened = psirt_eventstore::is_type::<events::CaseOpened>(&event.event_type);
        // Taken out of the batch's map (no copy of the view per event) and
        // always put back, also when the event does not decode.
        let mut case = match pending.take(conn, &case_id).await? {
            Some(v) => v,
            None if opened => triage::Case::default(),
            None => {
                tracing::warn!(case_id, sequence = event.sequence, "case event before the case was opened");
                pending.index(&case_id, event);
                return Ok(());
            }
        };
        if let Err(err) = view::apply_case_event(&mut case, event) {
            pending.restore(case);
            return Err(err.into());
        }
        if opened
            && let Some(ms) = pending.acknowledged_ms(conn, &case_id).await?
            && let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        {
            // The report was acknowledged before triage opened the case.
            view::apply_acknowledged(&mut case, Some(mapping::timestamp(at)), 0);
        }
        let products_changed = psirt_eventstore::is_type::<events::AffectedProductsSet>(&event.event_type);
        pending.index(&case_id, event);

        if psirt_eventstore::is_type::<events::CaseMarkedDuplicate>(&event.event_type) {
            let e: events::CaseMarkedDuplicate = event.decode()?;
            if let Some(mut canonical) = pending.case(conn, &e.duplicate_of_case_id).await? {
                view::apply_duplicate_marked(&mut canonical, &case, e.marked_at, event.sequence);
                pending.put(canonical, false);
            }
            // once per case: a case marked a duplicate of itself (refused
            // by the domain) must not index the event twice
            if e.duplicate_of_case_id != case_id {
                pending.index(&e.duplicate_of_case_id, event);
            }
        } else if psirt_eventstore::is_type::<events::DuplicateLinked>(&event.event_type) {
            let e: events::DuplicateLinked = event.decode()?;
            if let Some(mut other) = pending.case(conn, &e.other_case_id).await? {
                view::apply_linked_back(&mut other, &case_id, e.linked_at, event.sequence);
                pending.put(other, false);
            }
        }
        pending.put(case, products_changed);
        Ok(())
    }

    async fn apply_one(
        &self,
        conn: &mut AnyConnection,
        pending: &mut Pending,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        if event.subject.starts_with(mapping::SUBJECT_PREFIX) {
            return self.apply_case(conn, pending, event).await;
        }
        if plan_state::is_plan_event(event) {
            return self.apply_plan(conn, pending, event).await;
        }
        // Other services' events: indexed for the timeline when they name a
        // case; the acknowledgement also stops a clock.
        let Some(case_id) = view::foreign_case_id(event) else {
            return Ok(());
        };
        if event.subject.starts_with(plan_state::ADVISORY_PREFIX) {
            if let Some(mut case) = pending.case(conn, &case_id).await? {
                let mut state = case.advisory.take().unwrap_or_default();
                let changed = plan_state::apply_advisory_event(&mut state, event)?;
                let at = state.updated_at;
                case.advisory = Some(state);
                if changed {
                    view::touch(&mut case, at, event.sequence);
                    pending.put(case, false);
                }
            }
            pending.index(&case_id, event);
            return Ok(());
        }
        if view::is_ticket_event(event) {
            // The tickets the notification service linked in Jira or ServiceNow.
            if let Some(mut case) = pending.case(conn, &case_id).await?
                && view::apply_ticket_event(&mut case, event)?
            {
                pending.put(case, false);
            }
        } else if psirt_eventstore::is_type::<events::ReportAcknowledged>(&event.event_type) {
            let e: events::ReportAcknowledged = event.decode()?;
            if let Some(mut case) = pending.case(conn, &case_id).await? {
                view::apply_acknowledged(&mut case, e.acknowledged_at, event.sequence);
                pending.put(case, false);
            } else {
                // Before the case is opened: kept for the opening to stop the clock.
                pending.early_ack(&case_id, millis(view::occurred_at(event)));
            }
        }
        pending.index(&case_id, event);
        Ok(())
    }
}

impl CasesProjection {
    /// A remediation plan event: folded into the case's plan state (its own
    /// table), which gives the view's remediation summary.
    async fn apply_plan(
        &self,
        conn: &mut AnyConnection,
        pending: &mut Pending,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let Some(case_id) = plan_state::plan_case_id(event) else {
            return Ok(());
        };
        let mut state = pending.plan(conn, &case_id).await?;
        state.apply(event)?;
        let summary = state.summary();
        pending.put_plan(&case_id, state);
        if let Some(mut case) = pending.case(conn, &case_id).await? {
            case.remediation = Some(summary);
            let at = case.updated_at;
            view::touch(&mut case, at, event.sequence);
            pending.put(case, false);
        }
        pending.index(&case_id, event);
        Ok(())
    }
}

impl CasesProjection {
    /// Like [`Projection::apply_batch`], and also returns every case the
    /// batch changed, as stored before and after it: what live watches are
    /// sent, without reading the views again.
    pub async fn apply_batch_observed(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<(Vec<(usize, DecodeError)>, Vec<Observed>), sqlx::Error> {
        self.apply_batch_inner(conn, events, true).await
    }

    async fn apply_batch_inner(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
        observe: bool,
    ) -> Result<(Vec<(usize, DecodeError)>, Vec<Observed>), sqlx::Error> {
        let mut pending = Pending { before: observe.then(HashMap::new), ..Pending::default() };
        let undecodable = self.fold(conn, &mut pending, events).await?;
        let observed = pending.flush(conn, &self.policy).await?;
        Ok((undecodable, observed))
    }

    /// Preloads what the batch reads and folds its events into `pending`;
    /// returns the undecodable ones by index.
    async fn fold(
        &self,
        conn: &mut AnyConnection,
        pending: &mut Pending,
        events: &[RecordedEvent],
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        pending.preload(conn, events).await?;
        let mut undecodable = Vec::new();
        for (index, event) in events.iter().enumerate() {
            match self.apply_one(conn, pending, event).await {
                Ok(()) => {}
                Err(ApplyError::Undecodable(err)) => undecodable.push((index, err)),
                Err(ApplyError::Database(err)) => return Err(err),
            }
        }
        Ok(undecodable)
    }
}

/// The case view's indexes for `ListCases` (as in migration 0001) and the
/// timeline's key (migration 0005): an offline rebuild builds them at the
/// end. Prepared writes go by the case view's primary key and append
/// timeline rows without a conflict target.
const DEFERRABLE_INDEXES: &[DeferrableIndex] = &[
    DeferrableIndex {
        name: "triage_case_events_key",
        create: "CREATE UNIQUE INDEX IF NOT EXISTS triage_case_events_key ON triage_case_events (case_id, sequence)",
    },
    DeferrableIndex {
        name: "triage_cases_opened",
        create: "CREATE INDEX IF NOT EXISTS triage_cases_opened ON triage_cases (opened_at_ms, case_id)",
    },
    DeferrableIndex {
        name: "triage_cases_status",
        create: "CREATE INDEX IF NOT EXISTS triage_cases_status ON triage_cases (status)",
    },
    DeferrableIndex {
        name: "triage_cases_assignee",
        create: "CREATE INDEX IF NOT EXISTS triage_cases_assignee ON triage_cases (assignee)",
    },
    DeferrableIndex {
        name: "triage_case_products_product",
        create: "CREATE INDEX IF NOT EXISTS triage_case_products_product ON triage_case_products (product)",
    },
];

impl Projection for CasesProjection {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    fn deferrable_indexes(&self) -> &'static [DeferrableIndex] {
        DEFERRABLE_INDEXES
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        let mut pending = Pending::default();
        self.apply_one(conn, &mut pending, event).await?;
        pending.flush(conn, &self.policy).await?;
        Ok(())
    }

    /// Folds the whole batch in memory and writes each changed case once.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        self.apply_batch_inner(conn, events, false).await.map(|(undecodable, _)| undecodable)
    }

    const PIPELINE: Option<Pipeline<Self>> = Some(Pipeline::prepared());

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.prepared_discarded();
        // triage_case_keys belongs to the reactions, which are never replayed.
        sqlx::query("DELETE FROM triage_case_events").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM triage_case_plans").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM triage_early_acks").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM triage_case_products").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM triage_cases").execute(&mut *conn).await?;
        Ok(())
    }
}

impl PreparesBatches for CasesProjection {
    type Prepared = PreparedCases;

    /// Folds the batch on a connection of its own, reading the rows the
    /// batch before changed from the carry-over.
    async fn prepare(
        &self,
        reader: &AnyPool,
        events: &[RecordedEvent],
    ) -> Result<PreparedCases, sqlx::Error> {
        let mut conn = reader.acquire().await?;
        let mut pending = Pending { carried: Some(Arc::clone(&self.carry)), ..Pending::default() };
        let undecodable = self.fold(&mut conn, &mut pending, events).await?;
        drop(conn);
        let last = events.last().map_or(0, |e| e.sequence);
        let (writes, _) = pending.into_writes(&self.policy, Some(last))?;
        Ok(PreparedCases { undecodable, writes })
    }

    async fn write_prepared(
        &self,
        conn: &mut AnyConnection,
        prepared: PreparedCases,
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        prepared.writes.write(conn).await?;
        Ok(prepared.undecodable)
    }

    fn prepared_committed(&self, checkpoint: u64) {
        let mut carry = Carry::lock(&self.carry);
        carry.cases.retain(|_, (written_by, _)| *written_by > checkpoint);
        carry.plans.retain(|_, (written_by, _)| *written_by > checkpoint);
        carry.early_acks.retain(|_, (written_by, _)| *written_by > checkpoint);
    }

    fn prepared_discarded(&self) {
        *Carry::lock(&self.carry) = Carry::default();
    }
}

/// One case by id, as the read model has it.
pub async fn get(pool: &AnyPool, case_id: &str) -> Result<Option<triage::Case>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM triage_cases WHERE case_id = $1")
        .bind(case_id)
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(decode_view(&row.try_get::<Vec<u8>, _>("view")?)?)),
    }
}

/// One case by key.
pub async fn get_by_key(pool: &AnyPool, case_key: &str) -> Result<Option<triage::Case>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM triage_cases WHERE case_key = $1")
        .bind(case_key)
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(decode_view(&row.try_get::<Vec<u8>, _>("view")?)?)),
    }
}

/// The field a list is sorted by; every one is an integer expression, so
/// one keyset condition serves them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    OpenedAt,
    UpdatedAt,
    Severity,
    CaseKey,
    NextDueAt,
}

impl SortField {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "opened_at" => Self::OpenedAt,
            "updated_at" => Self::UpdatedAt,
            "severity" => Self::Severity,
            "case_key" => Self::CaseKey,
            "next_due_at" => Self::NextDueAt,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenedAt => "opened_at",
            Self::UpdatedAt => "updated_at",
            Self::Severity => "severity",
            Self::CaseKey => "case_key",
            Self::NextDueAt => "next_due_at",
        }
    }

    /// Cases without a due time sort last in both directions.
    fn expr(self, descending: bool) -> &'static str {
        match (self, descending) {
            (Self::OpenedAt, _) => "opened_at_ms",
            (Self::UpdatedAt, _) => "updated_at_ms",
            (Self::Severity, _) => "rating",
            (Self::CaseKey, _) => "key_order",
            (Self::NextDueAt, false) => "COALESCE(sla_next_due_ms, 9223372036854775807)",
            (Self::NextDueAt, true) => "COALESCE(sla_next_due_ms, -9223372036854775807)",
        }
    }

    /// The sort value of a view, as `expr` computes it from its row.
    pub fn value(self, case: &triage::Case, descending: bool) -> i64 {
        let ms =
            |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(mapping::timestamp_millis).unwrap_or(0);
        match self {
            Self::OpenedAt => ms(&case.opened_at),
            Self::UpdatedAt => ms(&case.updated_at),
            Self::Severity => i64::from(case.severity.as_ref().map_or(0, |s| s.rating)),
            Self::CaseKey => key_order(&case.case_key),
            Self::NextDueAt => view::next_due_ms(case).unwrap_or(if descending {
                -9_223_372_036_854_775_807
            } else {
                i64::MAX
            }),
        }
    }
}

/// Which cases a list or a watch covers (`CaseFilter`, validated).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<i32>,
    pub ratings: Vec<i32>,
    pub product: Option<String>,
    pub assignee: Option<String>,
    pub assigned: Option<bool>,
    pub embargoed: Option<bool>,
    /// `psirt.triage.v1.SlaState` values: at least one clock in one of them.
    pub sla_states: Vec<i32>,
}

/// Filters, order and page position of `ListCases`.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Filter,
    pub now_ms: i64,
    /// Sort keys, each with whether it is descending; ties are broken by
    /// case id in the direction of the last key.
    pub order: Vec<(SortField, bool)>,
    /// Keyset position: strictly after this (sort values, case id).
    pub after: Option<(Vec<i64>, String)>,
    pub limit: u32,
}

enum Arg {
    I(i64),
    S(String),
}

fn push(args: &mut Vec<Arg>, a: Arg) -> String {
    args.push(a);
    format!("${}", args.len())
}

fn filter_clauses(filter: &Filter, now_ms: i64, args: &mut Vec<Arg>) -> Vec<String> {
    let mut clauses = Vec::new();
    if !filter.statuses.is_empty() {
        let p: Vec<String> = filter.statuses.iter().map(|s| push(args, Arg::I(i64::from(*s)))).collect();
        clauses.push(format!("status IN ({})", p.join(", ")));
    }
    if !filter.ratings.is_empty() {
        let p: Vec<String> = filter.ratings.iter().map(|s| push(args, Arg::I(i64::from(*s)))).collect();
        clauses.push(format!("rating IN ({})", p.join(", ")));
    }
    if let Some(product) = &filter.product {
        let p = push(args, Arg::S(product.clone()));
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM triage_case_products p WHERE p.case_id = triage_cases.case_id AND p.product = {p})"
        ));
    }
    if let Some(assignee) = &filter.assignee {
        let p = push(args, Arg::S(assignee.clone()));
        clauses.push(format!("assignee = {p}"));
    }
    match filter.assigned {
        Some(true) => clauses.push("assignee <> ''".to_owned()),
        Some(false) => clauses.push("assignee = ''".to_owned()),
        None => {}
    }
    match filter.embargoed {
        Some(true) => {
            let p = push(args, Arg::I(now_ms));
            clauses.push(format!("embargo_until_ms > {p}"));
        }
        Some(false) => {
            let p = push(args, Arg::I(now_ms));
            clauses.push(format!("(embargo_until_ms IS NULL OR embargo_until_ms <= {p})"));
        }
        None => {}
    }
    if !filter.sla_states.is_empty() {
        let now = push(args, Arg::I(now_ms));
        let mut any = Vec::new();
        for clock in ["ack", "triage"] {
            for state in &filter.sla_states {
                let (due, soon, met) =
                    (format!("{clock}_due_ms"), format!("{clock}_soon_ms"), format!("{clock}_met_ms"));
                any.push(match triage::SlaState::try_from(*state) {
                    Ok(triage::SlaState::OnTrack) => format!("({met} IS NULL AND {soon} > {now})"),
                    Ok(triage::SlaState::DueSoon) => {
                        format!("({met} IS NULL AND {soon} <= {now} AND {due} > {now})")
                    }
                    Ok(triage::SlaState::Breached) => format!("({met} IS NULL AND {due} <= {now})"),
                    Ok(triage::SlaState::Met) => format!("({met} IS NOT NULL AND {met} <= {due})"),
                    Ok(triage::SlaState::MetLate) => format!("({met} IS NOT NULL AND {met} > {due})"),
                    Ok(triage::SlaState::Unspecified) | Err(_) => continue,
                });
            }
        }
        if !any.is_empty() {
            clauses.push(format!("({})", any.join(" OR ")));
        }
    }
    clauses
}

fn where_sql(clauses: &[String]) -> String {
    if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) }
}

fn bind_all<'q>(
    sql: &'q str,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql).persistent(false);
    for arg in args {
        q = match arg {
            Arg::I(v) => q.bind(v),
            Arg::S(v) => q.bind(v),
        };
    }
    q
}

/// Cases matching `query` in its order; also whether more follow.
pub async fn list(pool: &AnyPool, query: &ListQuery) -> Result<(Vec<triage::Case>, bool), sqlx::Error> {
    let mut args = Vec::new();
    let mut clauses = filter_clauses(&query.filter, query.now_ms, &mut args);
    let dir = |descending: bool| if descending { ("<", "DESC") } else { (">", "ASC") };
    let tie = dir(query.order.last().is_some_and(|(_, descending)| *descending));
    if let Some((values, id)) = &query.after {
        // (a, b, id) after (va, vb, vid): a beyond va, or a = va and b beyond
        // vb, or both equal and id beyond vid, each "beyond" in its direction.
        let mut any = Vec::new();
        for i in 0..=query.order.len() {
            let mut all = Vec::new();
            for (j, (field, descending)) in query.order.iter().enumerate().take(i) {
                let p = push(&mut args, Arg::I(values.get(j).copied().unwrap_or_default()));
                all.push(format!("{} = {p}", field.expr(*descending)));
            }
            match query.order.get(i) {
                Some((field, descending)) => {
                    let p = push(&mut args, Arg::I(values.get(i).copied().unwrap_or_default()));
                    all.push(format!("{} {} {p}", field.expr(*descending), dir(*descending).0));
                }
                None => {
                    let p = push(&mut args, Arg::S(id.clone()));
                    all.push(format!("case_id {} {p}", tie.0));
                }
            }
            any.push(format!("({})", all.join(" AND ")));
        }
        clauses.push(format!("({})", any.join(" OR ")));
    }
    let mut order_sql: Vec<String> = query
        .order
        .iter()
        .map(|(field, descending)| format!("{} {}", field.expr(*descending), dir(*descending).1))
        .collect();
    order_sql.push(format!("case_id {}", tie.1));
    let limit = push(&mut args, Arg::I(i64::from(query.limit) + 1));
    let sql = format!(
        "SELECT view FROM triage_cases {} ORDER BY {} LIMIT {limit}",
        where_sql(&clauses),
        order_sql.join(", ")
    );
    let rows = bind_all(&sql, args).fetch_all(pool).await?;
    let more = rows.len() > query.limit as usize;
    let mut cases = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(query.limit as usize) {
        cases.push(decode_view(&row.try_get::<Vec<u8>, _>("view")?)?);
    }
    Ok((cases, more))
}

/// Cases matching `filter` whose view changed after stream sequence
/// `after`, in the order of their last change, at most `limit`.
pub async fn changed_since(
    pool: &AnyPool,
    filter: &Filter,
    now_ms: i64,
    after: u64,
    limit: u32,
) -> Result<Vec<triage::Case>, sqlx::Error> {
    let mut args = Vec::new();
    let mut clauses = filter_clauses(filter, now_ms, &mut args);
    let p = push(&mut args, Arg::I(to_i64(after)));
    clauses.push(format!("last_sequence > {p}"));
    let limit = push(&mut args, Arg::I(i64::from(limit)));
    let sql =
        format!("SELECT view FROM triage_cases {} ORDER BY last_sequence LIMIT {limit}", where_sql(&clauses));
    let rows = bind_all(&sql, args).fetch_all(pool).await?;
    let mut cases = Vec::with_capacity(rows.len());
    for row in rows {
        cases.push(decode_view(&row.try_get::<Vec<u8>, _>("view")?)?);
    }
    Ok(cases)
}

/// Clocks of open cases past their due time and neither met nor recorded
/// as breached: (case id, clock, deadline).
pub async fn due_clocks(
    pool: &AnyPool,
    now_ms: i64,
) -> Result<Vec<(String, psirt_domain::SlaClock, time::OffsetDateTime)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT view FROM triage_cases WHERE status <> $1
           AND ((ack_met_ms IS NULL AND ack_due_ms <= $2) OR (triage_met_ms IS NULL AND triage_due_ms <= $3))
         ORDER BY sla_next_due_ms LIMIT 500",
    )
    .bind(psirt_proto::common::CaseStatus::Closed as i32)
    .bind(now_ms)
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    let mut due = Vec::new();
    for row in rows {
        let case = decode_view(&row.try_get::<Vec<u8>, _>("view")?)?;
        for clock in &case.sla_clocks {
            let Some(which) = mapping::clock_from_proto(clock.clock) else { continue };
            let deadline = clock.due_at.as_ref().and_then(mapping::from_timestamp);
            if let Some(deadline) = deadline
                && clock.met_at.is_none()
                && clock.breached_at.is_none()
                && mapping::millis(deadline) <= now_ms
            {
                due.push((case.case_id.clone(), which, deadline));
            }
        }
    }
    Ok(due)
}

/// The timeline entry of one sequence of a case: (event type, occurred at ms).
pub async fn timeline_entry(
    pool: &AnyPool,
    case_id: &str,
    sequence: u64,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_type, occurred_at_ms FROM triage_case_events WHERE case_id = $1 AND sequence = $2",
    )
    .bind(case_id)
    .bind(to_i64(sequence))
    .fetch_optional(pool)
    .await
}

/// Stream sequences of a case's timeline after `after`, in order.
pub async fn timeline(
    pool: &AnyPool,
    case_id: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<u64>, sqlx::Error> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT sequence FROM triage_case_events WHERE case_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(case_id)
    .bind(to_i64(after))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(s,)| u64::try_from(s).unwrap_or(0)).collect())
}
