//! `load`: reads the five telemetry topics and appends them to an analytical store,
//! exactly once.
//!
//! Exactly once comes from one rule: the next offset to read for each partition is
//! stored in the destination, in the same transaction as the rows it covers. On start
//! the loader seeks to those offsets; a crash before a commit leaves neither rows nor
//! offsets, and the messages are read again. Messages that cannot be loaded go to a
//! dead-letter table in the same transaction, and their offsets move on with the rest.

pub mod batch;
pub mod destination;
mod loader;
pub mod report;
pub mod source;
pub mod tables;
pub mod writer;

use std::time::Duration;

use iot_cli::Shutdown;
use iot_kafka::{KafkaError, KafkaSettings};
use iot_model::Topics;

use crate::batch::BatchPolicy;
use crate::destination::duckdb::{DuckDb, DuckDbOptions};
use crate::destination::snowflake::{Snowflake, SnowflakeOptions};
use crate::destination::{DestinationError, LoadRecord};
use crate::source::{PlaceError, SourceError, StartFrom};

/// Exit statuses, as documented in `load --help`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Any failure not listed below.
    pub const FAILURE: u8 = 1;
    /// Invalid flags.
    pub const USAGE: u8 = 2;
    /// Stored offsets do not fit the topics any more (recreated topic, other cluster).
    pub const OFFSETS_MISMATCH: u8 = 3;
    /// The destination could not be opened or written.
    pub const DESTINATION: u8 = 4;
    /// The Kafka broker cannot be reached or the Kafka settings are invalid.
    pub const KAFKA: u8 = 5;
    /// The destination refused the credentials or a setting (user, password, key,
    /// role, warehouse, database).
    pub const REJECTED: u8 = 6;
    /// The destination refused a statement for want of a privilege: the message
    /// names the GRANT to run.
    pub const FORBIDDEN: u8 = 7;
    /// The database file stayed locked by another program (EX_TEMPFAIL).
    pub const LOCKED: u8 = 75;
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// A batch that could not be committed; its messages are read again next time.
    #[error("cannot commit the batch of {batch}")]
    Commit {
        /// Its topics, partitions and offset ranges.
        batch: String,
        #[source]
        source: Box<LoadError>,
    },
}

impl From<PlaceError> for LoadError {
    fn from(error: PlaceError) -> Self {
        match error {
            PlaceError::Stored(e) => LoadError::Destination(e),
            PlaceError::Kafka(e) => LoadError::Source(e),
        }
    }
}

impl LoadError {
    /// Whether the destination cannot be written at all now: locked by another
    /// program, out of reach, or refusing the credentials.
    pub fn destination_unwritable(&self) -> bool {
        match self {
            LoadError::Commit { source, .. } => source.destination_unwritable(),
            LoadError::Destination(e) => matches!(
                e,
                DestinationError::Locked { .. }
                    | DestinationError::TableLocked { .. }
                    | DestinationError::Unreachable { .. }
                    | DestinationError::Rejected { .. }
            ),
            LoadError::Source(_) => false,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            LoadError::Commit { source, .. } => source.exit_code(),
            LoadError::Source(SourceError::OffsetBeyondEnd { .. }) => exit::OFFSETS_MISMATCH,
            LoadError::Source(SourceError::Kafka(
                KafkaError::Unreachable { .. } | KafkaError::Config(_),
            )) => exit::KAFKA,
            LoadError::Source(e) if e.broker_gone() => exit::KAFKA,
            LoadError::Source(
                SourceError::UnknownTopic { .. } | SourceError::Unassigned { .. },
            ) => exit::KAFKA,
            LoadError::Source(_) => exit::FAILURE,
            LoadError::Destination(
                DestinationError::Locked { .. } | DestinationError::TableLocked { .. },
            ) => exit::LOCKED,
            LoadError::Destination(DestinationError::Rejected { .. }) => exit::REJECTED,
            LoadError::Destination(DestinationError::Forbidden { .. }) => exit::FORBIDDEN,
            LoadError::Destination(_) => exit::DESTINATION,
        }
    }
}

#[derive(Debug, Clone)]
pub enum DestinationOptions {
    DuckDb(DuckDbOptions),
    Snowflake(Box<SnowflakeOptions>),
}

/// Everything `load` needs to know; the command line fills it in.
#[derive(Debug, Clone)]
pub struct Options {
    pub destination: DestinationOptions,
    pub kafka: KafkaSettings,
    /// The consumer group: loaders with the same group share the partitions. The
    /// loaded offsets are also reported to it, for lag dashboards.
    pub group_id: String,
    /// A static member id: a loader restarted with the same id takes its partitions
    /// back at once instead of waiting for the group to give up on the old one.
    pub instance_id: Option<String>,
    pub topics: Topics,
    pub batch: BatchPolicy,
    /// Keep reading after catching up, instead of exiting (not for cron).
    pub follow: bool,
    /// Where to start partitions that have no stored offset.
    pub start_from: StartFrom,
    /// Accept stored offsets beyond a partition's end by reading it from its start.
    pub reset_offsets: bool,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            destination: DestinationOptions::DuckDb(DuckDbOptions::default()),
            kafka: KafkaSettings::default(),
            group_id: "iot-load".into(),
            instance_id: None,
            topics: Topics::default(),
            batch: BatchPolicy::default(),
            follow: false,
            start_from: StartFrom::Earliest,
            reset_offsets: false,
            progress: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub load: LoadRecord,
    pub elapsed: Duration,
    /// Messages in the topics this run did not read; None when the broker did not
    /// say where the partitions end.
    pub lag: Option<i64>,
    pub interrupted: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let total = self.load.total_rows();
        writeln!(
            f,
            "{} load {}: {total} rows in {secs:.1}s ({:.0} rows/s)",
            if self.interrupted {
                "Interrupted"
            } else {
                "Done"
            },
            self.load.load_id,
            total as f64 / secs.max(1e-9)
        )?;
        for (table, rows) in &self.load.rows {
            writeln!(f, "  {table:<16} {rows:>10}")?;
        }
        writeln!(f, "  {:<16} {:>10}", "dead letters", self.load.dead_letters)?;
        for gap in &self.load.gaps {
            writeln!(
                f,
                "  gap: {} partition {} offsets {}..{} were deleted before they were loaded",
                gap.topic, gap.partition, gap.from, gap.to
            )?;
        }
        for reset in &self.load.resets {
            writeln!(
                f,
                "  reset: {} partition {} read from offset {}; the offset stored before, {}, \
                 was beyond its end",
                reset.topic, reset.partition, reset.to, reset.from
            )?;
        }
        match self.lag {
            Some(lag) => write!(f, "  lag left: {lag} messages"),
            None => write!(
                f,
                "  lag left: unknown (the broker did not say where the partitions end)"
            ),
        }
    }
}

/// Loads until caught up (or, with `follow`, until `shutdown`), then records the
/// load and reports. Blocks the calling thread throughout: `load` is a batch
/// program whose every step (librdkafka's poll, DuckDB, a Snowflake request)
/// waits; an async caller runs it with `spawn_blocking`.
pub fn run(options: Options, shutdown: &Shutdown) -> Result<Summary, LoadError> {
    match options.destination.clone() {
        DestinationOptions::DuckDb(duck) => {
            let destination = DuckDb::new(duck, options.topics.clone());
            loader::run_with(destination, &options, shutdown)
        }
        DestinationOptions::Snowflake(snowflake) => {
            let destination = Snowflake::new(*snowflake, options.topics.clone());
            loader::run_with(destination, &options, shutdown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iot_model::Timestamp;

    #[test]
    fn a_lag_the_broker_did_not_give_is_unknown_not_zero() {
        let summary = |lag| Summary {
            load: LoadRecord::new("l".into(), Timestamp::now()),
            elapsed: Duration::from_secs(1),
            lag,
            interrupted: false,
        };
        assert!(
            summary(Some(0))
                .to_string()
                .ends_with("lag left: 0 messages")
        );
        let unknown = summary(None).to_string();
        assert!(unknown.contains("lag left: unknown"), "{unknown}");
    }
}
