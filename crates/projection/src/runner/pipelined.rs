//! A rebuild of a projection that [`PreparesBatches`]: while batch N is
//! written and committed, batch N+1 is gathered and folded on a task of its
//! own, so the fold and the database work side by side.

use std::sync::Arc;

use async_nats::jetstream;
use psirt_eventstore::RecordedEvent;

use super::batch::{Foreign, screen_owned};
use super::{BatchOutcome, ProjectionError, ProjectionRunner, Pulled, events_of};
use crate::PreparesBatches;

/// A folded batch: the events the rule accepted, the last sequence of the
/// batch, what the projection prepared from them, and the foreign events.
struct Folded<T> {
    accepted: Vec<RecordedEvent>,
    last: u64,
    prepared: T,
    foreign: Vec<Foreign>,
}

/// A batch being folded on a task of its own: the task gives the batch's
/// last message (which acknowledges it) back with the fold.
type Folding<T> =
    tokio::task::JoinHandle<(Option<jetstream::Message>, Result<Option<Folded<T>>, ProjectionError>)>;

impl<P: PreparesBatches> ProjectionRunner<P> {
    /// Catches up to `target` with prepared batches (see
    /// [`Pipeline`](crate::Pipeline)); whatever the projection carried over
    /// is discarded when it fails.
    pub(crate) async fn run_prepared(
        &self,
        pulled: &mut Pulled,
        start: u64,
        target: u64,
    ) -> Result<(), ProjectionError> {
        let result = self.run_pipelined(pulled, start, target).await;
        if result.is_err() {
            self.projection.prepared_discarded();
        }
        result
    }

    /// Writes a batch [`PreparesBatches::prepare`] folded, in one transaction
    /// with the checkpoint, which must still be `expected` (the last event
    /// before the batch): the batch was folded on that premise.
    async fn write_prepared(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        folded: Folded<P::Prepared>,
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

    /// Catches up to `target` with prepared batches: while batch N is
    /// written and committed here, batch N+1 is gathered and then folded on
    /// a task of its own.
    async fn run_pipelined(
        &self,
        pulled: &mut Pulled,
        start: u64,
        target: u64,
    ) -> Result<(), ProjectionError> {
        /// A batch on its way: folding, then ready for its transaction.
        struct Next<F> {
            fresh: F,
            /// The checkpoint it is folded on.
            before: u64,
            /// Its last message, to acknowledge it with.
            last: Option<jetstream::Message>,
        }
        let mut ready: Option<Next<Folded<P::Prepared>>> = None;
        let mut prepared_up_to = start;
        // One connection writes every batch (no hand-over through the pool
        // per batch); the folds read through the pool.
        let mut writer = self.pool.acquire().await?;
        loop {
            let write = async {
                match ready.take() {
                    Some(Next { fresh: folded, before, last }) => {
                        let written = self.write_prepared(&mut writer, folded, before).await;
                        Some(written.map(|outcome| (outcome, last)))
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
                let folding: Folding<P::Prepared> = tokio::spawn(async move {
                    let mut last = None;
                    let folded = async {
                        let (events, last_message) = events_of(batch)?;
                        last = last_message;
                        let mut fresh: Vec<RecordedEvent> =
                            events.into_iter().filter(|e| e.sequence > after).collect();
                        fresh.sort_by_key(|e| e.sequence);
                        fresh.dedup_by_key(|e| e.sequence);
                        let Some(last) = fresh.last().map(|e| e.sequence) else { return Ok(None) };
                        let (accepted, foreign) = screen_owned(rule, fresh);
                        let prepared = projection.prepare(&pool, &accepted).await?;
                        Ok(Some(Folded { accepted, last, prepared, foreign }))
                    }
                    .await;
                    (last, folded)
                });
                Ok::<_, ProjectionError>(Some(Next { fresh: folding, before: after, last: None }))
            };
            let (written, next) = tokio::join!(write, next);
            // Settled before anything returns: the caller drops what was
            // carried over, and a fold finishing later would carry its batch
            // over again.
            let settle = |next: Result<Option<Next<Folding<P::Prepared>>>, ProjectionError>| async move {
                if let Ok(Some(Next { fresh: task, .. })) = next {
                    task.abort();
                    let _ = task.await;
                }
            };
            if let Some(written) = written {
                let (outcome, last) = match written {
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
                if let Err(e) = self.acknowledge(pulled, last.as_ref(), outcome.checkpoint).await {
                    settle(next).await;
                    return Err(e);
                }
            }
            match next? {
                Some(Next { fresh: task, before, .. }) => {
                    let (last, folded) = task
                        .await
                        .map_err(|e| ProjectionError::Stream(format!("folding a batch failed: {e}")))?;
                    // Nothing new in a batch of redeliveries: left unacknowledged.
                    if let Some(folded) = folded? {
                        prepared_up_to = folded.last;
                        ready = Some(Next { fresh: folded, before, last });
                    }
                }
                None if prepared_up_to >= target => return Ok(()),
                None => {}
            }
        }
    }
}
