//! DuckDB: one file (default `iot_service.duckdb`), one schema per dataset, a table
//! per event kind plus `_kafka_offsets`, `_dead_letters` and `_loads`, and views for
//! the questions people ask first.
//!
//! DuckDB lets one process write a file at a time, and DBeaver keeps it open while
//! connected. So the loader opens the file only to write a batch, and while another
//! program holds it, waits with backoff up to the lock timeout. The file is attached
//! with an explicit storage version, so that DBeaver's (older) DuckDB can read it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use duckdb::types::{TimeUnit, ToSqlOutput, Value, ValueRef};
use duckdb::{Connection, ToSql, params, params_from_iter};
use iot_model::{EventKind, Timestamp, Topics};

mod encoding;

use super::{Destination, DestinationError, LoadRecord, StoredOffsets, conflict};
use crate::batch::Batch;
use crate::columns::{Cell, Column, ColumnType, all_columns, row_cells};
use encoding::RecordBatchBuilder;

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
}

impl DuckDb {
    pub fn new(options: DuckDbOptions, topics: Topics) -> Self {
        Self {
            options,
            topics,
            schema_ready: false,
            conn: None,
        }
    }

    fn path(&self) -> String {
        self.options.path.display().to_string()
    }

    /// The open file: opened if it is not, waiting while another process holds
    /// it, with the tables made sure of.
    async fn connection(&mut self) -> Result<&Connection, DestinationError> {
        if self.conn.is_none() {
            self.conn = Some(self.open().await?);
        }
        Ok(self.conn.as_ref().expect("just opened"))
    }

    async fn open(&mut self) -> Result<Connection, DestinationError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.try_open() {
                Err(e @ DestinationError::Locked { .. }) => {
                    if started.elapsed() + wait > self.options.lock_timeout {
                        return Err(e);
                    }
                    tracing::warn!(file = %self.path(), retry_in_ms = wait.as_millis() as u64, "database file is locked by another program; waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
                Ok(conn) => {
                    if !self.schema_ready {
                        self.create_schema(&conn)?;
                        self.schema_ready = true;
                    }
                    return Ok(conn);
                }
            }
        }
    }

    fn try_open(&self) -> Result<Connection, DestinationError> {
        let open_error = |e: duckdb::Error| DestinationError::Open {
            path: self.path(),
            reason: e.to_string(),
        };
        // One thread, from the start: a batch's statements are small and
        // sequential; workers would only cost memory and hand-overs, and the other
        // core is the broker's.
        let conn = duckdb::Config::default()
            .threads(1)
            .and_then(Connection::open_in_memory_with_flags)
            .map_err(open_error)?;
        // A checkpoint rewrites the row groups the last batches touched; at DuckDB's
        // default threshold (16 MB of log) that happened about every batch and took
        // a third of the time. At 128 MB it happens every few batches. DuckDB would
        // otherwise cache up to most of the machine's memory while the file stays
        // open through a long backlog: 128 MB keeps the loader's footprint bounded
        // (an append touches little of what it cached; 192 MB gave 333 MB peak RSS
        // over 5M messages, 128 MB 278 MB, at the same speed).
        // Row groups of 16,384 rows rather than 122,880: a batch of the two large
        // tables fills whole row groups, which DuckDB writes straight to the file
        // instead of through the log, and a checkpoint has less of a partly filled
        // one to rewrite (readers of any version see ordinary row groups).
        let attach = format!(
            "ATTACH {} AS store (STORAGE_VERSION {}, ROW_GROUP_SIZE 16384); USE store; \
             SET checkpoint_threshold = '128MB'; SET memory_limit = '128MB';",
            literal(&self.path()),
            literal(&self.options.storage_version)
        );
        conn.execute_batch(&attach).map_err(|e| {
            let text = e.to_string();
            if text.contains("Could not set lock") || text.contains("Conflicting lock") {
                DestinationError::Locked {
                    path: self.path(),
                    holder: lock_holder(&text),
                }
            } else {
                open_error(e)
            }
        })?;
        Ok(conn)
    }

    fn create_schema(&self, conn: &Connection) -> Result<(), DestinationError> {
        let s = ident(&self.options.schema);
        let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {s};\n");
        for kind in EventKind::ALL {
            sql += &create_table(&s, kind.default_topic(), all_columns(kind));
        }
        sql += &format!(
            "CREATE TABLE IF NOT EXISTS {s}._kafka_offsets (
                topic VARCHAR NOT NULL, \"partition\" INTEGER NOT NULL, next_offset BIGINT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL, load_id VARCHAR NOT NULL,
                PRIMARY KEY (topic, \"partition\"));
             CREATE TABLE IF NOT EXISTS {s}._dead_letters (
                topic VARCHAR, \"partition\" INTEGER, \"offset\" BIGINT, \"key\" VARCHAR,
                payload BLOB, payload_text VARCHAR, error VARCHAR,
                kafka_timestamp TIMESTAMPTZ, failed_at TIMESTAMPTZ, load_id VARCHAR);
             CREATE TABLE IF NOT EXISTS {s}._loads (
                load_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
                status VARCHAR, rows_loaded BIGINT, rows_per_table VARCHAR, dead_letters BIGINT,
                offsets VARCHAR, gaps VARCHAR, error VARCHAR);\n"
        );
        conn.execute_batch(&sql)
            .map_err(|e| write_error("the tables", e))?;

        // Tables made by an older loader: columns the model gained since are
        // added (old rows read NULL), and columns whose type it changed are
        // converted in place (`_extra` was VARCHAR before DuckDB's JSON type).
        for kind in EventKind::ALL {
            let table = kind.default_topic();
            let existing: Vec<(String, String)> = conn
                .prepare("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?")
                .and_then(|mut st| {
                    st.query_map(params![self.options.schema, table], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(|e| write_error(table, e))?;
            for column in all_columns(kind) {
                let (name, want) = (ident(column.name), sql_type(column.ty));
                let change = match existing.iter().find(|(n, _)| n == column.name) {
                    None => format!("ADD COLUMN {name} {want}"),
                    Some((_, ty)) if ty != want => {
                        format!("ALTER COLUMN {name} SET DATA TYPE {want}")
                    }
                    Some(_) => continue,
                };
                tracing::info!(table, change, "changing a table to match the model");
                conn.execute_batch(&format!("ALTER TABLE {s}.{} {change}", ident(table)))
                    .map_err(|e| write_error(table, e))?;
            }
        }
        let icu: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM duckdb_extensions() WHERE extension_name = 'icu' AND loaded",
                [],
                |r| r.get(0),
            )
            .map_err(|e| write_error("the extensions", e))?;
        conn.execute_batch(&views(&s, icu))
            .map_err(|e| write_error("the views", e))
    }

    fn write(
        &self,
        conn: &Connection,
        batch: &Batch,
        load: &LoadRecord,
    ) -> Result<(), DestinationError> {
        let s = &self.options.schema;
        let load_id = load.load_id.as_str();
        let mut values: Vec<Cell> = Vec::with_capacity(32);
        for kind in EventKind::ALL {
            let rows = batch.rows(kind);
            if rows.is_empty() {
                continue;
            }
            let table = kind.default_topic();
            let topic = self.topics.name(kind);
            let mut records = RecordBatchBuilder::new(all_columns(kind), rows.len());
            for row in rows {
                values.clear();
                row_cells(row, topic, load_id, &mut values);
                records.push(&values).map_err(|e| arrow_error(table, e))?;
            }
            let records = records.finish().map_err(|e| arrow_error(table, e))?;
            // Named columns: a column the model gained sits last in an old table.
            let columns: Vec<&str> = all_columns(kind).map(|c| c.name).collect();
            let mut appender = conn
                .appender_with_columns_to_db(table, s, &columns)
                .map_err(|e| write_error(table, e))?;
            appender
                .append_record_batch(records)
                .map_err(|e| write_error(table, e))?;
            // Dropping an appender flushes it but swallows the error: flush here.
            appender.flush().map_err(|e| write_error(table, e))?;
        }

        if !batch.dead_letters().is_empty() {
            let mut appender = conn
                .appender_to_db("_dead_letters", s)
                .map_err(|e| write_error("_dead_letters", e))?;
            let now = Timestamp::now();
            for d in batch.dead_letters() {
                appender
                    .append_row(params![
                        d.topic,
                        d.kafka.partition,
                        d.kafka.offset,
                        d.kafka.key,
                        d.payload,
                        std::str::from_utf8(&d.payload).ok(),
                        d.error,
                        d.kafka.timestamp.map(Cell::Time),
                        Cell::Time(now),
                        load_id,
                    ])
                    .map_err(|e| write_error("_dead_letters", e))?;
            }
            appender
                .flush()
                .map_err(|e| write_error("_dead_letters", e))?;
        }

        // Every partition's next offset in one statement: each statement DuckDB
        // runs costs about a millisecond, whatever its size.
        let ranges = batch.ranges();
        let sql = format!(
            "INSERT OR REPLACE INTO {}._kafka_offsets VALUES {}",
            ident(s),
            vec!["(?, ?, ?, ?, ?)"; ranges.len()].join(", ")
        );
        let now = Cell::Time(Timestamp::now());
        let values = ranges.iter().flat_map(|((topic, partition), range)| {
            [topic as &dyn ToSql, partition, &range.next, &now, &load_id]
        });
        if !ranges.is_empty() {
            conn.prepare_cached(&sql)
                .and_then(|mut upsert| upsert.execute(params_from_iter(values)))
                .map_err(|e| write_error("_kafka_offsets", e))?;
        }
        self.write_load(conn, load)
    }

    fn read_offsets(&self, conn: &Connection) -> Result<StoredOffsets, DestinationError> {
        let sql = format!(
            "SELECT topic, \"partition\", next_offset FROM {}._kafka_offsets",
            ident(&self.options.schema)
        );
        let mut statement = conn
            .prepare_cached(&sql)
            .map_err(|e| write_error("_kafka_offsets", e))?;
        statement
            .query_map([], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, i32>(1)?),
                    r.get::<_, i64>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<StoredOffsets, _>>())
            .map_err(|e| write_error("_kafka_offsets", e))
    }

    fn write_load(&self, conn: &Connection, load: &LoadRecord) -> Result<(), DestinationError> {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {}._loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ident(&self.options.schema)
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                load.load_id,
                Cell::Time(load.started_at),
                load.finished_at.map(Cell::Time),
                load.status,
                load.total_rows() as i64,
                json(&load.rows),
                load.dead_letters as i64,
                json(&load.offsets),
                json(&load.gaps),
                load.error,
            ])
        })
        .map(|_| ())
        .map_err(|e| write_error("_loads", e))
    }
}

impl Destination for DuckDb {
    async fn stored_offsets(&mut self) -> Result<StoredOffsets, DestinationError> {
        self.connection().await?;
        self.read_offsets(self.conn.as_ref().expect("connected above"))
    }

    async fn commit(
        &mut self,
        batch: &Batch,
        expected: &StoredOffsets,
        load: &LoadRecord,
    ) -> Result<(), DestinationError> {
        self.connection().await?;
        // Taken for the transaction: on any error it is dropped without COMMIT,
        // which rolls back, and the next batch opens the file afresh.
        let conn = self.conn.take().expect("connected above");
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(|e| write_error("the transaction", e))?;
        // The file lock keeps other writers out while the transaction runs, so a
        // check here holds until COMMIT.
        if let Some(conflict) = conflict(batch, expected, &self.read_offsets(&conn)?) {
            return Err(conflict);
        }
        self.write(&conn, batch, load)?;
        conn.execute_batch("COMMIT")
            .map_err(|e| write_error("the transaction", e))?;
        self.conn = Some(conn);
        Ok(())
    }

    async fn record(&mut self, load: &LoadRecord) -> Result<(), DestinationError> {
        self.connection().await?;
        let conn = self.conn.take().expect("connected above");
        self.write_load(&conn, load)
    }

    fn release(&mut self) {
        self.conn = None;
    }
}

/// One line per trip in the database, from the `trips` view: what a person running
/// the demo wants to see landed.
pub fn trip_report(path: &std::path::Path, schema: &str) -> Result<String, DestinationError> {
    let path_text = path.display().to_string();
    let fail = |e: duckdb::Error| DestinationError::Open {
        path: path_text.clone(),
        reason: e.to_string(),
    };
    let conn = Connection::open_in_memory().map_err(fail)?;
    conn.execute_batch(&format!(
        "ATTACH {} AS store (READ_ONLY); USE store;",
        literal(&path_text)
    ))
    .map_err(fail)?;
    let sql = format!(
        "SELECT trip_id::VARCHAR, make, model, route_source, distance_km,
                epoch(duration)::BIGINT, avg_speed_kmh, max_speed_kmh
         FROM {}.trips ORDER BY started_at, trip_id",
        ident(schema)
    );
    let mut statement = conn.prepare(&sql).map_err(fail)?;
    let lines = statement
        .query_map([], |r| {
            let seconds: i64 = r.get(5)?;
            Ok(format!(
                "trip {}  {:<24} {:>7.1} km  {:>2}h{:02}m  avg {:>5.1} km/h  max {:>5.1} km/h  ({} route)",
                &r.get::<_, String>(0)?[..8],
                format!("{} {}", r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                seconds / 3600,
                seconds % 3600 / 60,
                r.get::<_, Option<f64>>(6)?.unwrap_or(0.0),
                r.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                r.get::<_, String>(3)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(fail)?;
    Ok(format!(
        "{} trips in {path_text}:\n{}",
        lines.len(),
        lines.join("\n")
    ))
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Integer(i) => ToSqlOutput::Owned(Value::BigInt(i)),
            Cell::Double(f) => ToSqlOutput::Owned(Value::Double(f)),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Uuid(u) => ToSqlOutput::Owned(Value::Text(u.hyphenated().to_string())),
            Cell::Time(t) => {
                ToSqlOutput::Owned(Value::Timestamp(TimeUnit::Millisecond, t.millis()))
            }
        })
    }
}

fn create_table(schema: &str, table: &str, columns: impl Iterator<Item = Column>) -> String {
    let columns: Vec<String> = columns
        .map(|c| format!("{} {}", ident(c.name), sql_type(c.ty)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{} (\n  {}\n);\n",
        ident(table),
        columns.join(",\n  ")
    )
}

/// A column's type in DuckDB, spelt as `information_schema.columns` reports it, so
/// that an existing table's column can be compared with the model's.
fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Uuid => "UUID",
        ColumnType::Timestamp => "TIMESTAMP WITH TIME ZONE",
        ColumnType::Double => "DOUBLE",
        ColumnType::Integer => "BIGINT",
        ColumnType::Text => "VARCHAR",
        ColumnType::Json => "JSON",
    }
}

/// The analytical views, documented in the README. Durations are INTERVALs: the
/// difference of two TIMESTAMPTZ values where DuckDB's ICU extension is loaded (the
/// prebuilt library we link, DBeaver's driver), else, in a `bundled` build, which
/// has no ICU, the same interval from epoch microseconds.
fn views(s: &str, icu: bool) -> String {
    let span = |later: &str, earlier: &str| {
        if icu {
            format!("{later} - {earlier}")
        } else {
            format!("to_microseconds(epoch_us({later}) - epoch_us({earlier}))")
        }
    };
    let trip = span(r#"max("timestamp")"#, r#"min("timestamp")"#);
    let resolution = span(
        r#"min("timestamp") FILTER (WHERE status = 'resolved')"#,
        r#"min("timestamp") FILTER (WHERE status = 'active')"#,
    );
    format!(
        r#"
CREATE OR REPLACE VIEW {s}.latest_positions AS
SELECT device_id, trip_id, "timestamp", lat, lon, speed_kmh, heading_deg
FROM {s}.gps_data
QUALIFY row_number() OVER (PARTITION BY device_id ORDER BY "timestamp" DESC, _kafka_offset DESC) = 1;

CREATE OR REPLACE VIEW {s}.trips AS
SELECT trip_id,
       any_value(device_id) AS device_id,
       any_value(make) AS make,
       any_value(model) AS model,
       any_value(route_source) AS route_source,
       min("timestamp") AS started_at,
       max("timestamp") AS ended_at,
       {trip} AS duration,
       round(max(odometer_km) - min(odometer_km), 2) AS distance_km,
       round((max(odometer_km) - min(odometer_km))
             / nullif(epoch({trip}) / 3600, 0), 1) AS avg_speed_kmh,
       max(speed_kmh) AS max_speed_kmh,
       count(*) AS readings
FROM {s}.vehicle_data
GROUP BY trip_id;

CREATE OR REPLACE VIEW {s}.incidents AS
SELECT incident_id,
       any_value(incident_type) AS incident_type,
       any_value(device_id) AS device_id,
       any_value(description) AS description,
       any_value(lat) AS lat,
       any_value(lon) AS lon,
       min("timestamp") FILTER (WHERE status = 'active') AS reported_at,
       min("timestamp") FILTER (WHERE status = 'resolved') AS resolved_at,
       {resolution} AS time_to_resolve,
       CASE WHEN bool_or(status = 'resolved') THEN 'resolved' ELSE 'active' END AS status
FROM {s}.emergency_data
GROUP BY incident_id;
"#
    )
}

/// The audit columns hold JSON text.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn arrow_error(what: &str, e: duckdb::arrow::error::ArrowError) -> DestinationError {
    DestinationError::Write {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn write_error(what: &str, e: duckdb::Error) -> DestinationError {
    DestinationError::Write {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// " (DBeaver, PID 4875)" from DuckDB's "Conflicting lock is held in /opt/dbeaver/dbeaver (PID 4875)".
fn lock_holder(message: &str) -> String {
    message
        .split("Conflicting lock is held in ")
        .nth(1)
        .and_then(|rest| rest.split(". See also").next())
        .map(|who| format!(" ({})", who.trim().trim_end_matches('.')))
        .unwrap_or_default()
}

/// A double-quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL string.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::KafkaMeta;
    use crate::columns::model_columns;
    use crate::columns::tests::one_of_each;

    /// A DuckDb writing a fresh file in a directory of its own.
    fn scratch(name: &str) -> (DuckDb, PathBuf) {
        let dir = std::env::temp_dir().join(format!("iot-load-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let options = DuckDbOptions {
            path: path.clone(),
            ..DuckDbOptions::default()
        };
        (DuckDb::new(options, Topics::default()), path)
    }

    /// One event of each kind, as messages at offsets 0.. of partition 2.
    fn batch_of(events: &[iot_model::Event]) -> Batch {
        let topics = Topics::default();
        let mut batch = Batch::default();
        for (offset, event) in events.iter().enumerate() {
            let mut json = Vec::new();
            event.encode(&mut json);
            let kafka = KafkaMeta {
                partition: 2,
                offset: offset as i64,
                timestamp: Some(Timestamp::now()),
                key: Some(event.device_id().to_string()),
            };
            batch.add(&topics, topics.name(event.kind()), kafka, Some(&json));
        }
        batch
    }

    #[tokio::test]
    async fn every_value_reads_back_as_the_model_wrote_it() {
        let (mut duck, path) = scratch("roundtrip.duckdb");
        let events = one_of_each();
        let batch = batch_of(&events);
        let mut load = LoadRecord::new("roundtrip".into(), Timestamp::now());
        load.add(&batch);
        duck.commit(&batch, &StoredOffsets::new(), &load)
            .await
            .unwrap();
        duck.release();

        let conn = Connection::open(&path).unwrap();
        for event in &events {
            let mut json = Vec::new();
            event.encode(&mut json);
            let fields: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let table = event.kind().default_topic();
            for column in model_columns(event.kind()) {
                let name = ident(column.name);
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
    }

    #[tokio::test]
    async fn a_batch_another_loader_committed_first_writes_nothing() {
        let (mut duck, path) = scratch("race.duckdb");
        let events = one_of_each();
        let batch = batch_of(&events);
        let load = LoadRecord::new("first".into(), Timestamp::now());
        let nothing_stored = StoredOffsets::new();
        duck.commit(&batch, &nothing_stored, &load).await.unwrap();

        // A second loader that also read nothing stored, with the same messages.
        let late = LoadRecord::new("second".into(), Timestamp::now());
        let error = duck
            .commit(&batch, &nothing_stored, &late)
            .await
            .unwrap_err();
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
        let stored = duck.stored_offsets().await.unwrap();
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

    #[tokio::test]
    async fn durations_agree_with_and_without_icu() {
        let (mut duck, path) = scratch("views.duckdb");
        let batch = batch_of(&one_of_each());
        let load = LoadRecord::new("views".into(), Timestamp::now());
        duck.commit(&batch, &StoredOffsets::new(), &load)
            .await
            .unwrap();
        duck.release();

        let conn = Connection::open(&path).unwrap();
        // A trip that lasts 1h31m7.25s, and an incident resolved 17 minutes on.
        conn.execute_batch(
            "INSERT INTO iot_stream.vehicle_data SELECT * REPLACE \
               (\"timestamp\" + INTERVAL '1 hour 31 minutes 7.25 seconds' AS \"timestamp\") \
             FROM iot_stream.vehicle_data; \
             INSERT INTO iot_stream.emergency_data SELECT * REPLACE \
               (\"timestamp\" + INTERVAL '17 minutes' AS \"timestamp\", 'resolved' AS status) \
             FROM iot_stream.emergency_data;",
        )
        .unwrap();
        let durations = |conn: &Connection| -> (String, String) {
            conn.query_row(
                "SELECT (SELECT duration::VARCHAR FROM iot_stream.trips), \
                        (SELECT time_to_resolve::VARCHAR FROM iot_stream.incidents)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let with_icu = durations(&conn);
        assert_eq!(with_icu, ("01:31:07.25".into(), "00:17:00".into()));
        conn.execute_batch(&views("\"iot_stream\"", false)).unwrap();
        assert!(views("s", false).contains("epoch_us"));
        assert!(!views("s", true).contains("epoch_us"));
        assert_eq!(durations(&conn), with_icu);
    }

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(ident("gps_data"), "\"gps_data\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("O'Brien.duckdb"), "'O''Brien.duckdb'");
    }

    #[test]
    fn tables_have_a_column_per_field_and_the_kafka_columns() {
        let sql = create_table("\"s\"", "gps_data", all_columns(EventKind::Gps));
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"s\".\"gps_data\""));
        for needle in [
            "\"lat\" DOUBLE",
            "\"device_id\" UUID",
            "\"timestamp\" TIMESTAMP WITH TIME ZONE",
            "\"_extra\" JSON",
            "\"_kafka_offset\" BIGINT",
            "\"_load_id\" VARCHAR",
        ] {
            assert!(sql.contains(needle), "{needle} missing from {sql}");
        }
    }

    #[test]
    fn names_the_program_holding_the_lock() {
        let message = "IO Error: Could not set lock on file \"/tmp/x.duckdb\": Conflicting lock is held in /opt/dbeaver/dbeaver (PID 4875). See also https://duckdb.org/docs/current/connect/concurrency";
        assert_eq!(lock_holder(message), " (/opt/dbeaver/dbeaver (PID 4875))");
        assert_eq!(lock_holder("IO Error: something else"), "");
    }
}
