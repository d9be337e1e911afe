//! A process-wide stop signal: one trigger (SIGINT/SIGTERM or a test) that every server,
//! consumer and background task awaits before draining.

use tokio::sync::watch;

/// Cloneable shutdown signal built on a `watch` channel; once triggered it stays triggered.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self { tx: std::sync::Arc::new(tx), rx }
    }

    /// A signal that fires on SIGINT (Ctrl-C) or SIGTERM (Kubernetes stop). Must be called
    /// inside a Tokio runtime.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(signal, "shutdown requested");
            trigger.trigger();
        });
        shutdown
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes when the signal fires (immediately if it already has).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|triggered| *triggered).await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM, only SIGINT stops the process");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_completes_after_trigger_for_every_clone() {
        let shutdown = Shutdown::new();
        let other = shutdown.clone();
        let waiter = tokio::spawn(async move { other.wait().await });
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        waiter.await.expect("waiter task");
        assert!(shutdown.is_triggered());
        // Already triggered: returns at once.
        shutdown.wait().await;
    }
}
