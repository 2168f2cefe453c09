//! Opening the database file: attached with an explicit storage version (so that
//! DBeaver's DuckDB can read it) and the settings that keep a long load fast and
//! small, and a lock held by another program told apart from other failures.

use duckdb::Connection;

use super::DuckDbOptions;
use crate::error::DestinationError;

/// Opens the file once; [`DestinationError::Locked`] while another process holds it.
pub fn open(options: &DuckDbOptions) -> Result<Connection, DestinationError> {
    let path = options.path.display().to_string();
    let open_error = |e: duckdb::Error| DestinationError::Open {
        path: path.clone(),
        source: e.into(),
    };
    // One thread, from the start: a batch's statements are small and sequential;
    // workers would only cost memory and hand-overs, and the other core is the
    // broker's.
    let conn = duckdb::Config::default()
        .threads(1)
        .and_then(Connection::open_in_memory_with_flags)
        .map_err(open_error)?;
    // The settings of a long load:
    // - checkpoint_threshold 128MB: a checkpoint rewrites the row groups the last
    //   batches touched; at DuckDB's default (16 MB of log) that happens about every
    //   batch.
    // - memory_limit 48MB: DuckDB would otherwise cache up to most of the machine's
    //   memory while the file stays open through a backlog, and an append touches
    //   little of what it cached.
    // - ROW_GROUP_SIZE 16384: a batch of the two large tables fills whole row groups,
    //   which DuckDB writes straight to the file rather than through the log, and a
    //   checkpoint has less of a partly filled one to rewrite. Readers of any version
    //   see ordinary row groups.
    // - max_vacuum_tasks 0: a vacuum would merge the partly filled row group each
    //   batch leaves, decompressing and compressing rows already written, and most of
    //   a closing checkpoint's time. load deletes nothing from the event tables, and
    //   the keyed tables (offsets, loads) have indexes, which DuckDB 1.4 never
    //   vacuums; the row groups stay as written (8,000 to 16,384 rows).
    let attach = format!(
        "ATTACH {} AS store (STORAGE_VERSION {}, ROW_GROUP_SIZE 16384); USE store; \
         SET checkpoint_threshold = '128MB'; SET memory_limit = '48MB'; SET max_vacuum_tasks = 0;",
        literal(&path),
        literal(&options.storage_version)
    );
    conn.execute_batch(&attach).map_err(|e| {
        let text = e.to_string();
        if text.contains("Could not set lock") || text.contains("Conflicting lock") {
            DestinationError::Locked {
                path: path.clone(),
                holder: lock_holder(&text),
            }
        } else {
            open_error(e)
        }
    })?;
    Ok(conn)
}

/// The file attached read-only, for reports: readers do not wait for writers.
pub fn open_read_only(path: &std::path::Path) -> Result<Connection, DestinationError> {
    let path = path.display().to_string();
    let fail = |e: duckdb::Error| DestinationError::Open {
        path: path.clone(),
        source: e.into(),
    };
    let conn = Connection::open_in_memory().map_err(fail)?;
    conn.execute_batch(&format!(
        "ATTACH {} AS store (READ_ONLY); USE store;",
        literal(&path)
    ))
    .map_err(fail)?;
    Ok(conn)
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

/// A single-quoted SQL string.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_program_holding_the_lock() {
        let message = "IO Error: Could not set lock on file \"/tmp/x.duckdb\": Conflicting lock is held in /opt/dbeaver/dbeaver (PID 4875). See also https://duckdb.org/docs/current/connect/concurrency";
        assert_eq!(lock_holder(message), " (/opt/dbeaver/dbeaver (PID 4875))");
        assert_eq!(lock_holder("IO Error: something else"), "");
    }

    #[test]
    fn quotes_literals() {
        assert_eq!(literal("O'Brien.duckdb"), "'O''Brien.duckdb'");
    }
}
