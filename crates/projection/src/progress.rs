//! [`Progress`]: what a runner has done, and whether it is stalled (failing
//! or too far behind the stream for too long), for the service's watcher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::checkpoint::now_ms;
use crate::runner::ProjectionError;

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
    /// The checkpoint as committed, for reads waiting for a position
    /// ([`crate::ReadModelPosition`]): changes after each commit, at the
    /// start of a session and on a reset.
    reached: tokio::sync::watch::Sender<u64>,
    /// The highest stream sequence the runner's batches appended (a
    /// reaction's events), recorded before their batch commits.
    caused: AtomicU64,
    /// Whether this runner holds the lease (it keeps `reached` current);
    /// a standby replica's read model is the one the lease holder writes.
    leading: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// The checkpoint moved to `checkpoint` (a commit, a session's start,
    /// a reset): waiting reads see it.
    pub(crate) fn reached(&self, checkpoint: u64) {
        self.checkpoint.store(checkpoint, Ordering::Relaxed);
        self.reached.send_if_modified(|at| std::mem::replace(at, checkpoint) != checkpoint);
    }

    /// A batch appended events up to `sequence`.
    pub(crate) fn record_caused(&self, sequence: u64) {
        self.caused.fetch_max(sequence, Ordering::AcqRel);
    }

    /// The runner took the lease (`true`) or gave it up.
    pub(crate) fn record_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }

    /// Whether the runner holds the lease.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// The highest stream sequence the runner's batches appended so far.
    pub fn caused(&self) -> u64 {
        self.caused.load(Ordering::Acquire)
    }

    /// Follows the committed checkpoint.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reached.subscribe()
    }

    /// A batch of events committed: the projection is not failing.
    pub(crate) fn record_success(&self) {
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// An attempt failed (the database, the stream, a checkpoint ahead).
    pub(crate) fn record_failure(&self, error: &ProjectionError) {
        let _ = self.failing_since_ms.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error.to_string();
    }

    /// The runner is on standby (another replica holds the lease): neither
    /// failing nor lagging is its to report.
    pub(crate) fn record_standby(&self) {
        self.record_leading(false);
        self.failing_since_ms.store(0, Ordering::Relaxed);
        self.lagging_since_ms.store(0, Ordering::Relaxed);
    }

    /// A lag sample; `max_lag` 0 means no limit.
    pub(crate) fn record_lag(&self, lag: u64, max_lag: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
