//! Partitions and offsets: where in a topic a batch, a run or a destination is.

use std::collections::BTreeMap;

use serde::Serialize;

/// A partition: its topic and number.
pub type PartitionKey = (String, i32);

/// The offsets of one partition a batch covers: `first` to `next - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub first: i64,
    pub next: i64,
}

/// Offsets of one partition a run loaded, passed over or moved past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRange {
    pub topic: String,
    pub partition: i32,
    /// First offset and the offset after the last one.
    pub from: i64,
    pub to: i64,
}

/// Next offsets to read, per partition.
pub type StoredOffsets = BTreeMap<PartitionKey, i64>;
