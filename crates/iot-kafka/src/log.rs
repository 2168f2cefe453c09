//! librdkafka's log, in ours: its levels as tracing's, under the target
//! `librdkafka`, and the retries of a broker that is still starting kept out of the
//! user's way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;

/// How long a starting broker may keep asking clients to retry before the user is
/// told, once.
const STARTING_FOR: Duration = Duration::from_secs(15);

/// When the first "still starting" retry was seen, and whether the user was told.
static STARTING: Mutex<Option<(Instant, bool)>> = Mutex::new(None);

/// Logs one line of librdkafka's: what a client context's `log` calls.
///
/// A broker just started answers "Coordinator load in progress" (or "not
/// available") until it has loaded its internal topics, and librdkafka retries:
/// normal, and not a warning. Those lines are debug lines of this crate (not under
/// `librdkafka`, whose debug lines the default filter shows, as librdkafka writes
/// them only when its own `debug` setting asks); if they go on for
/// [`STARTING_FOR`], one warning says so.
pub fn librdkafka_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if is_starting_up(message) {
        tracing::debug!("librdkafka: {facility} {message}");
        let mut starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let (since, told) = starting.get_or_insert((Instant::now(), false));
        if !*told && since.elapsed() >= STARTING_FOR {
            *told = true;
            tracing::warn!(
                "the broker is still starting after {}s (its coordinator is loading); retrying",
                since.elapsed().as_secs()
            );
        }
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", "librdkafka: {facility} {message}")
        }
    }
}

/// Whether the line is a retry of a broker still loading its coordinator state.
fn is_starting_up(message: &str) -> bool {
    message.contains("Coordinator load in progress")
        || message.contains("Coordinator not available")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starting_brokers_retries_are_told_apart_from_other_warnings() {
        assert!(is_starting_up(
            "Failed to acquire idempotence PID from broker localhost:9092/1: \
             Broker: Coordinator load in progress: retrying"
        ));
        assert!(!is_starting_up(
            "Failed to resolve 'nowhere:9092': Name or service not known"
        ));
    }
}
