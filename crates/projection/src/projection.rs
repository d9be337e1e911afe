//! What a read model implements: [`Projection`], and [`PreparesBatches`]
//! for one whose rebuild folds batches ahead of their transaction.

use std::future::Future;
use std::pin::Pin;

use psirt_eventstore::{DecodeError, RecordedEvent};
use sqlx::{AnyConnection, AnyPool};
use tracing::Instrument as _;

use crate::runner::{ProjectionError, ProjectionRunner, Pulled};
use crate::telemetry::event_span;

/// A read model fed by events.
pub trait Projection: Send + Sync + Sized + 'static {
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

    /// Indexes that the projection's prepared writes ([`PreparesBatches::
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

    /// Whether the projection folds batches ahead of their transaction:
    /// `None`, or, for a projection that implements [`PreparesBatches`],
    /// `Some(Pipeline::prepared())`. A rebuild then folds batch N+1 while
    /// batch N is written and committed, so the fold and the database work
    /// side by side instead of taking turns.
    const PIPELINE: Option<Pipeline<Self>> = None;

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

/// A projection whose rebuild folds batches ahead of their transaction
/// ([`PreparesBatches::prepare`], [`PreparesBatches::write_prepared`]); it
/// says so with [`Projection::PIPELINE`].
pub trait PreparesBatches: Projection {
    /// A batch folded by [`PreparesBatches::prepare`], what
    /// [`PreparesBatches::write_prepared`] writes.
    type Prepared: Send + 'static;

    /// Folds a batch of new events (all above the checkpoint, in stream
    /// order) in memory, reading what it needs through `reader`, and returns
    /// what [`PreparesBatches::write_prepared`] will write. The batch before
    /// it may not be committed yet (its writes are invisible to `reader`):
    /// the projection carries over, in memory, what that batch changed and
    /// reads it from there, until [`PreparesBatches::prepared_committed`]
    /// says the database has it.
    fn prepare(
        &self,
        reader: &AnyPool,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<Self::Prepared, sqlx::Error>> + Send;

    /// Writes a prepared batch inside its transaction; returns the
    /// undecodable events by index, as [`Projection::apply_batch`].
    fn write_prepared(
        &self,
        conn: &mut AnyConnection,
        prepared: Self::Prepared,
    ) -> impl Future<Output = Result<Vec<(usize, DecodeError)>, sqlx::Error>> + Send;

    /// The batches prepared up to `checkpoint` are committed: what was
    /// carried over for them can go.
    fn prepared_committed(&self, checkpoint: u64) {
        let _ = checkpoint;
    }

    /// Prepared batches will not be written (a failure; the runner starts
    /// again from the checkpoint): whatever was carried over must go.
    fn prepared_discarded(&self) {}
}

/// How a rebuild of `P` runs prepared batches, see [`Projection::PIPELINE`]:
/// the runner's pipelined loop for a projection that implements
/// [`PreparesBatches`], which a runner of any projection can call.
pub struct Pipeline<P>(pub(crate) RunPipelined<P>);

/// Catches `runner` up from `start` (its checkpoint) to `target` with
/// prepared batches pulled from the session.
pub(crate) type RunPipelined<P> =
    for<'a> fn(
        &'a ProjectionRunner<P>,
        &'a mut Pulled,
        u64,
        u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), ProjectionError>> + Send + 'a>>;

impl<P: PreparesBatches> Pipeline<P> {
    /// Rebuilds fold batches with [`PreparesBatches::prepare`].
    pub const fn prepared() -> Self {
        Self(|runner, pulled, start, target| Box::pin(runner.run_prepared(pulled, start, target)))
    }
}

/// A secondary index of a read model, see [`Projection::deferrable_indexes`].
#[derive(Debug, Clone, Copy)]
pub struct DeferrableIndex {
    pub name: &'static str,
    /// `CREATE [UNIQUE] INDEX IF NOT EXISTS <name> ON ...`
    pub create: &'static str,
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
