//! How a run ends: its summary, or the error and the exit status it maps to.

use std::time::Duration;

use iot_kafka::KafkaError;

use crate::error::DestinationError;
use crate::load_record::LoadRecord;
use crate::source::{PlaceError, SourceError};

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
