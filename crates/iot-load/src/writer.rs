//! Committing a batch on a thread of its own while the loader reads the next one.
//!
//! A loader's time goes to two halves of about the same size: reading and decoding
//! messages, and writing batches to the destination. One after the other, on one
//! thread, each half left a core idle while the other ran. Here the loader hands a
//! full batch to the writer thread and reads on into the next.
//!
//! One batch at most is in flight, and the loader takes its outcome before it hands
//! over the next: batches commit in the order they were read, each checked against
//! the offsets the one before it stored. The rebalance callback waits for the batch
//! in flight before the group takes partitions away (see [`Writer::waiter`]), so
//! what it holds of them is committed before their new owner reads the stored
//! offsets.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use iot_model::Topics;

use crate::batch::Batch;
use crate::destination::{Destination, refused_rows};
use crate::error::DestinationError;
use crate::load_record::LoadRecord;
use crate::partitions::StoredOffsets;
use crate::source::lock;

/// How much lower than the writer's the reading threads' priority is (a nice value).
const READING_NICE: i32 = 5;

/// Lowers the calling thread's priority below the writer thread's, for the rest of
/// its life, and so that of the threads it starts (librdkafka's, which inherit it).
/// The writer sets a load's pace: on a machine whose cores are all busy (the broker
/// may share it), the reading side should fill the writer's gaps rather than hold a
/// core the writer waits for. Linux keeps a nice value per thread, and lowering
/// one's own needs no privilege. Once per thread, so that repeated runs on one
/// thread (tests) do not lower it further. Elsewhere, nothing.
fn give_way_to_writer() {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static GIVEN_WAY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if GIVEN_WAY.replace(true) {
            return;
        }
        // SAFETY: nice(2) takes and returns an integer. On Linux it changes the
        // calling thread only. It can fail only to raise a priority.
        unsafe { libc::nice(READING_NICE) };
    }
}

/// A batch to commit, with what the commit checks and records.
pub struct Job {
    pub batch: Batch,
    /// The stored offsets the batch follows on from (the compare-and-set).
    pub expected: StoredOffsets,
    /// The load's record with this batch counted in.
    pub load: LoadRecord,
    /// Let go of the destination afterwards (a follower about to wait for messages).
    pub release: bool,
}

/// A batch the writer is done with, and how its commit went.
pub struct Written {
    pub batch: Batch,
    pub load: LoadRecord,
    pub result: Result<(), DestinationError>,
}

enum Slot {
    Empty,
    Queued(Job),
    Writing,
    Written(Written),
    /// The writer thread has ended (dropped, or it panicked).
    Closed,
}

struct Shared {
    slot: Mutex<Slot>,
    changed: Condvar,
}

impl Shared {
    /// The slot once no batch is queued or being written.
    fn settled(&self) -> MutexGuard<'_, Slot> {
        let slot = lock(&self.slot);
        self.changed
            .wait_while(slot, |s| matches!(s, Slot::Queued(_) | Slot::Writing))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether no batch is queued or being written, waiting up to `limit` for it.
    fn settles_within(&self, limit: Duration) -> bool {
        let slot = lock(&self.slot);
        let (slot, _) = self
            .changed
            .wait_timeout_while(slot, limit, |s| {
                matches!(s, Slot::Queued(_) | Slot::Writing)
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !matches!(*slot, Slot::Queued(_) | Slot::Writing)
    }

    fn set(&self, value: Slot) {
        *lock(&self.slot) = value;
        self.changed.notify_all();
    }
}

/// The writer thread, and the one slot through which batches go to it and back.
pub struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that commits batches to `destination`; the calling thread,
    /// which reads them, then gives way to it ([`give_way_to_writer`]), so that only
    /// threads started from here on run below the writer.
    pub fn spawn<D: Destination + Send + 'static>(
        destination: Arc<Mutex<D>>,
        topics: Topics,
    ) -> Writer {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Empty),
            changed: Condvar::new(),
        });
        let own = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || write_batches(&own, &destination, &topics))
            .expect("the system can start a thread");
        give_way_to_writer();
        Writer {
            shared,
            thread: Some(thread),
        }
    }

    /// Hands a batch over. The one before must have been taken back.
    pub fn send(&self, job: Job) {
        let mut slot = lock(&self.shared.slot);
        assert!(
            matches!(*slot, Slot::Empty),
            "a batch is handed over only once the one before it is taken back"
        );
        *slot = Slot::Queued(job);
        self.shared.changed.notify_all();
    }

    /// Waits for the batch in flight, if any, and takes it back.
    pub fn take(&self) -> Option<Written> {
        let mut slot = self.shared.settled();
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Written(written) => Some(written),
            Slot::Empty => None,
            Slot::Closed => panic!("the writer thread ended with a batch in flight"),
            Slot::Queued(_) | Slot::Writing => unreachable!("settled"),
        }
    }

    /// The batch in flight, if it is written already; never waits.
    pub fn try_take(&self) -> Option<Written> {
        let mut slot = lock(&self.shared.slot);
        match std::mem::replace(&mut *slot, Slot::Empty) {
            Slot::Written(written) => Some(written),
            other => {
                *slot = other;
                None
            }
        }
    }

    /// Something that waits up to `limit` until no batch is being written, leaving
    /// its outcome for [`Writer::take`], and says whether it was: for the rebalance
    /// callback, before partitions are taken.
    pub fn waiter(&self, limit: Duration) -> Box<dyn Fn() -> bool + Send> {
        let shared = Arc::clone(&self.shared);
        Box::new(move || shared.settles_within(limit))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A batch still in flight is written to its end: the transaction is the
        // destination's to finish, not ours to cut.
        drop(self.shared.settled());
        self.shared.set(Slot::Closed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// After the destination refused a batch for good: finds the rows it refuses, if
/// that is what it refused, turns them into dead letters with its reason, and
/// commits the rest with them. Otherwise the batch stays refused with `error`, and
/// the run fails as before (nothing of it is written; the next run reads it again).
fn commit_without_refused<D: Destination>(
    destination: &mut D,
    job: &mut Job,
    topics: &Topics,
    error: DestinationError,
) -> Result<(), DestinationError> {
    let Some(refused) = refused_rows(destination, &job.batch)? else {
        return Err(error);
    };
    tracing::warn!(
        rows = refused.len(),
        first = %refused[0].error,
        "the destination refused rows; they go to the dead letters"
    );
    job.batch.refuse(topics, &refused);
    job.load.refused(&refused);
    destination.commit(&job.batch, &job.expected, &job.load)
}

fn write_batches<D: Destination>(shared: &Shared, destination: &Mutex<D>, topics: &Topics) {
    // Should a commit panic, the loader waiting for it learns so rather than waiting on.
    struct ClosedOnPanic<'a>(&'a Shared);
    impl Drop for ClosedOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.set(Slot::Closed);
            }
        }
    }
    let _guard = ClosedOnPanic(shared);
    loop {
        let job = {
            let slot = lock(&shared.slot);
            let mut slot = shared
                .changed
                .wait_while(slot, |s| !matches!(s, Slot::Queued(_) | Slot::Closed))
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match std::mem::replace(&mut *slot, Slot::Writing) {
                Slot::Queued(job) => job,
                _ => {
                    *slot = Slot::Closed;
                    return;
                }
            }
        };
        let mut job = job;
        let result = {
            let mut destination = lock(destination);
            let result = match destination.commit(&job.batch, &job.expected, &job.load) {
                Err(e) if e.is_refusal() => {
                    commit_without_refused(&mut *destination, &mut job, topics, e)
                }
                other => other,
            };
            if result.is_ok() && job.release {
                destination.release();
            }
            result
        };
        shared.set(Slot::Written(Written {
            batch: job.batch,
            load: job.load,
            result,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::duckdb::{DuckDb, DuckDbOptions};
    use crate::rows::KafkaMeta;
    use iot_model::{Timestamp, Topics};
    use std::collections::BTreeMap;

    /// The calling thread's nice value, from /proc (field 19 of its stat line).
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc");
        // After the parenthesised name, which may hold spaces: state is field 3.
        let after_name = &stat[stat.rfind(')').expect("a name") + 2..];
        after_name
            .split(' ')
            .nth(16)
            .expect("19 fields")
            .parse()
            .expect("a number")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_gives_way_once_and_threads_started_before_keep_their_priority() {
        std::thread::spawn(|| {
            let before = own_nice();
            let started_before = std::thread::spawn(own_nice);
            give_way_to_writer();
            give_way_to_writer();
            let lowered = (before + READING_NICE).min(19);
            assert_eq!(own_nice(), lowered, "lowered once, not twice");
            assert_eq!(started_before.join().unwrap(), before);
            assert_eq!(std::thread::spawn(own_nice).join().unwrap(), lowered);
        })
        .join()
        .unwrap();
    }

    /// The ids and nice values of this process's threads named "writer".
    #[cfg(target_os = "linux")]
    fn writer_threads() -> BTreeMap<String, i32> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc")
            .filter_map(|task| {
                let path = task.ok()?.path();
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
                let after_name = &stat[stat.rfind(')')? + 2..];
                let nice = after_name.split(' ').nth(16)?.parse().ok()?;
                let id = path.file_name()?.to_string_lossy().into_owned();
                (name == "writer").then_some((id, nice))
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn spawning_the_writer_lowers_the_caller_and_not_the_writer() {
        std::thread::spawn(|| {
            let before = own_nice();
            let writers_before = writer_threads();
            let destination = Arc::new(Mutex::new(DuckDb::new(
                DuckDbOptions::default(),
                Topics::default(),
            )));
            let writer = Writer::spawn(destination, Topics::default());
            assert_eq!(own_nice(), (before + READING_NICE).min(19));
            // Other tests may start writers meanwhile, from threads like this one. A
            // thread takes its name once it runs: looked for until it has.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let started = loop {
                let started: Vec<i32> = writer_threads()
                    .into_iter()
                    .filter(|(id, _)| !writers_before.contains_key(id))
                    .map(|(_, nice)| nice)
                    .collect();
                if !started.is_empty() || std::time::Instant::now() > deadline {
                    break started;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert!(started.contains(&before), "new writers' nice: {started:?}");
            drop(writer);
        })
        .join()
        .unwrap();
    }

    /// A batch of one dead letter at `offset` of gps_data partition 0.
    fn batch_at(offset: i64) -> Batch {
        let mut batch = Batch::default();
        let kafka = KafkaMeta {
            partition: 0,
            offset,
            timestamp: None,
            key: None,
        };
        batch.add(&Topics::default(), "gps_data", kafka, Some(b"not JSON"));
        batch
    }

    #[test]
    fn batches_commit_in_turn_and_a_stale_one_comes_back_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = DuckDbOptions {
            path: dir.path().join("writer.duckdb"),
            ..DuckDbOptions::default()
        };
        let destination = Arc::new(Mutex::new(DuckDb::new(options, Topics::default())));
        let writer = Writer::spawn(Arc::clone(&destination), Topics::default());
        let wait = writer.waiter(Duration::from_secs(30));
        let load = LoadRecord::new("writer".into(), Timestamp::now());
        assert!(writer.take().is_none(), "nothing in flight yet");

        let job = |offset, expected: &[i64]| Job {
            batch: batch_at(offset),
            expected: expected
                .iter()
                .map(|&next| (("gps_data".to_owned(), 0), next))
                .collect(),
            load: load.clone(),
            release: false,
        };
        writer.send(job(0, &[]));
        assert!(wait(), "a batch of one row is committed within 30 s");
        let first = writer.take().expect("the batch handed over");
        assert!(first.result.is_ok(), "{:?}", first.result.err());
        assert_eq!(first.batch.ranges().len(), 1, "the batch comes back whole");

        writer.send(job(1, &[1]));
        let second = writer.take().expect("the second batch");
        assert!(second.result.is_ok(), "{:?}", second.result.err());

        // A batch that assumes the first was never stored.
        writer.send(job(1, &[]));
        let stale = writer.take().expect("the stale batch");
        assert!(
            matches!(stale.result, Err(DestinationError::Conflict { .. })),
            "{:?}",
            stale.result.err()
        );
        drop(writer);
        let stored = lock(&destination).stored_offsets().unwrap();
        assert_eq!(stored.get(&("gps_data".to_owned(), 0)), Some(&2));
    }
}
