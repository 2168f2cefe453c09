//! The SQL text `load` sends to Snowflake, derived from the table declarations:
//! the catalog queries, the tables and views, the offsets and the load's audit
//! row. Rows travel as staged files (`stage.rs`), never inside SQL text; the one
//! row a statement carries is the audit row of `_loads`, as literals (Snowflake's
//! REST API takes no bound values from this client).
//!
//! Names are upper case and quoted, as Snowflake stores unquoted names, so that
//! users can query `iot_stream.gps_data` without quotes.

use std::time::Duration;

use iot_model::Timestamp;

use crate::destination::arrow;
use crate::destination::ddl::Dialect;
use crate::load_record::LoadRecord;
use crate::partitions::{OffsetRange, PartitionKey};
use crate::tables::{Cell, ColumnType, Context, LOADS, OFFSETS, Table};

/// Snowflake's names and types.
pub struct SnowflakeSql;

impl Dialect for SnowflakeSql {
    /// A quoted, upper-case identifier.
    fn ident(name: &str) -> String {
        format!("\"{}\"", name.to_uppercase().replace('"', "\"\""))
    }

    fn sql_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Uuid => "VARCHAR(36)",
            ColumnType::Timestamp => "TIMESTAMP_TZ",
            ColumnType::Double => "FLOAT",
            ColumnType::Integer => "NUMBER(38,0)",
            ColumnType::Int32 => "NUMBER(10,0)",
            ColumnType::Text => "VARCHAR",
            ColumnType::Json => "VARIANT",
            ColumnType::Bytes => "BINARY",
        }
    }

    /// `INFORMATION_SCHEMA` reports `TEXT` for `VARCHAR` and `NUMBER` for
    /// `NUMBER(10,0)`: only missing columns are added.
    const COMPARES_TYPES: bool = false;
}

/// A schema-qualified table name.
pub fn table(schema: &str, name: &str) -> String {
    SnowflakeSql::table(schema, name)
}

/// A single-quoted string. Snowflake reads backslash escapes inside quotes, so
/// backslashes are doubled along with quotes.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A timestamp literal: [`arrow::iso_text`] quoted.
pub fn timestamp(t: Timestamp) -> String {
    format!("'{}'", arrow::iso_text(t))
}

fn value(cell: Cell) -> String {
    let null = || "NULL".to_owned();
    match cell {
        Cell::Integer(i) => i.map_or_else(null, |i| i.to_string()),
        Cell::Int32(i) => i.map_or_else(null, |i| i.to_string()),
        // Decoding refuses NaN and infinities; NULL is the safe answer if one slips by.
        Cell::Double(f) => f
            .filter(|f| f.is_finite())
            .map_or_else(null, |f| format!("{f:?}")),
        Cell::Text(s) => s.map_or_else(null, literal),
        Cell::Json(s) => s.map_or_else(null, |s| literal(&s)),
        Cell::Bytes(b) => b.map_or_else(null, |b| {
            let hex: String = b.iter().map(|b| format!("{b:02X}")).collect();
            format!("X'{hex}'")
        }),
        Cell::Uuid(u) => u.map_or_else(null, |u| format!("'{}'", u.hyphenated())),
        Cell::Timestamp(t) => t.map_or_else(null, timestamp),
    }
}

/// How the n-th column of a `VALUES` list becomes a value of type `ty`.
fn convert(n: usize, ty: ColumnType) -> String {
    match SnowflakeSql::sql_type(ty) {
        "VARIANT" => format!("PARSE_JSON(column{n})"),
        ty => format!("column{n}::{ty}"),
    }
}

/// The schema, if it exists (and the role may use it): Snowflake checks the CREATE
/// SCHEMA privilege even for `CREATE SCHEMA IF NOT EXISTS` of a schema that is
/// there, which a least-privilege loader does not hold, so `load` looks first.
pub fn schema_query(schema: &str) -> String {
    format!(
        "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = {}",
        literal(&schema.to_uppercase())
    )
}

/// Makes the dataset's schema the session's current one.
pub fn use_schema(schema: &str) -> String {
    format!("USE SCHEMA {}", SnowflakeSql::ident(schema))
}

/// Every column of every table and view in the schema: table, column, type.
pub fn columns_query(schema: &str) -> String {
    format!(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = {}",
        literal(&schema.to_uppercase())
    )
}

/// The schema's views and their comments (an earlier loader's carry
/// [`FORMER_VIEW`]).
pub fn views_query(schema: &str) -> String {
    format!(
        "SELECT TABLE_NAME, COMMENT FROM INFORMATION_SCHEMA.VIEWS WHERE TABLE_SCHEMA = {}",
        literal(&schema.to_uppercase())
    )
}

/// The one row every commit updates just before it moves offsets. Snowflake lets
/// one transaction at a time update a table, so commits take turns from there on,
/// and each sees the offsets the one before it stored; inserts of offsets for
/// partitions never loaded could not be serialised otherwise.
pub const COMMIT_TURN: &str = "_commit_turn";

/// The commit turn's table and its one row.
pub fn create_commit_turn(schema: &str) -> [String; 2] {
    let turn = table(schema, COMMIT_TURN);
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {turn} (\"ID\" NUMBER(10,0), \"LOAD_ID\" VARCHAR, \"AT\" TIMESTAMP_TZ)"
        ),
        format!("INSERT INTO {turn} (\"ID\") SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {turn})"),
    ]
}

/// How the comment of a view that loaders before dbt's models kept in the dataset
/// (trips, incidents, latest positions) starts. A reader must not meet a second,
/// older definition of a trip beside dbt's, so such views are dropped.
pub const FORMER_VIEW: &str = "iot-streaming load view";

/// Drops a view of the dataset.
pub fn drop_view(schema: &str, view: &str) -> String {
    format!("DROP VIEW {}", table(schema, view))
}

/// The privilege a statement of `load` needs on the dataset's schema or database,
/// as the object of a GRANT: for the message when Snowflake refuses it (003001).
/// None for statements on the tables, which the loader's role owns.
pub fn needed_privilege(statement: &str, database: &str, schema: &str) -> Option<String> {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(2)
        .map(str::to_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let on_schema = |what: &str| {
        format!(
            "{what} ON SCHEMA {}.{}",
            SnowflakeSql::ident(database),
            SnowflakeSql::ident(schema)
        )
    };
    match words[..] {
        ["CREATE", "SCHEMA", ..] => Some(format!(
            "CREATE SCHEMA ON DATABASE {}",
            SnowflakeSql::ident(database)
        )),
        ["CREATE", "TABLE", ..] => Some(on_schema("CREATE TABLE")),
        ["CREATE", "STAGE", ..] => Some(on_schema("CREATE STAGE")),
        _ => None,
    }
}

/// Inserts one record into `table`, its values as literals.
pub fn insert_one<R>(schema: &str, table: &Table<R>, record: &R, context: &Context) -> String {
    let conversions: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| convert(i + 1, c.ty))
        .collect();
    let values: Vec<String> = table
        .columns
        .iter()
        .map(|c| value((c.value)(record, context)))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM VALUES ({})",
        SnowflakeSql::table(schema, table.name),
        SnowflakeSql::column_list(&table.layout()),
        conversions.join(", "),
        values.join(", ")
    )
}

/// How long a statement of this session waits for a lock another transaction holds
/// (Snowflake's default is 12 hours). A loader killed while holding the commit turn
/// leaves its transaction open until Snowflake aborts it, hours later; with this the
/// next loader gives up after `wait` and says how to end that transaction.
pub fn lock_timeout(wait: Duration) -> String {
    format!("ALTER SESSION SET LOCK_TIMEOUT = {}", wait.as_secs().max(1))
}

/// Takes this commit's turn: see [`COMMIT_TURN`].
pub fn take_turn(schema: &str, load_id: &str) -> String {
    format!(
        "UPDATE {} SET \"LOAD_ID\" = {}, \"AT\" = CURRENT_TIMESTAMP()",
        table(schema, COMMIT_TURN),
        literal(load_id)
    )
}

/// Moves a partition's next offset, if it is still `expected` (or, with none
/// expected, if the partition has no row yet). Changes exactly one row when the
/// loader's view was right, none otherwise.
pub fn move_offset(
    schema: &str,
    (topic, partition): &PartitionKey,
    expected: Option<i64>,
    range: OffsetRange,
    load_id: &str,
) -> String {
    let offsets = table(schema, OFFSETS.name);
    let (topic, load_id) = (literal(topic), literal(load_id));
    match expected {
        Some(expected) => format!(
            "UPDATE {offsets} SET \"NEXT_OFFSET\" = {next}, \"UPDATED_AT\" = CURRENT_TIMESTAMP(), \
             \"LOAD_ID\" = {load_id} WHERE \"TOPIC\" = {topic} AND \"PARTITION\" = {partition} \
             AND \"NEXT_OFFSET\" = {expected}",
            next = range.next
        ),
        None => format!(
            "INSERT INTO {offsets} ({columns}) \
             SELECT {topic}, {partition}, {next}, CURRENT_TIMESTAMP(), {load_id} WHERE NOT EXISTS \
             (SELECT 1 FROM {offsets} WHERE \"TOPIC\" = {topic} AND \"PARTITION\" = {partition})",
            columns = SnowflakeSql::column_list(&OFFSETS.layout()),
            next = range.next
        ),
    }
}

/// The stored offsets, every value as text so one reader fits all columns.
pub fn select_offsets(schema: &str) -> String {
    format!(
        "SELECT \"TOPIC\", \"PARTITION\"::VARCHAR, \"NEXT_OFFSET\"::VARCHAR FROM {}",
        table(schema, OFFSETS.name)
    )
}

/// Replaces the load's audit row.
pub fn save_load(schema: &str, load: &LoadRecord) -> Vec<String> {
    let context = Context::new(&load.load_id);
    vec![
        format!(
            "DELETE FROM {} WHERE \"LOAD_ID\" = {}",
            table(schema, LOADS.name),
            literal(&load.load_id)
        ),
        insert_one(schema, &LOADS, load, &context),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_creation_names_the_privilege_it_needs() {
        let needed = |statement: &str| needed_privilege(statement, "iot", "iot_stream");
        assert_eq!(
            needed("CREATE SCHEMA IF NOT EXISTS \"IOT_STREAM\"").as_deref(),
            Some("CREATE SCHEMA ON DATABASE \"IOT\"")
        );
        assert_eq!(
            needed(&create_commit_turn("iot_stream")[0]).as_deref(),
            Some("CREATE TABLE ON SCHEMA \"IOT\".\"IOT_STREAM\"")
        );
        assert_eq!(needed(&take_turn("iot_stream", "l")), None);
    }

    #[test]
    fn names_are_quoted_upper_case_and_strings_escaped() {
        assert_eq!(
            table("iot_stream", "gps_data"),
            "\"IOT_STREAM\".\"GPS_DATA\""
        );
        assert_eq!(SnowflakeSql::ident("we\"ird"), "\"WE\"\"IRD\"");
        assert_eq!(literal(r"it's a \ test"), r"'it''s a \\ test'");
        let t = Timestamp::from_millis(1_764_149_400_250).unwrap();
        assert_eq!(timestamp(t), "'2025-11-26T09:30:00.250+00:00'");
    }

    #[test]
    fn the_audit_row_is_one_insert_with_every_column_converted_to_its_type() {
        let load = LoadRecord::new(
            "l".into(),
            Timestamp::from_millis(1_764_149_400_250).unwrap(),
        );
        let statements = save_load("s", &load);
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("DELETE FROM \"S\".\"_LOADS\""));
        let insert = &statements[1];
        assert!(
            insert.starts_with("INSERT INTO \"S\".\"_LOADS\""),
            "{insert}"
        );
        assert!(insert.contains("PARSE_JSON("), "{insert}");
        assert!(insert.contains("::TIMESTAMP_TZ"), "{insert}");
        assert_eq!(insert.matches("FROM VALUES (").count(), 1, "{insert}");
    }

    #[test]
    fn offsets_move_only_from_where_the_loader_expects_them() {
        let key = ("gps".to_owned(), 3);
        let range = OffsetRange {
            first: 10,
            next: 20,
        };
        let update = move_offset("s", &key, Some(10), range, "l");
        assert!(update.starts_with("UPDATE"), "{update}");
        assert!(update.contains("SET \"NEXT_OFFSET\" = 20"), "{update}");
        assert!(update.ends_with("AND \"NEXT_OFFSET\" = 10"), "{update}");
        let insert = move_offset("s", &key, None, range, "l");
        assert!(insert.contains("WHERE NOT EXISTS"), "{insert}");
        assert!(insert.contains("'gps', 3, 20"), "{insert}");
    }
}
