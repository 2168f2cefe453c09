//! Closing the consumer without hanging the program on a broker that is gone.

use std::time::Duration;

use rdkafka::consumer::BaseConsumer;

use super::group::Group;

/// A consumer that does not hang its program on the way out. Closing a consumer
/// waits until its group's coordinator has answered the offset commits still
/// queued, and with the broker gone that never happens. So it is closed on a
/// thread of its own, waited for as long as any Kafka request, and otherwise left
/// behind: the process is ending, and the destination, not the group, holds the
/// offsets.
pub(super) struct ClosingConsumer {
    /// Present until dropped.
    consumer: Option<BaseConsumer<Group>>,
    wait: Duration,
}

impl ClosingConsumer {
    /// Closes `consumer` when dropped, waiting for it up to `wait`.
    pub(super) fn new(consumer: BaseConsumer<Group>, wait: Duration) -> Self {
        Self {
            consumer: Some(consumer),
            wait,
        }
    }
}

impl std::ops::Deref for ClosingConsumer {
    type Target = BaseConsumer<Group>;

    fn deref(&self) -> &BaseConsumer<Group> {
        self.consumer
            .as_ref()
            .expect("the consumer is there until dropped")
    }
}

impl Drop for ClosingConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (closed, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
        if wait.recv_timeout(self.wait).is_err() {
            tracing::warn!(
                waited_s = self.wait.as_secs_f64(),
                "the Kafka consumer did not close (is the broker gone?); leaving it"
            );
        }
    }
}
