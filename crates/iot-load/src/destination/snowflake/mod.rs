//! Snowflake: the production warehouse. The same tables as in DuckDB, in a schema
//! named after the dataset, written over Snowflake's REST API.
//!
//! Each batch is one explicit transaction: the rows, the dead letters, then the
//! offsets, then COMMIT. Moving an offset is a compare-and-set on the offset this
//! loader expects, so of two loaders that read the same messages only one can
//! commit them; the other rolls back and reads on from what the winner stored.
//! A batch that fails for a passing reason (network, service, a collision) is
//! rolled back and tried again, whole, with backoff.

mod client;
pub mod sql;

use std::fmt;
use std::time::{Duration, Instant};

use iot_model::{EventKind, Timestamp, Topics};
use snowflake_api::{QueryResult, SnowflakeApi};

use super::{Destination, DestinationError, LoadRecord, StoredOffsets, conflict};
use crate::batch::Batch;
use crate::columns::all_columns;

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
    /// Statements are cut to stay under this size.
    pub max_statement_bytes: usize,
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
            max_statement_bytes: sql::MAX_STATEMENT_BYTES,
        }
    }
}

pub struct Snowflake {
    options: SnowflakeOptions,
    topics: Topics,
    /// The session, opened with the first statement of a run.
    api: Option<SnowflakeApi>,
    tables_ready: bool,
    /// Whether a BEGIN was sent that no COMMIT or ROLLBACK has ended.
    in_transaction: bool,
}

/// A statement that failed, and whether trying its batch again may help.
struct Failure {
    transient: bool,
    error: DestinationError,
}

impl From<DestinationError> for Failure {
    fn from(error: DestinationError) -> Self {
        Failure {
            transient: false,
            error,
        }
    }
}

impl Snowflake {
    pub fn new(options: SnowflakeOptions, topics: Topics) -> Self {
        Self {
            options,
            topics,
            api: None,
            tables_ready: false,
            in_transaction: false,
        }
    }

    async fn exec(&mut self, what: &str, sql: &str) -> Result<QueryResult, Failure> {
        if self.api.is_none() {
            self.api = Some(client::connect(&self.options)?);
        }
        let api = self.api.as_ref().expect("connected above");
        tracing::trace!(what, sql, "snowflake statement");
        api.exec(sql).await.map_err(|e| Failure {
            transient: client::is_transient(&e),
            error: client::explain(&self.options, what, e),
        })
    }

    /// Creates what is missing: schema, tables, columns the model gained.
    async fn prepare(&mut self) -> Result<(), Failure> {
        if self.tables_ready {
            return Ok(());
        }
        let schema = self.options.schema.clone();
        for statement in sql::create_tables(&schema) {
            self.exec("the tables", &statement).await?;
        }
        for kind in EventKind::ALL {
            let table = kind.default_topic();
            let existing = self
                .exec(table, &sql::columns_query(&schema, table))
                .await
                .and_then(|r| text_rows(table, r))?;
            let known = |name: &str| {
                existing.iter().any(|row| {
                    row.first().and_then(Option::as_deref) == Some(&*name.to_uppercase())
                })
            };
            for column in all_columns(kind).filter(|c| !known(c.name)) {
                tracing::info!(
                    table,
                    column = column.name,
                    "adding a column the model gained"
                );
                self.exec(table, &sql::add_column(&schema, table, column))
                    .await?;
            }
        }
        self.tables_ready = true;
        Ok(())
    }

    async fn read_offsets(&mut self) -> Result<StoredOffsets, Failure> {
        self.prepare().await?;
        let statement = sql::select_offsets(&self.options.schema);
        let rows = self
            .exec("_kafka_offsets", &statement)
            .await
            .and_then(|r| text_rows("_kafka_offsets", r))?;
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

    async fn try_commit(
        &mut self,
        batch: &Batch,
        expected: &StoredOffsets,
        load: &LoadRecord,
    ) -> Result<(), Failure> {
        self.prepare().await?;
        let schema = self.options.schema.clone();
        let load_id = load.load_id.as_str();
        self.begin().await?;
        for kind in EventKind::ALL {
            let rows = batch.rows(kind);
            if rows.is_empty() {
                continue;
            }
            let topic = self.topics.name(kind).to_owned();
            for statement in sql::insert_rows(
                &schema,
                kind,
                &topic,
                load_id,
                rows,
                self.options.max_statement_bytes,
            ) {
                self.exec(kind.default_topic(), &statement).await?;
            }
        }
        for statement in sql::insert_dead_letters(
            &schema,
            batch.dead_letters(),
            load_id,
            Timestamp::now(),
            self.options.max_statement_bytes,
        ) {
            self.exec("_dead_letters", &statement).await?;
        }
        self.exec("_commit_turn", &sql::take_turn(&schema, load_id))
            .await?;
        for (key, range) in batch.ranges() {
            let statement =
                sql::move_offset(&schema, key, expected.get(key).copied(), *range, load_id);
            let changed = client::changed_rows(&self.exec("_kafka_offsets", &statement).await?);
            if changed != 1 {
                let stored = self.read_offsets().await?;
                return Err(conflict(batch, expected, &stored)
                    .unwrap_or_else(|| DestinationError::Write {
                        what: "_kafka_offsets".into(),
                        reason: format!(
                            "moving {} partition {} changed {changed} rows instead of 1",
                            key.0, key.1
                        ),
                    })
                    .into());
            }
        }
        for statement in sql::save_load(&schema, load) {
            self.exec("_loads", &statement).await?;
        }
        self.commit_transaction().await
    }

    async fn begin(&mut self) -> Result<(), Failure> {
        self.exec("the transaction", "BEGIN TRANSACTION").await?;
        self.in_transaction = true;
        Ok(())
    }

    async fn commit_transaction(&mut self) -> Result<(), Failure> {
        self.exec("the transaction", "COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    async fn save(&mut self, load: &LoadRecord) -> Result<(), Failure> {
        self.begin().await?;
        for statement in sql::save_load(&self.options.schema, load) {
            self.exec("_loads", &statement).await?;
        }
        self.commit_transaction().await
    }

    /// Ends a failed transaction. If even that fails, the session is given up, and
    /// Snowflake rolls back what it held when the session ends.
    async fn roll_back(&mut self) {
        if !std::mem::take(&mut self.in_transaction) {
            return;
        }
        if self.exec("the transaction", "ROLLBACK").await.is_err() {
            self.api = None;
        }
    }
}

/// Trying again after failures that may pass, with growing pauses, for a while.
struct Retry {
    started: Instant,
    wait: Duration,
    limit: Duration,
}

impl Retry {
    fn new(limit: Duration) -> Self {
        Self {
            started: Instant::now(),
            wait: Duration::from_millis(500),
            limit,
        }
    }

    /// Waits before the next attempt, or gives the failure back if it will not pass.
    async fn after(&mut self, failure: Failure) -> Result<(), DestinationError> {
        if !failure.transient || self.started.elapsed() + self.wait > self.limit {
            return Err(failure.error);
        }
        tracing::warn!(error = %failure.error, retry_in_ms = self.wait.as_millis() as u64, "trying again");
        tokio::time::sleep(self.wait).await;
        self.wait = (self.wait * 2).min(Duration::from_secs(15));
        Ok(())
    }
}

impl Destination for Snowflake {
    async fn stored_offsets(&mut self) -> Result<StoredOffsets, DestinationError> {
        let mut retry = Retry::new(self.options.retry_for);
        loop {
            match self.read_offsets().await {
                Ok(offsets) => return Ok(offsets),
                Err(failure) => retry.after(failure).await?,
            }
        }
    }

    async fn commit(
        &mut self,
        batch: &Batch,
        expected: &StoredOffsets,
        load: &LoadRecord,
    ) -> Result<(), DestinationError> {
        let mut retry = Retry::new(self.options.retry_for);
        loop {
            match self.try_commit(batch, expected, load).await {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    self.roll_back().await;
                    retry.after(failure).await?;
                }
            }
        }
    }

    async fn record(&mut self, load: &LoadRecord) -> Result<(), DestinationError> {
        let mut retry = Retry::new(self.options.retry_for);
        while let Err(failure) = self.save(load).await {
            self.roll_back().await;
            retry.after(failure).await?;
        }
        if let Some(mut api) = self.api.take() {
            // Ends the session now rather than when it times out; nothing is open.
            let _ = api.close_session().await;
        }
        Ok(())
    }
}

fn text_rows(what: &str, result: QueryResult) -> Result<Vec<Vec<Option<String>>>, Failure> {
    client::text_rows(result).map_err(|reason| {
        Failure::from(DestinationError::Write {
            what: what.to_owned(),
            reason: format!("unexpected answer: {reason}"),
        })
    })
}

fn unreadable(row: &[Option<String>]) -> Failure {
    Failure::from(DestinationError::Write {
        what: "_kafka_offsets".into(),
        reason: format!("unreadable row {row:?}"),
    })
}
