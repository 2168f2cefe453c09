//! Graceful stop on Ctrl-C or SIGTERM: the run stops generating, waits for what is
//! in flight, and reports, instead of dying with messages unconfirmed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// A shutdown that fires on the first Ctrl-C or SIGTERM. A second Ctrl-C is
    /// left to the default handler, which ends the process at once.
    pub fn on_signals() -> Self {
        let shutdown = Self::default();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("interrupted: finishing up (press Ctrl-C again to abort)");
            trigger.request();
            // Hand later signals back to the default handler by exiting on the next.
            wait_for_signal().await;
            std::process::exit(130);
        });
        shutdown
    }

    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Sleeps until `deadline`, or less if a shutdown is requested meanwhile.
    pub async fn sleep_until(&self, deadline: Instant) {
        let notified = self.notify.notified();
        if self.requested() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = notified => {}
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_request_cuts_a_sleep_short() {
        let shutdown = Shutdown::default();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.request();
        });
        let started = Instant::now();
        shutdown
            .sleep_until(started + Duration::from_secs(30))
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(shutdown.requested());
    }
}
