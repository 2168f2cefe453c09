//! Everything `load` needs to know for a run; the command line fills it in.

use iot_kafka::KafkaSettings;
use iot_model::{Timestamp, Topics};

use crate::batch::BatchPolicy;
use crate::destination::duckdb::DuckDbOptions;
use crate::destination::snowflake::SnowflakeOptions;

#[derive(Debug, Clone)]
pub enum DestinationOptions {
    DuckDb(DuckDbOptions),
    Snowflake(Box<SnowflakeOptions>),
}

/// Everything `load` needs to know for a run.
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

/// Where to start partitions the destination has no offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    #[default]
    Earliest,
    /// The first message at or after this time.
    Time(Timestamp),
}
