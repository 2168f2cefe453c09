//! What the loader tells about its progress: offsets committed to the consumer
//! group, for lag dashboards (the destination's offsets are the truth), and the lag
//! a run leaves.

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSource;
use super::offsets::list_offsets;
use crate::partitions::PartitionKey;
use crate::partitions::StoredOffsets;

impl KafkaSource {
    /// Tells the consumer group how far the destination has got, for lag
    /// dashboards. Best effort: the destination's offsets are the truth. All of a
    /// batch's partitions, owned or not: one the group took while the batch was
    /// being written went only once it was committed, and its new owner, which may
    /// never commit a batch of it, starts from there.
    pub fn commit_group_offsets(&self, next: &BTreeMap<PartitionKey, i64>) {
        self.commit_to_group(next.iter(), CommitMode::Async);
    }

    /// At the end of a run: the stored offsets of every partition this loader owns,
    /// committed to the group and waited for. A commit made during a rebalance is
    /// refused, so without this the group could show lag the destination does not
    /// have.
    pub fn commit_owned_offsets(&self, stored: &StoredOffsets) {
        let owned = stored.iter().filter(|((topic, partition), _)| {
            self.partitions
                .iter()
                .any(|p| p.topic == *topic && p.partition == *partition)
        });
        self.commit_to_group(owned, CommitMode::Sync);
    }

    fn commit_to_group<'a>(
        &self,
        next: impl Iterator<Item = (&'a PartitionKey, &'a i64)>,
        mode: CommitMode,
    ) {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&list, mode) {
            // The destination holds the offsets; the group's figures only lag behind.
            tracing::warn!(error = %e, "could not commit offsets to the consumer group");
        }
    }

    /// Messages in the topics not yet read: the lag this run leaves behind; None
    /// when the broker did not say where the partitions end.
    pub fn lag(&self) -> Option<i64> {
        let keys: Vec<PartitionKey> = self
            .partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        let ends = match list_offsets(&self.consumer, &keys, Offset::End, self.timeout) {
            Ok(ends) => ends,
            Err(error) => {
                tracing::warn!(%error, "could not read the partitions' ends for the lag figure");
                return None;
            }
        };
        self.partitions
            .iter()
            .zip(&keys)
            .map(|(p, key)| ends.get(key).map(|high| (high - p.next).max(0)))
            .sum()
    }
}
