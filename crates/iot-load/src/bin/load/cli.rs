//! The command line: every flag with its variable, and the options it makes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use iot_kafka::{KafkaArgs, TopicArgs, or_env};
use iot_load::StartFrom;
use iot_load::batch::BatchPolicy;
use iot_load::destination::duckdb::{DEFAULT_STORAGE_VERSION, DuckDbOptions};
use iot_load::destination::snowflake::{SnowflakeAuth, SnowflakeOptions, env};
use iot_load::{DestinationOptions, Options};
use iot_model::Timestamp;
use iot_runtime::parse_duration;

const AFTER_HELP: &str = "\
Environment:
  RUST_LOG   Log filter, e.g. debug or iot_load=debug (default: info).
  DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD
             The Snowflake password (secrets are read from the environment only),
             unless --snowflake-private-key-path is given.
  A .env file in the current directory is read first; .env.example lists every variable.

Exit status:
  0   everything available was loaded (dead letters do not count as failure)
  1   another failure
  2   invalid flags
  3   stored offsets lie beyond a partition's end (topic recreated, other cluster):
      see --reset-offsets
  4   the destination could not be opened or written
  5   the Kafka broker could not be reached (at the start, or it went away during
      the run), the Kafka settings are invalid, a topic does not exist (cron
      mode), or the consumer group never answered this loader (not even with an
      empty share)
  6   the destination refused the credentials or a setting (user, password, key,
      role, warehouse, database): the message names the variable to fix
  7   Snowflake refused a statement for want of a privilege: the message names
      the GRANT an administrator runs (config/snowflake/provision.sql grants
      the loader's role all that load needs)
  75  the database file stayed locked by another program for --lock-timeout
      (close it in DBeaver, then run again: nothing is lost), or a Snowflake
      table stayed locked by another transaction for --retry-for

Examples:
  load --dest duckdb                            # from cron: load what is there, exit
  load --dest duckdb --follow                   # keep loading until Ctrl-C
  load --duckdb-file /data/fleet.duckdb --dataset fleet_a --start-from 2026-05-01T00:00:00Z
  load --dest snowflake                         # credentials from DESTINATION__SNOWFLAKE__*";

/// Load the vehicle telemetry topics from Kafka into DuckDB or Snowflake, exactly
/// once: each message lands once in its table, or in _dead_letters with the reason.
#[derive(Debug, Parser)]
#[command(name = "load", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where to load into.
    #[arg(long, env = "LOAD_DEST", value_enum, default_value_t = Dest::Duckdb)]
    pub dest: Dest,

    /// The DuckDB database file; created if missing.
    #[arg(
        long,
        env = "DUCKDB_FILE",
        value_name = "PATH",
        default_value = "iot_service.duckdb"
    )]
    pub duckdb_file: PathBuf,

    /// Schema the tables are created in (the pipeline's dataset name).
    #[arg(
        long,
        env = "DATASET_NAME",
        value_name = "NAME",
        default_value = "iot_stream"
    )]
    pub dataset: String,

    /// Storage format of a new DuckDB file. v1.4.0 opens in DuckDB 1.4 and later,
    /// and so in current DBeaver drivers.
    #[arg(long, env = "DUCKDB_STORAGE_VERSION", value_name = "VERSION", default_value = DEFAULT_STORAGE_VERSION)]
    pub storage_version: String,

    /// How long to wait for another program (DBeaver) to release the database file
    /// before giving up with exit status 75.
    #[arg(long, env = "LOAD_LOCK_TIMEOUT", value_name = "DURATION", default_value = "30s",
          value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// Messages per transaction.
    #[arg(long, env = "LOAD_BATCH_SIZE", value_name = "N",
          default_value_t = BatchPolicy::default().max_messages as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Commit a batch once its first message has waited this long.
    #[arg(long, env = "LOAD_BATCH_TIMEOUT", value_name = "DURATION", default_value = "5s",
          value_parser = parse_duration)]
    pub batch_timeout: Duration,

    /// Keep loading new messages until Ctrl-C, instead of exiting once caught up.
    #[arg(long, env = "LOAD_FOLLOW")]
    pub follow: bool,

    /// For partitions never loaded before, start at the first message at or after
    /// this time (RFC 3339) instead of the earliest.
    #[arg(long, env = "LOAD_START_FROM", value_name = "TIME", value_parser = parse_time)]
    pub start_from: Option<Timestamp>,

    /// Accept stored offsets beyond a partition's end (the topic was recreated) by
    /// reading such partitions from their earliest message.
    #[arg(long, env = "LOAD_RESET_OFFSETS")]
    pub reset_offsets: bool,

    /// Consumer group: loaders with the same group share the topics' partitions
    /// (run several for more throughput; each partition is loaded by one at a time).
    /// A cron run the group gives an empty share (more loaders than partitions) waits
    /// for a share up to 3 × --kafka-timeout (at least 30 s), then exits 0; one the
    /// group never answers exits 5. Loaded offsets are also committed to it, for lag
    /// dashboards. Also read from
    /// SOURCES__KAFKA__CREDENTIALS__GROUP_ID. [default: iot-load]
    #[arg(long, env = "KAFKA_GROUP_ID", value_name = "GROUP")]
    pub group_id: Option<String>,

    /// A fixed member id within the group (Kafka's static membership), unique per
    /// loader: a loader restarted with the same id, after a crash say, takes its
    /// partitions back at once instead of waiting the group's 10 s session timeout.
    #[arg(long, env = "LOAD_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,

    /// Print one line per trip of the DuckDB file and exit, loading nothing. The
    /// trips are dbt's model (scripts/dbt.sh builds it), in schema DBT_SCHEMA
    /// [default: the dataset's name + _analytics].
    #[arg(long, env = "LOAD_SHOW_TRIPS", conflicts_with = "json")]
    pub show_trips: bool,

    /// Also print the outcome as one JSON object on stdout, for the programs that
    /// run load (scripts/pipeline.sh, the Prefect flow): "status" (completed,
    /// interrupted or failed), "exit_status", "rows", "rows_per_table",
    /// "dead_letters", "lag", "error", and where it loaded: "dest", "dataset",
    /// "duckdb_file" (absolute) or the Snowflake settings other than secrets.
    #[arg(long, env = "LOAD_JSON")]
    pub json: bool,

    /// Print a progress line every two seconds (default: when stderr is a terminal).
    #[arg(long, env = "LOAD_PROGRESS", value_name = "BOOL")]
    pub progress: Option<bool>,

    /// How long a failing batch is tried again when the failure may pass (network,
    /// service errors, a collision with another loader) before load gives up.
    #[arg(long, env = "LOAD_RETRY_FOR", value_name = "DURATION", default_value = "2m",
          value_parser = parse_duration, help_heading = "Snowflake")]
    pub retry_for: Duration,

    /// Snowflake account identifier, such as xy12345.eu-central-1 or myorg-myaccount.
    #[arg(long, env = env::ACCOUNT, value_name = "ACCOUNT", help_heading = "Snowflake")]
    pub snowflake_account: Option<String>,

    /// Snowflake user name.
    #[arg(long, env = env::USER, value_name = "USER", help_heading = "Snowflake")]
    pub snowflake_user: Option<String>,

    /// Database the dataset's schema is created in; it must exist.
    #[arg(long, env = env::DATABASE, value_name = "DATABASE", help_heading = "Snowflake")]
    pub snowflake_database: Option<String>,

    /// Warehouse to run the statements on [default: the user's default].
    #[arg(long, env = env::WAREHOUSE, value_name = "WAREHOUSE", help_heading = "Snowflake")]
    pub snowflake_warehouse: Option<String>,

    /// Role to use [default: the user's default].
    #[arg(long, env = env::ROLE, value_name = "ROLE", help_heading = "Snowflake")]
    pub snowflake_role: Option<String>,

    /// PEM file with the private key for key-pair authentication (PKCS#8, not
    /// encrypted), used instead of the password.
    #[arg(long, env = env::PRIVATE_KEY_PATH, value_name = "PATH", help_heading = "Snowflake")]
    pub snowflake_private_key_path: Option<PathBuf>,

    /// Send Snowflake requests to this URL instead of
    /// https://ACCOUNT.snowflakecomputing.com (private link, proxies, emulators).
    #[arg(long, env = env::URL, value_name = "URL", help_heading = "Snowflake")]
    pub snowflake_url: Option<reqwest::Url>,

    #[command(flatten)]
    pub topics: TopicArgs,

    #[command(flatten)]
    pub kafka: KafkaArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Dest {
    Duckdb,
    Snowflake,
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|e| format!("{e}; expected RFC 3339 such as 2026-05-01T08:00:00Z"))
}

/// What the flags ask of a run.
pub fn options(cli: Cli) -> Result<Options, String> {
    let destination = match cli.dest {
        Dest::Duckdb => DestinationOptions::DuckDb(DuckDbOptions {
            path: cli.duckdb_file,
            schema: cli.dataset,
            storage_version: cli.storage_version,
            lock_timeout: cli.lock_timeout,
        }),
        Dest::Snowflake => DestinationOptions::Snowflake(Box::new(snowflake_options(&cli)?)),
    };
    Ok(Options {
        destination,
        kafka: cli.kafka.settings(),
        group_id: or_env(&cli.group_id, "GROUP_ID").unwrap_or_else(|| "iot-load".into()),
        instance_id: cli.instance_id.clone(),
        topics: cli.topics.topics(),
        batch: BatchPolicy {
            max_messages: cli.batch_size as usize,
            max_age: cli.batch_timeout,
        },
        follow: cli.follow,
        start_from: cli.start_from.map_or(StartFrom::Earliest, StartFrom::Time),
        reset_offsets: cli.reset_offsets,
        progress: cli
            .progress
            .unwrap_or_else(iot_runtime::progress_by_default),
    })
}

/// The Snowflake settings, or which one is missing. Secrets come from the
/// environment only.
fn snowflake_options(cli: &Cli) -> Result<SnowflakeOptions, String> {
    let required = |value: &Option<String>, variable: &str, flag: &str, what: &str| {
        value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("load --dest snowflake needs {what}: set {variable} (or {flag})")
        })
    };
    let account = required(
        &cli.snowflake_account,
        env::ACCOUNT,
        "--snowflake-account",
        "the account identifier",
    )?;
    let user = required(
        &cli.snowflake_user,
        env::USER,
        "--snowflake-user",
        "a user name",
    )?;
    let database = required(
        &cli.snowflake_database,
        env::DATABASE,
        "--snowflake-database",
        "a database",
    )?;
    let auth = match (
        &cli.snowflake_private_key_path,
        std::env::var(env::PASSWORD),
    ) {
        (Some(path), _) => SnowflakeAuth::KeyPair {
            private_key_pem: std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the private key {}: {e} (set by {})",
                    path.display(),
                    env::PRIVATE_KEY_PATH
                )
            })?,
        },
        (None, Ok(password)) if !password.is_empty() => SnowflakeAuth::Password(password),
        (None, _) => {
            return Err(format!(
                "load --dest snowflake needs a password or a private key: set {} (in the environment or .env), \
                 or {} (or --snowflake-private-key-path)",
                env::PASSWORD,
                env::PRIVATE_KEY_PATH
            ));
        }
    };
    let mut options = SnowflakeOptions::new(account, user, auth, database);
    options.warehouse = cli.snowflake_warehouse.clone();
    options.role = cli.snowflake_role.clone();
    options.schema = cli.dataset.clone();
    options.url = cli.snowflake_url.clone();
    options.retry_for = cli.retry_for;
    Ok(options)
}
