//! What the `simulate` and `load` command lines share, so that both behave alike:
//! `.env` loading, logging to standard error, graceful Ctrl-C and duration flags.

mod shutdown;

use std::io::IsTerminal;
use std::time::Duration;

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

/// Logs to standard error, filtered by `RUST_LOG` (default `info`), in colour only
/// on a terminal.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Parses durations such as `500ms`, `10s` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("examples"));
    }
}
