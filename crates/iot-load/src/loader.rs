//! One run of the loader: reads batches from the group's partitions, hands each
//! to the writer thread, takes in how its commit went, and follows what the group
//! gives and takes, until caught up (or, with `--follow`, until Ctrl-C).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iot_model::{Timestamp, Topics};
use iot_runtime::{Shutdown, Ticker};

use crate::batch::Batch;
use crate::destination::Destination;
use crate::destination::duckdb::DuckDb;
use crate::destination::snowflake::Snowflake;
use crate::error::DestinationError;
use crate::load_record::LoadRecord;
use crate::options::{DestinationOptions, Options};
use crate::outcome::{LoadError, Summary};
use crate::partitions::StoredOffsets;
use crate::source::{self, KafkaSource, SourceError, lock};
use crate::writer::{Job, Writer, Written};

/// Loads until caught up (or, with `follow`, until `shutdown`), then records the
/// load and reports. Blocks the calling thread throughout: `load` is a batch
/// program whose every step (librdkafka's poll, DuckDB, a Snowflake request)
/// waits; an async caller runs it with `spawn_blocking`.
pub fn run(options: Options, shutdown: &Shutdown) -> Result<Summary, LoadError> {
    match options.destination.clone() {
        DestinationOptions::DuckDb(duck) => {
            let destination = DuckDb::new(duck, options.topics.clone());
            run_with(destination, &options, shutdown)
        }
        DestinationOptions::Snowflake(snowflake) => {
            let destination = Snowflake::new(*snowflake, options.topics.clone());
            run_with(destination, &options, shutdown)
        }
    }
}

fn run_with<D: Destination + Send + 'static>(
    mut destination: D,
    options: &Options,
    shutdown: &Shutdown,
) -> Result<Summary, LoadError> {
    let started = Instant::now();
    // Opens the destination and creates what is missing before joining the group:
    // a destination out of reach fails the run before it takes any partitions.
    destination.stored_offsets()?;
    if options.follow {
        destination.release();
    }
    // Shared with the writer thread, which commits batches, and with the rebalance
    // callback, which reads the stored offsets of the partitions it is given (after
    // the batch in flight, if any, is committed: the writer holds the lock meanwhile).
    let destination = Arc::new(Mutex::new(destination));
    // From here this thread, and librdkafka's threads started after, run below it.
    let writer = Writer::spawn(Arc::clone(&destination), options.topics.clone());
    let reader = Arc::clone(&destination);
    let mut load = LoadRecord::new(uuid::Uuid::new_v4().to_string(), Timestamp::now());
    let source = match KafkaSource::open(
        options,
        Box::new(move || lock(&reader).stored_offsets()),
        writer.waiter(source::REVOKE_WAIT),
    ) {
        Ok(source) => source,
        Err(e) => {
            // A run that never read (the broker out of reach, a topic missing) is a
            // run too: _loads says it failed, and why.
            let error = LoadError::from(e);
            record_failure(&mut *lock(&destination), &mut load, &error);
            return Err(error);
        }
    };
    tracing::info!(load_id = %load.load_id, "load started");
    let mut run = Loader {
        destination,
        writer,
        source,
        load,
        expected: StoredOffsets::new(),
        spare: Batch::default(),
    };

    if let Err(error) = run.load(options, shutdown) {
        return Err(run.fail(error));
    }

    let Loader {
        destination,
        writer,
        source,
        mut load,
        spare,
        ..
    } = run;
    // The batches' memory goes before the file is closed (closing checkpoints it:
    // the run's peak), and with the writer thread its hold on the destination.
    drop(spare);
    drop(writer);
    let interrupted = shutdown.requested();
    load.status = if interrupted {
        "interrupted"
    } else {
        "completed"
    };
    load.finished_at = Some(Timestamp::now());
    lock(&destination).record(&load)?;
    let lag = source.lag();
    Ok(Summary {
        load,
        elapsed: started.elapsed(),
        lag,
        interrupted,
    })
}

/// What a run carries from batch to batch.
struct Loader<D> {
    destination: Arc<Mutex<D>>,
    /// Commits each full batch while the next is read.
    writer: Writer,
    source: KafkaSource,
    /// What is committed so far.
    load: LoadRecord,
    /// The stored offsets of the partitions this loader owns, as it believes them:
    /// read when the group gave it each partition, moved on by what it committed. A
    /// commit succeeds only if the destination agrees.
    expected: StoredOffsets,
    /// The batch the writer gave back last, emptied, for the next one to fill.
    spare: Batch,
}

impl<D: Destination> Loader<D> {
    /// Reads and commits batches until caught up (or, with `follow`, until
    /// `shutdown`), then commits what was read.
    fn load(&mut self, options: &Options, shutdown: &Shutdown) -> Result<(), LoadError> {
        let mut batch = Batch::default();
        let mut ticker = Ticker::new(options.progress);
        let stall_limit = self.source.stall_limit();
        let mut last_message = Instant::now();
        let mut standby_said = false;
        loop {
            if shutdown.requested() || (!options.follow && self.source.caught_up()) {
                break;
            }
            let polled =
                self.source
                    .poll_into(&mut batch, &options.topics, Duration::from_millis(100))?;
            // One reading of the clock a message: the batch's age and the idle time
            // are measured against the same instant.
            let now = Instant::now();
            if polled {
                last_message = now;
            }
            if self.follow_group(&mut batch, &options.topics)? {
                // The rebalance's wait for the destination is not time the broker
                // kept messages back.
                last_message = Instant::now();
            }
            // While messages come, a written batch is taken in when the next is handed
            // over. A poll that found none may start a long wait (a follower caught
            // up): the batch is taken in now, or the group's figures would wait too.
            if !polled {
                if let Some(written) = self.writer.try_take() {
                    self.take_in(written, &mut batch)?;
                }
                // Read to a transaction's end: its marker is never delivered.
                self.source.pass_unread(&mut batch)?;
            }
            let idle = now - last_message;
            if self.source.waiting_for_partitions() {
                // A member that stopped answering holds the group up for its session.
                let waited = stall_limit + source::SESSION_TIMEOUT;
                if idle > waited && !options.follow {
                    return Err(SourceError::Unassigned { waited }.into());
                }
                // A follower is a standby: it stays in the group until it is given a
                // share, however long the others keep it waiting.
                if idle > waited && !standby_said {
                    standby_said = true;
                    tracing::warn!(
                        waited_s = waited.as_secs(),
                        "the consumer group has given this loader nothing yet; it stays \
                         in the group as a standby"
                    );
                }
            } else if !options.follow && idle > stall_limit && self.source.behind() > 0 {
                self.commit(&mut batch, false)?;
                self.settle(&mut batch)?;
                return Err(SourceError::Stalled {
                    idle: stall_limit,
                    behind: self.source.behind(),
                }
                .into());
            }
            if options.batch.should_complete(&batch, now)
                || (!options.follow && self.source.caught_up())
            {
                // A full batch means more are waiting: keep the destination open for
                // them. Otherwise a follower is about to wait, and lets go of it.
                let more_waiting = batch.len() >= options.batch.max_messages;
                self.commit(&mut batch, options.follow && !more_waiting)?;
                // Time spent waiting for the batch before (a slow or contended
                // destination) is not time the broker kept messages back.
                last_message = Instant::now();
            }
            report_progress(&mut ticker, &self.load, &batch);
        }
        // Ctrl-C: what was read is complete messages; commit it rather than read it again.
        self.commit(&mut batch, false)?;
        self.settle(&mut batch)?;
        self.source.commit_owned_offsets(&self.expected);
        Ok(())
    }

    /// Takes in what the group gave and took during the last poll: partitions given
    /// start from the offsets the destination stored (with what retention deleted
    /// recorded as gaps, and what `--start-from` passes over moving on with the
    /// batch); what the batch holds of partitions taken is dropped, for their new
    /// owner reads them again from the same stored offsets. Returns whether the
    /// group rebalanced.
    fn follow_group(&mut self, batch: &mut Batch, topics: &Topics) -> Result<bool, LoadError> {
        let changes = self.source.take_changes()?;
        let rebalanced = changes.rebalanced();
        for key in &changes.revoked {
            batch.forget(topics, key);
            self.expected.remove(key);
        }
        for placed in changes.assigned {
            let (topic, partition) = (&placed.key.0, placed.key.1);
            if let Some(r) = &placed.passed_over {
                batch.pass_over(topic, partition, r.from..r.to);
            }
            // Past a gap, or back at the start of a recreated topic: the new start is
            // stored with the next batch even if no message of the partition follows.
            if placed.stored.is_some_and(|stored| stored != placed.start()) {
                batch.start_at(topic, partition, placed.start());
            }
            match placed.stored {
                Some(next) => self.expected.insert(placed.key, next),
                None => self.expected.remove(&placed.key),
            };
            self.load.gaps.extend(placed.gap);
            self.load.resets.extend(placed.reset);
        }
        Ok(rebalanced)
    }

    /// Ends a run that failed after it started: `_loads` says `failed`, with the
    /// error, and what was committed before it (the batch in flight included).
    fn fail(&mut self, error: LoadError) -> LoadError {
        if let Err(e) = self.settle(&mut Batch::default()) {
            tracing::warn!(error = %iot_runtime::error_chain(&e), "the batch in flight failed too");
        }
        record_failure(&mut *lock(&self.destination), &mut self.load, &error);
        error
    }

    /// Hands a batch to the writer, once the one before it is committed, and
    /// leaves an empty one in its place; with `release`, the writer lets go of the
    /// destination afterwards.
    fn commit(&mut self, batch: &mut Batch, release: bool) -> Result<(), LoadError> {
        // This batch follows on from the offsets the one before it stores.
        self.settle(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut counted = self.load.clone();
        counted.add(batch);
        let full = std::mem::replace(batch, std::mem::take(&mut self.spare));
        self.writer.send(Job {
            batch: full,
            expected: self.expected.clone(),
            load: counted,
            release,
        });
        // Emptied here, while the writer writes: freeing a written batch's rows takes
        // time the writer, the slower half, would otherwise spend waiting for its next
        // batch.
        batch.clear();
        Ok(())
    }

    /// Waits for the batch in flight, if any, and takes in how it went.
    fn settle(&mut self, open: &mut Batch) -> Result<(), LoadError> {
        match self.writer.take() {
            Some(written) => self.take_in(written, open),
            None => Ok(()),
        }
    }

    /// Takes in how a batch's commit went. If another loader committed some of its
    /// partitions first, it is dropped, and so is the open batch read on after it:
    /// reading goes on from the offsets now stored.
    fn take_in(&mut self, written: Written, open: &mut Batch) -> Result<(), LoadError> {
        let Written {
            batch,
            load,
            result,
        } = written;
        let outcome = self
            .follow_on(&batch, load, result, open)
            .map_err(|source| LoadError::Commit {
                batch: describe(&batch),
                source: Box::new(source),
            });
        // The next batch reuses the memory this one grew into (emptied once the
        // next is handed over).
        self.spare = batch;
        outcome
    }

    fn follow_on(
        &mut self,
        batch: &Batch,
        counted: LoadRecord,
        result: Result<(), DestinationError>,
        open: &mut Batch,
    ) -> Result<(), LoadError> {
        match result {
            Ok(()) => {}
            Err(conflict @ DestinationError::Conflict { .. }) => {
                tracing::warn!(%conflict, "reading on from the offsets the other loader stored");
                self.expected = lock(&self.destination).stored_offsets()?;
                self.source.rewind(&self.expected, &[batch, open])?;
                open.clear();
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.load = counted;
        let next: StoredOffsets = batch
            .ranges()
            .iter()
            .map(|(k, r)| (k.clone(), r.next))
            .collect();
        self.source.commit_group_offsets(&next);
        self.expected.extend(next);
        tracing::debug!(
            messages = batch.len(),
            dead_letters = batch.dead_letters().len(),
            rows = self.load.total_rows(),
            "batch committed"
        );
        Ok(())
    }
}

/// Records in `_loads` that `load` failed with `error`, keeping what it committed.
/// Not where the destination itself is out of reach (locked, unreachable, refused):
/// nothing can be written there, and trying would only wait again.
fn record_failure(destination: &mut impl Destination, load: &mut LoadRecord, error: &LoadError) {
    if error.destination_unwritable() {
        tracing::warn!("the failure is not recorded in _loads: the destination cannot be written");
        return;
    }
    load.status = "failed";
    load.error = Some(iot_runtime::error_chain(error));
    load.finished_at = Some(Timestamp::now());
    if let Err(e) = destination.record(load) {
        tracing::warn!(error = %iot_runtime::error_chain(&e), "could not record the failed load in _loads");
    }
}

/// "gps_data 0:120..170, vehicle_data 1:40..90": what a batch covers, for messages.
fn describe(batch: &Batch) -> String {
    let ranges: Vec<String> = batch
        .ranges()
        .iter()
        .map(|((topic, partition), range)| {
            format!("{topic} {partition}:{}..{}", range.first, range.next)
        })
        .collect();
    ranges.join(", ")
}

/// A line on standard error every few seconds, for people watching a long load.
fn report_progress(ticker: &mut Ticker, load: &LoadRecord, batch: &Batch) {
    if let Some(elapsed) = ticker.due() {
        let rows = load.total_rows();
        iot_runtime::say!(
            "{rows} rows committed ({:.0}/s), {} in the open batch, {} dead letters",
            rows as f64 / elapsed.as_secs_f64(),
            batch.len(),
            load.dead_letters
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::duckdb::{DuckDb, DuckDbOptions};
    use crate::rows::KafkaMeta;

    fn loads_row(path: &std::path::Path) -> (String, i64, Option<String>) {
        let conn = duckdb::Connection::open(path).unwrap();
        conn.query_row(
            "SELECT status, rows_loaded, error FROM iot_stream._loads",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    #[test]
    fn a_failed_run_says_so_in_loads_with_its_error_and_what_it_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed.duckdb");
        let topics = Topics::default();
        let mut duck = DuckDb::new(
            DuckDbOptions {
                path: path.clone(),
                ..DuckDbOptions::default()
            },
            topics.clone(),
        );
        let mut batch = Batch::default();
        let kafka = KafkaMeta {
            partition: 0,
            offset: 0,
            timestamp: None,
            key: None,
        };
        batch.add(&topics, "gps_data", kafka, Some(b"not an event"));
        let mut load = LoadRecord::new("l".into(), Timestamp::now());
        load.add(&batch);
        duck.commit(&batch, &StoredOffsets::new(), &load).unwrap();

        let locked = LoadError::Commit {
            batch: "gps_data 0:1..2".into(),
            source: Box::new(LoadError::Destination(DestinationError::Locked {
                path: "f".into(),
                holder: String::new(),
            })),
        };
        record_failure(&mut duck, &mut load.clone(), &locked);
        duck.release();
        assert_eq!(
            loads_row(&path).0,
            "running",
            "a locked file is not waited for again"
        );

        let stalled = LoadError::Source(SourceError::Stalled {
            idle: Duration::from_secs(30),
            behind: 7,
        });
        record_failure(&mut duck, &mut load, &stalled);
        duck.release();
        let (status, rows, error) = loads_row(&path);
        assert_eq!((status.as_str(), rows), ("failed", 0));
        let error = error.unwrap_or_default();
        assert!(error.contains("7 messages are still below"), "{error}");
    }
}
