//! DuckDB: one file (default `iot_service.duckdb`), one schema per dataset, the
//! declared tables (see `tables.rs`) and the views of `views.sql`.
//!
//! DuckDB lets one process write a file at a time, and DBeaver keeps it open while
//! connected. So the loader opens the file only to write, keeps it open while
//! batches follow each other, lets go of it when it waits for messages, and while
//! another program holds it, waits under the retry policy up to the lock timeout.
//!
//! `connection.rs` opens the file, `schema.rs` keeps tables and views up to date,
//! `write.rs` writes declared tables as Arrow columns (`destination::arrow`).

use std::path::PathBuf;
use std::time::Duration;

use duckdb::Connection;
use iot_model::{EventKind, Timestamp, Topics};

pub mod connection;
pub mod schema;
mod write;

use crate::batch::Batch;
use crate::destination::{Destination, conflict};
use crate::error::{DestinationError, Result};
use crate::load_record::LoadRecord;
use crate::partitions::StoredOffsets;
use crate::rows::Row;
use crate::tables::{self, Context, DEAD_LETTERS, LOADS, OFFSETS, StoredOffset};

/// The storage format written by default: readable by DuckDB 1.4 and later, which
/// current DBeaver drivers bundle.
pub const DEFAULT_STORAGE_VERSION: &str = "v1.4.0";

#[derive(Debug, Clone)]
pub struct DuckDbOptions {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// Schema the tables live in (the dataset name).
    pub schema: String,
    /// Storage format of a new file, e.g. `v1.4.0`.
    pub storage_version: String,
    /// How long to wait for another program to release the file.
    pub lock_timeout: Duration,
}

impl Default for DuckDbOptions {
    fn default() -> Self {
        Self {
            path: PathBuf::from("iot_service.duckdb"),
            schema: "iot_stream".into(),
            storage_version: DEFAULT_STORAGE_VERSION.into(),
            lock_timeout: Duration::from_secs(30),
        }
    }
}

pub struct DuckDb {
    options: DuckDbOptions,
    topics: Topics,
    /// Set once the tables and views exist and match the model, in this run.
    schema_ready: bool,
    /// The open file, kept between batches that follow each other and closed by
    /// [`Destination::release`] when the loader waits, so that others can open it.
    conn: Option<Connection>,
    /// Rows committed since the file was opened, and how many close it (see
    /// [`REOPEN_AFTER_ROWS`]).
    rows_since_open: usize,
    reopen_after_rows: usize,
}

/// DuckDB keeps what it knows of every row group it wrote while the file is open, so
/// a loader that kept the file open through a long backlog, or a `--follow` run for
/// days, would grow without bound. Closing the file after this many rows (which
/// checkpoints it, work a checkpoint would do anyway) and opening it again for the
/// next batch lets go of that, at no cost in speed.
const REOPEN_AFTER_ROWS: usize = 500_000;

impl DuckDb {
    pub fn new(options: DuckDbOptions, topics: Topics) -> Self {
        Self {
            options,
            topics,
            schema_ready: false,
            conn: None,
            rows_since_open: 0,
            reopen_after_rows: REOPEN_AFTER_ROWS,
        }
    }

    /// The open file, taken out for a transaction: opened if it is not, waiting
    /// while another process holds it, with the tables made sure of. Put back with
    /// [`DuckDb::keep`] after success; dropped on failure, which rolls back.
    fn take_connection(&mut self) -> Result<Connection> {
        if let Some(conn) = self.conn.take() {
            return Ok(conn);
        }
        let retry = iot_runtime::RetryPolicy::for_time(
            Duration::from_millis(100),
            Duration::from_secs(2),
            self.options.lock_timeout,
        );
        let conn = retry.run("opening the database file", || {
            connection::open(&self.options)
        })?;
        if !self.schema_ready {
            schema::prepare(&conn, &self.options.schema)?;
            self.schema_ready = true;
        }
        self.rows_since_open = 0;
        Ok(conn)
    }

    fn keep(&mut self, conn: Connection) {
        self.conn = Some(conn);
    }

    /// Everything of a batch, inside the open transaction.
    fn write(&self, conn: &Connection, batch: &Batch, load: &LoadRecord) -> Result<()> {
        let schema = self.options.schema.as_str();
        let now = Timestamp::now();
        let on = |topic| Context {
            topic,
            load_id: &load.load_id,
            now,
        };
        for kind in EventKind::ALL {
            let context = on(self.topics.name(kind));
            write::append(
                conn,
                schema,
                tables::events(kind),
                batch.rows(kind),
                &context,
            )?;
        }
        let context = on("");
        write::append(conn, schema, &DEAD_LETTERS, batch.dead_letters(), &context)?;
        let offsets: Vec<StoredOffset> = batch
            .ranges()
            .iter()
            .map(|(key, range)| (key.clone(), *range))
            .collect();
        write::upsert(conn, schema, &OFFSETS, &offsets, &context)?;
        write::upsert(conn, schema, &LOADS, std::slice::from_ref(load), &context)
    }
}

impl Destination for DuckDb {
    fn stored_offsets(&mut self) -> Result<StoredOffsets> {
        let conn = self.take_connection()?;
        let offsets = write::read_offsets(&conn, &self.options.schema)?;
        self.keep(conn);
        Ok(offsets)
    }

    fn commit(&mut self, batch: &Batch, expected: &StoredOffsets, load: &LoadRecord) -> Result<()> {
        let conn = self.take_connection()?;
        let transaction = |e| DestinationError::write("the transaction", e);
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(transaction)?;
        // The file lock keeps other writers out while the transaction runs, so a
        // check here holds until COMMIT.
        let stored = write::read_offsets(&conn, &self.options.schema)?;
        if let Some(conflict) = conflict(batch, expected, &stored) {
            return Err(conflict);
        }
        self.write(&conn, batch, load)?;
        conn.execute_batch("COMMIT").map_err(transaction)?;
        self.rows_since_open += batch.len();
        if self.rows_since_open < self.reopen_after_rows {
            self.keep(conn);
        }
        Ok(())
    }

    fn try_rows(&mut self, kind: EventKind, rows: &[Row]) -> Result<()> {
        let conn = self.take_connection()?;
        let transaction = |e| DestinationError::write("the transaction", e);
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(transaction)?;
        let context = Context {
            topic: self.topics.name(kind),
            load_id: "",
            now: Timestamp::now(),
        };
        let outcome = write::append(
            &conn,
            &self.options.schema,
            tables::events(kind),
            rows,
            &context,
        );
        conn.execute_batch("ROLLBACK").map_err(transaction)?;
        self.keep(conn);
        outcome
    }

    fn record(&mut self, load: &LoadRecord) -> Result<()> {
        let conn = self.take_connection()?;
        write::upsert(
            &conn,
            &self.options.schema,
            &LOADS,
            std::slice::from_ref(load),
            &Context::new(&load.load_id),
        )
    }

    fn release(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::ddl::Dialect;
    use crate::rows::KafkaMeta;
    use crate::tables::ColumnType;
    use crate::tables::tests::one_of_each;
    use schema::DuckDbSql;

    /// A DuckDb writing a fresh file in a directory of its own, removed when the
    /// third part is dropped.
    fn scratch(name: &str) -> (DuckDb, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let options = DuckDbOptions {
            path: path.clone(),
            ..DuckDbOptions::default()
        };
        (DuckDb::new(options, Topics::default()), path, dir)
    }

    /// One event of each kind, as messages at offsets 0.. of partition 2.
    fn batch_of(events: &[iot_model::Event]) -> Batch {
        batch_at(events, 0)
    }

    /// `events` at offsets from `first` on, in partition 2 of their topics.
    fn batch_at(events: &[iot_model::Event], first: i64) -> Batch {
        let topics = Topics::default();
        let mut batch = Batch::default();
        for (offset, event) in (first..).zip(events) {
            let mut json = Vec::new();
            event.encode(&mut json);
            let kafka = KafkaMeta {
                partition: 2,
                offset,
                timestamp: Some(Timestamp::now()),
                key: Some(crate::rows::Key::Text(event.device_id().to_string())),
            };
            batch.add(&topics, topics.name(event.kind()), kafka, Some(&json));
        }
        batch
    }

    #[test]
    fn a_table_larger_than_one_append_lands_whole_and_in_order() {
        let (mut duck, path, _dir) = scratch("parts.duckdb");
        let gps = one_of_each()
            .into_iter()
            .find(|e| e.kind() == EventKind::Gps)
            .unwrap();
        let rows = 2 * write::ROWS_PER_APPEND + 7;
        let batch = batch_of(&vec![gps; rows]);
        let mut load = LoadRecord::new("parts".into(), Timestamp::now());
        load.add(&batch);
        duck.commit(&batch, &StoredOffsets::new(), &load).unwrap();
        duck.release();

        let conn = Connection::open(&path).unwrap();
        let (count, in_order): (usize, bool) = conn
            .query_row(
                "SELECT count(*), bool_and(_kafka_offset = n - 1) FROM \
                 (SELECT _kafka_offset, row_number() OVER () AS n FROM iot_stream.gps_data)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((count, in_order), (rows, true));
    }

    #[test]
    fn every_value_reads_back_as_the_model_wrote_it() {
        let (mut duck, path, _dir) = scratch("roundtrip.duckdb");
        let events = one_of_each();
        let batch = batch_of(&events);
        let mut batch = batch;
        let topics = Topics::default();
        let odd = KafkaMeta {
            partition: 1,
            offset: 0,
            timestamp: None,
            key: None,
        };
        batch.add(&topics, "gps_data", odd, Some(b"\xff\x00 not an event"));
        let mut load = LoadRecord::new("roundtrip".into(), Timestamp::now());
        load.add(&batch);
        duck.commit(&batch, &StoredOffsets::new(), &load).unwrap();
        duck.release();

        let conn = Connection::open(&path).unwrap();
        for event in &events {
            let mut json = Vec::new();
            event.encode(&mut json);
            let fields: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let table = event.kind().default_topic();
            let columns = tables::events(event.kind()).columns;
            for field_name in fields.as_object().unwrap().keys() {
                let column = columns.iter().find(|c| c.name == field_name).unwrap();
                let name = DuckDbSql::ident(column.name);
                let expression = match column.ty {
                    ColumnType::Timestamp => format!("epoch_ms({name})::VARCHAR"),
                    _ => format!("{name}::VARCHAR"),
                };
                let got: String = conn
                    .query_row(
                        &format!("SELECT {expression} FROM iot_stream.{table}"),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                let field = &fields[column.name];
                let want = match column.ty {
                    ColumnType::Timestamp => {
                        let t: Timestamp = serde_json::from_value(field.clone()).unwrap();
                        t.millis().to_string()
                    }
                    ColumnType::Double => {
                        assert_eq!(got.parse::<f64>().ok(), field.as_f64(), "{table}.{name}");
                        continue;
                    }
                    _ => field
                        .as_str()
                        .map_or_else(|| field.to_string(), str::to_owned),
                };
                assert_eq!(got, want, "{table}.{name}");
            }
            let (partition, key): (i64, String) = conn
                .query_row(
                    &format!("SELECT _kafka_partition, _kafka_key FROM iot_stream.{table}"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((partition, key), (2, event.device_id().to_string()));
        }
        let (payload, text, partition): (Vec<u8>, Option<String>, i32) = conn
            .query_row(
                "SELECT payload, payload_text, \"partition\" FROM iot_stream._dead_letters",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (payload.as_slice(), text, partition),
            (&b"\xff\x00 not an event"[..], None, 1)
        );
        let (rows, per_table): (i64, String) = conn
            .query_row(
                "SELECT rows_loaded, rows_per_table->>'gps_data' FROM iot_stream._loads",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (rows, per_table.as_str()),
            (5, "1"),
            "JSON that DuckDB reads as JSON"
        );
    }

    #[test]
    fn the_file_is_closed_after_so_many_rows_and_reopened_for_the_next_batch() {
        let (mut duck, path, _dir) = scratch("reopen.duckdb");
        let events = one_of_each();
        duck.reopen_after_rows = events.len() + 1;
        let load = LoadRecord::new("l".into(), Timestamp::now());
        let mut expected = StoredOffsets::new();
        for round in 0..3 {
            let batch = batch_at(&events, round * events.len() as i64);
            duck.commit(&batch, &expected, &load).unwrap();
            expected.extend(batch.ranges().iter().map(|(k, r)| (k.clone(), r.next)));
            // Every second batch passes the limit and closes the file.
            assert_eq!(duck.conn.is_none(), round % 2 == 1, "after batch {round}");
        }
        duck.release();
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM iot_stream.gps_data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3, "every batch's rows, once");
    }

    #[test]
    fn a_batch_another_loader_committed_first_writes_nothing() {
        let (mut duck, path, _dir) = scratch("race.duckdb");
        let events = one_of_each();
        let batch = batch_of(&events);
        let load = LoadRecord::new("first".into(), Timestamp::now());
        let nothing_stored = StoredOffsets::new();
        duck.commit(&batch, &nothing_stored, &load).unwrap();

        // A second loader that also read nothing stored, with the same messages.
        let late = LoadRecord::new("second".into(), Timestamp::now());
        let error = duck.commit(&batch, &nothing_stored, &late).unwrap_err();
        assert!(
            matches!(
                error,
                DestinationError::Conflict {
                    expected: None,
                    found: Some(_),
                    ..
                }
            ),
            "{error}"
        );
        // Told the truth, it commits.
        let stored = duck.stored_offsets().unwrap();
        assert_eq!(stored.len(), events.len());
        duck.release();

        let conn = Connection::open(&path).unwrap();
        for event in &events {
            let table = event.kind().default_topic();
            let rows: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM iot_stream.{table}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(rows, 1, "{table}");
        }
        let loads: Vec<String> = conn
            .prepare("SELECT load_id FROM iot_stream._loads")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(loads, ["first"]);
    }
}
