//! Reading the topics as a member of a consumer group. Loaders with the same group
//! id share the partitions (cooperative-sticky assignment: a rebalance moves only
//! the partitions that must move). Each partition given to a loader starts at the
//! offset the destination stored for it, read when it is given (not at the group's
//! committed offset, which is only updated afterwards, for lag dashboards); in cron
//! mode it is read up to the high watermark it had then.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use iot_kafka::KafkaError;
use iot_model::{Timestamp, Topics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::Options;
use crate::batch::{Batch, KafkaMeta, Key, PartitionKey};
use crate::destination::{DestinationError, PartitionRange, StoredOffsets};

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
                // A subscribed topic that does not exist yet (load --follow started
                // before simulate): it is read once it does.
                | UnknownTopicOrPartition
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
}

/// How long the group waits for a member that stopped answering (killed, or its
/// broker restarted) before it hands that member's partitions to the others. A
/// joining loader can wait this long for its first partitions. (librdkafka's
/// default is 45 s; Kafka accepts 6 s and up.)
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the destination's stored next offsets. Called from inside the consumer's
/// poll (the rebalance callback), on the loader's thread, while the loader waits.
pub type StoredReader = Box<dyn FnMut() -> Result<StoredOffsets, DestinationError> + Send>;

/// Waits until the batch the loader is committing, if any, is committed, up to
/// [`REVOKE_WAIT`]; says whether it was. Called from inside the consumer's poll
/// before the group takes partitions away, so that their new owner finds the
/// offsets that batch stored.
pub type CommitWaiter = Box<dyn Fn() -> bool + Send>;

/// How long a revocation waits for the batch in flight. The whole group waits for
/// a member that is giving partitions up, and a destination retrying a slow or
/// contended commit (up to `--retry-for`) would hold it past its rebalance
/// timeout, so that it never settles. After this the partitions go anyway: the
/// batch's commit is a compare-and-set on the stored offsets, so it and the
/// partitions' new owner cannot both store the same messages; one of the two is
/// refused as a conflict and reads on from what the other stored.
pub const REVOKE_WAIT: Duration = Duration::from_secs(10);

/// Why partitions the group gave this loader could not be placed. They stay
/// paused, and the run ends.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Stored(DestinationError),
    #[error(transparent)]
    Kafka(SourceError),
}

/// A partition the group gave this loader, and where it starts.
#[derive(Debug)]
pub struct Placed {
    pub key: PartitionKey,
    /// The destination's next offset for it; None when it has never been loaded.
    pub stored: Option<i64>,
    /// Messages retention deleted before they were loaded.
    pub gap: Option<PartitionRange>,
    /// Messages `--start-from` passes over without reading them.
    pub passed_over: Option<PartitionRange>,
    /// `--reset-offsets`: the stored offset (`from`), beyond the partition's end,
    /// replaced by its earliest (`to`).
    pub reset: Option<PartitionRange>,
    state: PartitionState,
}

impl Placed {
    /// The next offset the partition is read from.
    pub fn start(&self) -> i64 {
        self.state.next
    }
}

/// What the group changed since the loader last asked.
#[derive(Debug, Default)]
pub struct Changes {
    pub assigned: Vec<Placed>,
    pub revoked: Vec<PartitionKey>,
    rebalanced: bool,
}

impl Changes {
    /// Whether the group rebalanced: a poll that did may have waited for the
    /// destination (the batch in flight before partitions were taken, the stored
    /// offsets of those given).
    pub fn rebalanced(&self) -> bool {
        self.rebalanced
    }

    fn take_back(&mut self, key: PartitionKey) {
        // Given and taken back before the loader looked: it never had it.
        let before = self.assigned.len();
        self.assigned.retain(|p| p.key != key);
        if self.assigned.len() == before {
            self.revoked.push(key);
        }
    }

    fn merge(&mut self, later: Changes) {
        self.rebalanced |= later.rebalanced;
        for key in later.revoked {
            self.take_back(key);
        }
        self.assigned.extend(later.assigned);
    }
}

/// The consumer's context: places the partitions a rebalance gives, at the
/// destination's offsets, before librdkafka starts fetching them.
pub struct Group {
    placing: Mutex<Placing>,
}

struct Placing {
    stored: StoredReader,
    committed: CommitWaiter,
    start_from: StartFrom,
    reset_offsets: bool,
    timeout: Duration,
    changes: Changes,
    failure: Option<PlaceError>,
}

/// A mutex's value, even if a thread panicked holding it (nothing here is left
/// half-changed by a panic that matters more than the panic itself).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for Group {}

impl ConsumerContext for Group {
    // Runs before librdkafka (incrementally) assigns or revokes the partitions;
    // offsets set on an assigned list's elements are where fetching starts.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut placing = lock(&self.placing);
        placing.changes.rebalanced = true;
        match rebalance {
            Rebalance::Assign(list) => placing.assign(consumer, list),
            Rebalance::Revoke(list) => placing.revoke(list),
            Rebalance::Error(e) => {
                let error = SourceError::Read {
                    what: "the consumer group's assignment".into(),
                    source: e.clone(),
                };
                placing.failure.get_or_insert(PlaceError::Kafka(error));
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let placing = lock(&self.placing);
        if let (Rebalance::Assign(list), Some(_)) = (rebalance, &placing.failure) {
            // Not placed, so not read: the run ends at the loader's next look.
            if let Err(e) = consumer.pause(list) {
                tracing::warn!(error = %e, "could not pause partitions that were not placed");
            }
        }
    }
}

impl Placing {
    fn assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        list: &TopicPartitionList,
    ) {
        if list.count() == 0 || self.failure.is_some() {
            return;
        }
        if let Err(failure) = self.try_assign(consumer, list) {
            self.failure = Some(failure);
        }
    }

    /// Places every partition of `list`, setting where fetching starts, from one
    /// read of the stored offsets and one broker request per question (watermarks,
    /// and where `--start-from` is reached) for all of them. Blocking.
    fn try_assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        list: &TopicPartitionList,
    ) -> Result<(), PlaceError> {
        let read = |what: String, e| PlaceError::Kafka(SourceError::Read { what, source: e });
        let stored = (self.stored)().map_err(PlaceError::Stored)?;
        let keys: Vec<PartitionKey> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let marks = watermarks(consumer, &keys, self.timeout)
            .map_err(|e| read(format!("the offsets of {}", self::list(&keys)), e))?;
        let never_loaded: Vec<PartitionKey> = keys
            .iter()
            .filter(|key| !stored.contains_key(*key))
            .cloned()
            .collect();
        let reached = match self.start_from {
            StartFrom::Time(t) if !never_loaded.is_empty() => list_offsets(
                consumer,
                &never_loaded,
                Offset::Offset(t.millis()),
                self.timeout,
            )
            .map_err(|e| read(format!("where {} reach {t}", self::list(&never_loaded)), e))?,
            _ => BTreeMap::new(),
        };
        for (mut element, key) in list.elements().into_iter().zip(keys) {
            let (low, high) = marks[&key];
            let (next, at) = (stored.get(&key).copied(), reached.get(&key).copied());
            let placed = self
                .place(key, next, low, high, at)
                .map_err(PlaceError::Kafka)?;
            element
                .set_offset(Offset::Offset(placed.state.next))
                .map_err(|e| read(format!("{} partition {}", placed.key.0, placed.key.1), e))?;
            self.changes.assigned.push(placed);
        }
        Ok(())
    }

    fn revoke(&mut self, list: &TopicPartitionList) {
        if !(self.committed)() {
            tracing::warn!(
                waited_s = REVOKE_WAIT.as_secs(),
                "the batch in flight is still being committed; the group's partitions go \
                 now, and its commit is checked against the offsets their new owner stores"
            );
        }
        for element in list.elements() {
            self.changes
                .take_back((element.topic().to_owned(), element.partition()));
        }
    }

    /// Where a partition given to this loader starts: at the destination's next
    /// offset, checked against what the broker still has (`low` to `high`); for one
    /// never loaded, at its earliest message or, under `--start-from`, where that time
    /// is `reached` (None: no message that new yet, so at its end).
    fn place(
        &self,
        key: PartitionKey,
        stored: Option<i64>,
        low: i64,
        high: i64,
        reached: Option<i64>,
    ) -> Result<Placed, SourceError> {
        let (start_from, reset_offsets) = (self.start_from, self.reset_offsets);
        let (topic, partition) = (key.0.as_str(), key.1);
        let range = |from, to| PartitionRange {
            topic: topic.to_owned(),
            partition,
            from,
            to,
        };
        let (mut gap, mut passed_over, mut reset) = (None, None, None);
        let next = match stored {
            Some(stored) if stored > high => {
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
                reset = Some(range(stored, low));
                low
            }
            Some(stored) if stored < low => {
                tracing::warn!(
                    topic,
                    partition,
                    from = stored,
                    to = low,
                    "messages were deleted by retention before they could be loaded"
                );
                gap = Some(range(stored, low));
                low
            }
            Some(stored) => stored,
            None => match start_from {
                StartFrom::Earliest => low,
                StartFrom::Time(_) => {
                    let at = reached.unwrap_or(high);
                    passed_over = Some(range(low, at));
                    at
                }
            },
        };
        let not_before = match (stored, start_from) {
            (None, StartFrom::Time(t)) => Some(t),
            _ => None,
        };
        Ok(Placed {
            state: PartitionState {
                topic: topic.to_owned(),
                partition,
                next,
                end: high,
                not_before,
            },
            key,
            stored,
            gap,
            passed_over,
            reset,
        })
    }
}

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
            // writes a batch, librdkafka fetches the next, up to 8 MB. A fetch that finds
            // it full is put off, by librdkafka's default for a whole second, and the loader
            // drained it in a fraction of that and waited out the rest: 6 of the 19 s the
            // bench took for 1,000,000 messages. Put off for 10 ms, 8 MB keeps the loader
            // busy (4 MB: 7% slower; 16 MB: no faster, 30 MB more at peak). Fetches are
            // sent again after 10 ms rather than 500 when the broker has nothing more yet.
            ("queued.max.messages.kbytes", "8192"),
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
            consumer: ClosingConsumer {
                consumer: Some(consumer),
                wait: timeout,
            },
            partitions: Vec::new(),
            timeout,
            changed: None,
            pending: Changes::default(),
        })
    }

    /// What the group gave and took since the last call: the source already reads
    /// the partitions given, from where they were placed, and no longer those taken;
    /// the caller drops what it holds of those taken.
    pub fn take_changes(&mut self) -> Result<Changes, PlaceError> {
        if let Some(failure) = lock(&self.consumer.context().placing).failure.take() {
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
        let changes = std::mem::take(&mut lock(&self.consumer.context().placing).changes);
        Self::follow_rebalance(
            changes,
            &mut self.partitions,
            &mut self.changed,
            &mut self.pending,
        );
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

/// A consumer that does not hang its program on the way out. Closing a consumer
/// waits until its group's coordinator has answered the offset commits still
/// queued, and with the broker gone that never happens. So it is closed on a
/// thread of its own, waited for as long as any Kafka request, and otherwise left
/// behind: the process is ending, and the destination, not the group, holds the
/// offsets.
struct ClosingConsumer {
    /// Present until dropped.
    consumer: Option<BaseConsumer<Group>>,
    wait: Duration,
}

impl std::ops::Deref for ClosingConsumer {
    type Target = BaseConsumer<Group>;

    fn deref(&self) -> &BaseConsumer<Group> {
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

/// The offsets ListOffsets finds in each of `keys` at `at`: the earliest, the end,
/// or the first message at or after a time (a partition with none that new has no
/// entry). One request per broker: librdkafka's own watermark query asks partition
/// by partition, and first waits up to 100 ms for each one's leader (two seconds for
/// a loader given 15 partitions).
fn list_offsets<C: ConsumerContext>(
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
fn watermarks<C: ConsumerContext>(
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
fn list(keys: &[PartitionKey]) -> String {
    let names: Vec<String> = keys
        .iter()
        .map(|(topic, partition)| format!("{topic} {partition}"))
        .collect();
    names.join(", ")
}
