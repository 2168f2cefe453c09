//! Where batches go. A destination does two things: say which offset to read next
//! for each partition, and write a batch (its rows, its dead letters, the new next
//! offsets and the load's audit record) in one transaction, so that a crash at any
//! point leaves either all of a batch or none of it. Decoding, batching and offset
//! bookkeeping live above this trait, once.

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
/// None when the refusal is not the rows' (every row refused, or more than
/// [`MOST_REFUSED`]), or a probe fails for another reason.
pub fn refused_rows(
    destination: &mut impl Destination,
    batch: &Batch,
) -> Result<Option<Vec<Refused>>, DestinationError> {
    let mut refused = Vec::new();
    let mut taken = false;
    for kind in EventKind::ALL {
        let rows = batch.rows(kind);
        if !rows.is_empty() {
            taken |= halve(destination, kind, rows, 0, &mut refused)?;
        }
        if refused.len() > MOST_REFUSED {
            return Ok(None);
        }
    }
    Ok((taken && !refused.is_empty()).then_some(refused))
}

/// Probes `rows` (the batch's rows of `kind` from `first` on); returns whether the
/// destination took any of them.
fn halve(
    destination: &mut impl Destination,
    kind: EventKind,
    rows: &[Row],
    first: usize,
    refused: &mut Vec<Refused>,
) -> Result<bool, DestinationError> {
    if refused.len() > MOST_REFUSED {
        return Ok(false);
    }
    match destination.try_rows(kind, rows) {
        Ok(()) => Ok(true),
        Err(e) if !e.is_refusal() => Err(e),
        Err(e) if rows.len() == 1 => {
            refused.push(Refused {
                kind,
                index: first,
                error: iot_cli::error_chain(&e),
            });
            Ok(false)
        }
        Err(_) => {
            let middle = rows.len() / 2;
            let left = halve(destination, kind, &rows[..middle], first, refused)?;
            let right = halve(destination, kind, &rows[middle..], first + middle, refused)?;
            Ok(left || right)
        }
    }
}
