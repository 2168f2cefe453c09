//! Reading the topics as a member of a consumer group. Loaders with the same group
//! id share the partitions (cooperative-sticky assignment: a rebalance moves only
//! the partitions that must move). Each partition given to a loader starts at the
//! offset the destination stored for it, read when it is given (not at the group's
//! committed offset, which is only updated afterwards, for lag dashboards); in cron
//! mode it is read up to the high watermark it had then.

mod closing;
mod error;
mod group;
mod offsets;
mod progress;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use iot_kafka::KafkaError;
use iot_model::{Timestamp, Topics};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;

pub use error::SourceError;
pub(crate) use group::lock;
pub use group::{Changes, CommitWaiter, Group, PlaceError, Placed, REVOKE_WAIT, StoredReader};

use crate::batch::Batch;
use crate::options::{Options, StartFrom};
use crate::partitions::{PartitionKey, StoredOffsets};
use crate::rows::{KafkaMeta, Key};
use closing::ClosingConsumer;
use error::passing;
use group::Placing;
use offsets::list;

#[derive(Debug, Clone)]
pub(super) struct PartitionState {
    topic: String,
    partition: i32,
    /// The next offset to read.
    next: i64,
    /// The high watermark when the partition was given to this loader: where cron
    /// mode stops.
    end: i64,
    /// `--start-from` for a partition never loaded: messages older than this are
    /// passed over. The broker's time index only finds where to begin; this check
    /// makes the rule hold whatever the broker answers.
    not_before: Option<Timestamp>,
}

pub struct KafkaSource {
    consumer: ClosingConsumer,
    /// The partitions this loader owns now.
    partitions: Vec<PartitionState>,
    timeout: Duration,
    /// When the group last gave or took partitions; None before it first did.
    changed: Option<Instant>,
    /// Changes the loader has not taken yet.
    pending: Changes,
    /// Why placing partitions failed in a rebalance, for the loader's next look.
    failure: Option<PlaceError>,
}

/// How long the group waits for a member that stopped answering (killed, or its
/// broker restarted) before it hands that member's partitions to the others. A
/// joining loader can wait this long for its first partitions. (librdkafka's
/// default is 45 s; Kafka accepts 6 s and up.)
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaSource {
    /// Connects and joins the consumer group, subscribed to the five topics; as a
    /// static member if an instance id is given (a restart with the same id takes its
    /// partitions back at once). The partitions come with the first polls, each
    /// placed at the offset `stored` reads for it then; partitions are taken once
    /// `committed` returns. In cron mode every topic must exist. Blocking.
    pub fn open(
        options: &Options,
        stored: StoredReader,
        committed: CommitWaiter,
    ) -> Result<KafkaSource, SourceError> {
        let Options {
            kafka: settings,
            group_id,
            instance_id,
            topics,
            start_from,
            reset_offsets,
            follow,
            ..
        } = options;
        let (start_from, reset_offsets, follow) = (*start_from, *reset_offsets, *follow);
        settings.check_reachable()?;
        let mut config = settings.client_config();
        let session_timeout = SESSION_TIMEOUT.as_millis().to_string();
        if let Some(instance) = instance_id {
            config.set("group.instance.id", instance);
        }
        for (key, value) in [
            ("group.id", group_id.as_str()),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("session.timeout.ms", &session_timeout),
            ("heartbeat.interval.ms", "2000"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Every partition is placed at an offset load chose. Should the broker no
            // longer have it, librdkafka would move on to the earliest message (loading
            // stored ones again) or the latest (passing over some): "error" stops instead.
            ("auto.offset.reset", "error"),
            // librdkafka's read-ahead, in the one queue of the consumer: while the loader
            // writes a batch, librdkafka fetches the next, up to 2 MB (more costs memory,
            // as a fetch overshoots the limit by up to its own size, and reads no faster).
            // A fetch that finds the queue full is put off, by librdkafka's default for a
            // whole second, which the loader would wait out after draining the queue; put
            // off for 10 ms, the writer, not the reading, sets the pace. Fetches are sent
            // again after 10 ms rather than 500 when the broker has nothing more yet.
            ("queued.max.messages.kbytes", "2048"),
            ("fetch.queue.backoff.ms", "10"),
            ("fetch.wait.max.ms", "10"),
        ] {
            if !settings.extra.iter().any(|(k, _)| k == key) {
                config.set(key, value);
            }
        }
        let timeout = settings.timeout;
        let group = Group {
            placing: Mutex::new(Placing {
                stored,
                committed,
                start_from,
                reset_offsets,
                timeout,
                changes: Changes::default(),
                failure: None,
            }),
            stirred: AtomicBool::new(false),
        };
        let consumer: BaseConsumer<Group> = config
            .create_with_context(group)
            .map_err(KafkaError::Config)?;
        let names: Vec<&str> = topics.iter().map(|(_, topic)| topic).collect();
        for topic in &names {
            let metadata =
                consumer
                    .fetch_metadata(Some(topic), timeout)
                    .map_err(|e| SourceError::Read {
                        what: format!("the partitions of {topic}"),
                        source: e,
                    })?;
            let exists = metadata
                .topics()
                .iter()
                .any(|t| t.error().is_none() && !t.partitions().is_empty());
            if !exists {
                if !follow {
                    return Err(SourceError::UnknownTopic {
                        topic: (*topic).to_owned(),
                    });
                }
                tracing::warn!(
                    topic,
                    "the topic does not exist yet; it is read once it does"
                );
            }
        }
        consumer.subscribe(&names).map_err(|e| SourceError::Read {
            what: "the subscription to the topics".into(),
            source: e,
        })?;
        Ok(KafkaSource {
            consumer: ClosingConsumer::new(consumer, timeout),
            partitions: Vec::new(),
            timeout,
            changed: None,
            pending: Changes::default(),
            failure: None,
        })
    }

    /// What the group gave and took since the last call: the source already reads
    /// the partitions given, from where they were placed, and no longer those taken;
    /// the caller drops what it holds of those taken.
    pub fn take_changes(&mut self) -> Result<Changes, PlaceError> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Follows what a rebalance during the last poll changed. Called right after
    /// each poll, before its message is looked at: a message from a partition given
    /// in that same poll must find it here. (Fields, not `self`: the polled message
    /// still borrows the consumer.)
    fn follow_rebalance(
        changes: Changes,
        partitions: &mut Vec<PartitionState>,
        changed: &mut Option<Instant>,
        pending: &mut Changes,
    ) {
        if !changes.rebalanced {
            return;
        }
        *changed = Some(Instant::now());
        partitions.retain(|p| {
            !changes
                .revoked
                .iter()
                .any(|(topic, partition)| *topic == p.topic && *partition == p.partition)
        });
        partitions.extend(changes.assigned.iter().map(|placed| placed.state.clone()));
        if !changes.revoked.is_empty() {
            tracing::info!(partitions = %list(&changes.revoked), "partitions taken by the group");
        }
        let given: Vec<PartitionKey> = changes.assigned.iter().map(|p| p.key.clone()).collect();
        if !given.is_empty() || changes.revoked.is_empty() {
            tracing::info!(partitions = %list(&given), "partitions given by the group");
        }
        pending.merge(changes);
    }

    /// Whether the group has not yet given this loader anything (not even nothing).
    pub fn waiting_for_partitions(&self) -> bool {
        self.changed.is_none()
    }

    /// How long a cron run may go without progress before it gives up: without a
    /// message while behind (a broker that stops delivering below the watermarks it
    /// reported must not hang the run until the next cron job piles up behind it),
    /// or without a share of the partitions.
    pub fn stall_limit(&self) -> Duration {
        (self.timeout * 3).max(Duration::from_secs(30))
    }

    /// Whether the group has given this loader its partitions and each has been read
    /// up to where it ended when it was given. A loader given none waits for a share
    /// up to the stall limit after the group last changed: with cooperative-sticky
    /// assignment a newcomer is first given nothing, and its share comes a rebalance
    /// later, once the members holding it let go of it, which they do between
    /// batches (a slow destination delays it by seconds).
    pub fn caught_up(&self) -> bool {
        match self.changed {
            None => false,
            Some(_) if !self.partitions.is_empty() => self.behind() == 0,
            Some(at) => at.elapsed() >= self.stall_limit(),
        }
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
        let polled = self.consumer.poll(timeout);
        // A rebalance runs inside a poll, on this thread; most polls see none, and
        // skip the lock (taken twice a message before, for what happens a few times
        // a run).
        let group = self.consumer.context();
        if group.stirred.swap(false, Ordering::Acquire) {
            let mut placing = lock(&group.placing);
            let changes = std::mem::take(&mut placing.changes);
            if let Some(failure) = placing.failure.take() {
                self.failure.get_or_insert(failure);
            }
            drop(placing);
            Self::follow_rebalance(
                changes,
                &mut self.partitions,
                &mut self.changed,
                &mut self.pending,
            );
        }
        let Some(result) = polled else {
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
        let Some(p) = self
            .partitions
            .iter_mut()
            .find(|p| p.partition == meta.partition && p.topic == topic)
        else {
            // From a partition the group has taken since: its new owner reads it.
            return Ok(true);
        };
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
        let too_old = p
            .not_before
            .is_some_and(|t| meta.timestamp.is_some_and(|m| m < t));
        if too_old {
            batch.skip(topic, meta.partition, meta.offset);
        } else {
            batch.add(topics, topic, meta, message.payload());
        }
        Ok(true)
    }

    /// Moves partitions on past offsets that hold no message for this consumer: a
    /// transaction's closing control record and an aborted transaction's messages
    /// take offsets that a read_committed consumer never receives, so the last
    /// delivered offset + 1 can stay below a partition's end for good. The
    /// consumer's position says how far it has read; those offsets go with `batch`.
    /// Asked when a poll found nothing, for the partitions short of where they
    /// ended when given. Blocking (no request to the broker).
    pub fn pass_unread(&mut self, batch: &mut Batch) -> Result<(), SourceError> {
        if self.partitions.iter().all(|p| p.next >= p.end) {
            return Ok(());
        }
        let positions = self.consumer.position().map_err(|e| SourceError::Read {
            what: "the consumer's positions".into(),
            source: e,
        })?;
        for element in positions.elements() {
            let Offset::Offset(position) = element.offset() else {
                continue;
            };
            let (topic, partition) = (element.topic(), element.partition());
            let Some(p) = self
                .partitions
                .iter_mut()
                .find(|p| p.partition == partition && p.topic == topic)
            else {
                continue;
            };
            if position > p.next {
                batch.pass_unread(topic, partition, p.next..position);
                p.next = position;
            }
        }
        Ok(())
    }

    /// After batches were dropped because another loader committed first: moves
    /// every partition to its stored offset, so that reading goes on exactly where
    /// the destination says (a partition never stored goes back to the start of
    /// what the earliest dropped batch, of those given earliest first, held of it).
    /// Blocking.
    pub fn rewind(
        &mut self,
        stored: &StoredOffsets,
        dropped: &[&Batch],
    ) -> Result<(), SourceError> {
        for p in &mut self.partitions {
            let key = (p.topic.clone(), p.partition);
            let first = dropped.iter().find_map(|b| b.ranges().get(&key));
            let next = match (stored.get(&key), first) {
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
}
