//! `load`: reads the five telemetry topics and appends them to an analytical store,
//! exactly once.
//!
//! Exactly once comes from one rule: the next offset to read for each partition is
//! stored in the destination, in the same transaction as the rows it covers. On start
//! the loader seeks to those offsets; a crash before a commit leaves neither rows nor
//! offsets, and the messages are read again. Messages that cannot be loaded go to a
//! dead-letter table in the same transaction, and their offsets move on with the rest.

//!
//! The modules, from the bottom up: what every part shares (`partitions`, `rows`,
//! `refused`, `error`), the batch and what is counted of a run (`batch`,
//! `load_record`), the tables rows become (`tables`), the destinations, the options,
//! the Kafka source, the writer thread, and the run itself (`loader`, `outcome`).

pub mod batch;
pub mod destination;
pub mod error;
pub mod load_record;
mod loader;
pub mod options;
pub mod outcome;
pub mod partitions;
pub mod refused;
pub mod report;
pub mod rows;
pub mod source;
pub mod tables;
pub mod writer;

pub use error::DestinationError;
pub use load_record::LoadRecord;
pub use loader::run;
pub use options::{DestinationOptions, Options, StartFrom};
pub use outcome::{LoadError, Summary, exit};
pub use partitions::StoredOffsets;
