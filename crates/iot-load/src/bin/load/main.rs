//! The `load` command line: parses flags (and `.env`), runs, prints the summary and
//! turns the outcome into an exit status.

mod cli;
mod json;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use iot_load::exit;

use cli::{Cli, Dest, options};
use json::Outcome;

fn main() -> ExitCode {
    if let Err(e) = iot_runtime::load_dotenv() {
        iot_runtime::say!("error: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse();
    if let Err(e) = cli.topics.check_distinct() {
        Cli::command().error(ErrorKind::ArgumentConflict, e).exit();
    }
    iot_runtime::init_logging();
    if cli.show_trips {
        return show_trips(&cli);
    }
    let json = cli.json.then(|| Outcome::of(&cli));
    let options = match options(cli) {
        Ok(options) => options,
        Err(e) => return fail(json, exit::USAGE, e),
    };
    // The loader blocks from start to end (see docs/architecture.md); the runtime only
    // watches for Ctrl-C and SIGTERM meanwhile.
    let outcome = iot_runtime::run_until_done(|shutdown| async move {
        tokio::task::spawn_blocking(move || iot_load::run(options, &shutdown)).await
    });
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(crashed)) => {
            let error = format!("the loader stopped unexpectedly: {crashed}");
            return fail(json, exit::FAILURE, error);
        }
        Err(e) => return fail(json, exit::FAILURE, e.to_string()),
    };
    match outcome {
        Ok(summary) => {
            iot_runtime::say!("{summary}");
            match json {
                Some(json) => json.print(exit::OK, Some(&summary), None),
                None => ExitCode::from(exit::OK),
            }
        }
        Err(e) => fail(json, e.exit_code(), iot_runtime::error_chain(&e)),
    }
}

/// `--show-trips`: the trips dbt built in the DuckDB file, one line each.
fn show_trips(cli: &Cli) -> ExitCode {
    if matches!(cli.dest, Dest::Snowflake) {
        iot_runtime::say!(
            "error: --show-trips reads the DuckDB file; query the trips in Snowflake instead"
        );
        return ExitCode::from(exit::USAGE);
    }
    let schema = std::env::var("DBT_SCHEMA")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}_analytics", cli.dataset));
    match iot_load::report::trips(&cli.duckdb_file, &schema) {
        Ok(report) => {
            use std::io::Write as _;
            // A reader that stopped early (`| head`) is no error.
            match writeln!(std::io::stdout(), "{report}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    iot_runtime::say!("error: cannot print the trips: {e}");
                    ExitCode::from(exit::FAILURE)
                }
                _ => ExitCode::from(exit::OK),
            }
        }
        Err(e) => {
            iot_runtime::say!("error: {}", iot_runtime::error_chain(&e));
            ExitCode::from(exit::DESTINATION)
        }
    }
}

/// Says why the run failed, also as JSON where asked, and exits with `status`.
fn fail(json: Option<Outcome>, status: u8, error: String) -> ExitCode {
    iot_runtime::say!("error: {error}");
    match json {
        Some(json) => json.print(status, None, Some(&error)),
        None => ExitCode::from(status),
    }
}
