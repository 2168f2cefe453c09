//! The consumer group's side of reading: the consumer's context, whose rebalance
//! callback places each partition given at the destination's stored offset (read
//! then, after the batch in flight), and what the group gave and took since the
//! loader last asked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::{list, list_offsets, watermarks};
use super::{PartitionState, SourceError, StartFrom};
use crate::error::DestinationError;
use crate::partitions::PartitionKey;
use crate::partitions::{PartitionRange, StoredOffsets};

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
    pub(super) state: PartitionState,
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
    pub(super) rebalanced: bool,
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

    pub(super) fn merge(&mut self, later: Changes) {
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
    pub(super) placing: Mutex<Placing>,
    /// Set when a rebalance left changes or a failure in `placing`: the loader
    /// looks at this after every poll, and takes the lock only when it is set.
    pub(super) stirred: AtomicBool,
}

pub(super) struct Placing {
    pub(super) stored: StoredReader,
    pub(super) committed: CommitWaiter,
    pub(super) start_from: StartFrom,
    pub(super) reset_offsets: bool,
    pub(super) timeout: Duration,
    pub(super) changes: Changes,
    pub(super) failure: Option<PlaceError>,
}

/// A mutex's value, even if a thread panicked holding it (nothing here is left
/// half-changed by a panic that matters more than the panic itself).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for Group {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        iot_kafka::librdkafka_log(level, facility, message);
    }
}

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
        self.stirred.store(true, Ordering::Release);
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
