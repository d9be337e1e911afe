//! One batch's transaction: the checkpoint row locked and the lease
//! checked first; the events applied (or parked); the checkpoint moved to
//! the batch's last event and the lease renewed; then the commit. On
//! SQLite the runners of one process take turns to write.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use psirt_eventstore::{DecodeError, RecordedEvent};
use sqlx::AnyPool;
use tracing::warn;

use super::{BatchOutcome, ProjectionError, ProjectionRunner};
use crate::checkpoint::{self, now_ms};
use crate::parked::park;
use crate::telemetry::metrics;
use crate::{EventRule, Projection, UndecodablePolicy};

/// An event refused by the runner's [`EventRule`] before the projection saw it.
#[derive(Debug, Clone)]
pub(super) struct Foreign {
    event: RecordedEvent,
    reason: String,
}

/// Splits events into those `rule` accepts (borrowed when all are) and the
/// foreign ones.
pub(super) fn screen(rule: EventRule, events: &[RecordedEvent]) -> (Cow<'_, [RecordedEvent]>, Vec<Foreign>) {
    if events.iter().all(|e| rule(&e.subject, &e.event_type).is_ok()) {
        return (Cow::Borrowed(events), Vec::new());
    }
    let mut accepted = Vec::with_capacity(events.len());
    let mut foreign = Vec::new();
    for event in events {
        match rule(&event.subject, &event.event_type) {
            Ok(()) => accepted.push(event.clone()),
            Err(reason) => foreign.push(Foreign { event: event.clone(), reason }),
        }
    }
    (Cow::Owned(accepted), foreign)
}

/// [`screen`] for a batch the caller owns: the events are moved, never
/// copied (a rebuild screens millions).
pub(super) fn screen_owned(
    rule: EventRule,
    events: Vec<RecordedEvent>,
) -> (Vec<RecordedEvent>, Vec<Foreign>) {
    if events.iter().all(|e| rule(&e.subject, &e.event_type).is_ok()) {
        return (events, Vec::new());
    }
    let mut accepted = Vec::with_capacity(events.len());
    let mut foreign = Vec::new();
    for event in events {
        match rule(&event.subject, &event.event_type) {
            Ok(()) => accepted.push(event),
            Err(reason) => foreign.push(Foreign { event, reason }),
        }
    }
    (accepted, foreign)
}

/// SQLite has one writer at a time, and a transaction that finds the
/// database locked polls with growing sleeps (1, 2, 5, 10 ms, ...): the
/// reactions opening a case waited behind the case view's batch for tens of
/// milliseconds. The runners of one process take turns on an async lock per
/// database file instead and start the moment the one before commits.
pub(super) fn sqlite_writer(pool: &AnyPool) -> Option<Arc<tokio::sync::Mutex<()>>> {
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
        // What the batch appends (reactions), for reads that must see it.
        let (written, apply) =
            psirt_eventstore::position::scope(self.projection.apply_batch(&mut tx, &accepted));
        let undecodable = apply.await?;
        if let Some(sequence) = written.get() {
            self.progress.record_caused(sequence);
        }
        let skipped_seen = (events.len() - fresh.len()) as u64;
        let last = fresh.last().map(|e| e.sequence);
        self.finish_batch(tx, &accepted, undecodable, &foreign, last, checkpoint, now, skipped_seen).await
    }

    /// Waits for this database's turn to write (SQLite only).
    pub(super) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.writer {
            Some(writer) => Some(Arc::clone(writer).lock_owned().await),
            None => None,
        }
    }

    /// Opens a batch's transaction: locks the checkpoint row and checks the
    /// lease. Returns the transaction, the checkpoint and the time.
    pub(super) async fn begin_batch<'c>(
        &self,
        conn: impl sqlx::Acquire<'c, Database = sqlx::Any>,
    ) -> Result<(sqlx::Transaction<'c, sqlx::Any>, u64, i64), ProjectionError> {
        let name = self.projection.name();
        let mut tx = conn.begin().await?;
        let now = now_ms();
        match checkpoint::lock(&mut tx, name, &self.owner, now).await? {
            Some(checkpoint) => Ok((tx, checkpoint, now)),
            None => Err(ProjectionError::LeaseLost(name.to_owned())),
        }
    }

    /// Ends a batch's transaction: parks its foreign events, logs (and
    /// parks) its undecodable ones, moves the checkpoint to its last event
    /// (`last`), commits.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish_batch(
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
        if !checkpoint::store(&mut tx, name, checkpoint, &self.owner, lease_until, now).await? {
            return Err(ProjectionError::LeaseLost(name.to_owned()));
        }
        tx.commit().await?;
        if last.is_some() {
            self.progress.record_success();
        }
        outcome.checkpoint = checkpoint;
        self.progress.reached(checkpoint);
        self.progress.applied.fetch_add(outcome.applied, Ordering::Relaxed);
        self.progress.undecodable.fetch_add(outcome.undecodable, Ordering::Relaxed);
        self.progress.foreign.fetch_add(outcome.foreign, Ordering::Relaxed);
        metrics::applied(name, outcome.applied);
        Ok(outcome)
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

    fn event(sequence: u64, subject: &str) -> RecordedEvent {
        let new = psirt_eventstore::NewEvent {
            id: uuid::Uuid::now_v7(),
            subject: subject.to_owned(),
            event_type: "psirt.events.v1.Test".to_owned(),
            schema_version: 1,
            payload: bytes::Bytes::from_static(b"payload"),
            metadata: psirt_eventstore::Metadata::default(),
        };
        RecordedEvent::from_new(&new, sequence)
    }

    fn only_cases(subject: &str, _event_type: &str) -> Result<(), String> {
        if subject.starts_with("case.") { Ok(()) } else { Err(format!("{subject} is no case")) }
    }

    #[test]
    fn screening_an_owned_batch_splits_it_like_the_borrowed_one_keeping_the_order() {
        let batch = vec![event(1, "case.a"), event(2, "plan.b"), event(3, "case.c"), event(4, "plan.d")];
        let (borrowed, borrowed_foreign) = screen(only_cases, &batch);
        let expected: Vec<u64> = borrowed.iter().map(|e| e.sequence).collect();
        let expected_foreign: Vec<(u64, String)> =
            borrowed_foreign.iter().map(|f| (f.event.sequence, f.reason.clone())).collect();
        let (accepted, foreign) = screen_owned(only_cases, batch.clone());
        assert_eq!(accepted.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(accepted.iter().map(|e| e.sequence).collect::<Vec<_>>(), expected);
        assert_eq!(
            foreign.iter().map(|f| (f.event.sequence, f.reason.clone())).collect::<Vec<_>>(),
            expected_foreign
        );
        assert_eq!(foreign[0].reason, "plan.b is no case");
        // A batch the rule accepts whole comes back as it was.
        let cases = vec![event(5, "case.e"), event(6, "case.f")];
        let (accepted, foreign) = screen_owned(only_cases, cases);
        assert_eq!(accepted.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![5, 6]);
        assert!(foreign.is_empty());
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
