//! The trip report `load --show-trips` prints: one line per trip of dbt's `trips`
//! model (analytics/models/marts/trips.sql, the one definition of a trip), what a
//! person running the demo wants to see landed.

use std::path::Path;

use crate::destination::ddl::Dialect;
use crate::destination::duckdb::connection;
use crate::destination::duckdb::schema::DuckDbSql;
use crate::error::DestinationError;

/// One line per trip of the model in the file's `schema` (dbt's, for the
/// dataset: `<dataset>_analytics`), oldest first.
pub fn trips(path: &Path, schema: &str) -> Result<String, DestinationError> {
    let conn = connection::open_read_only(path)?;
    let built: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = ? AND table_name = 'trips'",
            [schema],
            |r| r.get(0),
        )
        .map_err(|e| DestinationError::write("the trips model", e))?;
    if !built {
        return Err(DestinationError::write(
            "the trips model",
            format!(
                "{} has no table {schema}.trips: dbt builds it from what load stored; run \
                 `scripts/dbt.sh build` (or scripts/pipeline.sh, which loads and builds)",
                path.display()
            ),
        ));
    }
    let fail = |e: duckdb::Error| DestinationError::write("the trips model", e);
    let sql = format!(
        "SELECT trip_id, make, model, route_source, distance_km,
                CAST(duration_s AS BIGINT), avg_speed_kmh, max_speed_kmh
         FROM {}.trips ORDER BY started_at, trip_id",
        DuckDbSql::ident(schema)
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
        "{} trips in {}:\n{}",
        lines.len(),
        path.display(),
        lines.join("\n")
    ))
}
