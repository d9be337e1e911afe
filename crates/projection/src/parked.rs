//! Parked events: events a projection could not apply (undecodable, or
//! foreign to their subject's aggregate), kept in `projection_parked` for
//! inspection and replay after a fix. [`ParkedEvents`] lists them from the
//! database and hands replays to the runner that holds the lease; the
//! runner's side of a replay is in `runner/replay.rs`.

use std::sync::Arc;
use std::time::Duration;

use psirt_eventstore::RecordedEvent;
use sqlx::{AnyConnection, AnyPool};

use crate::EventRule;
use crate::checkpoint::{ensure_schema, to_i64};

/// Most parked events one replay looks at.
pub const REPLAY_LIMIT: usize = 1000;

/// One parked event, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRow {
    pub sequence: u64,
    pub subject: String,
    pub event_type: String,
    /// Why it was parked (the decode error, or `foreign event: ...`).
    pub error: String,
    pub parked_at_ms: i64,
    /// Its type does not belong to its subject's aggregate: a replay will
    /// refuse it.
    pub foreign: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Applied and no longer parked.
    pub replayed: Vec<u64>,
    /// Foreign events: refused again, still parked (sequence, reason).
    pub refused: Vec<(u64, String)>,
    /// Still failing (sequence, error), still parked.
    pub still_parked: Vec<(u64, String)>,
    /// Sequences asked for that are not parked.
    pub not_parked: Vec<u64>,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No runner of this projection consumes here (another replica holds
    /// the lease, or the runner is stalled or rebuilding).
    #[error(
        "projection {0} does not run here now (another replica holds its lease, or it is rebuilding or stalled): \
         ask the replica that runs it"
    )]
    NotRunning(String),
    /// The replay itself failed (database, stream).
    #[error("replay of projection {projection} failed: {error}")]
    Failed { projection: String, error: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A replay, asked of the runner through [`ParkedEvents::replay`].
pub(crate) struct ReplayJob {
    pub(crate) sequences: Vec<u64>,
    /// Told when the runner takes the job.
    pub(crate) picked: tokio::sync::oneshot::Sender<()>,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<ReplayOutcome, String>>,
}

/// A projection's parked events: listed from the database by anyone,
/// replayed through the runner that consumes the stream (so what it keeps
/// in memory stays true). Cheap to clone.
#[derive(Clone)]
pub struct ParkedEvents {
    name: String,
    pool: AnyPool,
    /// The runner's rule: a listed event it refuses is marked foreign.
    pub(crate) rule: EventRule,
    sender: tokio::sync::mpsc::Sender<ReplayJob>,
    /// The mailbox of replays the runner that holds the lease takes.
    pub(crate) jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ReplayJob>>>,
}

/// How long a replay waits for the runner to pick it up.
const REPLAY_PICKUP: Duration = Duration::from_secs(10);
/// How long a picked-up replay may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

impl ParkedEvents {
    pub(crate) fn new(name: &str, pool: AnyPool, rule: EventRule) -> Self {
        let (sender, jobs) = tokio::sync::mpsc::channel(1);
        Self { name: name.to_owned(), pool, rule, sender, jobs: Arc::new(tokio::sync::Mutex::new(jobs)) }
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parked events after `after` (a sequence), oldest first, at most `limit`.
    pub async fn list(&self, after: u64, limit: usize) -> Result<Vec<ParkedRow>, sqlx::Error> {
        ensure_schema(&self.pool).await?;
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT sequence, subject, event_type, error, parked_at_ms FROM projection_parked
             WHERE projection = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        )
        .bind(&self.name)
        .bind(to_i64(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sequence, subject, event_type, error, parked_at_ms)| ParkedRow {
                foreign: (self.rule)(&subject, &event_type).is_err(),
                sequence: u64::try_from(sequence).unwrap_or(0),
                subject,
                event_type,
                error,
                parked_at_ms,
            })
            .collect())
    }

    /// The parked event at `sequence`, if there is one.
    pub async fn get(&self, sequence: u64) -> Result<Option<ParkedRow>, sqlx::Error> {
        let listed = self.list(sequence.saturating_sub(1), 1).await?;
        Ok(listed.into_iter().find(|row| row.sequence == sequence))
    }

    /// Replays parked events (`sequences`, or all when empty) through the
    /// runner; see [`ReplayOutcome`].
    pub async fn replay(&self, sequences: Vec<u64>) -> Result<ReplayOutcome, ReplayError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let (picked, taken) = tokio::sync::oneshot::channel();
        let not_running = || ReplayError::NotRunning(self.name.clone());
        let deadline = tokio::time::Instant::now() + REPLAY_PICKUP;
        let job = ReplayJob { sequences, picked, reply };
        match tokio::time::timeout_at(deadline, self.sender.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(not_running()),
        }
        // A job nobody takes stays in the mailbox until a runner drains it
        // (and skips it: its caller is gone).
        match tokio::time::timeout_at(deadline, taken).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(not_running()),
        }
        match tokio::time::timeout(REPLAY_TIMEOUT, answer).await {
            Ok(Ok(Ok(outcome))) => Ok(outcome),
            Ok(Ok(Err(error))) => Err(ReplayError::Failed { projection: self.name.clone(), error }),
            Ok(Err(_)) | Err(_) => Err(ReplayError::Failed {
                projection: self.name.clone(),
                error: "the runner stopped during the replay".to_owned(),
            }),
        }
    }
}

/// Parks one event in a batch's transaction (`conn`).
pub(crate) async fn park(
    conn: &mut AnyConnection,
    projection: &str,
    event: &RecordedEvent,
    error: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_parked (projection, sequence, subject, event_type, error, payload, parked_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (projection, sequence) DO NOTHING",
    )
    .bind(projection)
    .bind(to_i64(event.sequence))
    .bind(&event.subject)
    .bind(&event.event_type)
    .bind(error)
    .bind(event.payload.to_vec())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A parked event applied at last leaves the parking, in the replay's
/// transaction (`conn`).
pub(crate) async fn unpark(
    conn: &mut AnyConnection,
    projection: &str,
    sequence: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM projection_parked WHERE projection = $1 AND sequence = $2")
        .bind(projection)
        .bind(to_i64(sequence))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records why a parked event still fails.
pub(crate) async fn set_error(
    pool: &AnyPool,
    projection: &str,
    sequence: u64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection_parked SET error = $1 WHERE projection = $2 AND sequence = $3")
        .bind(error)
        .bind(projection)
        .bind(to_i64(sequence))
        .execute(pool)
        .await?;
    Ok(())
}

/// Drops every parked event of a projection (a reset), in the transaction
/// `conn` is in.
pub(crate) async fn clear(conn: &mut AnyConnection, projection: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM projection_parked WHERE projection = $1")
        .bind(projection)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
