//! The one retry policy of the loader: an operation is tried again while its error
//! says trying again may help ([`DestinationError::is_retriable`]), after pauses
//! that double up to a ceiling, until a time limit would be passed. A DuckDB file
//! locked by DBeaver and a Snowflake request that failed in passing both go
//! through here.

use std::time::{Duration, Instant};

use crate::destination::DestinationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// No attempt starts after this long.
    pub limit: Duration,
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails for good, or the time is up; the
    /// last error is the answer then. `what` names the operation in the log.
    pub fn run<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<T, DestinationError>,
    ) -> Result<T, DestinationError> {
        let started = Instant::now();
        let mut pause = self.first;
        loop {
            match attempt() {
                Err(error) if error.is_retriable() => {
                    if started.elapsed() + pause > self.limit {
                        return Err(error);
                    }
                    tracing::warn!(what, %error, retry_in_ms = pause.as_millis() as u64, "trying again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(self.max);
                }
                outcome => return outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit_ms: u64) -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            limit: Duration::from_millis(limit_ms),
        }
    }

    fn locked() -> DestinationError {
        DestinationError::Locked {
            path: "f".into(),
            holder: String::new(),
        }
    }

    #[test]
    fn retries_what_may_pass_until_it_does() {
        let mut attempts = 0;
        let answer = policy(10_000).run("test", || {
            attempts += 1;
            if attempts < 4 {
                Err(locked())
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(answer.unwrap(), 4);
    }

    #[test]
    fn gives_up_at_once_on_what_will_not_pass() {
        let mut attempts = 0;
        let answer: Result<(), _> = policy(10_000).run("test", || {
            attempts += 1;
            Err(DestinationError::Conflict {
                topic: "t".into(),
                partition: 0,
                expected: None,
                found: Some(1),
            })
        });
        assert!(matches!(answer, Err(DestinationError::Conflict { .. })));
        assert_eq!(attempts, 1);
    }

    #[test]
    fn gives_the_last_error_back_when_time_is_up() {
        let mut attempts = 0;
        let answer: Result<(), _> = policy(20).run("test", || {
            attempts += 1;
            Err(locked())
        });
        assert!(matches!(answer, Err(DestinationError::Locked { .. })));
        assert!(attempts > 1, "tried again before giving up");
    }
}
