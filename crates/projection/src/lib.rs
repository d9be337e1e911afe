//! Projections: events from the stream folded into SQL read models, exactly once.
//!
//! Each projection has a durable pull consumer. A batch of events is applied
//! in one SQL transaction together with the projection's checkpoint (the last
//! stream sequence applied); events at or below the checkpoint are skipped;
//! the batch is acknowledged only after the commit. A crash anywhere leaves
//! either the whole batch and its checkpoint or neither, so replaying
//! converges on the same state as a full rebuild.
//!
//! One runner per projection is active at a time: a lease in the checkpoint
//! row keeps a second replica of the service on standby.

mod settings;
pub mod sql;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, pull},
};
use futures::{FutureExt, StreamExt};
use psirt_eventstore::{DecodeError, EventStore, RecordedEvent};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use psirt_eventstore::ownership::EventRule;
pub use settings::{ProjectionSettings, UndecodablePolicy};

/// A read model fed by events.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the durable consumer and the checkpoint row are keyed by it.
    fn name(&self) -> &str;

    /// Applies one event inside the batch's transaction. Events this read
    /// model does not care about return `Ok(())`.
    fn apply(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), ApplyError>> + Send;

    /// Empties the read model's tables, for a rebuild.
    fn reset(&self, conn: &mut AnyConnection) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Indexes that the projection's prepared writes ([`Projection::
    /// write_prepared`], what a rebuild runs) never need (no `ON CONFLICT`
    /// target there, no lookup while folding): an offline rebuild
    /// ([`ProjectionRunner::rebuild_offline`]) drops them and builds each
    /// once at the end, instead of updating them row by row. A runner
    /// creates any that are missing when it starts, before its first batch,
    /// so an interrupted rebuild leaves nothing behind. Each `create`
    /// statement must be `CREATE [UNIQUE] INDEX IF NOT EXISTS <name> ...`.
    fn deferrable_indexes(&self) -> &'static [DeferrableIndex] {
        &[]
    }

    /// A consumer session starts: this runner holds the lease, has applied
    /// everything up to `checkpoint`, and the stream ends at `stream_last`.
    /// No runner has seen an event after `stream_last` (any runner before
    /// this one stopped holding the lease before the session started), and
    /// until the next call only this runner's own committed batches change
    /// the projection's tables: a projection may keep what it read in
    /// memory until then. Any failure ends the session.
    fn session_started(&self, checkpoint: u64, stream_last: u64) {
        let _ = (checkpoint, stream_last);
    }

    /// Whether the projection folds batches ahead of their transaction
    /// ([`Projection::prepare`], [`Projection::write_prepared`]). A rebuild
    /// then folds batch N+1 while batch N is written and committed, so the
    /// fold and the database work side by side instead of taking turns.
    const PREPARES: bool = false;

    /// Folds a batch of new events (all above the checkpoint, in stream
    /// order) in memory, reading what it needs through `reader`, and returns
    /// what [`Projection::write_prepared`] will write. The batch before it
    /// may not be committed yet (its writes are invisible to `reader`): the
    /// projection carries over, in memory, what that batch changed and reads
    /// it from there, until [`Projection::prepared_committed`] says the
    /// database has it. Only called when [`Projection::PREPARES`].
    fn prepare(
        &self,
        reader: &AnyPool,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<Prepared, sqlx::Error>> + Send {
        let _ = (reader, events);
        async { Err(sqlx::Error::Protocol(format!("projection {} does not prepare batches", self.name()))) }
    }

    /// Writes a prepared batch inside its transaction; returns the
    /// undecodable events by index, as [`Projection::apply_batch`].
    fn write_prepared(
        &self,
        conn: &mut AnyConnection,
        prepared: Prepared,
    ) -> impl Future<Output = Result<Vec<(usize, DecodeError)>, sqlx::Error>> + Send {
        let _ = (conn, prepared);
        async { Err(sqlx::Error::Protocol(format!("projection {} does not prepare batches", self.name()))) }
    }

    /// The batches prepared up to `checkpoint` are committed: what was
    /// carried over for them can go.
    fn prepared_committed(&self, checkpoint: u64) {
        let _ = checkpoint;
    }

    /// Prepared batches will not be written (a failure; the runner starts
    /// again from the checkpoint): whatever was carried over must go.
    fn prepared_discarded(&self) {}

    /// Applies a batch of new events (all above the checkpoint, in stream
    /// order) inside the batch's transaction, and returns the undecodable
    /// ones by index. The default applies them one by one; a projection
    /// overrides it to write many rows per statement.
    fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<Vec<(usize, DecodeError)>, sqlx::Error>> + Send {
        async move {
            let mut undecodable = Vec::new();
            for (index, event) in events.iter().enumerate() {
                let span = event_span(self.name(), event);
                match self.apply(conn, event).instrument(span).await {
                    Ok(()) => {}
                    Err(ApplyError::Undecodable(err)) => undecodable.push((index, err)),
                    Err(ApplyError::Database(err)) => return Err(err),
                }
            }
            Ok(undecodable)
        }
    }
}

/// A secondary index of a read model, see [`Projection::deferrable_indexes`].
#[derive(Debug, Clone, Copy)]
pub struct DeferrableIndex {
    pub name: &'static str,
    /// `CREATE [UNIQUE] INDEX IF NOT EXISTS <name> ON ...`
    pub create: &'static str,
}

/// The span of one event's handling by `projection`: a consumer span whose
/// parent is the trace context the event was appended under (its
/// `traceparent` header), so the trace that appended the event continues in
/// every service that consumes it, and whatever the handler appends under
/// this span carries the same trace on. An event without trace context
/// starts a trace of its own. The default [`Projection::apply_batch`] runs
/// each `apply` in it; a projection that overrides `apply_batch` and appends
/// events (a reaction) must run each event's work in it.
pub fn event_span(projection: &str, event: &RecordedEvent) -> tracing::Span {
    let short = event.event_type.rsplit('.').next().unwrap_or(event.event_type.as_str());
    let span = tracing::info_span!(
        "projection.apply",
        otel.name = %format_args!("{projection} {short}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %event.subject,
        psirt.projection = projection,
        psirt.event_type = %event.event_type,
        psirt.stream_sequence = event.sequence,
    );
    // Fails only when no OpenTelemetry layer is installed (no OTLP endpoint).
    let _ = span.set_parent(psirt_eventstore::extract_trace_context(&event.headers));
    span
}

/// A span for work an event causes outside a projection (a notification
/// delivery sending the event to a peer), parented to the span that
/// appended the event, like [`event_span`]. `kind` is an OpenTelemetry
/// span kind (`client`, `producer`, `internal`).
pub fn caused_span(name: &str, kind: &'static str, event: &RecordedEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "caused",
        otel.name = %name,
        otel.kind = kind,
        messaging.system = "nats",
        messaging.destination.name = %event.subject,
        psirt.event_type = %event.event_type,
        psirt.stream_sequence = event.sequence,
    );
    let _ = span.set_parent(psirt_eventstore::extract_trace_context(&event.headers));
    span
}

/// A batch folded by [`Projection::prepare`], opaque to the runner.
pub struct Prepared(Box<dyn std::any::Any + Send>);

impl Prepared {
    pub fn new<T: Send + 'static>(value: T) -> Self {
        Self(Box::new(value))
    }

    /// The projection's own value back; `None` when it is of another type.
    pub fn into_inner<T: 'static>(self) -> Option<T> {
        self.0.downcast::<T>().ok().map(|b| *b)
    }
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event is not what it claims to be: skipped or parked by policy.
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
    /// The database failed: the batch is rolled back and retried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Errors of the runner.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event stream error: {0}")]
    Stream(String),
    #[error("the lease of projection {0} is held by another runner")]
    LeaseLost(String),
    #[error("stopped after commit by a test hook")]
    StoppedByHook,
    /// The read model has applied events the stream does not have: the
    /// stream was restored from a backup older than the database, or lost
    /// its tail. Events appended from now on would get sequences at or
    /// below the checkpoint and be skipped, so the projection stops until
    /// the read model is rebuilt (or the stream catches up).
    #[error(
        "projection {projection} has applied up to sequence {checkpoint} but the stream ends at {stream_last}: \
         the stream is older than the read model (restored from an older backup?); rebuild the read model"
    )]
    CheckpointAhead { projection: String, checkpoint: u64, stream_last: u64 },
}

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied to the read model.
    pub applied: u64,
    /// Events at or below the checkpoint, already applied before.
    pub skipped_seen: u64,
    /// Undecodable events skipped or parked.
    pub undecodable: u64,
    /// Foreign events (a type that does not belong to the aggregate of its
    /// subject): always parked, never applied.
    pub foreign: u64,
    /// The checkpoint after the batch.
    pub checkpoint: u64,
}

/// Creates the checkpoint and parking tables if they do not exist. Portable
/// SQL for PostgreSQL and SQLite.
pub async fn ensure_schema(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_checkpoints (
            name TEXT PRIMARY KEY,
            last_sequence BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until_ms BIGINT NOT NULL DEFAULT 0,
            updated_at_ms BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS projection_parked (
            projection TEXT NOT NULL,
            sequence BIGINT NOT NULL,
            subject TEXT NOT NULL,
            event_type TEXT NOT NULL,
            error TEXT NOT NULL,
            payload BYTEA NOT NULL,
            parked_at_ms BIGINT NOT NULL,
            PRIMARY KEY (projection, sequence)
        )",
    )
    .execute(pool)
    .await?;
    Ok(())
}

fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The checkpoint of a projection (0 when it never ran).
pub async fn checkpoint(pool: &AnyPool, name: &str) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(s,)| u64::try_from(s).unwrap_or(0)).unwrap_or(0))
}

/// Parked events of a projection: (sequence, event type, error).
pub async fn parked(pool: &AnyPool, name: &str) -> Result<Vec<(u64, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT sequence, event_type, error FROM projection_parked WHERE projection = $1 ORDER BY sequence",
    )
    .bind(name)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(s, t, e)| (u64::try_from(s).unwrap_or(0), t, e)).collect())
}

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

struct ReplayJob {
    sequences: Vec<u64>,
    /// Told when the runner takes the job.
    picked: tokio::sync::oneshot::Sender<()>,
    reply: tokio::sync::oneshot::Sender<Result<ReplayOutcome, String>>,
}

/// A projection's parked events: listed from the database by anyone,
/// replayed through the runner that consumes the stream (so what it keeps
/// in memory stays true). Cheap to clone.
#[derive(Clone)]
pub struct ParkedEvents {
    name: String,
    pool: AnyPool,
    rule: EventRule,
    sender: tokio::sync::mpsc::Sender<ReplayJob>,
    jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ReplayJob>>>,
}

/// How long a replay waits for the runner to pick it up.
const REPLAY_PICKUP: Duration = Duration::from_secs(10);
/// How long a picked-up replay may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

impl ParkedEvents {
    fn new(name: &str, pool: AnyPool, rule: EventRule) -> Self {
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

/// Observable progress of a runner, and whether it is stalled.
#[derive(Debug, Default)]
pub struct Progress {
    pub checkpoint: AtomicU64,
    pub applied: AtomicU64,
    pub undecodable: AtomicU64,
    pub foreign: AtomicU64,
    /// The last lag sampled (stream last sequence minus checkpoint).
    pub lag: AtomicU64,
    /// Since when (ms since the epoch) every attempt failed; 0 when the
    /// last one succeeded.
    failing_since_ms: std::sync::atomic::AtomicI64,
    /// Since when the lag has been above `projection.max_lag`; 0 when not.
    lagging_since_ms: std::sync::atomic::AtomicI64,
    /// What the last failure was.
    last_error: std::sync::Mutex<String>,
}

impl Progress {
    /// A batch of events committed: the projection is not failing.
    fn record_success(&self) {
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// An attempt failed (the database, the stream, a checkpoint ahead).
    fn record_failure(&self, error: &ProjectionError) {
        let _ = self.failing_since_ms.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error.to_string();
    }

    /// The runner is on standby (another replica holds the lease): neither
    /// failing nor lagging is its to report.
    fn record_standby(&self) {
        self.failing_since_ms.store(0, Ordering::Relaxed);
        self.lagging_since_ms.store(0, Ordering::Relaxed);
    }

    /// A lag sample; `max_lag` 0 means no limit.
    fn record_lag(&self, lag: u64, max_lag: u64) {
        self.lag.store(lag, Ordering::Relaxed);
        if max_lag > 0 && lag > max_lag {
            let _ = self.lagging_since_ms.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        } else {
            self.lagging_since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Why the projection is stalled, if it is: every attempt has failed
    /// for `after` or longer, or the lag has stayed above the limit that
    /// long. A projection retrying forever in silence is what this catches.
    pub fn stalled(&self, after: Duration) -> Option<String> {
        self.stalled_at(now_ms(), after)
    }

    fn stalled_at(&self, now: i64, after: Duration) -> Option<String> {
        let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        let failing = self.failing_since_ms.load(Ordering::Relaxed);
        if failing > 0 && now.saturating_sub(failing) >= after_ms {
            let error = self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            return Some(format!("failing for {} s: {error}", (now - failing) / 1000));
        }
        let lagging = self.lagging_since_ms.load(Ordering::Relaxed);
        if lagging > 0 && now.saturating_sub(lagging) >= after_ms {
            return Some(format!(
                "{} events behind the stream for {} s",
                self.lag.load(Ordering::Relaxed),
                (now - lagging) / 1000
            ));
        }
        None
    }
}

/// Records whether a projection is stalled (gauge
/// `psirt.projection.stalled`, 1 while it is), for the service's watcher.
pub fn record_stalled(name: &str, stalled: bool) {
    metrics::stalled(name, stalled);
}

/// An event refused by the runner's [`EventRule`] before the projection saw it.
#[derive(Debug, Clone)]
struct Foreign {
    event: RecordedEvent,
    reason: String,
}

/// Splits events into those `rule` accepts (borrowed when all are) and the
/// foreign ones.
fn screen(
    rule: EventRule,
    events: &[RecordedEvent],
) -> (std::borrow::Cow<'_, [RecordedEvent]>, Vec<Foreign>) {
    if events.iter().all(|e| rule(&e.subject, &e.event_type).is_ok()) {
        return (std::borrow::Cow::Borrowed(events), Vec::new());
    }
    let mut accepted = Vec::with_capacity(events.len());
    let mut foreign = Vec::new();
    for event in events {
        match rule(&event.subject, &event.event_type) {
            Ok(()) => accepted.push(event.clone()),
            Err(reason) => foreign.push(Foreign { event: event.clone(), reason }),
        }
    }
    (std::borrow::Cow::Owned(accepted), foreign)
}

type AfterCommitHook = Arc<dyn Fn(u64) -> bool + Send + Sync>;

/// Runs one projection against the event stream.
pub struct ProjectionRunner<P> {
    projection: Arc<P>,
    pool: AnyPool,
    store: EventStore,
    settings: ProjectionSettings,
    owner: String,
    progress: Arc<Progress>,
    after_commit: Option<AfterCommitHook>,
    /// On SQLite: the turn of this database's projection transactions.
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Which event types each subject may carry; the rest is parked.
    event_rule: EventRule,
    /// The projection's parked events and the mailbox of replays this
    /// runner applies between its batches.
    parked: ParkedEvents,
}

/// SQLite has one writer at a time, and a transaction that finds the
/// database locked polls with growing sleeps (1, 2, 5, 10 ms, ...): the
/// reactions opening a case waited behind the case view's batch for tens of
/// milliseconds. The runners of one process take turns on an async lock per
/// database file instead and start the moment the one before commits.
fn sqlite_writer(pool: &AnyPool) -> Option<Arc<tokio::sync::Mutex<()>>> {
    type Writers = std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>;
    static WRITERS: std::sync::LazyLock<std::sync::Mutex<Writers>> =
        std::sync::LazyLock::new(Default::default);
    let url = pool.connect_options().database_url.to_string();
    if !url.starts_with("sqlite:") {
        return None;
    }
    let mut writers = WRITERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // The runners hold the locks; a database no runner uses any more
    // (a test's temporary file) leaves no entry behind.
    writers.retain(|_, writer| writer.strong_count() > 0);
    if let Some(writer) = writers.get(&url).and_then(std::sync::Weak::upgrade) {
        return Some(writer);
    }
    let writer = Arc::new(tokio::sync::Mutex::new(()));
    writers.insert(url, Arc::downgrade(&writer));
    Some(writer)
}

impl<P: Projection> ProjectionRunner<P> {
    pub fn new(projection: P, pool: AnyPool, store: EventStore, settings: ProjectionSettings) -> Self {
        let parked = ParkedEvents::new(projection.name(), pool.clone(), psirt_eventstore::ownership::check);
        Self {
            projection: Arc::new(projection),
            writer: sqlite_writer(&pool),
            parked,
            pool,
            store,
            settings,
            owner: uuid_like_owner(),
            progress: Arc::new(Progress::default()),
            after_commit: None,
            event_rule: psirt_eventstore::ownership::check,
        }
    }

    /// Replaces the platform's subject/type rule
    /// ([`psirt_eventstore::ownership::check`]), e.g. for a test stream of
    /// made-up aggregates. Events the rule refuses are parked, never applied.
    pub fn with_event_rule(mut self, rule: EventRule) -> Self {
        self.event_rule = rule;
        self.parked.rule = rule;
        self
    }

    /// The projection's parked events: listed from any replica, replayed by
    /// the runner that holds the lease.
    pub fn parked_events(&self) -> ParkedEvents {
        self.parked.clone()
    }

    /// Takes the replays of `parked` (a handle of an earlier runner of the
    /// same projection, one that a rebuild replaced), so the handle keeps
    /// working.
    pub fn with_parked_events(mut self, parked: ParkedEvents) -> Self {
        self.parked = ParkedEvents { rule: self.event_rule, ..parked };
        self
    }

    /// Test hook: called with the new checkpoint after each commit and
    /// before the acknowledgement; returning `true` stops the runner there,
    /// as a crash between commit and ack would.
    #[doc(hidden)]
    pub fn with_after_commit_hook(mut self, hook: impl Fn(u64) -> bool + Send + Sync + 'static) -> Self {
        self.after_commit = Some(Arc::new(hook));
        self
    }

    /// Shares `progress` with an earlier runner of the same projection
    /// (one that a rebuild replaced), so a watcher keeps following it.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = progress;
        self
    }

    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// The projection's name and progress, for a stall watcher.
    pub fn watched(&self) -> (String, Arc<Progress>) {
        (self.projection.name().to_owned(), self.progress())
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    fn consumer_name(&self) -> String {
        format!("proj-{}", self.projection.name())
    }

    /// Applies a batch of events in one transaction with the checkpoint.
    /// Events at or below the checkpoint are skipped.
    pub async fn apply_batch(&self, events: &[RecordedEvent]) -> Result<BatchOutcome, ProjectionError> {
        let _turn = self.write_turn().await;
        let (mut tx, checkpoint, now) = self.begin_batch(&self.pool).await?;
        // Batches arrive in stream order, so the new events are a suffix;
        // anything else (a test, a future caller) is sorted into a copy.
        let start = events.iter().position(|e| e.sequence > checkpoint).unwrap_or(events.len());
        let ordered = events[start..].windows(2).all(|w| w[0].sequence < w[1].sequence);
        let owned: Vec<RecordedEvent>;
        let fresh: &[RecordedEvent] = if ordered {
            &events[start..]
        } else {
            let mut copy: Vec<RecordedEvent> =
                events.iter().filter(|e| e.sequence > checkpoint).cloned().collect();
            copy.sort_by_key(|e| e.sequence);
            copy.dedup_by_key(|e| e.sequence);
            owned = copy;
            &owned
        };
        let (accepted, foreign) = screen(self.event_rule, fresh);
        let undecodable = self.projection.apply_batch(&mut tx, &accepted).await?;
        let skipped_seen = (events.len() - fresh.len()) as u64;
        let last = fresh.last().map(|e| e.sequence);
        self.finish_batch(tx, &accepted, undecodable, &foreign, last, checkpoint, now, skipped_seen).await
    }

    /// Opens a batch's transaction: locks the checkpoint row and checks the
    /// lease. Returns the transaction, the checkpoint and the time.
    /// Waits for this database's turn to write (SQLite only).
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writer {
            Some(writer) => Some(Arc::clone(writer).lock_owned().await),
            None => None,
        }
    }

    async fn begin_batch<'c>(
        &self,
        conn: impl sqlx::Acquire<'c, Database = sqlx::Any>,
    ) -> Result<(sqlx::Transaction<'c, sqlx::Any>, u64, i64), ProjectionError> {
        let name = self.projection.name();
        let mut tx = conn.begin().await?;
        let now = now_ms();
        // Write first: on SQLite a transaction that reads first and writes
        // later fails at once ("database is locked") when another writer
        // committed in between, instead of waiting for the lock; on
        // PostgreSQL this row lock serialises two runners' batches.
        let row: Option<(i64, Option<String>, i64)> = sqlx::query_as(
            "UPDATE projection_checkpoints SET updated_at_ms = updated_at_ms WHERE name = $1
             RETURNING last_sequence, lease_owner, lease_until_ms",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (checkpoint, lease_ok) = match &row {
            None => (0u64, true),
            Some((seq, owner, until)) => (
                u64::try_from(*seq).unwrap_or(0),
                owner.as_deref().is_none_or(|o| o == self.owner) || *until < now,
            ),
        };
        if !lease_ok {
            return Err(ProjectionError::LeaseLost(name.to_owned()));
        }
        Ok((tx, checkpoint, now))
    }

    /// Ends a batch's transaction: parks its foreign events, logs (and
    /// parks) its undecodable ones, moves the checkpoint to its last event
    /// (`last`), commits.
    #[allow(clippy::too_many_arguments)]
    async fn finish_batch(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        fresh: &[RecordedEvent],
        undecodable: Vec<(usize, DecodeError)>,
        foreign: &[Foreign],
        last: Option<u64>,
        mut checkpoint: u64,
        now: i64,
        skipped_seen: u64,
    ) -> Result<BatchOutcome, ProjectionError> {
        let name = self.projection.name();
        let mut outcome = BatchOutcome { skipped_seen, ..BatchOutcome::default() };
        outcome.applied = (fresh.len() - undecodable.len()) as u64;
        for Foreign { event, reason } in foreign {
            outcome.foreign += 1;
            metrics::foreign(name);
            tracing::error!(
                projection = name, sequence = event.sequence, subject = %event.subject,
                event_type = %event.event_type, actor = ?event.metadata.actor, reason = %reason,
                "projection parked a foreign event (a type that does not belong to its subject's aggregate)"
            );
            park(&mut tx, name, event, &format!("foreign event: {reason}"), now).await?;
        }
        for (index, err) in undecodable {
            let Some(event) = fresh.get(index) else { continue };
            outcome.undecodable += 1;
            metrics::undecodable(name);
            if let DecodeError::NewerVersion { version, known, .. } = err {
                // Never skipped, whatever the policy: a later build wrote it
                // and will read it; replay it once this service is upgraded.
                tracing::error!(
                    projection = name, sequence = event.sequence, event_type = %event.event_type,
                    version, known, error = %err,
                    "projection parked an event of a schema version this build cannot read"
                );
                park(&mut tx, name, event, &err.to_string(), now).await?;
                continue;
            }
            match self.settings.on_undecodable {
                UndecodablePolicy::Skip => {
                    warn!(projection = name, sequence = event.sequence, event_type = %event.event_type, error = %err, "projection skipped undecodable event");
                }
                UndecodablePolicy::Park => {
                    warn!(projection = name, sequence = event.sequence, event_type = %event.event_type, error = %err, "projection parked undecodable event");
                    park(&mut tx, name, event, &err.to_string(), now).await?;
                }
            }
        }
        if let Some(last) = last {
            checkpoint = last;
        }
        let lease_until = now + i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let updated = sqlx::query(
            "INSERT INTO projection_checkpoints (name, last_sequence, lease_owner, lease_until_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET last_sequence = excluded.last_sequence,
                 lease_owner = excluded.lease_owner, lease_until_ms = excluded.lease_until_ms,
                 updated_at_ms = excluded.updated_at_ms
             WHERE projection_checkpoints.lease_owner IS NULL
                OR projection_checkpoints.lease_owner = excluded.lease_owner
                OR projection_checkpoints.lease_until_ms < $5",
        )
        .bind(name)
        .bind(to_i64(checkpoint))
        .bind(&self.owner)
        .bind(lease_until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(ProjectionError::LeaseLost(name.to_owned()));
        }
        tx.commit().await?;
        if last.is_some() {
            self.progress.record_success();
        }
        outcome.checkpoint = checkpoint;
        self.progress.checkpoint.store(checkpoint, Ordering::Relaxed);
        self.progress.applied.fetch_add(outcome.applied, Ordering::Relaxed);
        self.progress.undecodable.fetch_add(outcome.undecodable, Ordering::Relaxed);
        self.progress.foreign.fetch_add(outcome.foreign, Ordering::Relaxed);
        metrics::applied(name, outcome.applied);
        Ok(outcome)
    }

    /// Writes a batch [`Projection::prepare`] folded, in one transaction
    /// with the checkpoint, which must still be `expected` (the last event
    /// before the batch): the batch was folded on that premise.
    async fn write_prepared(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        folded: Folded,
        expected: u64,
    ) -> Result<BatchOutcome, ProjectionError> {
        let Folded { accepted, last, prepared, foreign } = folded;
        let _turn = self.write_turn().await;
        let (mut tx, checkpoint, now) = self.begin_batch(&mut *conn).await?;
        if checkpoint != expected {
            return Err(ProjectionError::Stream(format!(
                "projection {} moved from checkpoint {expected} to {checkpoint} under a prepared batch",
                self.projection.name()
            )));
        }
        let undecodable = self.projection.write_prepared(&mut tx, prepared).await?;
        self.finish_batch(tx, &accepted, undecodable, &foreign, Some(last), checkpoint, now, 0).await
    }

    /// Takes (or renews) the lease without applying anything; `false` while
    /// another runner holds it.
    async fn acquire_lease(&self) -> Result<bool, ProjectionError> {
        match self.apply_batch(&[]).await {
            Ok(_) => Ok(true),
            Err(ProjectionError::LeaseLost(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so a standby runner takes over at once.
    async fn release_lease(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE projection_checkpoints SET lease_owner = NULL, lease_until_ms = 0 WHERE name = $1 AND lease_owner = $2",
        )
        .bind(self.projection.name())
        .bind(&self.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// (Re)creates the durable consumer so it delivers from checkpoint + 1.
    async fn consumer(
        &self,
        checkpoint: u64,
        batch_size: usize,
    ) -> Result<consumer::Consumer<pull::Config>, ProjectionError> {
        let js = self.store.jetstream();
        let stream = js
            .get_stream(self.store.stream_name())
            .await
            .map_err(|e| ProjectionError::Stream(format!("failed to get stream: {e}")))?;
        let name = self.consumer_name();
        // The consumer's own position may be ahead of the read model (a
        // rebuild, a restored database) or behind it; the checkpoint is the
        // truth, so start the consumer from it every time.
        match stream.delete_consumer(&name).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(ProjectionError::Stream(format!("failed to delete consumer {name}: {e}"))),
        }
        let deliver_policy = if checkpoint == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence { start_sequence: checkpoint + 1 }
        };
        stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("projection {}", self.projection.name())),
                deliver_policy,
                ack_policy: consumer::AckPolicy::All,
                ack_wait: self.settings.ack_wait,
                max_ack_pending: i64::try_from(batch_size * 2).unwrap_or(i64::MAX),
                filter_subject: format!("{}.>", psirt_eventstore::SUBJECT_PREFIX),
                ..Default::default()
            })
            .await
            .map_err(|e| ProjectionError::Stream(format!("failed to create consumer {name}: {e}")))
    }

    /// Runs until `shutdown` turns true. Transient failures (NATS or the
    /// database down) are logged and retried; the runner never stalls
    /// silently.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        metrics::declare(self.projection.name());
        ensure_schema(&self.pool).await?;
        self.create_deferrable_indexes().await?;
        let mut last_ahead_log = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let result = tokio::select! {
                r = self.run_once(None) => r,
                _ = shutdown.changed() => Ok(()),
            };
            match &result {
                Err(ProjectionError::LeaseLost(_)) => self.progress.record_standby(),
                Err(ProjectionError::StoppedByHook) | Ok(()) => {}
                Err(e) => self.progress.record_failure(e),
            }
            match result {
                Ok(()) => {}
                Err(ProjectionError::StoppedByHook) => return Err(ProjectionError::StoppedByHook),
                Err(ProjectionError::LeaseLost(name)) => {
                    debug!(projection = %name, "projection on standby, another runner holds the lease");
                }
                Err(e @ ProjectionError::CheckpointAhead { .. }) => {
                    // Loud, but not once per retry pause.
                    if last_ahead_log
                        .is_none_or(|at: tokio::time::Instant| at.elapsed() >= Duration::from_secs(60))
                    {
                        tracing::error!(projection = self.projection.name(), error = %e, "projection stopped");
                        last_ahead_log = Some(tokio::time::Instant::now());
                    }
                }
                Err(e) => {
                    warn!(projection = self.projection.name(), error = %e, "projection failed, retrying")
                }
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.retry_pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        let _ = self.release_lease().await;
        Ok(())
    }

    /// Applies everything up to `target` (e.g. the stream's last sequence at
    /// the start of a rebuild), then returns.
    pub async fn catch_up(&self, target: u64) -> Result<(), ProjectionError> {
        ensure_schema(&self.pool).await?;
        if checkpoint(&self.pool, self.projection.name()).await? >= target {
            return Ok(());
        }
        // Another runner (a service still running, or one that died without
        // releasing its lease) may hold the lease: wait for it to run out.
        let start = tokio::time::Instant::now();
        loop {
            match self.run_once(Some(target)).await {
                Err(ProjectionError::LeaseLost(name)) if start.elapsed() < self.settings.lease * 3 => {
                    info!(projection = %name, "waiting for the projection lease");
                    tokio::time::sleep(self.settings.retry_pause).await;
                }
                other => return other,
            }
        }
    }

    /// One consumer session: pulls and applies batches until the stream
    /// errors, or `until` is reached.
    async fn run_once(&self, until: Option<u64>) -> Result<(), ProjectionError> {
        if !self.acquire_lease().await? {
            return Err(ProjectionError::LeaseLost(self.projection.name().to_owned()));
        }
        let start = checkpoint(&self.pool, self.projection.name()).await?;
        self.progress.checkpoint.store(start, Ordering::Relaxed);
        let stream_last =
            self.store.stream_last_sequence().await.map_err(|e| ProjectionError::Stream(e.to_string()))?;
        if start > stream_last {
            return Err(ProjectionError::CheckpointAhead {
                projection: self.projection.name().to_owned(),
                checkpoint: start,
                stream_last,
            });
        }
        self.projection.session_started(start, stream_last);
        // Catching up to a target (a rebuild) takes larger batches.
        let batch_size =
            if until.is_some() { self.settings.rebuild_batch_size } else { self.settings.batch_size };
        let consumer = self.consumer(start, batch_size).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| ProjectionError::Stream(format!("failed to pull: {e}")))?;
        info!(projection = self.projection.name(), checkpoint = start, "projection consuming");
        let mut pulled = Pulled {
            consumer,
            messages,
            batch_size,
            last_lag_sample: None,
            catching_up: until.is_some(),
            next_delivery: 1,
        };
        if let Some(target) = until
            && P::PREPARES
        {
            let result = self.run_prepared(&mut pulled, start, target).await;
            if result.is_err() {
                self.projection.prepared_discarded();
            }
            return result;
        }
        loop {
            let Some(batch) = self.next_batch(&mut pulled).await? else { continue };
            let events = events_of(&batch)?;
            let outcome = self.apply_batch(&events).await?;
            if let Some(hook) = &self.after_commit
                && hook(outcome.checkpoint)
            {
                return Err(ProjectionError::StoppedByHook);
            }
            self.acknowledge(&mut pulled, &batch, outcome.checkpoint).await?;
            if let Some(target) = until
                && outcome.checkpoint >= target
            {
                return Ok(());
            }
        }
    }

    /// Catches up to `target` with prepared batches: while batch N is
    /// written and committed here, batch N+1 is gathered and then folded on
    /// a task of its own.
    async fn run_prepared(
        &self,
        pulled: &mut Pulled,
        start: u64,
        target: u64,
    ) -> Result<(), ProjectionError> {
        type Folding =
            tokio::task::JoinHandle<(Vec<jetstream::Message>, Result<Option<Folded>, ProjectionError>)>;
        /// A batch on its way: folding, then ready for its transaction.
        struct Next<F> {
            fresh: F,
            /// The checkpoint it is folded on.
            before: u64,
            batch: Vec<jetstream::Message>,
        }
        let mut ready: Option<Next<Folded>> = None;
        let mut prepared_up_to = start;
        // One connection writes every batch (no hand-over through the pool
        // per batch); the folds read through the pool.
        let mut writer = self.pool.acquire().await?;
        loop {
            let write = async {
                match ready.take() {
                    Some(Next { fresh: folded, before, batch }) => {
                        let written = self.write_prepared(&mut writer, folded, before).await;
                        Some(written.map(|outcome| (outcome, batch)))
                    }
                    None => None,
                }
            };
            let next = async {
                if prepared_up_to >= target {
                    return Ok(None);
                }
                let Some(batch) = self.next_batch(pulled).await? else { return Ok(None) };
                let projection = Arc::clone(&self.projection);
                let pool = self.pool.clone();
                let after = prepared_up_to;
                let rule = self.event_rule;
                // Decoding the messages is CPU work too: on the folding task,
                // not here, where the write of the batch before is driven.
                let folding: Folding = tokio::spawn(async move {
                    let folded = async {
                        let mut fresh: Vec<RecordedEvent> =
                            events_of(&batch)?.into_iter().filter(|e| e.sequence > after).collect();
                        fresh.sort_by_key(|e| e.sequence);
                        fresh.dedup_by_key(|e| e.sequence);
                        let Some(last) = fresh.last().map(|e| e.sequence) else { return Ok(None) };
                        let (accepted, foreign) = screen(rule, &fresh);
                        let accepted = accepted.into_owned();
                        let prepared = projection.prepare(&pool, &accepted).await?;
                        Ok(Some(Folded { accepted, last, prepared, foreign }))
                    }
                    .await;
                    (batch, folded)
                });
                Ok::<_, ProjectionError>(Some(Next { fresh: folding, before: after, batch: Vec::new() }))
            };
            let (written, next) = tokio::join!(write, next);
            // Settled before anything returns: the caller drops what was
            // carried over, and a fold finishing later would carry its batch
            // over again.
            let settle = |next: Result<Option<Next<Folding>>, ProjectionError>| async move {
                if let Ok(Some(Next { fresh: task, .. })) = next {
                    task.abort();
                    let _ = task.await;
                }
            };
            if let Some(written) = written {
                let (outcome, batch) = match written {
                    Ok(written) => written,
                    Err(e) => {
                        settle(next).await;
                        return Err(e);
                    }
                };
                self.projection.prepared_committed(outcome.checkpoint);
                if let Some(hook) = &self.after_commit
                    && hook(outcome.checkpoint)
                {
                    settle(next).await;
                    return Err(ProjectionError::StoppedByHook);
                }
                if let Err(e) = self.acknowledge(pulled, &batch, outcome.checkpoint).await {
                    settle(next).await;
                    return Err(e);
                }
            }
            match next? {
                Some(Next { fresh: task, before, .. }) => {
                    let (batch, folded) = task
                        .await
                        .map_err(|e| ProjectionError::Stream(format!("folding a batch failed: {e}")))?;
                    // Nothing new in a batch of redeliveries: left unacknowledged.
                    if let Some(folded) = folded? {
                        prepared_up_to = folded.last;
                        ready = Some(Next { fresh: folded, before, batch });
                    }
                }
                None if prepared_up_to >= target => return Ok(()),
                None => {}
            }
        }
    }

    /// The next batch: waits for its first event (renewing the lease while
    /// idle: `None` after each renewal), then gathers what arrives within
    /// `max_batch_wait`, up to the batch size.
    async fn next_batch(
        &self,
        pulled: &mut Pulled,
    ) -> Result<Option<Vec<jetstream::Message>>, ProjectionError> {
        let renew_every = self.settings.lease / 3;
        let waited = {
            let mut jobs = self.parked.jobs.lock().await;
            tokio::select! {
                biased;
                job = jobs.recv() => Err(job),
                next = tokio::time::timeout(renew_every, pulled.messages.next()) => Ok(next),
            }
        };
        let waited = match waited {
            Ok(next) => next,
            Err(job) => {
                // A replay asked for between two batches: applied by this
                // runner, like a batch of its own.
                if let Some(job) = job
                    && job.picked.send(()).is_ok()
                {
                    let outcome = self.replay_parked(&job.sequences).await;
                    let answer = outcome.as_ref().map(Clone::clone).map_err(ToString::to_string);
                    let _ = job.reply.send(answer);
                    outcome?;
                }
                return Ok(None);
            }
        };
        let first = match waited {
            Err(_) => {
                if !self.acquire_lease().await? {
                    return Err(ProjectionError::LeaseLost(self.projection.name().to_owned()));
                }
                // idle: refresh the lag so it never shows a stale backlog
                let done = self.progress.checkpoint.load(Ordering::Relaxed);
                self.sample_backlog(pulled, done).await;
                return Ok(None);
            }
            Ok(None) => return Err(ProjectionError::Stream("message stream ended".to_owned())),
            Ok(Some(Err(e))) => return Err(ProjectionError::Stream(e.to_string())),
            Ok(Some(Ok(msg))) => msg,
        };
        // Gather what arrives within a short window: every transaction
        // has a fixed cost (begin, checkpoint, commit, a thread hop per
        // statement), so under load fewer, larger batches win; when idle,
        // an event waits at most `max_batch_wait`.
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.settings.max_batch_wait;
        while batch.len() < pulled.batch_size {
            let next = match pulled.messages.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(deadline, pulled.messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(msg)) => batch.push(msg),
                Some(Err(e)) => return Err(ProjectionError::Stream(e.to_string())),
                None => break,
            }
        }
        check_delivery_order(&batch, &mut pulled.next_delivery)?;
        Ok(Some(batch))
    }

    /// Replays parked events (`sequences`, or every one of the projection
    /// when empty, oldest first, at most [`REPLAY_LIMIT`]): each is read
    /// again from the stream (not from the parked copy), checked against
    /// the event rule again (a foreign event stays parked, whatever it
    /// claims: a replay never launders a forged event), and applied in a
    /// transaction of its own; one that applies leaves the parking, one that
    /// still fails stays with the new error. The checkpoint does not move.
    async fn replay_parked(&self, sequences: &[u64]) -> Result<ReplayOutcome, ProjectionError> {
        let name = self.projection.name();
        let mut outcome = ReplayOutcome::default();
        let wanted = if sequences.is_empty() {
            self.parked.list(0, REPLAY_LIMIT).await?
        } else {
            let mut wanted = Vec::with_capacity(sequences.len());
            for sequence in sequences {
                match self.parked.get(*sequence).await? {
                    Some(row) => wanted.push(row),
                    None => outcome.not_parked.push(*sequence),
                }
            }
            wanted
        };
        for row in &wanted {
            let event = match self.store.get(row.sequence).await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    outcome.still_parked.push((row.sequence, "no longer in the stream".to_owned()));
                    continue;
                }
                Err(e) => return Err(ProjectionError::Stream(e.to_string())),
            };
            if let Err(reason) = (self.event_rule)(&event.subject, &event.event_type) {
                tracing::error!(
                    projection = name, sequence = event.sequence, subject = %event.subject,
                    event_type = %event.event_type, reason = %reason,
                    "replay refused a foreign event: it stays parked"
                );
                metrics::foreign(name);
                self.set_parked_error(row.sequence, &format!("foreign event: {reason}")).await?;
                outcome.refused.push((row.sequence, reason));
                continue;
            }
            let _turn = self.write_turn().await;
            let (mut tx, _, _) = self.begin_batch(&self.pool).await?;
            let undecodable = self.projection.apply_batch(&mut tx, std::slice::from_ref(&event)).await?;
            if let Some((_, err)) = undecodable.into_iter().next() {
                tx.rollback().await?;
                drop(_turn);
                self.set_parked_error(row.sequence, &err.to_string()).await?;
                outcome.still_parked.push((row.sequence, err.to_string()));
                continue;
            }
            sqlx::query("DELETE FROM projection_parked WHERE projection = $1 AND sequence = $2")
                .bind(name)
                .bind(to_i64(row.sequence))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            info!(projection = name, sequence = row.sequence, event_type = %event.event_type, "parked event replayed");
            outcome.replayed.push(row.sequence);
        }
        Ok(outcome)
    }

    async fn set_parked_error(&self, sequence: u64, error: &str) -> Result<(), sqlx::Error> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE projection_parked SET error = $1 WHERE projection = $2 AND sequence = $3")
            .bind(error)
            .bind(self.projection.name())
            .bind(to_i64(sequence))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Acknowledges a committed batch and samples the lag now and then.
    async fn acknowledge(
        &self,
        pulled: &mut Pulled,
        batch: &[jetstream::Message],
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        // AckPolicy::All: acknowledging the last message covers the batch.
        if let Some(last) = batch.last() {
            last.ack().await.map_err(|e| ProjectionError::Stream(format!("failed to ack: {e}")))?;
        }
        // The lag metric costs a request to the server: sample it once a
        // second rather than after every batch, off the hot path.
        if pulled.last_lag_sample.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            pulled.last_lag_sample = Some(tokio::time::Instant::now());
            self.sample_backlog(pulled, checkpoint).await;
        }
        Ok(())
    }

    /// Records the lag (stream last sequence minus `checkpoint`) and the
    /// consumer's pending messages (not yet delivered plus delivered and
    /// unacknowledged). Two requests to the server: callers sample it.
    async fn sample_backlog(&self, pulled: &mut Pulled, checkpoint: u64) {
        let name = self.projection.name();
        if let Ok(last) = self.store.stream_last_sequence().await {
            let lag = last.saturating_sub(checkpoint);
            metrics::lag(name, lag);
            let max_lag = if pulled.catching_up { 0 } else { self.settings.max_lag };
            self.progress.record_lag(lag, max_lag);
        }
        if let Ok(info) = pulled.consumer.info().await {
            let pending = info.num_pending.saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(0));
            metrics::consumer_pending(name, &self.consumer_name(), pending);
        }
    }

    /// Resets the read model and its checkpoint: the next run replays the
    /// stream from sequence 1.
    pub async fn reset(&self) -> Result<(), ProjectionError> {
        ensure_schema(&self.pool).await?;
        let mut tx = self.pool.begin().await?;
        self.projection.reset(&mut tx).await?;
        sqlx::query("DELETE FROM projection_parked WHERE projection = $1")
            .bind(self.projection.name())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE projection_checkpoints SET last_sequence = 0 WHERE name = $1")
            .bind(self.projection.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.progress.checkpoint.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Reset, then replay up to the stream's current last sequence.
    /// `on_progress` is called with (checkpoint, target) after each batch.
    pub async fn rebuild(
        &self,
        on_progress: impl Fn(u64, u64) + Send + Sync,
    ) -> Result<u64, ProjectionError> {
        self.reset().await?;
        let target =
            self.store.stream_last_sequence().await.map_err(|e| ProjectionError::Stream(e.to_string()))?;
        if target == 0 {
            on_progress(0, 0);
            return Ok(0);
        }
        let progress = self.progress();
        let watcher = async {
            loop {
                on_progress(progress.checkpoint.load(Ordering::Relaxed), target);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            r = self.catch_up(target) => r?,
            () = watcher => {}
        }
        on_progress(target, target);
        Ok(target)
    }

    /// [`ProjectionRunner::rebuild`] for a read model nobody queries in the
    /// meantime (`psirt-<service> rebuild` with the service stopped): the
    /// projection's [`deferrable indexes`](Projection::deferrable_indexes)
    /// are dropped first and built once at the end, a bulk load instead of
    /// an update per row. Queries during the rebuild stay correct, only
    /// slower. Interrupted, it leaves the indexes missing until the next
    /// rebuild or the next start of a runner, which creates them.
    pub async fn rebuild_offline(
        &self,
        on_progress: impl Fn(u64, u64) + Send + Sync,
    ) -> Result<u64, ProjectionError> {
        for index in self.projection.deferrable_indexes() {
            sqlx::query(&format!("DROP INDEX IF EXISTS {}", index.name)).execute(&self.pool).await?;
        }
        let target = self.rebuild(on_progress).await?;
        self.create_deferrable_indexes().await?;
        Ok(target)
    }

    /// Creates the projection's deferrable indexes that are missing.
    async fn create_deferrable_indexes(&self) -> Result<(), sqlx::Error> {
        for index in self.projection.deferrable_indexes() {
            debug!(projection = self.projection.name(), index = index.name, "creating index if missing");
            sqlx::query(index.create).execute(&self.pool).await?;
        }
        Ok(())
    }
}

/// A folded batch: the events the rule accepted, the last sequence of the
/// batch, what the projection prepared from them, and the foreign events.
struct Folded {
    accepted: Vec<RecordedEvent>,
    last: u64,
    prepared: Prepared,
    foreign: Vec<Foreign>,
}

/// Parks one event in the batch's transaction.
async fn park(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A runner's consumer session.
struct Pulled {
    consumer: consumer::Consumer<pull::Config>,
    messages: pull::Stream,
    batch_size: usize,
    last_lag_sample: Option<tokio::time::Instant>,
    /// Catching up to a target (a rebuild): a large lag is the point, not a stall.
    catching_up: bool,
    /// The consumer sequence the next new delivery must have (the
    /// consumer is created anew for each session, so it starts at 1).
    next_delivery: u64,
}

/// Refuses a batch that skips deliveries of the consumer. Messages the
/// server delivered to a pull request whose answer was lost (the server
/// the client was connected to died) come again only after `ack_wait`;
/// meanwhile later messages arrive, and applying them would move the
/// checkpoint (and, with `AckPolicy::All`, the acknowledgement) past the
/// lost ones for good. A gap ends the session instead: the next one starts
/// from the checkpoint and nothing is skipped. A redelivery keeps its
/// consumer sequence and is not a gap.
fn check_delivery_order(batch: &[jetstream::Message], next: &mut u64) -> Result<(), ProjectionError> {
    for msg in batch {
        let info = msg.info().map_err(|e| ProjectionError::Stream(format!("bad message metadata: {e}")))?;
        let delivery = info.consumer_sequence;
        if delivery > *next {
            return Err(ProjectionError::Stream(format!(
                "deliveries {next}..{} of the consumer never arrived (stream sequence {} came first): \
                 starting again from the checkpoint",
                delivery - 1,
                info.stream_sequence
            )));
        }
        if delivery == *next {
            *next += 1;
        }
    }
    Ok(())
}

/// The events of a batch of messages.
fn events_of(batch: &[jetstream::Message]) -> Result<Vec<RecordedEvent>, ProjectionError> {
    batch
        .iter()
        .map(|msg| {
            let info =
                msg.info().map_err(|e| ProjectionError::Stream(format!("bad message metadata: {e}")))?;
            Ok(RecordedEvent::from_parts(
                info.stream_sequence,
                msg.subject.to_string(),
                msg.headers.clone().unwrap_or_default(),
                msg.payload.clone(),
                info.published,
            ))
        })
        .collect()
}

fn uuid_like_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    format!("{host}/{}/{}", std::process::id(), time::OffsetDateTime::now_utc().unix_timestamp_nanos())
}

mod metrics {
    use std::sync::OnceLock;

    use opentelemetry::KeyValue;
    use opentelemetry::metrics::{Counter, Gauge};

    struct Instruments {
        applied: Counter<u64>,
        undecodable: Counter<u64>,
        foreign: Counter<u64>,
        lag: Gauge<u64>,
        pending: Gauge<u64>,
        stalled: Gauge<u64>,
    }

    fn instruments() -> &'static Instruments {
        static I: OnceLock<Instruments> = OnceLock::new();
        I.get_or_init(|| {
            let meter = opentelemetry::global::meter("psirt");
            Instruments {
                applied: meter
                    .u64_counter("psirt.projection.events_applied")
                    .with_description("events applied to a read model")
                    .build(),
                undecodable: meter
                    .u64_counter("psirt.projection.events_undecodable")
                    .with_description("events a projection could not decode (skipped or parked)")
                    .build(),
                foreign: meter
                    .u64_counter("psirt.projection.events_foreign")
                    .with_description(
                        "events parked because their type does not belong to the aggregate of their subject",
                    )
                    .build(),
                lag: meter
                    .u64_gauge("psirt.projection.lag")
                    .with_description("stream last sequence minus the projection checkpoint")
                    .build(),
                stalled: meter
                    .u64_gauge("psirt.projection.stalled")
                    .with_description(
                        "1 while a projection is stalled (failing or too far behind for projection.stalled_after_ms)",
                    )
                    .build(),
                pending: meter
                    .u64_gauge("psirt.projection.consumer_pending")
                    .with_description(
                        "messages of the projection's consumer not yet delivered or not yet acknowledged",
                    )
                    .build(),
            }
        })
    }

    pub(crate) fn applied(name: &str, n: u64) {
        if n > 0 {
            instruments().applied.add(n, &[KeyValue::new("projection", name.to_owned())]);
        }
    }

    /// Exposes the projection's counters at zero before its first event, so
    /// rates and alerts see the series from the start.
    pub(crate) fn declare(name: &str) {
        let labels = [KeyValue::new("projection", name.to_owned())];
        instruments().applied.add(0, &labels);
        instruments().undecodable.add(0, &labels);
        instruments().foreign.add(0, &labels);
    }

    pub(crate) fn foreign(name: &str) {
        instruments().foreign.add(1, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn undecodable(name: &str) {
        instruments().undecodable.add(1, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn stalled(name: &str, stalled: bool) {
        instruments().stalled.record(u64::from(stalled), &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn lag(name: &str, lag: u64) {
        instruments().lag.record(lag, &[KeyValue::new("projection", name.to_owned())]);
    }

    pub(crate) fn consumer_pending(name: &str, consumer: &str, pending: u64) {
        instruments().pending.record(
            pending,
            &[KeyValue::new("projection", name.to_owned()), KeyValue::new("consumer", consumer.to_owned())],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_pool(path: &std::path::Path) -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("sqlite pool")
    }

    #[test]
    fn a_projection_failing_or_lagging_for_long_enough_is_stalled() {
        let after = Duration::from_secs(30);
        let progress = Progress::default();
        assert_eq!(progress.stalled_at(now_ms(), after), None, "a new runner is fine");
        let error = ProjectionError::Stream("disk full".to_owned());
        progress.record_failure(&error);
        let since = progress.failing_since_ms.load(Ordering::Relaxed);
        assert_eq!(progress.stalled_at(since + 29_999, after), None, "not yet");
        // More failures keep the first time.
        progress.record_failure(&error);
        let reason = progress.stalled_at(since + 30_000, after).expect("stalled after 30 s of failures");
        assert!(reason.contains("disk full") && reason.contains("30 s"), "{reason}");
        progress.record_success();
        assert_eq!(progress.stalled_at(since + 60_000, after), None, "a committed batch ends it");

        progress.record_lag(500, 1000);
        assert_eq!(progress.stalled_at(now_ms() + 60_000, after), None, "within the limit");
        progress.record_lag(5000, 1000);
        let since = progress.lagging_since_ms.load(Ordering::Relaxed);
        progress.record_lag(6000, 1000);
        assert_eq!(progress.stalled_at(since + 10_000, after), None);
        let reason = progress.stalled_at(since + 31_000, after).expect("stalled behind the stream");
        assert!(reason.contains("6000 events behind"), "{reason}");
        progress.record_lag(6000, 0);
        assert_eq!(progress.stalled_at(since + 31_000, after), None, "max_lag 0: no limit");
        progress.record_failure(&error);
        progress.record_standby();
        assert_eq!(progress.stalled_at(now_ms() + 60_000, after), None, "a standby runner reports nothing");
    }

    #[tokio::test]
    async fn runners_of_one_sqlite_file_share_one_writer_turn() {
        let dir = std::env::temp_dir().join(format!("psirt-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (a, b) = (sqlite_pool(&dir.join("a.db")).await, sqlite_pool(&dir.join("b.db")).await);
        let first = sqlite_writer(&a).expect("sqlite has a writer turn");
        let second = sqlite_writer(&a.clone()).expect("sqlite has a writer turn");
        assert!(Arc::ptr_eq(&first, &second), "one lock per database file");
        let other = sqlite_writer(&b).expect("sqlite has a writer turn");
        assert!(!Arc::ptr_eq(&first, &other), "another file, another lock");
        // While one holds the turn, the other waits for it.
        let turn = Arc::clone(&first).lock_owned().await;
        assert!(second.try_lock().is_err());
        drop(turn);
        assert!(second.try_lock().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
