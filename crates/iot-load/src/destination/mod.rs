//! Where batches go. A destination does two things: say which offset to read next
//! for each partition, and write a batch (its rows, its dead letters, the new next
//! offsets and the load's audit record) in one transaction, so that a crash at any
//! point leaves either all of a batch or none of it. Decoding, batching and offset
//! bookkeeping live above this trait, once.

pub mod arrow;
pub mod ddl;
pub mod duckdb;
pub mod snowflake;

use std::collections::BTreeMap;

use iot_model::{EventKind, Timestamp};
use serde::Serialize;

use crate::batch::{Batch, PartitionKey, Row};

/// What caused a destination error: the database's or the client's own error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(
        "the database file {path} is in use by another program{holder}; close it there (in DBeaver: \
         disconnect from the database) and run load again. Nothing was lost: unwritten messages \
         are read again next time"
    )]
    Locked { path: String, holder: String },
    #[error(
        "{table} is locked by another transaction{holder} and stayed locked for the lock timeout. \
         If the loader that began it is gone, end it with SELECT SYSTEM$ABORT_TRANSACTION(<id>) \
         (SHOW LOCKS lists the holders) and run load again. Nothing was lost: unwritten \
         messages are read again next time"
    )]
    TableLocked {
        table: String,
        /// ` (transaction N)`, when the database named it.
        holder: String,
        #[source]
        source: Cause,
    },
    #[error("cannot open the database file {path}")]
    Open {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("writing to {table} failed")]
    Write {
        table: String,
        /// Whether the same write may succeed if tried again (a service hiccup, a
        /// transaction that collided with another's).
        retriable: bool,
        #[source]
        source: Cause,
    },
    #[error("the destination refused the connection; check {setting}")]
    Rejected {
        setting: String,
        #[source]
        source: Cause,
    },
    #[error(
        "the role {role} may not write {what}: Snowflake refused a statement for want of a \
         privilege. {remedy} Nothing was lost: unwritten messages are read again next time"
    )]
    Forbidden {
        role: String,
        what: String,
        /// What an administrator runs: the GRANT, when the statement names it.
        remedy: String,
        #[source]
        source: Cause,
    },
    #[error("cannot reach {url}. Nothing was lost: unwritten messages are read again next time")]
    Unreachable {
        url: String,
        #[source]
        source: Cause,
    },
    #[error(
        "another loader committed {topic} partition {partition} first (next offset expected \
         {expected:?}, found {found:?}); this batch was rolled back"
    )]
    Conflict {
        topic: String,
        partition: i32,
        expected: Option<i64>,
        found: Option<i64>,
    },
}

impl iot_cli::Retriable for DestinationError {
    /// Whether waiting and trying again may help: what the retry policy asks.
    fn is_retriable(&self) -> bool {
        match self {
            DestinationError::Locked { .. }
            | DestinationError::TableLocked { .. }
            | DestinationError::Unreachable { .. } => true,
            DestinationError::Write { retriable, .. } => *retriable,
            DestinationError::Open { .. }
            | DestinationError::Rejected { .. }
            | DestinationError::Forbidden { .. }
            | DestinationError::Conflict { .. } => false,
        }
    }
}

impl DestinationError {
    /// Whether the destination refused what it was given (a value, a row), for
    /// good: not a lock, an outage, a refused login or another loader's commit.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DestinationError::Write {
                retriable: false,
                ..
            }
        )
    }

    /// A write that failed for good, with its cause.
    pub fn write(table: &str, source: impl Into<Cause>) -> Self {
        DestinationError::Write {
            table: table.to_owned(),
            retriable: false,
            source: source.into(),
        }
    }
}

/// What one run of the loader did, kept in the `_loads` table and rewritten with
/// every batch, so that it always matches the data committed.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRecord {
    pub load_id: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// `running`, `completed`, `interrupted` or `failed`.
    pub status: &'static str,
    /// Rows written per table.
    pub rows: BTreeMap<&'static str, u64>,
    pub dead_letters: u64,
    /// Offsets loaded per partition, over the whole run.
    pub offsets: Vec<PartitionRange>,
    /// Offsets that retention deleted before they could be loaded.
    pub gaps: Vec<PartitionRange>,
    /// Partitions `--reset-offsets` moved back to their earliest message: from the
    /// stored offset beyond their end to where they were read from.
    pub resets: Vec<PartitionRange>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRange {
    pub topic: String,
    pub partition: i32,
    /// First offset and the offset after the last one.
    pub from: i64,
    pub to: i64,
}

impl LoadRecord {
    pub fn new(load_id: String, started_at: Timestamp) -> Self {
        Self {
            load_id,
            started_at,
            finished_at: None,
            status: "running",
            rows: EventKind::ALL
                .iter()
                .map(|k| (k.default_topic(), 0))
                .collect(),
            dead_letters: 0,
            offsets: Vec::new(),
            gaps: Vec::new(),
            resets: Vec::new(),
            error: None,
        }
    }

    /// Counts a batch in, before it is written.
    pub fn add(&mut self, batch: &Batch) {
        for kind in EventKind::ALL {
            *self.rows.entry(kind.default_topic()).or_default() += batch.rows(kind).len() as u64;
        }
        self.dead_letters += batch.dead_letters().len() as u64;
        for ((topic, partition), range) in batch.ranges() {
            if range.first == range.next {
                // A partition only moved to where it starts (Batch::start_at).
                continue;
            }
            match self
                .offsets
                .iter_mut()
                .find(|r| r.topic == *topic && r.partition == *partition)
            {
                Some(r) => r.to = r.to.max(range.next),
                None => self.offsets.push(PartitionRange {
                    topic: topic.clone(),
                    partition: *partition,
                    from: range.first,
                    to: range.next,
                }),
            }
        }
    }

    /// Counts rows the destination refused as the dead letters they became.
    pub fn refused(&mut self, refused: &[Refused]) {
        for r in refused {
            if let Some(rows) = self.rows.get_mut(r.kind.default_topic()) {
                *rows = rows.saturating_sub(1);
            }
            self.dead_letters += 1;
        }
    }

    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Next offsets to read, per partition.
pub type StoredOffsets = BTreeMap<PartitionKey, i64>;

/// The first partition of `batch` whose stored offset is not the expected one.
pub fn conflict(
    batch: &Batch,
    expected: &StoredOffsets,
    stored: &StoredOffsets,
) -> Option<DestinationError> {
    batch.ranges().keys().find_map(|key| {
        let (want, found) = (expected.get(key), stored.get(key));
        (want != found).then(|| DestinationError::Conflict {
            topic: key.0.clone(),
            partition: key.1,
            expected: want.copied(),
            found: found.copied(),
        })
    })
}

/// A store the loader can write batches to exactly once. Its calls block: the
/// loader is a synchronous program (see ARCHITECTURE.md).
pub trait Destination {
    /// The next offset to read for every partition written so far.
    fn stored_offsets(&mut self) -> Result<StoredOffsets, DestinationError>;

    /// Writes the batch's rows and dead letters, moves each of its partitions'
    /// next offsets to the end of its range, and saves `load`, atomically; but only
    /// if the stored next offsets of those partitions are still `expected` (absent
    /// where `expected` has none). Otherwise nothing is written and the answer is
    /// [`DestinationError::Conflict`]: another loader got there first.
    fn commit(
        &mut self,
        batch: &Batch,
        expected: &StoredOffsets,
        load: &LoadRecord,
    ) -> Result<(), DestinationError>;

    /// Saves `load` alone, at the end of a run, and lets go of the destination.
    fn record(&mut self, load: &LoadRecord) -> Result<(), DestinationError>;

    /// Writes `rows` to their table in a transaction that is rolled back whatever
    /// happens: whether the destination takes them. Asked of ever smaller sets of a
    /// batch the destination refused, to find the rows it refuses ([`refused_rows`]).
    fn try_rows(&mut self, kind: EventKind, rows: &[Row]) -> Result<(), DestinationError>;

    /// Lets go of what is held open between batches (a database file others wait
    /// for), because the loader is about to wait for messages.
    fn release(&mut self) {}
}

/// How many rows of one batch may be refused before the batch is taken as failed
/// whole: past that, the destination itself is failing (a full disk, a table
/// it cannot write), not a few rows, and finding them would take a probe per row.
pub const MOST_REFUSED: usize = 1_000;

/// A row of a batch the destination refused: its kind, its place among the batch's
/// rows of that kind, and the destination's reason.
#[derive(Debug)]
pub struct Refused {
    pub kind: EventKind,
    pub index: usize,
    pub error: String,
}

/// Finds the rows of `batch` that `destination` refuses, by halves: a set it takes
/// holds none, a refused set is split until single rows remain. About two probes
/// per refused row and level, so a few rows among 50,000 cost some 30 probes.
/// None when no row is refused (the refusal was of something else: the dead
/// letters, the offsets), when more than [`MOST_REFUSED`] are, or when a probe
/// fails for another reason. A batch of one refused row is that row's refusal: a
/// follower on a trickle of messages commits such batches.
pub fn refused_rows(
    destination: &mut impl Destination,
    batch: &Batch,
) -> Result<Option<Vec<Refused>>, DestinationError> {
    let mut refused = Vec::new();
    for kind in EventKind::ALL {
        let rows = batch.rows(kind);
        if !rows.is_empty() {
            halve(destination, kind, rows, 0, &mut refused)?;
        }
        if refused.len() > MOST_REFUSED {
            return Ok(None);
        }
    }
    Ok((!refused.is_empty()).then_some(refused))
}

/// Probes `rows` (the batch's rows of `kind` from `first` on).
fn halve(
    destination: &mut impl Destination,
    kind: EventKind,
    rows: &[Row],
    first: usize,
    refused: &mut Vec<Refused>,
) -> Result<(), DestinationError> {
    if refused.len() > MOST_REFUSED {
        return Ok(());
    }
    match destination.try_rows(kind, rows) {
        Ok(()) => Ok(()),
        Err(e) if !e.is_refusal() => Err(e),
        Err(e) if rows.len() == 1 => {
            refused.push(Refused {
                kind,
                index: first,
                error: iot_cli::error_chain(&e),
            });
            Ok(())
        }
        Err(_) => {
            let middle = rows.len() / 2;
            halve(destination, kind, &rows[..middle], first, refused)?;
            halve(destination, kind, &rows[middle..], first + middle, refused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::KafkaMeta;
    use iot_model::Topics;

    const GPS: &str = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11","device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d","timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,"heading_deg":181.5,"accuracy_m":3.0}"#;

    /// A destination that refuses the rows at some offsets, or fails every probe
    /// for another reason; it counts its probes.
    struct Refusing {
        offsets: Vec<i64>,
        outage: bool,
        probes: usize,
    }

    impl Destination for Refusing {
        fn stored_offsets(&mut self) -> Result<StoredOffsets, DestinationError> {
            Ok(StoredOffsets::new())
        }
        fn commit(
            &mut self,
            _: &Batch,
            _: &StoredOffsets,
            _: &LoadRecord,
        ) -> Result<(), DestinationError> {
            Ok(())
        }
        fn record(&mut self, _: &LoadRecord) -> Result<(), DestinationError> {
            Ok(())
        }
        fn try_rows(&mut self, _: EventKind, rows: &[Row]) -> Result<(), DestinationError> {
            self.probes += 1;
            if self.outage {
                return Err(DestinationError::Unreachable {
                    url: "http://warehouse".into(),
                    source: "connection reset".into(),
                });
            }
            match rows.iter().find(|r| self.offsets.contains(&r.kafka.offset)) {
                Some(r) => Err(DestinationError::write(
                    "gps_data",
                    format!("NULL result in a non-nullable column at {}", r.kafka.offset),
                )),
                None => Ok(()),
            }
        }
    }

    fn gps_batch(messages: i64) -> Batch {
        let mut batch = Batch::default();
        for offset in 0..messages {
            let kafka = KafkaMeta {
                partition: 0,
                offset,
                timestamp: None,
                key: None,
            };
            batch.add(&Topics::default(), "gps_data", kafka, Some(GPS.as_bytes()));
        }
        batch
    }

    fn refusing(offsets: impl IntoIterator<Item = i64>) -> Refusing {
        Refusing {
            offsets: offsets.into_iter().collect(),
            outage: false,
            probes: 0,
        }
    }

    #[test]
    fn the_refused_rows_are_found_by_halves() {
        let mut destination = refusing([3, 41, 42, 9_999]);
        let found = refused_rows(&mut destination, &gps_batch(10_000))
            .unwrap()
            .unwrap();
        let indices: Vec<usize> = found.iter().map(|r| r.index).collect();
        assert_eq!(indices, [3, 41, 42, 9_999]);
        assert!(
            found[0].error.contains("non-nullable column at 3"),
            "{}",
            found[0].error
        );
        assert!(destination.probes < 120, "{} probes", destination.probes);
    }

    #[test]
    fn a_batch_of_one_refused_row_is_that_rows_refusal() {
        let found = refused_rows(&mut refusing([0]), &gps_batch(1))
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn no_row_refused_or_too_many_leave_the_batch_failed() {
        assert!(
            refused_rows(&mut refusing([]), &gps_batch(100))
                .unwrap()
                .is_none()
        );
        let every = refusing(0..2_000);
        assert!(
            refused_rows(&mut { every }, &gps_batch(2_000))
                .unwrap()
                .is_none()
        );
        let mut outage = Refusing {
            outage: true,
            ..refusing([])
        };
        let error = refused_rows(&mut outage, &gps_batch(100)).unwrap_err();
        assert!(
            matches!(error, DestinationError::Unreachable { .. }),
            "{error}"
        );
        assert_eq!(outage.probes, 1, "an outage is not probed further");
    }
}
