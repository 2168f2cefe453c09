//! What can go wrong reading the topics, and which of it librdkafka rides out by
//! itself.

use std::time::Duration;

use iot_kafka::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "the stored next offset {stored} of {topic} partition {partition} is beyond the end of \
         that partition ({high}): the topic was deleted and recreated, or this is another \
         cluster. load stops rather than skip or repeat messages. If the broker's data really \
         was replaced, run again with --reset-offsets to read such partitions from their \
         earliest message"
    )]
    OffsetBeyondEnd {
        topic: String,
        partition: i32,
        stored: i64,
        high: i64,
    },
    #[error(
        "reading {what} from Kafka failed; the batches committed before stay, and the next run \
         reads on from them"
    )]
    Read {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "the consumer group gave this loader no partitions in {waited:?}: the group \
         coordinator may be unavailable, or a member stuck joining. See \
         `kafka-consumer-groups --describe --group <group>` and run load again"
    )]
    Unassigned { waited: Duration },
    #[error(
        "topic {topic} does not exist on the broker. Run simulate first (it creates the \
         topics), or check the topic's name (--topic-* flags, TOPIC_* variables)"
    )]
    UnknownTopic { topic: String },
    #[error(
        "a partition's next offset is no longer on the broker (its messages were deleted by \
         retention, or its log was truncated). load stops rather than move on by itself: run it \
         again, and it records what is gone in _loads.gaps and reads on from the earliest \
         message left"
    )]
    OutOfRange {
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "no message arrived for {idle:?} although {behind} messages are still below the high \
         watermarks read at the start; what was read is committed. Check the broker's health \
         and run load again"
    )]
    Stalled { idle: Duration, behind: i64 },
}

impl SourceError {
    /// Whether reading failed because no broker could be reached any more.
    pub fn broker_gone(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode::{AllBrokersDown, BrokerTransportFailure};
        matches!(
            self,
            SourceError::Read { source, .. }
                if matches!(source.rdkafka_error_code(), Some(AllBrokersDown | BrokerTransportFailure))
        )
    }
}

/// Whether a consumer error is one librdkafka recovers from by itself, retrying the
/// fetch: leadership moving, a request timing out, a replica not ready.
pub(super) fn passing(error: &rdkafka::error::KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error.rdkafka_error_code(),
        Some(
            RequestTimedOut
                | NotLeaderForPartition
                | LeaderNotAvailable
                | ReplicaNotAvailable
                | KafkaStorageError
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | OffsetNotAvailable
                | NetworkException
                | PreferredLeaderNotAvailable
                // A subscribed topic that does not exist yet (load --follow started
                // before simulate): it is read once it does.
                | UnknownTopicOrPartition
        )
    )
}
