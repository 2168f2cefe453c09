//! The table layout: one column per field of the model, in a form any SQL
//! destination can map to its types, and the values of an event in that order.
//!
//! Adding a field to an event means adding it here too; the tests compare these
//! lists with the JSON the model writes, so a forgotten column fails them. The
//! destination adds missing columns to existing tables, so old rows read NULL.

use iot_model::{Event, EventKind, Timestamp};
use uuid::Uuid;

use crate::batch::Row;

/// A column type, named by what it holds rather than by any one database's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Uuid,
    Timestamp,
    Double,
    Integer,
    Text,
    /// A JSON document, written as its text.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column { name, ty }
}

use ColumnType::{Double, Integer, Text, Timestamp as Time, Uuid as Id};

const VEHICLE: &[Column] = &[
    col("schema_version", Integer),
    col("id", Id),
    col("device_id", Id),
    col("trip_id", Id),
    col("timestamp", Time),
    col("lat", Double),
    col("lon", Double),
    col("speed_kmh", Double),
    col("heading_deg", Double),
    col("odometer_km", Double),
    col("fuel_level_pct", Double),
    col("make", Text),
    col("model", Text),
    col("year", Integer),
    col("fuel_type", Text),
    col("route_source", Text),
];

const GPS: &[Column] = &[
    col("schema_version", Integer),
    col("id", Id),
    col("device_id", Id),
    col("trip_id", Id),
    col("timestamp", Time),
    col("lat", Double),
    col("lon", Double),
    col("speed_kmh", Double),
    col("heading_deg", Double),
    col("accuracy_m", Double),
];

const TRAFFIC_CAMERA: &[Column] = &[
    col("schema_version", Integer),
    col("id", Id),
    col("device_id", Id),
    col("trip_id", Id),
    col("timestamp", Time),
    col("camera_id", Id),
    col("lat", Double),
    col("lon", Double),
    col("measured_speed_kmh", Double),
    col("speed_limit_kmh", Integer),
];

const WEATHER: &[Column] = &[
    col("schema_version", Integer),
    col("id", Id),
    col("device_id", Id),
    col("trip_id", Id),
    col("timestamp", Time),
    col("lat", Double),
    col("lon", Double),
    col("temperature_c", Double),
    col("humidity_pct", Double),
    col("precipitation_mm_h", Double),
    col("wind_speed_kmh", Double),
    col("wind_direction_deg", Double),
    col("air_quality_index", Integer),
    col("condition", Text),
];

const EMERGENCY: &[Column] = &[
    col("schema_version", Integer),
    col("id", Id),
    col("device_id", Id),
    col("trip_id", Id),
    col("timestamp", Time),
    col("incident_id", Id),
    col("incident_type", Text),
    col("status", Text),
    col("lat", Double),
    col("lon", Double),
    col("description", Text),
];

/// Columns every table has after the model's: unknown fields, then where the
/// message came from and which load wrote it.
pub const EXTRA_COLUMN: Column = col("_extra", ColumnType::Json);
pub const KAFKA_COLUMNS: &[Column] = &[
    col("_kafka_topic", Text),
    col("_kafka_partition", Integer),
    col("_kafka_offset", Integer),
    col("_kafka_timestamp", Time),
    col("_kafka_key", Text),
    col("_load_id", Text),
];

/// The model's columns for an event kind, in the order of [`cells`].
pub fn model_columns(kind: EventKind) -> &'static [Column] {
    match kind {
        EventKind::Vehicle => VEHICLE,
        EventKind::Gps => GPS,
        EventKind::TrafficCamera => TRAFFIC_CAMERA,
        EventKind::Weather => WEATHER,
        EventKind::Emergency => EMERGENCY,
    }
}

/// Every column of a kind's table, in the order a row is written.
pub fn all_columns(kind: EventKind) -> impl Iterator<Item = Column> {
    model_columns(kind)
        .iter()
        .copied()
        .chain(std::iter::once(EXTRA_COLUMN))
        .chain(KAFKA_COLUMNS.iter().copied())
}

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Integer(i64),
    Double(f64),
    Text(&'a str),
    Uuid(Uuid),
    Time(Timestamp),
}

impl Cell<'_> {
    /// What the value is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Integer(_) => "an integer",
            Cell::Double(_) => "a double",
            Cell::Text(_) => "text",
            Cell::Uuid(_) => "a UUID",
            Cell::Time(_) => "a timestamp",
        }
    }
}

/// Appends a row's values to `out`, in [`all_columns`] order: the event's, its
/// unknown fields, where it came from and the load writing it.
pub fn row_cells<'a>(row: &'a Row, topic: &'a str, load_id: &'a str, out: &mut Vec<Cell<'a>>) {
    cells(&row.event, out);
    out.push(row.extra.as_deref().map_or(Cell::Null, Cell::Text));
    out.extend([
        Cell::Text(topic),
        Cell::Integer(row.kafka.partition.into()),
        Cell::Integer(row.kafka.offset),
        row.kafka.timestamp.map_or(Cell::Null, Cell::Time),
        row.kafka.key.as_deref().map_or(Cell::Null, Cell::Text),
        Cell::Text(load_id),
    ]);
}

/// Appends the event's values to `out`, in [`model_columns`] order.
pub fn cells<'a>(event: &'a Event, out: &mut Vec<Cell<'a>>) {
    use Cell::{Double as F, Integer as I, Text as T, Time as Ts, Uuid as U};
    match event {
        Event::Vehicle(e) => out.extend([
            I(e.schema_version.into()),
            U(e.id),
            U(e.device_id),
            U(e.trip_id),
            Ts(e.timestamp),
            F(e.lat),
            F(e.lon),
            F(e.speed_kmh),
            F(e.heading_deg),
            F(e.odometer_km),
            F(e.fuel_level_pct),
            T(&e.make),
            T(&e.model),
            I(e.year.into()),
            T(e.fuel_type.as_str()),
            T(e.route_source.as_str()),
        ]),
        Event::Gps(e) => out.extend([
            I(e.schema_version.into()),
            U(e.id),
            U(e.device_id),
            U(e.trip_id),
            Ts(e.timestamp),
            F(e.lat),
            F(e.lon),
            F(e.speed_kmh),
            F(e.heading_deg),
            F(e.accuracy_m),
        ]),
        Event::TrafficCamera(e) => out.extend([
            I(e.schema_version.into()),
            U(e.id),
            U(e.device_id),
            U(e.trip_id),
            Ts(e.timestamp),
            U(e.camera_id),
            F(e.lat),
            F(e.lon),
            F(e.measured_speed_kmh),
            I(e.speed_limit_kmh.into()),
        ]),
        Event::Weather(e) => out.extend([
            I(e.schema_version.into()),
            U(e.id),
            U(e.device_id),
            U(e.trip_id),
            Ts(e.timestamp),
            F(e.lat),
            F(e.lon),
            F(e.temperature_c),
            F(e.humidity_pct),
            F(e.precipitation_mm_h),
            F(e.wind_speed_kmh),
            F(e.wind_direction_deg),
            I(e.air_quality_index.into()),
            T(e.condition.as_str()),
        ]),
        Event::Emergency(e) => out.extend([
            I(e.schema_version.into()),
            U(e.id),
            U(e.device_id),
            U(e.trip_id),
            Ts(e.timestamp),
            U(e.incident_id),
            T(e.incident_type.as_str()),
            T(e.status.as_str()),
            F(e.lat),
            F(e.lon),
            T(&e.description),
        ]),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use iot_simulate::fleet::VehicleSpec;
    use iot_simulate::geo::GeoPoint;
    use iot_simulate::{Simulation, SimulationOptions, Trip, offline};
    use rand::SeedableRng;

    use super::*;

    /// At least one event of every kind, from the simulator.
    pub(crate) fn one_of_each() -> Vec<Event> {
        let route = offline::route(
            GeoPoint {
                lat: 52.39,
                lon: 13.06,
            },
            GeoPoint {
                lat: 52.0,
                lon: 12.5,
            },
        )
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let trip = Trip {
            route: Arc::new(route),
            vehicles: vec![VehicleSpec::random(&mut rng)],
        };
        let options = SimulationOptions {
            emergency_rate_per_hour: 30.0,
            ..SimulationOptions::default()
        };
        let mut simulation = Simulation::new(&[trip], options);
        let mut events = Vec::new();
        while simulation.step(&mut events) {}
        let mut seen = BTreeSet::new();
        events.retain(|e| seen.insert(e.kind()));
        assert_eq!(events.len(), 5, "the simulator made every kind");
        events
    }

    #[test]
    fn columns_are_the_fields_the_model_writes() {
        for event in one_of_each() {
            let mut json = Vec::new();
            event.encode(&mut json);
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let fields: BTreeSet<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let columns: BTreeSet<&str> =
                model_columns(event.kind()).iter().map(|c| c.name).collect();
            assert_eq!(fields, columns, "{}", event.kind());
        }
    }

    #[test]
    fn cells_line_up_with_columns() {
        for event in one_of_each() {
            let mut json = Vec::new();
            event.encode(&mut json);
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let mut out = Vec::new();
            cells(&event, &mut out);
            let columns = model_columns(event.kind());
            assert_eq!(out.len(), columns.len());
            for (column, cell) in columns.iter().zip(&out) {
                let field = &value[column.name];
                let agrees = match (column.ty, cell) {
                    (ColumnType::Uuid, Cell::Uuid(u)) => {
                        field.as_str() == Some(u.to_string().as_str())
                    }
                    (ColumnType::Timestamp, Cell::Time(t)) => {
                        field.as_str() == Some(t.to_string().as_str())
                    }
                    (ColumnType::Double, Cell::Double(f)) => field.as_f64() == Some(*f),
                    (ColumnType::Integer, Cell::Integer(i)) => field.as_i64() == Some(*i),
                    (ColumnType::Text, Cell::Text(s)) => field.as_str() == Some(*s),
                    _ => false,
                };
                assert!(
                    agrees,
                    "{}.{}: {cell:?} vs {field}",
                    event.kind(),
                    column.name
                );
            }
        }
    }
}
