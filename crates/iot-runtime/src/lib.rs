//! How `simulate` and `load` run as programs, alike: `.env` loading, logging to
//! standard error, graceful Ctrl-C, retries with backoff, progress ticks and
//! duration flags.

pub mod retry;
mod shutdown;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub use retry::{Retriable, RetryPolicy};
pub use shutdown::Shutdown;

/// Reads `.env` from the current directory, if there is one. Variables already set
/// in the environment win over the file.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(format!("cannot read .env: {e}")),
    }
}

/// `eprintln!` that lets a failed write go. A program whose standard error is
/// closed (a log reader that died) still finishes its work and exits with its own
/// status, where `eprintln!` would panic on its summary or a progress line.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`), in colour only
/// on a terminal. librdkafka's debug lines pass by default: it writes them only
/// for the parts named in its `debug` setting (`--kafka-setting debug=cgrp`).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,snowflake_api=warn,librdkafka=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // A failed write (standard error closed: a log reader that died) is let go.
        // Reported, it would be printed to that same standard error, which panics,
        // and the panic would take down the task that logged: the Ctrl-C handler.
        .log_internal_errors(false)
        .init();
}

/// An error and its causes on one line, as a program's last words: "cannot commit
/// …: writing to gps_data failed: IO Error: …". A cause whose text the outer
/// message already holds is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Parses durations such as `500ms`, `10s` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m, 1h)"))
}

/// Runs a program's async body on a fresh runtime, with Ctrl-C and SIGTERM wired to
/// the [`Shutdown`] it is given. Fails only if the runtime cannot start.
pub fn run_until_done<F: std::future::Future>(
    body: impl FnOnce(Shutdown) -> F,
) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(async { body(Shutdown::on_signals()).await }))
}

/// Says when the next progress line is due: every two seconds, and never when
/// progress is off (by default, when standard error is not a terminal).
pub struct Ticker {
    enabled: bool,
    started: Instant,
    next: Instant,
}

impl Ticker {
    const EVERY: Duration = Duration::from_secs(2);

    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled,
            started: now,
            next: now + Self::EVERY,
        }
    }

    /// The time since the start, if a line is due now.
    pub fn due(&mut self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let now = Instant::now();
        if now < self.next {
            return None;
        }
        self.next = now + Self::EVERY;
        Some(now - self.started)
    }
}

/// Whether progress lines are on by default: only for a person watching.
pub fn progress_by_default() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_ticker_is_never_due() {
        let mut off = Ticker::new(false);
        off.next = Instant::now();
        assert_eq!(off.due(), None);
        let mut on = Ticker::new(true);
        assert_eq!(on.due(), None, "not due before two seconds");
        on.next = Instant::now();
        assert!(on.due().is_some());
        assert_eq!(on.due(), None, "due again only two seconds later");
    }

    #[test]
    fn an_error_chain_names_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let io = || std::io::Error::other("disk full");
        assert_eq!(error_chain(&Outer(io())), "outer: disk full");
        #[derive(Debug, thiserror::Error)]
        #[error("outer (disk full)")]
        struct Repeats(#[source] std::io::Error);
        assert_eq!(error_chain(&Repeats(io())), "outer (disk full)");
    }

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("examples"));
    }
}
