//! Where batches go. A destination does two things: say which offset to read next
//! for each partition, and write a batch (its rows, its dead letters, the new next
//! offsets and the load's audit record) in one transaction, so that a crash at any
//! point leaves either all of a batch or none of it. Decoding, batching and offset
//! bookkeeping live above this trait, once.

pub mod arrow;
pub mod ddl;
pub mod duckdb;
mod refusals;
pub mod snowflake;

use iot_model::EventKind;

use crate::batch::Batch;
use crate::error::{DestinationError, Result};
use crate::load_record::LoadRecord;
use crate::partitions::StoredOffsets;
use crate::rows::Row;

pub use refusals::refused_rows;

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
/// loader is a synchronous program (see docs/architecture.md).
pub trait Destination {
    /// The next offset to read for every partition written so far.
    fn stored_offsets(&mut self) -> Result<StoredOffsets>;

    /// Writes the batch's rows and dead letters, moves each of its partitions'
    /// next offsets to the end of its range, and saves `load`, atomically; but only
    /// if the stored next offsets of those partitions are still `expected` (absent
    /// where `expected` has none). Otherwise nothing is written and the answer is
    /// [`DestinationError::Conflict`]: another loader got there first.
    fn commit(&mut self, batch: &Batch, expected: &StoredOffsets, load: &LoadRecord) -> Result<()>;

    /// Saves `load` alone, at the end of a run, and lets go of the destination.
    fn record(&mut self, load: &LoadRecord) -> Result<()>;

    /// Writes `rows` to their table in a transaction that is rolled back whatever
    /// happens: whether the destination takes them. Asked of ever smaller sets of a
    /// batch the destination refused, to find the rows it refuses ([`refused_rows`]).
    fn try_rows(&mut self, kind: EventKind, rows: &[Row]) -> Result<()>;

    /// Lets go of what is held open between batches (a database file others wait
    /// for), because the loader is about to wait for messages.
    fn release(&mut self) {}
}
