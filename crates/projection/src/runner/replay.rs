//! The runner's side of a replay of parked events (asked for through
//! [`ParkedEvents::replay`](crate::ParkedEvents::replay)), run between two
//! of its batches.

use tracing::info;

use super::{ProjectionError, ProjectionRunner};
use crate::Projection;
use crate::parked::{self, REPLAY_LIMIT, ReplayOutcome};
use crate::telemetry::metrics;

impl<P: Projection> ProjectionRunner<P> {
    /// Replays parked events (`sequences`, or every one of the projection
    /// when empty, oldest first, at most [`REPLAY_LIMIT`]): each is read
    /// again from the stream (not from the parked copy), checked against
    /// the event rule again (a foreign event stays parked, whatever it
    /// claims: a replay never launders a forged event), and applied in a
    /// transaction of its own; one that applies leaves the parking, one that
    /// still fails stays with the new error. The checkpoint does not move.
    pub(super) async fn replay_parked(&self, sequences: &[u64]) -> Result<ReplayOutcome, ProjectionError> {
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
            parked::unpark(&mut tx, name, row.sequence).await?;
            tx.commit().await?;
            info!(projection = name, sequence = row.sequence, event_type = %event.event_type, "parked event replayed");
            outcome.replayed.push(row.sequence);
        }
        Ok(outcome)
    }

    /// Records, in this database's turn to write, why a parked event
    /// still fails.
    async fn set_parked_error(&self, sequence: u64, error: &str) -> Result<(), sqlx::Error> {
        let _turn = self.write_turn().await;
        parked::set_error(&self.pool, self.projection.name(), sequence, error).await
    }
}
