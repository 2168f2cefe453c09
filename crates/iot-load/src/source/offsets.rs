//! Asking the broker where partitions begin and end, or where a time is reached.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::partitions::PartitionKey;

/// The offsets ListOffsets finds in each of `keys` at `at`: the earliest, the end,
/// or the first message at or after a time (a partition with none that new has no
/// entry). One request per broker: librdkafka's own watermark query asks partition
/// by partition, and first waits up to 100 ms for each one's leader (two seconds for
/// a loader given 15 partitions).
pub(super) fn list_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    keys: &[PartitionKey],
    at: Offset,
    timeout: Duration,
) -> Result<BTreeMap<PartitionKey, i64>, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in keys {
        list.add_partition_offset(topic, *partition, at)?;
    }
    let mut found = BTreeMap::new();
    for element in consumer.offsets_for_times(list, timeout)?.elements() {
        element.error()?;
        if let Offset::Offset(offset) = element.offset() {
            found.insert((element.topic().to_owned(), element.partition()), offset);
        }
    }
    Ok(found)
}

/// The low and high watermarks of each of `keys`.
pub(super) fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    keys: &[PartitionKey],
    timeout: Duration,
) -> Result<BTreeMap<PartitionKey, (i64, i64)>, rdkafka::error::KafkaError> {
    let lows = list_offsets(consumer, keys, Offset::Beginning, timeout)?;
    let highs = list_offsets(consumer, keys, Offset::End, timeout)?;
    keys.iter()
        .map(|key| match (lows.get(key), highs.get(key)) {
            (Some(&low), Some(&high)) => Ok((key.clone(), (low, high))),
            _ => Err(rdkafka::error::KafkaError::OffsetFetch(
                RDKafkaErrorCode::UnknownPartition,
            )),
        })
        .collect()
}

/// "gps_data 0, gps_data 3": partitions, for log lines.
pub(super) fn list(keys: &[PartitionKey]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|(topic, partition)| format!("{topic} {partition}"))
        .collect();
    names.join(", ")
}
