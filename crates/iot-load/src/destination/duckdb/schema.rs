//! The dataset's schema in DuckDB: every declared table created when missing or
//! brought up to date by column name. The analytical definitions (trips,
//! incidents, latest positions) are dbt's models (analytics/), not the loader's.

use duckdb::{Connection, params};

use crate::destination::ddl::{self, Dialect};
use crate::error::DestinationError;
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

/// The views loaders before dbt's models kept in the dataset. A reader must not
/// meet a second, older definition of a trip beside dbt's, so they are dropped.
pub const FORMER_VIEWS: [&str; 3] = ["latest_positions", "trips", "incidents"];

/// Makes the tables of `schema` match the declarations, and drops [`FORMER_VIEWS`]. Tables made by
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

    let mut former = conn
        .prepare(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = ? \
             AND view_name IN (?, ?, ?) AND NOT internal",
        )
        .map_err(|e| DestinationError::write("the views", e))?;
    let [a, b, c] = FORMER_VIEWS;
    let found: Vec<String> = former
        .query_map(params![schema, a, b, c], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| DestinationError::write("the views", e))?;
    for view in found {
        tracing::info!(
            view,
            "dropping a view of an earlier loader: dbt's models define it now"
        );
        conn.execute_batch(&format!("DROP VIEW {}", DuckDbSql::table(schema, &view)))
            .map_err(|e| DestinationError::write("the views", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(DuckDbSql::ident("gps_data"), "\"gps_data\"");
        assert_eq!(DuckDbSql::ident("we\"ird"), "\"we\"\"ird\"");
    }
}
