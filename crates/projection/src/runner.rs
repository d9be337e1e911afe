//! [`ProjectionRunner`]: one projection against the event stream. A session
//! takes the lease, (re)creates the durable consumer from the checkpoint and
//! applies batch after batch, each in one transaction with the checkpoint,
//! acknowledged after the commit; any failure ends the session and the next
//! one starts again from the checkpoint.
//!
//! - `runner/batch.rs`: one batch's transaction (checkpoint, lease, parking).
//! - `runner/pipelined.rs`: a rebuild with batches folded ahead of their
//!   transaction ([`PreparesBatches`](crate::PreparesBatches)).
//! - `runner/replay.rs`: the replay of parked events.

mod batch;
mod pipelined;
mod replay;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, pull},
};
use batch::sqlite_writer;
use futures::{FutureExt, StreamExt};
use psirt_eventstore::{EventStore, RecordedEvent};
use sqlx::AnyPool;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::checkpoint::{self, ensure_schema};
use crate::parked::{self, ParkedEvents};
use crate::telemetry::metrics;
use crate::{EventRule, Pipeline, Progress, Projection, ProjectionSettings};

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
    pub fn with_parked_events(mut self, mut parked: ParkedEvents) -> Self {
        parked.rule = self.event_rule;
        self.parked = parked;
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

    /// Where the projection's read model stands, for reads that must
    /// reflect a stream position.
    pub fn position(&self) -> crate::ReadModelPosition {
        crate::ReadModelPosition::new(
            self.projection.name(),
            self.progress(),
            self.pool.clone(),
            self.store.clone(),
        )
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
        checkpoint::release_lease(&self.pool, self.projection.name(), &self.owner).await
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
                filter_subject: crate::position::consumed_subjects(),
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
        self.progress.record_leading(false);
        let _ = self.release_lease().await;
        Ok(())
    }

    /// Applies everything up to `target` (e.g. the stream's last sequence at
    /// the start of a rebuild), then returns.
    pub async fn catch_up(&self, target: u64) -> Result<(), ProjectionError> {
        ensure_schema(&self.pool).await?;
        if checkpoint::checkpoint(&self.pool, self.projection.name()).await? >= target {
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
        self.progress.record_leading(true);
        let start = checkpoint::checkpoint(&self.pool, self.projection.name()).await?;
        self.progress.reached(start);
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
            && let Some(Pipeline(run_prepared)) = P::PIPELINE
        {
            return run_prepared(self, &mut pulled, start, target).await;
        }
        loop {
            let Some(batch) = self.next_batch(&mut pulled).await? else { continue };
            let (events, last) = events_of(batch)?;
            let outcome = self.apply_batch(&events).await?;
            if let Some(hook) = &self.after_commit
                && hook(outcome.checkpoint)
            {
                return Err(ProjectionError::StoppedByHook);
            }
            self.acknowledge(&mut pulled, last.as_ref(), outcome.checkpoint).await?;
            if let Some(target) = until
                && outcome.checkpoint >= target
            {
                return Ok(());
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

    /// Acknowledges a committed batch by its `last` message and samples the
    /// lag now and then.
    async fn acknowledge(
        &self,
        pulled: &mut Pulled,
        last: Option<&jetstream::Message>,
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        // AckPolicy::All: acknowledging the last message covers the batch.
        if let Some(last) = last {
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
        parked::clear(&mut tx, self.projection.name()).await?;
        checkpoint::rewind(&mut tx, self.projection.name()).await?;
        tx.commit().await?;
        self.progress.reached(0);
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

/// A runner's consumer session.
pub(crate) struct Pulled {
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

/// Takes a batch of messages apart into its events (headers and payload
/// moved, not copied: a rebuild turns millions of messages into events)
/// and its last message, which acknowledges the batch (`AckPolicy::All`).
fn events_of(
    batch: Vec<jetstream::Message>,
) -> Result<(Vec<RecordedEvent>, Option<jetstream::Message>), ProjectionError> {
    let mut events = Vec::with_capacity(batch.len());
    let mut last = None;
    for mut msg in batch {
        let (sequence, published) = {
            let info =
                msg.info().map_err(|e| ProjectionError::Stream(format!("bad message metadata: {e}")))?;
            (info.stream_sequence, info.published)
        };
        let headers = msg.message.headers.take().unwrap_or_default();
        let payload = std::mem::take(&mut msg.message.payload);
        events.push(RecordedEvent::from_parts(
            sequence,
            msg.subject.to_string(),
            headers,
            payload,
            published,
        ));
        last = Some(msg);
    }
    Ok((events, last))
}

fn uuid_like_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    format!("{host}/{}/{}", std::process::id(), time::OffsetDateTime::now_utc().unix_timestamp_nanos())
}
