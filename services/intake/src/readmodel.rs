//! The intake read model: one row per report with its `Report` view, and the
//! duplicate-hint keys. Fed by the `intake-reports` projection; read by
//! `ListReports` and the duplicate check of `SubmitReport`.

use std::sync::LazyLock;

use prost::Message;
use psirt_domain::{ReportEvent, ReportId};
use psirt_eventstore::{DecodeError, RecordedEvent};
use psirt_projection::sql::{ShapedStatements, shaped_chunks};
use psirt_projection::{ApplyError, Projection};
use psirt_proto::{events, intake};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::mapping::{self, millis};

/// Embedded migrations: portable SQL for PostgreSQL and SQLite.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The projection that keeps `intake_reports` and `intake_dedup_keys`.
pub struct ReportsProjection;

pub const PROJECTION_NAME: &str = "intake-reports";

impl Projection for ReportsProjection {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply(&self, conn: &mut AnyConnection, event: &RecordedEvent) -> Result<(), ApplyError> {
        if event.subject.starts_with("psirt.evt.report.") {
            let domain = mapping::to_domain(event)?;
            apply_report_event(conn, &domain, event.sequence, event.metadata.actor.as_deref()).await?;
        } else if psirt_eventstore::is_type::<events::CaseClosed>(&event.event_type) {
            let e: events::CaseClosed = event.decode()?;
            set_open(conn, &e.case_id, false).await?;
        } else if psirt_eventstore::is_type::<events::CaseReopened>(&event.event_type) {
            let e: events::CaseReopened = event.decode()?;
            set_open(conn, &e.case_id, true).await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM intake_dedup_keys").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM intake_reports").execute(&mut *conn).await?;
        Ok(())
    }

    /// New reports are written many rows per statement: a burst of
    /// submissions (or a rebuild) costs a few statements per batch, not
    /// three per report. Other events flush the pending rows first, so
    /// stream order holds.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> Result<Vec<(usize, DecodeError)>, sqlx::Error> {
        let mut undecodable = Vec::new();
        let mut pending = NewReports::default();
        for (index, event) in events.iter().enumerate() {
            if event.subject.starts_with("psirt.evt.report.") {
                match mapping::to_domain(event) {
                    Err(err) => undecodable.push((index, err)),
                    Ok(received @ ReportEvent::ReportReceived { .. }) => {
                        pending.push(&received, event.sequence, event.metadata.actor.as_deref())
                    }
                    Ok(other) => {
                        pending.flush(conn).await?;
                        apply_report_event(conn, &other, event.sequence, None)
                            .await
                            .map_err(database_only)?;
                    }
                }
            } else if psirt_eventstore::is_type::<events::CaseClosed>(&event.event_type)
                || psirt_eventstore::is_type::<events::CaseReopened>(&event.event_type)
            {
                pending.flush(conn).await?;
                match self.apply(conn, event).await {
                    Ok(()) => {}
                    Err(ApplyError::Undecodable(err)) => undecodable.push((index, err)),
                    Err(ApplyError::Database(err)) => return Err(err),
                }
            }
        }
        pending.flush(conn).await?;
        Ok(undecodable)
    }
}

fn database_only(err: ApplyError) -> sqlx::Error {
    match err {
        ApplyError::Database(e) => e,
        ApplyError::Undecodable(e) => sqlx::Error::Decode(Box::new(e)),
    }
}

/// Report rows and duplicate keys waiting for one multi-row insert.
/// One `intake_reports` row: id, case id, status, channel, title, received
/// at (ms), version, encoded view, submitter.
type ReportRow = (String, String, i32, i32, String, i64, i64, Vec<u8>, Option<String>);

#[derive(Default)]
struct NewReports {
    reports: Vec<ReportRow>,
    /// (key, report id, received at ms, stream sequence)
    keys: Vec<(String, String, i64, i64)>,
}

/// Rows per statement: far below both databases' bound-parameter limits,
/// and small enough that binding by parameter name (quadratic in the
/// number of parameters in the SQLite driver) stays cheap. Shorter chunks
/// come in powers of two, so each statement is prepared once per
/// connection ([`shaped_chunks`]).
const ROWS_PER_STATEMENT: usize = 64;

// `acknowledged_at_ms` and `is_open` take their defaults (NULL, 1).
static REPORT_INSERTS: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::insert(
        ROWS_PER_STATEMENT,
        "INSERT INTO intake_reports (report_id, case_id, status, channel, title, received_at_ms, version, view, \
         submitted_by)",
        9,
        "ON CONFLICT (report_id) DO NOTHING",
    )
});
static KEY_INSERTS: LazyLock<ShapedStatements> = LazyLock::new(|| {
    ShapedStatements::insert(
        ROWS_PER_STATEMENT,
        "INSERT INTO intake_dedup_keys (dedup_key, report_id, received_at_ms, sequence)",
        4,
        "ON CONFLICT (dedup_key, report_id) DO NOTHING",
    )
});

impl NewReports {
    /// `submitter`: the actor of the `ReportReceived` (its metadata).
    fn push(&mut self, event: &ReportEvent, sequence: u64, submitter: Option<&str>) {
        let ReportEvent::ReportReceived {
            report_id,
            case_id,
            title,
            affected_products,
            channel,
            received_at,
            ..
        } = event
        else {
            return;
        };
        let mut view = intake::Report::default();
        mapping::fold(&mut view, event, sequence);
        let received = millis(*received_at);
        let id = report_id.to_string();
        for key in psirt_domain::dedup_keys(title, affected_products) {
            self.keys.push((key, id.clone(), received, i64::try_from(sequence).unwrap_or(i64::MAX)));
        }
        self.reports.push((
            id,
            case_id.to_string(),
            view.status,
            mapping::channel_to_proto(*channel) as i32,
            title.clone(),
            received,
            i64::try_from(sequence).unwrap_or(i64::MAX),
            view.encode_to_vec(),
            submitter.map(str::to_owned),
        ));
    }

    async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for chunk in shaped_chunks(&self.reports, ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(REPORT_INSERTS.get(chunk.len()));
            for (id, case_id, status, channel, title, received, version, view, submitter) in chunk {
                query = query
                    .bind(id.as_str())
                    .bind(case_id.as_str())
                    .bind(*status)
                    .bind(*channel)
                    .bind(title.as_str())
                    .bind(*received)
                    .bind(*version)
                    .bind(view.as_slice())
                    .bind(submitter.as_deref());
            }
            query.execute(&mut *conn).await?;
        }
        for chunk in shaped_chunks(&self.keys, ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(KEY_INSERTS.get(chunk.len()));
            for (key, id, received, sequence) in chunk {
                query = query.bind(key.as_str()).bind(id.as_str()).bind(*received).bind(*sequence);
            }
            query.execute(&mut *conn).await?;
        }
        self.reports.clear();
        self.keys.clear();
        Ok(())
    }
}

async fn set_open(conn: &mut AnyConnection, case_id: &str, open: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE intake_reports SET is_open = $1 WHERE case_id = $2")
        .bind(i64::from(open))
        .bind(case_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn load_view(conn: &mut AnyConnection, id: &str) -> Result<Option<intake::Report>, ApplyError> {
    let row = sqlx::query("SELECT view FROM intake_reports WHERE report_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let bytes: Vec<u8> = row.try_get("view")?;
            intake::Report::decode(bytes.as_slice())
                .map(Some)
                .map_err(|e| ApplyError::Database(sqlx::Error::Decode(Box::new(e))))
        }
    }
}

async fn store_view(conn: &mut AnyConnection, view: &intake::Report) -> Result<(), sqlx::Error> {
    let acknowledged = view.acknowledged_at.as_ref().and_then(mapping::from_timestamp).map(millis);
    sqlx::query(
        "UPDATE intake_reports SET status = $1, acknowledged_at_ms = $2, version = $3, view = $4 WHERE report_id = $5",
    )
    .bind(view.status)
    .bind(acknowledged)
    .bind(i64::try_from(view.version).unwrap_or(i64::MAX))
    .bind(view.encode_to_vec())
    .bind(&view.report_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_report_event(
    conn: &mut AnyConnection,
    event: &ReportEvent,
    sequence: u64,
    submitter: Option<&str>,
) -> Result<(), ApplyError> {
    match event {
        ReportEvent::ReportReceived { .. } => {
            // The one insert path of a new report: a batch of one.
            let mut one = NewReports::default();
            one.push(event, sequence, submitter);
            one.flush(conn).await?;
        }
        ReportEvent::ReportAcknowledged { report_id, .. }
        | ReportEvent::ReporterMessageAdded { report_id, .. } => {
            if let Some(mut view) = load_view(conn, &report_id.to_string()).await? {
                mapping::fold(&mut view, event, sequence);
                store_view(conn, &view).await?;
            }
        }
        ReportEvent::DuplicateSuspected { report_id, other, .. } => {
            if let Some(mut view) = load_view(conn, &report_id.to_string()).await? {
                mapping::fold(&mut view, event, sequence);
                store_view(conn, &view).await?;
            }
            // The link shows on both reports; the other's version stays its own.
            if let Some(mut view) = load_view(conn, &other.to_string()).await? {
                let back = report_id.to_string();
                if !view.suspected_duplicate_report_ids.contains(&back) {
                    view.suspected_duplicate_report_ids.push(back);
                    store_view(conn, &view).await?;
                }
            }
        }
    }
    Ok(())
}

/// Open reports from `since_ms` on that share a duplicate key, other than
/// `exclude`, oldest first.
pub async fn find_duplicates(
    pool: &AnyPool,
    keys: &[String],
    since_ms: i64,
    exclude: ReportId,
) -> Result<Vec<ReportId>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT k.report_id, MIN(k.received_at_ms) AS first_ms FROM intake_dedup_keys k
         JOIN intake_reports r ON r.report_id = k.report_id
         WHERE k.received_at_ms >= $1 AND k.report_id <> $2 AND r.is_open = 1 AND k.dedup_key IN ({})
         GROUP BY k.report_id ORDER BY first_ms, k.report_id LIMIT 20",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false).bind(since_ms).bind(exclude.to_string());
    for key in keys {
        query = query.bind(key);
    }
    let rows = query.fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("report_id")?;
        if let Ok(id) = id.parse() {
            out.push(id);
        }
    }
    Ok(out)
}

/// Filters and page position of `ListReports`.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub status: Option<i32>,
    pub channel: Option<i32>,
    pub received_after_ms: Option<i64>,
    pub received_before_ms: Option<i64>,
    /// Keyset position: strictly after this (received_at_ms, report_id),
    /// newest first.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// Reports matching `query`, newest first; also whether more follow.
pub async fn list(pool: &AnyPool, query: &ListQuery) -> Result<(Vec<intake::Report>, bool), sqlx::Error> {
    let mut clauses = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if query.status.is_some() {
        clauses.push(format!("status = {}", next()));
    }
    if query.channel.is_some() {
        clauses.push(format!("channel = {}", next()));
    }
    if query.received_after_ms.is_some() {
        clauses.push(format!("received_at_ms >= {}", next()));
    }
    if query.received_before_ms.is_some() {
        clauses.push(format!("received_at_ms < {}", next()));
    }
    if query.after.is_some() {
        let (a, b, c) = (next(), next(), next());
        clauses.push(format!("(received_at_ms < {a} OR (received_at_ms = {b} AND report_id < {c}))"));
    }
    let limit = next();
    let sql = format!(
        "SELECT view FROM intake_reports {} ORDER BY received_at_ms DESC, report_id DESC LIMIT {limit}",
        if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) }
    );
    let mut q = sqlx::query(&sql);
    if let Some(v) = query.status {
        q = q.bind(v);
    }
    if let Some(v) = query.channel {
        q = q.bind(v);
    }
    if let Some(v) = query.received_after_ms {
        q = q.bind(v);
    }
    if let Some(v) = query.received_before_ms {
        q = q.bind(v);
    }
    if let Some((ms, id)) = &query.after {
        q = q.bind(*ms).bind(*ms).bind(id.clone());
    }
    q = q.bind(i64::from(query.limit) + 1);
    let rows = q.fetch_all(pool).await?;
    let more = rows.len() > query.limit as usize;
    let mut reports = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(query.limit as usize) {
        let bytes: Vec<u8> = row.try_get("view")?;
        let view = intake::Report::decode(bytes.as_slice()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        reports.push(view);
    }
    Ok((reports, more))
}

/// The view of one report as the read model has it (may lag the stream).
/// How many reports `submitter` has open (their case not closed).
pub async fn open_reports_of(pool: &AnyPool, submitter: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM intake_reports WHERE submitted_by = $1 AND is_open = 1")
        .bind(submitter)
        .fetch_one(pool)
        .await
}

pub async fn get(pool: &AnyPool, id: ReportId) -> Result<Option<intake::Report>, sqlx::Error> {
    let row = sqlx::query("SELECT view FROM intake_reports WHERE report_id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let bytes: Vec<u8> = row.try_get("view")?;
            intake::Report::decode(bytes.as_slice()).map(Some).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
    }
}
