//! The dataset's schema in DuckDB: every declared table created when missing or
//! brought up to date by column name, then the analytical views of `views.sql`.

use duckdb::{Connection, params};

use crate::destination::DestinationError;
use crate::destination::ddl::{self, Dialect};
use crate::tables::{self, ColumnType};

/// DuckDB's names and types.
pub struct DuckDbSql;

impl Dialect for DuckDbSql {
    fn ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    fn sql_type(ty: ColumnType) -> &'static str {
        match ty {
            ColumnType::Uuid => "UUID",
            ColumnType::Timestamp => "TIMESTAMP WITH TIME ZONE",
            ColumnType::Double => "DOUBLE",
            ColumnType::Integer => "BIGINT",
            ColumnType::Int32 => "INTEGER",
            ColumnType::Text => "VARCHAR",
            ColumnType::Json => "JSON",
            ColumnType::Bytes => "BLOB",
        }
    }

    /// `information_schema.columns` spells types as [`DuckDbSql::sql_type`] does.
    const COMPARES_TYPES: bool = true;
}

/// Makes the tables and views of `schema` match the declarations. Tables made by
/// an older loader gain the columns the model gained since (old rows read NULL),
/// and columns whose type changed are converted in place (`_extra` and the JSON
/// columns of `_loads` were VARCHAR before DuckDB's JSON type).
pub fn prepare(conn: &Connection, schema: &str) -> Result<(), DestinationError> {
    let mut sql = ddl::create_schema::<DuckDbSql>(schema) + ";\n";
    let layouts = tables::layouts();
    for layout in &layouts {
        sql += &ddl::create_table::<DuckDbSql>(schema, layout);
        sql += ";\n";
    }
    conn.execute_batch(&sql)
        .map_err(|e| DestinationError::write("the tables", e))?;

    let mut columns = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ?",
        )
        .map_err(|e| DestinationError::write("the tables", e))?;
    for layout in &layouts {
        let table = layout.name;
        let existing: Vec<(String, String)> = columns
            .query_map(params![schema, table], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| DestinationError::write(table, e))?;
        for change in ddl::changes::<DuckDbSql>(schema, layout, &existing) {
            tracing::info!(table, change, "changing a table to match the model");
            conn.execute_batch(&change)
                .map_err(|e| DestinationError::write(table, e))?;
        }
    }

    let icu: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_extensions() WHERE extension_name = 'icu' AND loaded",
            [],
            |r| r.get(0),
        )
        .map_err(|e| DestinationError::write("the extensions", e))?;
    conn.execute_batch(&views(schema, icu))
        .map_err(|e| DestinationError::write("the views", e))
}

/// The analytical views for `schema`. Durations are INTERVALs: the difference of
/// two TIMESTAMPTZ values where DuckDB's ICU extension is loaded (the prebuilt
/// library we link, DBeaver's driver), else, in a `bundled` build, which has no ICU
/// and cannot subtract TIMESTAMPTZ, the same interval from epoch microseconds.
pub fn views(schema: &str, icu: bool) -> String {
    let span = |later: &str, earlier: &str| {
        if icu {
            format!("{later} - {earlier}")
        } else {
            format!("to_microseconds(epoch_us({later}) - epoch_us({earlier}))")
        }
    };
    include_str!("views.sql")
        .replace("{schema}", &DuckDbSql::ident(schema))
        .replace(
            "{trip_duration}",
            &span(r#"max("timestamp")"#, r#"min("timestamp")"#),
        )
        .replace(
            "{time_to_resolve}",
            &span(
                r#"min("timestamp") FILTER (WHERE status = 'resolved')"#,
                r#"min("timestamp") FILTER (WHERE status = 'active')"#,
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(DuckDbSql::ident("gps_data"), "\"gps_data\"");
        assert_eq!(DuckDbSql::ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn every_placeholder_of_the_views_is_filled() {
        for icu in [true, false] {
            let sql = views("s", icu);
            assert!(!sql.contains('{'), "{sql}");
            assert!(sql.contains("FROM \"s\".gps_data"), "{sql}");
            assert_eq!(sql.contains("epoch_us"), !icu);
        }
    }
}
