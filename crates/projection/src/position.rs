//! [`ReadModelPosition`]: whether a projection's read model reflects a
//! stream position, and waiting until it does (read-your-writes: a read
//! given the position a command answered waits for the read model to
//! hold the command's events).
//!
//! "The read model has reached P" means every event with a sequence up to
//! P that the projection consumes is applied. The checkpoint is the last
//! event applied, and the runner's consumer takes only event subjects
//! (`psirt.evt.>`): a message of another subject (a stream configured with
//! more subjects) or a gap (a deleted message) never moves the checkpoint
//! to P itself. So while the checkpoint is below P, the stream is asked
//! for the first event the projection consumes after the checkpoint: none
//! up to P means P is reached. Waiting follows the runner's commits
//! ([`Progress::subscribe`]), never a polling loop on the database; a
//! replica on standby (another one holds the lease and writes the shared
//! read model) reads the committed checkpoint now and then instead.

use std::sync::Arc;
use std::time::Duration;

use psirt_eventstore::EventStore;
use sqlx::AnyPool;
use tokio::time::Instant;

use crate::Progress;

/// The subjects a projection consumes.
pub(crate) fn consumed_subjects() -> String {
    format!("{}.>", psirt_eventstore::SUBJECT_PREFIX)
}

/// How often a standby replica reads the committed checkpoint while a
/// read waits: from the first pause, doubling up to the last.
const STANDBY_POLL: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

/// How often a waiting read looks again whether the runner still holds
/// the lease (it may lose it while the read waits).
const LEADER_RECHECK: Duration = Duration::from_secs(1);

/// Why a read model does not reflect a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// Not reached by the deadline.
    #[error("read model {projection} at {at}, asked for {asked} ({} events behind)", asked.saturating_sub(*at))]
    Behind { projection: String, at: u64, asked: u64 },
    /// The position is beyond the stream's last sequence: no write answered it.
    #[error("position {asked} is beyond the end of the event stream (last sequence {last})")]
    Beyond { asked: u64, last: u64 },
    /// The stream or the database could not be asked.
    #[error("cannot tell whether read model {projection} reached {asked}: {reason}")]
    Unknown { projection: String, asked: u64, reason: String },
}

/// Where one projection's read model stands. Cheap to clone.
#[derive(Clone)]
pub struct ReadModelPosition {
    name: String,
    progress: Arc<Progress>,
    pool: AnyPool,
    store: EventStore,
}

impl std::fmt::Debug for ReadModelPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadModelPosition").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ReadModelPosition {
    /// The position of projection `name`, whose runner keeps `progress`.
    pub fn new(name: impl Into<String>, progress: Arc<Progress>, pool: AnyPool, store: EventStore) -> Self {
        Self { name: name.into(), progress, pool, store }
    }

    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event store the projection consumes.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The highest stream sequence the runner's batches appended (the
    /// events of reactions), when this replica's runner holds the lease;
    /// `None` on a standby replica, which does not know.
    pub fn caused(&self) -> Option<u64> {
        self.progress.is_leading().then(|| self.progress.caused())
    }

    /// The committed checkpoint: the runner's when it holds the lease, else
    /// the database's.
    async fn checkpoint(&self) -> Result<u64, PositionError> {
        if self.progress.is_leading() {
            return Ok(*self.progress.subscribe().borrow());
        }
        crate::checkpoint(&self.pool, &self.name).await.map_err(|e| self.unknown(0, &e))
    }

    fn unknown(&self, asked: u64, reason: &dyn std::fmt::Display) -> PositionError {
        PositionError::Unknown { projection: self.name.clone(), asked, reason: reason.to_string() }
    }

    /// Whether the read model reflects every event up to `position` now.
    pub async fn reached(&self, position: u64) -> Result<bool, PositionError> {
        let at = self.checkpoint().await?;
        Ok(at >= position || self.next_consumed(at, position).await?.is_none())
    }

    /// The first event after `at` and up to `position` that the
    /// projection consumes, if any.
    async fn next_consumed(&self, at: u64, position: u64) -> Result<Option<u64>, PositionError> {
        let next = self
            .store
            .first_sequence_from(&consumed_subjects(), at.saturating_add(1))
            .await
            .map_err(|e| self.unknown(position, &e))?;
        Ok(next.filter(|next| *next <= position))
    }

    /// Waits until the read model reflects every event up to `position`,
    /// at most until `deadline`. A position beyond the stream's end is
    /// refused at once.
    pub async fn wait_for(&self, position: u64, deadline: Instant) -> Result<(), PositionError> {
        let mut committed = self.progress.subscribe();
        if self.progress.is_leading() && *committed.borrow_and_update() >= position {
            return Ok(());
        }
        let last = self.store.stream_last_sequence().await.map_err(|e| self.unknown(position, &e))?;
        if position > last {
            return Err(PositionError::Beyond { asked: position, last });
        }
        let mut poll = STANDBY_POLL.0;
        loop {
            let at = self.checkpoint().await?;
            if at >= position {
                return Ok(());
            }
            // Events up to `need` must be applied before `position` is.
            let Some(need) = self.next_consumed(at, position).await? else { return Ok(()) };
            let behind = || PositionError::Behind { projection: self.name.clone(), at, asked: position };
            if Instant::now() >= deadline {
                return Err(behind());
            }
            if self.progress.is_leading() {
                let wake = deadline.min(Instant::now() + LEADER_RECHECK);
                match tokio::time::timeout_at(wake, committed.wait_for(|at| *at >= need)).await {
                    Ok(Ok(_)) | Err(_) => {}
                    // The runner (and its progress) is gone: nothing will move.
                    Ok(Err(_)) => return Err(behind()),
                }
            } else {
                tokio::time::sleep_until(deadline.min(Instant::now() + poll)).await;
                poll = (poll * 2).min(STANDBY_POLL.1);
            }
        }
    }
}
