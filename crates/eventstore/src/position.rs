//! The stream position a call wrote: every append (and every command that
//! finds its request already carried out) records the stream sequence of
//! its event in the position scope of the task, if there is one. The
//! service kit opens a scope around each gRPC call and answers the highest
//! position recorded in the `psirt-position` response header; a projection
//! runner opens one around each batch, to learn the sequences its
//! reactions appended. Outside a scope, recording does nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

tokio::task_local! {
    static WRITTEN: Arc<AtomicU64>;
}

/// The highest stream sequence recorded in a scope; 0 when nothing was.
#[derive(Debug, Clone, Default)]
pub struct Written(Arc<AtomicU64>);

impl Written {
    /// The highest position recorded so far, if any.
    pub fn get(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Acquire)).filter(|p| *p > 0)
    }
}

/// Runs `future` in a position scope; `written` reads what it recorded,
/// also while it runs.
pub fn scope<F: Future>(future: F) -> (Written, impl Future<Output = F::Output>) {
    let written = Written::default();
    let cell = Arc::clone(&written.0);
    (written, WRITTEN.scope(cell, future))
}

/// Records that the current call wrote (or found already written) the
/// event at `sequence`. Nothing happens outside a scope.
pub fn record(sequence: u64) {
    let _ = WRITTEN.try_with(|written| written.fetch_max(sequence, Ordering::AcqRel));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_keeps_the_highest_position_recorded_in_it() {
        record(5); // outside any scope: nothing to record into
        let (written, call) = scope(async {
            record(7);
            record(3);
            tokio::task::yield_now().await;
            record(9);
        });
        assert_eq!(written.get(), None);
        call.await;
        assert_eq!(written.get(), Some(9));
        let (nothing, call) = scope(async {});
        call.await;
        assert_eq!(nothing.get(), None);
    }
}
