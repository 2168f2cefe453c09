//! librdkafka's log, in ours: its levels as tracing's, under the target
//! `librdkafka`, and the retries of a broker that is still starting kept out of the
//! user's way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;

/// How long a starting broker may keep asking clients to retry before the user is
/// told, once.
const STARTING_FOR: Duration = Duration::from_secs(15);

/// A spell of "still starting" retries: when it began, when its last retry came,
/// and whether the user was told. A retry long after the last one begins a new
/// spell (a broker restarted under a `--follow` run).
struct Spell {
    since: Instant,
    last: Instant,
    told: bool,
}

static STARTING: Mutex<Option<Spell>> = Mutex::new(None);

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
        if let Some(secs) = retried(&mut starting, Instant::now()) {
            tracing::warn!(
                "the broker is still starting after {secs}s (its coordinator is loading); retrying"
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

/// Counts a "still starting" retry at `now` into the spell it belongs to; the
/// seconds the spell has lasted when it is time to tell the user, once a spell.
fn retried(starting: &mut Option<Spell>, now: Instant) -> Option<u64> {
    let spell = match starting.as_mut() {
        Some(spell) if now - spell.last < STARTING_FOR => spell,
        _ => starting.insert(Spell {
            since: now,
            last: now,
            told: false,
        }),
    };
    spell.last = now;
    let lasted = now - spell.since;
    (!spell.told && lasted >= STARTING_FOR).then(|| {
        spell.told = true;
        lasted.as_secs()
    })
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

    #[test]
    fn a_long_spell_of_retries_is_told_once_and_a_later_one_again() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut starting = None;
        let told: Vec<_> = [0, 5, 10, 15, 16, 20, 100, 110, 116]
            .into_iter()
            .map(|s| retried(&mut starting, at(s)))
            .collect();
        assert_eq!(
            told,
            [None, None, None, Some(15), None, None, None, None, Some(16)]
        );
    }
}
