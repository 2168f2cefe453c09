//! What goes wrong writing to a destination, said so that the user knows what to do,
//! and whether trying again may help.

/// What a destination's calls return.
pub type Result<T, E = DestinationError> = std::result::Result<T, E>;

/// What caused a destination error: the database's or the client's own error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error(
        "the database file {path} is in use by another program{holder}; close it there (in DBeaver: \
         disconnect from the database) and run load again. Nothing was lost: unwritten messages \
         are read again next time"
    )]
    Locked { path: String, holder: String },
    #[error(
        "{table} is locked by another transaction{holder} and stayed locked for the lock timeout. \
         If the loader that began it is gone, end it with SELECT SYSTEM$ABORT_TRANSACTION(<id>) \
         (SHOW LOCKS lists the holders) and run load again. Nothing was lost: unwritten \
         messages are read again next time"
    )]
    TableLocked {
        table: String,
        /// ` (transaction N)`, when the database named it.
        holder: String,
        #[source]
        source: Cause,
    },
    #[error("cannot open the database file {path}")]
    Open {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("writing to {table} failed")]
    Write {
        table: String,
        /// Whether the same write may succeed if tried again (a service hiccup, a
        /// transaction that collided with another's).
        retriable: bool,
        #[source]
        source: Cause,
    },
    #[error("the destination refused the connection; check {setting}")]
    Rejected {
        setting: String,
        #[source]
        source: Cause,
    },
    #[error(
        "the role {role} may not write {what}: Snowflake refused a statement for want of a \
         privilege. {remedy} Nothing was lost: unwritten messages are read again next time"
    )]
    Forbidden {
        role: String,
        what: String,
        /// What an administrator runs: the GRANT, when the statement names it.
        remedy: String,
        #[source]
        source: Cause,
    },
    #[error("cannot reach {url}. Nothing was lost: unwritten messages are read again next time")]
    Unreachable {
        url: String,
        #[source]
        source: Cause,
    },
    #[error(
        "another loader committed {topic} partition {partition} first (next offset expected \
         {expected:?}, found {found:?}); this batch was rolled back"
    )]
    Conflict {
        topic: String,
        partition: i32,
        expected: Option<i64>,
        found: Option<i64>,
    },
}

impl iot_runtime::Retriable for DestinationError {
    /// Whether waiting and trying again may help: what the retry policy asks.
    fn is_retriable(&self) -> bool {
        match self {
            DestinationError::Locked { .. }
            | DestinationError::TableLocked { .. }
            | DestinationError::Unreachable { .. } => true,
            DestinationError::Write { retriable, .. } => *retriable,
            DestinationError::Open { .. }
            | DestinationError::Rejected { .. }
            | DestinationError::Forbidden { .. }
            | DestinationError::Conflict { .. } => false,
        }
    }
}

impl DestinationError {
    /// Whether the destination refused what it was given (a value, a row), for
    /// good: not a lock, an outage, a refused login or another loader's commit.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DestinationError::Write {
                retriable: false,
                ..
            }
        )
    }

    /// A write that failed for good, with its cause.
    pub fn write(table: &str, source: impl Into<Cause>) -> Self {
        DestinationError::Write {
            table: table.to_owned(),
            retriable: false,
            source: source.into(),
        }
    }
}
