//! The one retry policy of both programs: an operation is tried again while its
//! error says trying again may help ([`Retriable::is_retriable`]), after pauses that
//! double from `first` up to `max` (or as long as the other side asked, up to
//! `max`), for at most `attempts` attempts and no attempt starting after `limit`.
//! Each pause is drawn between half and all of that, so that loaders which collided
//! do not collide again in step.
//! A DuckDB file locked by DBeaver, a Snowflake batch that failed in passing and a
//! busy OpenRouteService all go through here; when it gives up, the last error is
//! the answer.

use std::future::Future;
use std::time::{Duration, Instant};

/// An error that knows whether trying again may help.
pub trait Retriable: std::error::Error {
    fn is_retriable(&self) -> bool;

    /// How long the other side asked to wait before the next attempt, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause, doubled after each attempt.
    pub first: Duration,
    /// The longest pause, whatever the other side asks for.
    pub max: Duration,
    /// No attempt starts after this long.
    pub limit: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

impl RetryPolicy {
    /// Tries for `limit`, as many times as it takes.
    pub fn for_time(first: Duration, max: Duration, limit: Duration) -> Self {
        Self {
            first,
            max,
            limit,
            attempts: u32::MAX,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up,
    /// sleeping the thread between attempts. `what` names the operation in the log.
    pub fn run<T, E: Retriable>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tries = Tries::new(self);
        loop {
            match attempt() {
                Err(error) => match tries.pause_after(&error, what) {
                    Some(pause) => std::thread::sleep(pause),
                    None => return Err(error),
                },
                done => return done,
            }
        }
    }

    /// [`RetryPolicy::run`] for async operations: waits without blocking the runtime.
    pub async fn run_async<T, E: Retriable, F: Future<Output = Result<T, E>>>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, E> {
        let mut tries = Tries::new(self);
        loop {
            match attempt().await {
                Err(error) => match tries.pause_after(&error, what) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(error),
                },
                done => return done,
            }
        }
    }
}

/// Where a run of the policy stands.
struct Tries<'p> {
    policy: &'p RetryPolicy,
    started: Instant,
    made: u32,
    pause: Duration,
}

impl<'p> Tries<'p> {
    fn new(policy: &'p RetryPolicy) -> Self {
        Self {
            policy,
            started: Instant::now(),
            made: 0,
            pause: policy.first,
        }
    }

    /// The pause before the next attempt after `error`, or `None` to give up.
    fn pause_after(&mut self, error: &impl Retriable, what: &str) -> Option<Duration> {
        self.made += 1;
        if !error.is_retriable() || self.made >= self.policy.attempts {
            return None;
        }
        let pause = error
            .retry_after()
            .unwrap_or(self.pause)
            .min(self.policy.max);
        if self.started.elapsed() + pause > self.policy.limit {
            return None;
        }
        self.pause = (self.pause * 2).min(self.policy.max);
        let asked = error.retry_after().is_some();
        let pause = if asked {
            pause
        } else {
            pause.mul_f64(0.5 + rand::random::<f64>() / 2.0)
        };
        let error = crate::error_chain(error);
        tracing::warn!(what, %error, attempt = self.made, retry_in_ms = pause.as_millis() as u64, "trying again");
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Failure {
        Passing(Option<Duration>),
        Lasting,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl std::error::Error for Failure {}

    impl Retriable for Failure {
        fn is_retriable(&self) -> bool {
            matches!(self, Failure::Passing(_))
        }
        fn retry_after(&self) -> Option<Duration> {
            match self {
                Failure::Passing(asked) => *asked,
                Failure::Lasting => None,
            }
        }
    }

    fn policy(limit_ms: u64, attempts: u32) -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            limit: Duration::from_millis(limit_ms),
            attempts,
        }
    }

    #[test]
    fn retries_what_may_pass_until_it_does() {
        let mut made = 0;
        let answer = policy(10_000, 10).run("test", || {
            made += 1;
            if made < 4 {
                Err(Failure::Passing(None))
            } else {
                Ok(made)
            }
        });
        assert_eq!(answer, Ok(4));
    }

    #[test]
    fn gives_up_at_once_on_what_will_not_pass() {
        let mut made = 0;
        let answer: Result<(), _> = policy(10_000, 10).run("test", || {
            made += 1;
            Err(Failure::Lasting)
        });
        assert_eq!((answer, made), (Err(Failure::Lasting), 1));
    }

    #[test]
    fn gives_the_last_error_back_when_attempts_or_time_run_out() {
        let mut made = 0;
        let answer: Result<(), _> = policy(10_000, 3).run("test", || {
            made += 1;
            Err(Failure::Passing(None))
        });
        assert_eq!((answer, made), (Err(Failure::Passing(None)), 3));
        let mut made = 0;
        let _: Result<(), _> = policy(20, u32::MAX).run("test", || {
            made += 1;
            Err(Failure::Passing(None))
        });
        assert!(made > 1, "tried again before the time was up");
    }

    #[test]
    fn waits_as_asked_but_never_longer_than_max() {
        let policy = policy(10_000, 100);
        let mut tries = Tries::new(&policy);
        let asked = |ms| Failure::Passing(Some(Duration::from_millis(ms)));
        assert_eq!(
            tries.pause_after(&asked(3), "t"),
            Some(Duration::from_millis(3))
        );
        assert_eq!(
            tries.pause_after(&asked(60_000), "t"),
            Some(Duration::from_millis(4))
        );
        // Doubled from 1 ms twice already, then capped at 4 ms; each drawn between
        // half and all of that, and not all alike.
        let pauses: Vec<_> = (0..20)
            .map(|_| tries.pause_after(&Failure::Passing(None), "t").unwrap())
            .collect();
        assert!(
            pauses
                .iter()
                .all(|p| (Duration::from_millis(2)..=Duration::from_millis(4)).contains(p)),
            "{pauses:?}"
        );
        assert!(pauses.iter().any(|p| *p != pauses[0]), "{pauses:?}");
    }

    #[tokio::test]
    async fn retries_async_operations_too() {
        let mut made = 0;
        let answer = policy(10_000, 10)
            .run_async("test", || {
                made += 1;
                let made = made;
                async move {
                    if made < 3 {
                        Err(Failure::Passing(None))
                    } else {
                        Ok(made)
                    }
                }
            })
            .await;
        assert_eq!(answer, Ok(3));
    }
}
