//! The SQL text `load` sends to Snowflake. Snowflake's REST API takes one
//! statement per request and no bound arrays from this client, so values travel
//! as literals: rows as multi-row `INSERT … SELECT … FROM VALUES`, each statement
//! kept well under Snowflake's limit on statement size.
//!
//! Names are upper case and quoted, as Snowflake stores unquoted names, so that
//! users can query `iot_stream.gps_data` without quotes.

use iot_model::{EventKind, Timestamp};

use crate::batch::{DeadLetter, OffsetRange, PartitionKey, Row};
use crate::columns::{Cell, Column, ColumnType, all_columns, row_cells};
use crate::destination::LoadRecord;

/// Statements are cut at about this many bytes; Snowflake refuses statements over 1 MB.
pub const MAX_STATEMENT_BYTES: usize = 512 * 1024;

/// A quoted, upper-case identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.to_uppercase().replace('"', "\"\""))
}

/// A schema-qualified table name.
pub fn table(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
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

/// ISO 8601 with `T` and the offset attached: `2026-11-26T09:30:00.250+00:00`.
pub fn timestamp(t: Timestamp) -> String {
    let text = t.to_string();
    format!("'{}+00:00'", text.trim_end_matches('Z'))
}

fn value(cell: Cell) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Integer(i) => i.to_string(),
        // Decoding refuses NaN and infinities; NULL is the safe answer if one slips by.
        Cell::Double(f) if f.is_finite() => format!("{f:?}"),
        Cell::Double(_) => "NULL".into(),
        Cell::Text(s) => literal(s),
        Cell::Uuid(u) => format!("'{}'", u.hyphenated()),
        Cell::Time(t) => timestamp(t),
    }
}

pub fn sql_type(column: Column) -> &'static str {
    match column.ty {
        ColumnType::Uuid => "VARCHAR(36)",
        ColumnType::Timestamp => "TIMESTAMP_TZ",
        ColumnType::Double => "FLOAT",
        ColumnType::Integer => "NUMBER(38,0)",
        ColumnType::Text => "VARCHAR",
        ColumnType::Json => "VARIANT",
    }
}

/// How the n-th column of a `VALUES` list becomes a value of `column`.
fn convert(n: usize, column: Column) -> String {
    match sql_type(column) {
        "VARIANT" => format!("PARSE_JSON(column{n})"),
        ty => format!("column{n}::{ty}"),
    }
}

/// Everything `load` needs in the schema, created if missing.
pub fn create_tables(schema: &str) -> Vec<String> {
    let mut statements = vec![format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema))];
    for kind in EventKind::ALL {
        let columns: Vec<String> = all_columns(kind)
            .map(|c| format!("{} {}", ident(c.name), sql_type(c)))
            .collect();
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            table(schema, kind.default_topic()),
            columns.join(", ")
        ));
    }
    statements.extend([
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"TOPIC\" VARCHAR NOT NULL, \"PARTITION\" NUMBER(10,0) NOT NULL, \
             \"NEXT_OFFSET\" NUMBER(38,0) NOT NULL, \"UPDATED_AT\" TIMESTAMP_TZ, \"LOAD_ID\" VARCHAR, \
             PRIMARY KEY (\"TOPIC\", \"PARTITION\"))",
            table(schema, "_kafka_offsets")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"TOPIC\" VARCHAR, \"PARTITION\" NUMBER(10,0), \"OFFSET\" NUMBER(38,0), \
             \"KEY\" VARCHAR, \"PAYLOAD_HEX\" VARCHAR, \"PAYLOAD_TEXT\" VARCHAR, \"ERROR\" VARCHAR, \
             \"KAFKA_TIMESTAMP\" TIMESTAMP_TZ, \"FAILED_AT\" TIMESTAMP_TZ, \"LOAD_ID\" VARCHAR)",
            table(schema, "_dead_letters")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"LOAD_ID\" VARCHAR, \"STARTED_AT\" TIMESTAMP_TZ, \
             \"FINISHED_AT\" TIMESTAMP_TZ, \"STATUS\" VARCHAR, \"ROWS_LOADED\" NUMBER(38,0), \
             \"ROWS_PER_TABLE\" VARIANT, \"DEAD_LETTERS\" NUMBER(38,0), \"OFFSETS\" VARIANT, \
             \"GAPS\" VARIANT, \"ERROR\" VARCHAR)",
            table(schema, "_loads")
        ),
        // One row that every commit updates just before it moves offsets. Snowflake
        // lets one transaction at a time update a table, so commits take turns from
        // there on, and each sees the offsets the one before it stored; inserts of
        // offsets for partitions never loaded could not be serialised otherwise.
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\"ID\" NUMBER(10,0), \"LOAD_ID\" VARCHAR, \"AT\" TIMESTAMP_TZ)",
            table(schema, "_commit_turn")
        ),
        format!(
            "INSERT INTO {t} (\"ID\") SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {t})",
            t = table(schema, "_commit_turn")
        ),
    ]);
    statements
}

/// The names of a table's columns, upper case, as `INFORMATION_SCHEMA` lists them.
pub fn columns_query(schema: &str, name: &str) -> String {
    format!(
        "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        literal(&schema.to_uppercase()),
        literal(&name.to_uppercase())
    )
}

pub fn add_column(schema: &str, name: &str, column: Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        table(schema, name),
        ident(column.name),
        sql_type(column)
    )
}

/// Multi-row inserts of `rows` into the table of `kind`, each under `max_bytes`
/// (a single row longer than that still gets a statement of its own).
pub fn insert_rows(
    schema: &str,
    kind: EventKind,
    topic: &str,
    load_id: &str,
    rows: &[Row],
    max_bytes: usize,
) -> Vec<String> {
    let columns: Vec<Column> = all_columns(kind).collect();
    let head = insert_head(&table(schema, kind.default_topic()), &columns);
    let mut cells = Vec::with_capacity(columns.len());
    chunked(
        &head,
        rows.iter().map(|row| {
            cells.clear();
            row_cells(row, topic, load_id, &mut cells);
            tuple(cells.iter().copied().map(value))
        }),
        max_bytes,
    )
}

/// Inserts of dead letters; the payload is kept as hex (every byte, UTF-8 or not)
/// and as text where it is UTF-8.
pub fn insert_dead_letters(
    schema: &str,
    letters: &[DeadLetter],
    load_id: &str,
    now: Timestamp,
    max_bytes: usize,
) -> Vec<String> {
    use ColumnType::{Integer, Text, Timestamp as Time};
    let column = |name, ty| Column { name, ty };
    let columns = [
        column("topic", Text),
        column("partition", Integer),
        column("offset", Integer),
        column("key", Text),
        column("payload_hex", Text),
        column("payload_text", Text),
        column("error", Text),
        column("kafka_timestamp", Time),
        column("failed_at", Time),
        column("load_id", Text),
    ];
    let head = insert_head(&table(schema, "_dead_letters"), &columns);
    chunked(
        &head,
        letters.iter().map(|d| {
            let hex: String = d.payload.iter().map(|b| format!("{b:02x}")).collect();
            tuple(
                [
                    Cell::Text(&d.topic),
                    Cell::Integer(d.kafka.partition.into()),
                    Cell::Integer(d.kafka.offset),
                    d.kafka.key.as_deref().map_or(Cell::Null, Cell::Text),
                    Cell::Text(&hex),
                    std::str::from_utf8(&d.payload).map_or(Cell::Null, Cell::Text),
                    Cell::Text(&d.error),
                    d.kafka.timestamp.map_or(Cell::Null, Cell::Time),
                    Cell::Time(now),
                    Cell::Text(load_id),
                ]
                .into_iter()
                .map(value),
            )
        }),
        max_bytes,
    )
}

fn insert_head(table: &str, columns: &[Column]) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(c.name)).collect();
    let conversions: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| convert(i + 1, *c))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM VALUES ",
        names.join(", "),
        conversions.join(", ")
    )
}

fn tuple(values: impl Iterator<Item = String>) -> String {
    let values: Vec<String> = values.collect();
    format!("({})", values.join(", "))
}

fn chunked(head: &str, tuples: impl Iterator<Item = String>, max_bytes: usize) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for tuple in tuples {
        if !current.is_empty() && current.len() + tuple.len() + 2 > max_bytes {
            statements.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(head);
        } else {
            current.push_str(", ");
        }
        current.push_str(&tuple);
    }
    if !current.is_empty() {
        statements.push(current);
    }
    statements
}

/// Takes this commit's turn: see `_commit_turn` in [`create_tables`].
pub fn take_turn(schema: &str, load_id: &str) -> String {
    format!(
        "UPDATE {} SET \"LOAD_ID\" = {}, \"AT\" = CURRENT_TIMESTAMP()",
        table(schema, "_commit_turn"),
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
    let offsets = table(schema, "_kafka_offsets");
    let (topic, load_id) = (literal(topic), literal(load_id));
    match expected {
        Some(expected) => format!(
            "UPDATE {offsets} SET \"NEXT_OFFSET\" = {next}, \"UPDATED_AT\" = CURRENT_TIMESTAMP(), \
             \"LOAD_ID\" = {load_id} WHERE \"TOPIC\" = {topic} AND \"PARTITION\" = {partition} \
             AND \"NEXT_OFFSET\" = {expected}",
            next = range.next
        ),
        None => format!(
            "INSERT INTO {offsets} (\"TOPIC\", \"PARTITION\", \"NEXT_OFFSET\", \"UPDATED_AT\", \"LOAD_ID\") \
             SELECT {topic}, {partition}, {next}, CURRENT_TIMESTAMP(), {load_id} WHERE NOT EXISTS \
             (SELECT 1 FROM {offsets} WHERE \"TOPIC\" = {topic} AND \"PARTITION\" = {partition})",
            next = range.next
        ),
    }
}

/// The stored offsets, every value as text so one reader fits all columns.
pub fn select_offsets(schema: &str) -> String {
    format!(
        "SELECT \"TOPIC\", \"PARTITION\"::VARCHAR, \"NEXT_OFFSET\"::VARCHAR FROM {}",
        table(schema, "_kafka_offsets")
    )
}

/// Replaces the load's audit row.
pub fn save_load(schema: &str, load: &LoadRecord) -> [String; 2] {
    let loads = table(schema, "_loads");
    let values = [
        literal(&load.load_id),
        timestamp(load.started_at),
        load.finished_at.map_or("NULL".into(), timestamp),
        literal(load.status),
        load.total_rows().to_string(),
        json(&load.rows),
        load.dead_letters.to_string(),
        json(&load.offsets),
        json(&load.gaps),
        load.error.as_deref().map_or("NULL".into(), literal),
    ];
    [
        format!(
            "DELETE FROM {loads} WHERE \"LOAD_ID\" = {}",
            literal(&load.load_id)
        ),
        format!(
            "INSERT INTO {loads} (\"LOAD_ID\", \"STARTED_AT\", \"FINISHED_AT\", \"STATUS\", \"ROWS_LOADED\", \
             \"ROWS_PER_TABLE\", \"DEAD_LETTERS\", \"OFFSETS\", \"GAPS\", \"ERROR\") \
             SELECT column1, column2::TIMESTAMP_TZ, column3::TIMESTAMP_TZ, column4, column5, \
             PARSE_JSON(column6), column7, PARSE_JSON(column8), PARSE_JSON(column9), column10 \
             FROM VALUES ({})",
            values.join(", ")
        ),
    ]
}

/// A value of the audit record as a JSON string literal.
fn json<T: serde::Serialize>(value: &T) -> String {
    literal(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batch, KafkaMeta};
    use crate::columns::tests::one_of_each;
    use iot_model::Topics;

    #[test]
    fn names_are_quoted_upper_case_and_strings_escaped() {
        assert_eq!(
            table("iot_stream", "gps_data"),
            "\"IOT_STREAM\".\"GPS_DATA\""
        );
        assert_eq!(ident("we\"ird"), "\"WE\"\"IRD\"");
        assert_eq!(literal(r"it's a \ test"), r"'it''s a \\ test'");
        let t = Timestamp::from_millis(1_764_149_400_250).unwrap();
        assert_eq!(timestamp(t), "'2025-11-26T09:30:00.250+00:00'");
    }

    fn rows_of_every_kind(copies: usize) -> Batch {
        let topics = Topics::default();
        let mut batch = Batch::default();
        let mut offset = 0;
        for _ in 0..copies {
            for event in one_of_each() {
                let mut json = Vec::new();
                event.encode(&mut json);
                let kafka = KafkaMeta {
                    partition: 0,
                    offset,
                    timestamp: None,
                    key: None,
                };
                offset += 1;
                batch.add(&topics, topics.name(event.kind()), kafka, Some(&json));
            }
        }
        batch
    }

    #[test]
    fn inserts_are_cut_below_the_size_limit_and_keep_every_row() {
        let batch = rows_of_every_kind(40);
        for kind in EventKind::ALL {
            let rows = batch.rows(kind);
            let one = insert_rows("s", kind, "t", "l", rows, usize::MAX);
            assert_eq!(one.len(), 1);
            let limit = one[0].len() / 5;
            let cut = insert_rows("s", kind, "t", "l", rows, limit);
            assert!(cut.len() >= 5, "{kind}: {} statements", cut.len());
            let tuples: usize = cut
                .iter()
                .map(|s| {
                    assert!(s.len() <= limit, "{kind}: {} > {limit}", s.len());
                    assert!(s.starts_with("INSERT INTO \"S\"."));
                    s.matches("), (").count() + 1
                })
                .sum();
            assert_eq!(tuples, rows.len(), "{kind}");
        }
    }

    #[test]
    fn every_column_is_converted_to_its_type() {
        let batch = rows_of_every_kind(1);
        let statement = &insert_rows(
            "s",
            EventKind::Gps,
            "gps",
            "l",
            batch.rows(EventKind::Gps),
            usize::MAX,
        )[0];
        assert!(statement.contains("column5::TIMESTAMP_TZ"), "{statement}");
        assert!(statement.contains("PARSE_JSON(column11)"), "{statement}");
        assert!(statement.contains("column2::VARCHAR(36)"), "{statement}");
        assert!(statement.contains("+00:00'"), "{statement}");
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
