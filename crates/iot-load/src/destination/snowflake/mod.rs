//! Snowflake: the production warehouse. The same tables as in DuckDB, in a schema
//! named after the dataset, written over Snowflake's REST API.
//!
//! Each batch's rows travel as files (`stage.rs`): one Parquet file a table,
//! uploaded to the dataset's stage (`upload.rs`). Then one explicit transaction
//! loads them with `COPY INTO`, moves the offsets and records the load, and
//! commits. Moving an offset is a compare-and-set on the offset this loader
//! expects, so of two loaders that read the same messages only one can commit
//! them; the other rolls back and reads on from what the winner stored. A batch
//! that fails for a passing reason (network, service, a collision) is rolled back
//! and tried again, whole, with new files, under the retry policy. `schema.rs`
//! makes sure, once a session, that the schema holds what a batch needs.
//!
//! The snowflake-api client is async; the loader is not. This destination keeps
//! a runtime of its own, on the loader's thread, and waits on each request: the
//! one place where the loader meets async code.

mod client;
mod schema;
pub mod sql;
pub mod stage;
mod upload;

use std::fmt;
use std::time::Duration;

use iot_model::{EventKind, Topics};
use snowflake_api::{QueryResult, SnowflakeApi};

use crate::batch::Batch;
use crate::destination::{Destination, conflict};
use crate::error::{DestinationError, Result};
use crate::load_record::LoadRecord;
use crate::partitions::StoredOffsets;
use crate::rows::Row;
use crate::tables::{self, Context, DEAD_LETTERS, OFFSETS, Table};

/// The environment variables holding the settings, named as the Python pipeline
/// (dlt) named them.
pub mod env {
    /// The account identifier, such as `xy12345.eu-central-1` or `myorg-myaccount`.
    pub const ACCOUNT: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__HOST";
    pub const USER: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__USERNAME";
    pub const PASSWORD: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__PASSWORD";
    pub const PRIVATE_KEY_PATH: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__PRIVATE_KEY_PATH";
    pub const DATABASE: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__DATABASE";
    pub const WAREHOUSE: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__WAREHOUSE";
    pub const ROLE: &str = "DESTINATION__SNOWFLAKE__CREDENTIALS__ROLE";
    pub const URL: &str = "SNOWFLAKE_URL";
}

/// How `load` proves who it is.
#[derive(Clone)]
pub enum SnowflakeAuth {
    Password(String),
    /// Key-pair authentication: the unencrypted PKCS#8 private key, PEM.
    KeyPair {
        private_key_pem: String,
    },
}

impl fmt::Debug for SnowflakeAuth {
    // Secrets never reach logs or error output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnowflakeAuth::Password(_) => f.write_str("Password(<hidden>)"),
            SnowflakeAuth::KeyPair { .. } => f.write_str("KeyPair(<hidden>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SnowflakeOptions {
    /// The account identifier (`{account}.snowflakecomputing.com`).
    pub account: String,
    pub user: String,
    pub auth: SnowflakeAuth,
    /// The database the dataset's schema lives in; it must exist.
    pub database: String,
    /// Warehouse and role; the user's defaults when unset.
    pub warehouse: Option<String>,
    pub role: Option<String>,
    /// Schema the tables live in (the dataset name).
    pub schema: String,
    /// Send requests here instead of `https://{account}.snowflakecomputing.com`.
    pub url: Option<reqwest::Url>,
    /// How long one statement may take.
    pub request_timeout: Duration,
    /// How long a batch is retried after failures that may pass.
    pub retry_for: Duration,
}

impl SnowflakeOptions {
    pub fn new(account: String, user: String, auth: SnowflakeAuth, database: String) -> Self {
        Self {
            account,
            user,
            auth,
            database,
            warehouse: None,
            role: None,
            schema: "iot_stream".into(),
            url: None,
            request_timeout: Duration::from_secs(120),
            retry_for: Duration::from_secs(120),
        }
    }
}

pub struct Snowflake {
    options: SnowflakeOptions,
    topics: Topics,
    /// The session, opened with the first statement of a run.
    session: Option<Session>,
    tables_ready: bool,
    /// Whether a BEGIN was sent that no COMMIT or ROLLBACK has ended.
    in_transaction: bool,
    /// Files waiting for their upload (see `upload.rs`).
    uploads: upload::Pending,
}

/// The client and the runtime its requests run on.
struct Session {
    runtime: tokio::runtime::Runtime,
    api: SnowflakeApi,
}

impl Snowflake {
    pub fn new(options: SnowflakeOptions, topics: Topics) -> Self {
        Self {
            options,
            topics,
            session: None,
            tables_ready: false,
            in_transaction: false,
            uploads: upload::Pending::default(),
        }
    }

    fn retry(&self) -> iot_runtime::RetryPolicy {
        iot_runtime::RetryPolicy::for_time(
            Duration::from_millis(500),
            Duration::from_secs(15),
            self.options.retry_for,
        )
    }

    fn exec(&mut self, what: &str, sql: &str) -> Result<QueryResult> {
        if self.session.is_none() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DestinationError::Open {
                    path: client::endpoint(&self.options),
                    source: e.into(),
                })?;
            let api = client::connect(&self.options, &self.uploads)?;
            // The lock wait ends within the batch's retry time and before the request's.
            let wait = self.options.retry_for.min(self.options.request_timeout);
            runtime
                .block_on(api.exec(&sql::lock_timeout(wait)))
                .map_err(|e| client::explain(&self.options, "the session", e))?;
            self.session = Some(Session { runtime, api });
        }
        let session = self.session.as_ref().expect("connected above");
        tracing::trace!(what, sql, "snowflake statement");
        session
            .runtime
            .block_on(session.api.exec(sql))
            .map_err(|e| client::explain_statement(&self.options, what, sql, e))
    }

    /// Uploads `records` of `table` as one file to the stage folder `attempt`;
    /// returns the `COPY INTO` that loads it.
    fn stage<R>(
        &mut self,
        table: &Table<R>,
        records: &[R],
        context: &Context,
        attempt: &str,
    ) -> Result<String> {
        let file = stage::parquet(table, records, context)
            .map_err(|e| DestinationError::write(table.name, e))?;
        let folder = format!("{attempt}/{}/", table.name);
        let path = format!("/iot-load/{folder}{}.parquet", table.name);
        let schema = self.options.schema.clone();
        self.uploads.add(&path, file);
        let put = upload::put(&path, &stage::location(&schema, &folder));
        let uploaded = self.exec(table.name, &put);
        // A PUT that failed on its way leaves its file held: it goes with the PUT.
        self.uploads.take(&path);
        uploaded?;
        Ok(stage::copy_into(&schema, table, &folder))
    }

    fn read_offsets(&mut self) -> Result<StoredOffsets> {
        self.prepare()?;
        let statement = sql::select_offsets(&self.options.schema);
        let rows = self
            .exec(OFFSETS.name, &statement)
            .and_then(|r| text_rows(OFFSETS.name, r))?;
        rows.into_iter()
            .map(|row| match row.as_slice() {
                [Some(topic), Some(partition), Some(next)] => {
                    match (partition.parse(), next.parse()) {
                        (Ok(partition), Ok(next)) => Ok(((topic.clone(), partition), next)),
                        _ => Err(unreadable(&row)),
                    }
                }
                _ => Err(unreadable(&row)),
            })
            .collect()
    }

    fn try_commit(
        &mut self,
        batch: &Batch,
        expected: &StoredOffsets,
        load: &LoadRecord,
    ) -> Result<()> {
        self.prepare()?;
        let schema = self.options.schema.clone();
        let context = Context::new(&load.load_id);
        let attempt = stage::attempt_folder();
        let mut copies = Vec::new();
        for kind in EventKind::ALL {
            let (table, rows) = (tables::events(kind), batch.rows(kind));
            if !rows.is_empty() {
                let topic = self.topics.name(kind).to_owned();
                let copy = self.stage(table, rows, &context.on(&topic), &attempt)?;
                copies.push((table.name, copy));
            }
        }
        if !batch.dead_letters().is_empty() {
            let copy = self.stage(&DEAD_LETTERS, batch.dead_letters(), &context, &attempt)?;
            copies.push((DEAD_LETTERS.name, copy));
        }
        self.begin()?;
        for (table, copy) in &copies {
            self.exec(table, copy)?;
        }
        self.exec(sql::COMMIT_TURN, &sql::take_turn(&schema, &load.load_id))?;
        for (key, range) in batch.ranges() {
            let statement = sql::move_offset(
                &schema,
                key,
                expected.get(key).copied(),
                *range,
                &load.load_id,
            );
            let changed = client::changed_rows(&self.exec(OFFSETS.name, &statement)?);
            if changed != 1 {
                let stored = self.read_offsets()?;
                return Err(conflict(batch, expected, &stored).unwrap_or_else(|| {
                    DestinationError::write(
                        OFFSETS.name,
                        format!(
                            "moving {} partition {} changed {changed} rows instead of 1",
                            key.0, key.1
                        ),
                    )
                }));
            }
        }
        self.save(load)?;
        self.commit_transaction()
    }

    fn begin(&mut self) -> Result<()> {
        self.exec("the transaction", "BEGIN TRANSACTION")?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit_transaction(&mut self) -> Result<()> {
        self.exec("the transaction", "COMMIT")?;
        self.in_transaction = false;
        Ok(())
    }

    fn save(&mut self, load: &LoadRecord) -> Result<()> {
        for statement in sql::save_load(&self.options.schema, load) {
            self.exec(tables::LOADS.name, &statement)?;
        }
        Ok(())
    }

    /// Ends a failed transaction. If even that fails, the session is given up, and
    /// Snowflake rolls back what it held when the session ends.
    fn roll_back(&mut self) {
        if !std::mem::take(&mut self.in_transaction) {
            return;
        }
        if self.exec("the transaction", "ROLLBACK").is_err() {
            self.drop_session();
        }
    }

    /// Gives the session up. The next statement opens another, which `prepare`
    /// sets up again (its current schema among others).
    fn drop_session(&mut self) {
        self.session = None;
        self.tables_ready = false;
    }

    /// Runs a transaction under the retry policy, rolled back after each failure.
    fn transaction(
        &mut self,
        what: &str,
        mut body: impl FnMut(&mut Self) -> Result<()>,
    ) -> Result<()> {
        self.retry().run(what, || {
            let outcome = body(self);
            if outcome.is_err() {
                self.roll_back();
            }
            outcome
        })
    }
}

impl Destination for Snowflake {
    fn stored_offsets(&mut self) -> Result<StoredOffsets> {
        self.retry()
            .run("reading the stored offsets", || self.read_offsets())
    }

    fn commit(&mut self, batch: &Batch, expected: &StoredOffsets, load: &LoadRecord) -> Result<()> {
        self.transaction("committing a batch", |s| {
            s.try_commit(batch, expected, load)
        })
    }

    /// Loads `rows` as a batch would, in a transaction rolled back whatever happens:
    /// whether Snowflake takes them. A refused file stays in the stage, and is
    /// removed here.
    fn try_rows(&mut self, kind: EventKind, rows: &[Row]) -> Result<()> {
        self.prepare()?;
        let table = tables::events(kind);
        let context = Context::new("");
        let topic = self.topics.name(kind).to_owned();
        let attempt = stage::attempt_folder();
        let copy = self.stage(table, rows, &context.on(&topic), &attempt)?;
        self.begin()?;
        let outcome = self.exec(table.name, &copy).map(drop);
        self.roll_back();
        if outcome.is_err() {
            let remove = stage::remove(&self.options.schema, &attempt);
            if let Err(e) = self.exec(stage::STAGE, &remove) {
                tracing::warn!(error = %e, attempt, "a refused file stays in the stage until a later run removes it");
            }
        }
        outcome
    }

    fn record(&mut self, load: &LoadRecord) -> Result<()> {
        self.transaction("recording the load", |s| {
            s.begin()?;
            s.save(load)?;
            s.commit_transaction()
        })?;
        self.tables_ready = false;
        if let Some(mut session) = self.session.take() {
            // Ends the session now rather than when it times out; nothing is open.
            let _ = session.runtime.block_on(session.api.close_session());
        }
        Ok(())
    }
}

fn text_rows(
    what: &str,
    result: QueryResult,
) -> Result<Vec<Vec<Option<String>>>, DestinationError> {
    client::text_rows(result).map_err(|reason| unexpected(what, reason))
}

/// The `index`-th column of a query's rows, as text.
fn column_text(
    what: &str,
    result: QueryResult,
    index: usize,
) -> Result<Vec<Option<String>>, DestinationError> {
    client::column_text(result, index).map_err(|reason| unexpected(what, reason))
}

fn unexpected(what: &str, reason: String) -> DestinationError {
    DestinationError::write(what, format!("unexpected answer: {reason}"))
}

fn unreadable(row: &[Option<String>]) -> DestinationError {
    DestinationError::write(OFFSETS.name, format!("unreadable row {row:?}"))
}
