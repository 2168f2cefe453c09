//! The record of one run of the loader: what it loaded, from where, and how it ended.

use std::collections::BTreeMap;

use iot_model::{EventKind, Timestamp};
use serde::Serialize;

use crate::batch::Batch;
use crate::partitions::PartitionRange;
use crate::refused::Refused;

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
