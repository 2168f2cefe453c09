//! `--json`: the run's outcome and where it loaded, as one line of JSON on stdout,
//! for the next step of a pipeline (dbt) to read.

use std::process::ExitCode;

use iot_load::exit;

use crate::cli::{Cli, Dest};

/// Where a run loads, as `--json` reports it with the run's outcome: the settings
/// the next step (dbt) needs to read the same data, secrets left out.
pub struct Outcome(serde_json::Map<String, serde_json::Value>);

impl Outcome {
    pub fn of(cli: &Cli) -> Self {
        use serde_json::json;
        let mut fields = serde_json::Map::new();
        fields.insert("dataset".into(), json!(cli.dataset));
        match cli.dest {
            Dest::Duckdb => {
                fields.insert("dest".into(), json!("duckdb"));
                let file = std::path::absolute(&cli.duckdb_file)
                    .unwrap_or_else(|_| cli.duckdb_file.clone());
                fields.insert("duckdb_file".into(), json!(file));
            }
            Dest::Snowflake => {
                fields.insert("dest".into(), json!("snowflake"));
                let settings = [
                    ("snowflake_account", &cli.snowflake_account),
                    ("snowflake_user", &cli.snowflake_user),
                    ("snowflake_database", &cli.snowflake_database),
                    ("snowflake_warehouse", &cli.snowflake_warehouse),
                    ("snowflake_role", &cli.snowflake_role),
                ];
                for (name, value) in settings {
                    fields.insert(name.into(), json!(value));
                }
                let key = cli.snowflake_private_key_path.as_ref();
                fields.insert(
                    "snowflake_private_key_path".into(),
                    json!(key.map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone()))),
                );
                let url = cli.snowflake_url.as_ref().map(|u| u.as_str());
                fields.insert("snowflake_url".into(), json!(url));
            }
        }
        Self(fields)
    }

    /// Prints the outcome as one line of JSON on stdout and exits with `status`.
    pub fn print(
        mut self,
        status: u8,
        summary: Option<&iot_load::Summary>,
        error: Option<&str>,
    ) -> ExitCode {
        use serde_json::json;
        let fields = &mut self.0;
        let state = match summary {
            Some(s) if s.interrupted => "interrupted",
            Some(_) => "completed",
            None => "failed",
        };
        fields.insert("status".into(), json!(state));
        fields.insert("exit_status".into(), json!(status));
        fields.insert("error".into(), json!(error));
        let load = summary.map(|s| &s.load);
        fields.insert("load_id".into(), json!(load.map(|l| &l.load_id)));
        fields.insert("rows".into(), json!(load.map_or(0, |l| l.total_rows())));
        fields.insert("rows_per_table".into(), json!(load.map(|l| &l.rows)));
        fields.insert(
            "dead_letters".into(),
            json!(load.map_or(0, |l| l.dead_letters)),
        );
        fields.insert("lag".into(), json!(summary.and_then(|s| s.lag)));
        let seconds = summary.map(|s| (s.elapsed.as_secs_f64() * 10.0).round() / 10.0);
        fields.insert("elapsed_s".into(), json!(seconds));
        use std::io::Write as _;
        match writeln!(std::io::stdout(), "{}", serde_json::Value::Object(self.0)) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                iot_runtime::say!("error: cannot print the outcome: {e}");
                ExitCode::from(exit::FAILURE)
            }
            _ => ExitCode::from(status),
        }
    }
}
