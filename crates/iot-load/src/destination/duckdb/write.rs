//! Writing declared tables: bulk rows through DuckDB's appender as one Arrow record
//! batch, keyed rows (offsets, the load's record) as one `INSERT OR REPLACE`, and
//! the stored offsets read back. Columns are always named, so a column the model
//! gained, which sits last in an old table, still gets its values.

use duckdb::types::{TimeUnit, ToSqlOutput, Value, ValueRef};
use duckdb::{Connection, ToSql, params_from_iter};

use super::schema::DuckDbSql;
use crate::destination::arrow::{self, Flavor};
use crate::destination::ddl::Dialect;
use crate::error::DestinationError;
use crate::partitions::StoredOffsets;
use crate::tables::{Cell, Context, OFFSETS, Table};

/// Rows turned into Arrow columns at a time: the columns of a whole batch's table
/// would be a second copy of it in memory (about 20 MB for 100,000 rows); a row
/// group's worth at a time is as fast.
pub(super) const ROWS_PER_APPEND: usize = 16_384;

/// Appends `records` to `table`.
pub fn append<R>(
    conn: &Connection,
    schema: &str,
    table: &Table<R>,
    records: &[R],
    context: &Context,
) -> Result<(), DestinationError> {
    if records.is_empty() {
        return Ok(());
    }
    let fail = |e: duckdb::Error| DestinationError::write(table.name, e);
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let mut appender = conn
        .appender_with_columns_to_db(table.name, schema, &names)
        .map_err(fail)?;
    for part in records.chunks(ROWS_PER_APPEND) {
        let columns = arrow::record_batch(table, part, context, Flavor::Native)
            .map_err(|e| DestinationError::write(table.name, e))?;
        appender.append_record_batch(columns).map_err(fail)?;
    }
    // Dropping an appender flushes it but swallows the error: flush here.
    appender.flush().map_err(fail)
}

/// Inserts `records` into `table`, replacing rows with the same key, in one
/// statement: each statement DuckDB runs costs about a millisecond, whatever its size.
pub fn upsert<R>(
    conn: &Connection,
    schema: &str,
    table: &Table<R>,
    records: &[R],
    context: &Context,
) -> Result<(), DestinationError> {
    if records.is_empty() {
        return Ok(());
    }
    let row = format!("({})", vec!["?"; table.columns.len()].join(", "));
    let sql = format!(
        "INSERT OR REPLACE INTO {} ({}) VALUES {}",
        DuckDbSql::table(schema, table.name),
        DuckDbSql::column_list(&table.layout()),
        vec![row; records.len()].join(", ")
    );
    let cells = records
        .iter()
        .flat_map(|r| table.columns.iter().map(move |c| (c.value)(r, context)));
    conn.prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(params_from_iter(cells)))
        .map(|_| ())
        .map_err(|e| DestinationError::write(table.name, e))
}

/// The next offset to read per partition, as stored.
pub fn read_offsets(conn: &Connection, schema: &str) -> Result<StoredOffsets, DestinationError> {
    let fail = |e: duckdb::Error| DestinationError::write(OFFSETS.name, e);
    let sql = format!(
        "SELECT topic, \"partition\", next_offset FROM {}",
        DuckDbSql::table(schema, OFFSETS.name)
    );
    let mut statement = conn.prepare_cached(&sql).map_err(fail)?;
    statement
        .query_map([], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i32>(1)?),
                r.get::<_, i64>(2)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<StoredOffsets, _>>())
        .map_err(fail)
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        let null = ToSqlOutput::Owned(Value::Null);
        Ok(match self {
            Cell::Integer(i) => i.map_or(null, |i| ToSqlOutput::Owned(Value::BigInt(i))),
            Cell::Int32(i) => i.map_or(null, |i| ToSqlOutput::Owned(Value::Int(i))),
            Cell::Double(f) => f.map_or(null, |f| ToSqlOutput::Owned(Value::Double(f))),
            Cell::Text(s) => s.map_or(null, |s| {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }),
            Cell::Json(s) => s.as_deref().map_or(null, |s| {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }),
            Cell::Bytes(b) => b.map_or(null, |b| ToSqlOutput::Borrowed(ValueRef::Blob(b))),
            Cell::Uuid(u) => u.map_or(null, |u| {
                ToSqlOutput::Owned(Value::Text(u.hyphenated().to_string()))
            }),
            Cell::Timestamp(t) => t.map_or(null, |t| {
                ToSqlOutput::Owned(Value::Timestamp(TimeUnit::Millisecond, t.millis()))
            }),
        })
    }
}
