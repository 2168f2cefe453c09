//! Reading the topics: every partition assigned explicitly at the offset the
//! destination stored (not at a consumer group's committed offset, which is only
//! updated afterwards for lag dashboards), and, in cron mode, read up to the high
//! watermark it had when the run started.

use std::collections::BTreeMap;
use std::time::Duration;

use iot_kafka::{KafkaError, KafkaSettings};
use iot_model::{Timestamp, Topics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::batch::{Batch, KafkaMeta, Key, PartitionKey};
use crate::destination::{PartitionRange, StoredOffsets};

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
fn passing(error: &rdkafka::error::KafkaError) -> bool {
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
        )
    )
}

/// Where to start partitions the destination has no offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    #[default]
    Earliest,
    /// The first message at or after this time.
    Time(Timestamp),
}

#[derive(Debug, Clone)]
struct PartitionState {
    topic: String,
    partition: i32,
    /// The next offset to read.
    next: i64,
    /// The high watermark when the run started: where cron mode stops.
    end: i64,
    /// `--start-from` for a partition never loaded: messages older than this are
    /// passed over. The broker's time index only finds where to begin; this check
    /// makes the rule hold whatever the broker answers.
    not_before: Option<Timestamp>,
}

pub struct KafkaSource {
    consumer: ClosingConsumer,
    partitions: Vec<PartitionState>,
    timeout: Duration,
}

/// What opening found: the source, the ranges retention deleted before they were
/// loaded, and the ranges `--start-from` passes over without reading them.
pub struct Opened {
    pub source: KafkaSource,
    pub gaps: Vec<PartitionRange>,
    pub passed_over: Vec<PartitionRange>,
}

impl KafkaSource {
    /// Connects, creates missing topics, and assigns every partition of `topics`
    /// at its stored next offset. Blocking.
    pub fn open(
        settings: &KafkaSettings,
        group_id: &str,
        topics: &Topics,
        stored: &StoredOffsets,
        start_from: StartFrom,
        reset_offsets: bool,
    ) -> Result<Opened, SourceError> {
        settings.check_reachable()?;
        let mut config = settings.client_config();
        for (key, value) in [
            ("group.id", group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Every partition is assigned at an offset load chose. Should the broker no
            // longer have it, librdkafka would move on to the earliest message (loading
            // stored ones again) or the latest (passing over some): "error" stops instead.
            ("auto.offset.reset", "error"),
            // Bounds librdkafka's read-ahead per partition, and so our memory.
            ("queued.max.messages.kbytes", "8192"),
        ] {
            if !settings.extra.iter().any(|(k, _)| k == key) {
                config.set(key, value);
            }
        }
        let consumer: BaseConsumer = config.create().map_err(KafkaError::Config)?;
        let timeout = settings.timeout;
        let read =
            |what: String, e: rdkafka::error::KafkaError| SourceError::Read { what, source: e };

        let mut partitions = Vec::new();
        let mut gaps = Vec::new();
        let mut passed_over = Vec::new();
        for (_, topic) in topics.iter() {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| read(format!("the partitions of {topic}"), e))?;
            let ids: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            for partition in ids {
                let (low, high) = consumer
                    .fetch_watermarks(topic, partition, timeout)
                    .map_err(|e| {
                        read(format!("the offsets of {topic} partition {partition}"), e)
                    })?;
                let stored_next = stored.get(&(topic.to_owned(), partition));
                let not_before = match (stored_next, start_from) {
                    (None, StartFrom::Time(t)) => Some(t),
                    _ => None,
                };
                let next = match stored_next {
                    Some(&stored) if stored > high => {
                        if !reset_offsets {
                            return Err(SourceError::OffsetBeyondEnd {
                                topic: topic.to_owned(),
                                partition,
                                stored,
                                high,
                            });
                        }
                        tracing::warn!(
                            topic,
                            partition,
                            stored,
                            high,
                            "--reset-offsets: reading the partition from its earliest message"
                        );
                        low
                    }
                    Some(&stored) if stored < low => {
                        tracing::warn!(
                            topic,
                            partition,
                            from = stored,
                            to = low,
                            "messages were deleted by retention before they could be loaded"
                        );
                        gaps.push(PartitionRange {
                            topic: topic.to_owned(),
                            partition,
                            from: stored,
                            to: low,
                        });
                        low
                    }
                    Some(&stored) => stored,
                    None => match start_from {
                        StartFrom::Earliest => low,
                        StartFrom::Time(t) => {
                            // No message that new yet: the partition starts at its end.
                            let at = offset_for_time(&consumer, topic, partition, t, timeout)
                                .map_err(|e| {
                                    read(
                                        format!("where {topic} partition {partition} reaches {t}"),
                                        e,
                                    )
                                })?
                                .unwrap_or(high);
                            passed_over.push(PartitionRange {
                                topic: topic.to_owned(),
                                partition,
                                from: low,
                                to: at,
                            });
                            at
                        }
                    },
                };
                partitions.push(PartitionState {
                    topic: topic.to_owned(),
                    partition,
                    next,
                    end: high,
                    not_before,
                });
            }
        }

        let mut assignment = TopicPartitionList::new();
        for p in &partitions {
            assignment
                .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .map_err(|e| read(format!("{} partition {}", p.topic, p.partition), e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| read("the partition assignment".into(), e))?;
        Ok(Opened {
            source: KafkaSource {
                consumer: ClosingConsumer {
                    consumer: Some(consumer),
                    wait: timeout,
                },
                partitions,
                timeout,
            },
            gaps,
            passed_over,
        })
    }

    /// Whether every partition has been read up to where it ended when the run started.
    pub fn caught_up(&self) -> bool {
        self.behind() == 0
    }

    /// Messages between where each partition is and where it ended at the start.
    pub fn behind(&self) -> i64 {
        self.partitions
            .iter()
            .map(|p| (p.end - p.next).max(0))
            .sum()
    }

    /// Waits up to `timeout` for a message and adds it to `batch`. Returns whether
    /// one came. Blocking.
    pub fn poll_into(
        &mut self,
        batch: &mut Batch,
        topics: &Topics,
        timeout: Duration,
    ) -> Result<bool, SourceError> {
        let Some(result) = self.consumer.poll(timeout) else {
            return Ok(false);
        };
        let message = match result {
            Ok(message) => message,
            Err(e) if passing(&e) => {
                // librdkafka tries the request again by itself; it only tells us.
                tracing::warn!(error = %e, "Kafka answered a fetch with an error that passes");
                return Ok(false);
            }
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) => {
                return Err(SourceError::OutOfRange { source: e });
            }
            Err(e) => {
                return Err(SourceError::Read {
                    what: "messages".into(),
                    source: e,
                });
            }
        };
        let meta = KafkaMeta {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(Timestamp::from_millis),
            key: message.key().map(Key::new),
        };
        let topic = message.topic();
        let mut too_old = false;
        if let Some(p) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == meta.partition && p.topic == topic)
        {
            if meta.offset < p.next {
                // Read already: in this batch, an earlier one, or the destination.
                tracing::warn!(
                    topic,
                    partition = meta.partition,
                    offset = meta.offset,
                    next = p.next,
                    "Kafka delivered a message again; it is not loaded twice"
                );
                return Ok(true);
            }
            p.next = meta.offset + 1;
            too_old = p
                .not_before
                .is_some_and(|t| meta.timestamp.is_some_and(|m| m < t));
        }
        if too_old {
            batch.skip(topic, meta.partition, meta.offset);
        } else {
            batch.add(topics, topic, meta, message.payload());
        }
        Ok(true)
    }

    /// After a batch was dropped because another loader committed first: moves
    /// every partition to its stored offset, so that reading goes on exactly where
    /// the destination says (a partition never stored goes back to the start of
    /// what the dropped batch held of it). Blocking.
    pub fn rewind(&mut self, stored: &StoredOffsets, dropped: &Batch) -> Result<(), SourceError> {
        for p in &mut self.partitions {
            let key = (p.topic.clone(), p.partition);
            let next = match (stored.get(&key), dropped.ranges().get(&key)) {
                (Some(&stored), _) => stored,
                (None, Some(range)) => range.first,
                (None, None) => continue,
            };
            if next == p.next {
                continue;
            }
            self.consumer
                .seek(&p.topic, p.partition, Offset::Offset(next), self.timeout)
                .map_err(|e| SourceError::Read {
                    what: format!("{} partition {} at offset {next}", p.topic, p.partition),
                    source: e,
                })?;
            p.next = next;
        }
        Ok(())
    }

    /// Tells the consumer group how far the destination has got, for lag
    /// dashboards. Best effort: the destination's offsets are the truth.
    pub fn commit_group_offsets(&self, next: &BTreeMap<PartitionKey, i64>) {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(error = %e, "could not commit offsets to the consumer group");
        }
    }

    /// Messages in the topics not yet read: the lag this run leaves behind.
    pub fn lag(&self) -> i64 {
        self.partitions
            .iter()
            .map(|p| {
                self.consumer
                    .fetch_watermarks(&p.topic, p.partition, self.timeout)
                    .map_or(0, |(_, high)| (high - p.next).max(0))
            })
            .sum()
    }
}

/// A consumer that does not hang its program on the way out. Closing a consumer
/// waits until its group's coordinator has answered the offset commits still
/// queued, and with the broker gone that never happens. So it is closed on a
/// thread of its own, waited for as long as any Kafka request, and otherwise left
/// behind: the process is ending, and the destination, not the group, holds the
/// offsets.
struct ClosingConsumer {
    /// Present until dropped.
    consumer: Option<BaseConsumer>,
    wait: Duration,
}

impl std::ops::Deref for ClosingConsumer {
    type Target = BaseConsumer;

    fn deref(&self) -> &BaseConsumer {
        self.consumer
            .as_ref()
            .expect("the consumer is there until dropped")
    }
}

impl Drop for ClosingConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let (closed, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
        if wait.recv_timeout(self.wait).is_err() {
            tracing::warn!(
                waited_s = self.wait.as_secs_f64(),
                "the Kafka consumer did not close (is the broker gone?); leaving it"
            );
        }
    }
}

/// The first offset of a message stamped `at` or later, or None when the partition
/// holds none yet. An error is an error: guessing here would skip messages.
fn offset_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    at: Timestamp,
    timeout: Duration,
) -> Result<Option<i64>, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(at.millis()))?;
    let found = consumer.offsets_for_times(list, timeout)?;
    let element = found.find_partition(topic, partition);
    if let Some(error) = element.as_ref().and_then(|e| e.error().err()) {
        return Err(error);
    }
    Ok(match element.map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    })
}
