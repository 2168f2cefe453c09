//! Rows a destination refused: they become dead letters with its reason.

use iot_model::EventKind;

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
