//! Every table `load` writes, declared once: its name, its key, and its columns,
//! each with a destination-neutral type and where its value comes from. Both
//! destinations derive their DDL, their migrations (missing columns added, by name)
//! and their writes (by column name, never by position) from these declarations.
//!
//! A column's type and its value cannot disagree: the declaration names the type
//! once, and the value is wrapped in the [`Cell`] variant of that same name, so a
//! `Double` column fed a string does not compile. Adding a field to an event means
//! adding one line here; a test compares the event tables with the JSON the model
//! writes, so a forgotten column fails it. Old rows read NULL in a column added later.

use std::borrow::Cow;

use iot_model::{Event, EventKind, Timestamp};
use uuid::Uuid;

use crate::load_record::LoadRecord;
use crate::partitions::{OffsetRange, PartitionKey};
use crate::rows::{DeadLetter, Row};

/// A column type, named by what it holds rather than by any one database's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Uuid,
    Timestamp,
    Double,
    /// 64 bits.
    Integer,
    /// 32 bits: Kafka partitions in the bookkeeping tables.
    Int32,
    Text,
    /// A JSON document, written as its text.
    Json,
    /// Raw bytes.
    Bytes,
}

/// One value of a row, in the variant of its column's type; `None` is NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Uuid(Option<Uuid>),
    Timestamp(Option<Timestamp>),
    Double(Option<f64>),
    Integer(Option<i64>),
    Int32(Option<i32>),
    Text(Option<&'a str>),
    Json(Option<Cow<'a, str>>),
    Bytes(Option<&'a [u8]>),
}

/// What a row's values draw on besides the record itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The topic an event table's rows were read from (the bookkeeping tables name
    /// their own).
    pub topic: &'a str,
    /// The load writing them.
    pub load_id: &'a str,
    /// When the batch is written.
    pub now: Timestamp,
}

impl<'a> Context<'a> {
    /// A write of load `load_id`, now.
    pub fn new(load_id: &'a str) -> Self {
        Self {
            topic: "",
            load_id,
            now: Timestamp::now(),
        }
    }

    /// The same write, of rows read from `topic`.
    pub fn on(self, topic: &'a str) -> Self {
        Self { topic, ..self }
    }
}

/// A column of a table whose rows are records of type `R`.
pub struct Column<R> {
    pub name: &'static str,
    pub ty: ColumnType,
    pub value: for<'a> fn(&'a R, &Context<'a>) -> Cell<'a>,
}

impl<R> Clone for Column<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Column<R> {}

/// A table: its name, its columns in order, and the columns of its primary key.
pub struct Table<R: 'static> {
    pub name: &'static str,
    pub columns: &'static [Column<R>],
    pub key: &'static [&'static str],
}

impl<R> Table<R> {
    /// Names and types, without the values: what DDL and migrations need.
    pub fn layout(&self) -> Layout {
        Layout {
            name: self.name,
            columns: self.columns.iter().map(|c| (c.name, c.ty)).collect(),
            key: self.key,
        }
    }
}

/// A table's shape, whatever its records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub name: &'static str,
    pub columns: Vec<(&'static str, ColumnType)>,
    pub key: &'static [&'static str],
}

/// A column whose value is `value`, wrapped in the cell of type `ty`.
macro_rules! column {
    ($name:literal: $ty:ident = |$record:pat_param, $context:pat_param| $value:expr) => {
        Column {
            name: $name,
            ty: ColumnType::$ty,
            value: |$record, $context| Cell::$ty(Into::into($value)),
        }
    };
}

/// An event table: the fields every event starts with, then its own, read from the
/// row's event of `variant`, then its unknown fields, where the message came from
/// and which load wrote it.
macro_rules! event_table {
    ($table:literal, $variant:ident { $($name:literal: $ty:ident = |$event:ident| $value:expr),+ $(,)? }) => {
        event_table!(@columns $table, $variant {
            "schema_version": Integer = |e| i64::from(e.schema_version),
            "id": Uuid = |e| e.id,
            "device_id": Uuid = |e| e.device_id,
            "trip_id": Uuid = |e| e.trip_id,
            "timestamp": Timestamp = |e| e.timestamp,
            $($name: $ty = |$event| $value),+
        })
    };
    (@columns $table:literal, $variant:ident { $($name:literal: $ty:ident = |$event:ident| $value:expr),+ }) => {
        Table {
            name: $table,
            key: &[],
            columns: &[
                $(Column {
                    name: $name,
                    ty: ColumnType::$ty,
                    value: |row, _| match &row.event {
                        Event::$variant($event) => Cell::$ty(Into::into($value)),
                        // A batch keeps each kind's rows apart: never reached.
                        _ => Cell::$ty(None),
                    },
                }),+,
                column!("_extra": Json = |row, _| row.extra.as_deref().map(Cow::Borrowed)),
                column!("_kafka_topic": Text = |_, c| c.topic),
                column!("_kafka_partition": Integer = |row, _| i64::from(row.kafka.partition)),
                column!("_kafka_offset": Integer = |row, _| row.kafka.offset),
                column!("_kafka_timestamp": Timestamp = |row, _| row.kafka.timestamp),
                column!("_kafka_key": Text = |row, _| row.kafka.key_text()),
                column!("_kafka_key_bytes": Bytes = |row, _| row.kafka.key_bytes()),
                column!("_load_id": Text = |_, c| c.load_id),
                // When the loader stored the row: the order in which rows became
                // visible to readers, set by the loader whatever the producer did, so
                // that incremental models pick up late and timestamp-less events.
                column!("_loaded_at": Timestamp = |_, c| c.now),
            ],
        }
    };
}

static VEHICLE: Table<Row> = event_table!("vehicle_data", Vehicle {
    "lat": Double = |e| e.lat,
    "lon": Double = |e| e.lon,
    "speed_kmh": Double = |e| e.speed_kmh,
    "heading_deg": Double = |e| e.heading_deg,
    "odometer_km": Double = |e| e.odometer_km,
    "fuel_level_pct": Double = |e| e.fuel_level_pct,
    "make": Text = |e| e.make.as_str(),
    "model": Text = |e| e.model.as_str(),
    "year": Integer = |e| i64::from(e.year),
    "fuel_type": Text = |e| e.fuel_type.as_str(),
    "route_source": Text = |e| e.route_source.as_str(),
});

static GPS: Table<Row> = event_table!("gps_data", Gps {
    "lat": Double = |e| e.lat,
    "lon": Double = |e| e.lon,
    "speed_kmh": Double = |e| e.speed_kmh,
    "heading_deg": Double = |e| e.heading_deg,
    "accuracy_m": Double = |e| e.accuracy_m,
});

static TRAFFIC_CAMERA: Table<Row> = event_table!("traffic_data", TrafficCamera {
    "camera_id": Uuid = |e| e.camera_id,
    "lat": Double = |e| e.lat,
    "lon": Double = |e| e.lon,
    "measured_speed_kmh": Double = |e| e.measured_speed_kmh,
    "speed_limit_kmh": Integer = |e| i64::from(e.speed_limit_kmh),
});

static WEATHER: Table<Row> = event_table!("weather_data", Weather {
    "lat": Double = |e| e.lat,
    "lon": Double = |e| e.lon,
    "temperature_c": Double = |e| e.temperature_c,
    "humidity_pct": Double = |e| e.humidity_pct,
    "precipitation_mm_h": Double = |e| e.precipitation_mm_h,
    "wind_speed_kmh": Double = |e| e.wind_speed_kmh,
    "wind_direction_deg": Double = |e| e.wind_direction_deg,
    "air_quality_index": Integer = |e| i64::from(e.air_quality_index),
    "condition": Text = |e| e.condition.as_str(),
});

static EMERGENCY: Table<Row> = event_table!("emergency_data", Emergency {
    "incident_id": Uuid = |e| e.incident_id,
    "incident_type": Text = |e| e.incident_type.as_str(),
    "status": Text = |e| e.status.as_str(),
    "lat": Double = |e| e.lat,
    "lon": Double = |e| e.lon,
    "description": Text = |e| e.description.as_str(),
});

/// The table of an event kind.
pub fn events(kind: EventKind) -> &'static Table<Row> {
    match kind {
        EventKind::Vehicle => &VEHICLE,
        EventKind::Gps => &GPS,
        EventKind::TrafficCamera => &TRAFFIC_CAMERA,
        EventKind::Weather => &WEATHER,
        EventKind::Emergency => &EMERGENCY,
    }
}

/// A partition's next offset to read, as `_kafka_offsets` stores it.
pub type StoredOffset = (PartitionKey, OffsetRange);

/// The next offset to read per partition, moved in the same transaction as the rows.
pub static OFFSETS: Table<StoredOffset> = Table {
    name: "_kafka_offsets",
    key: &["topic", "partition"],
    columns: &[
        column!("topic": Text = |((topic, _), _), _| topic.as_str()),
        column!("partition": Int32 = |((_, partition), _), _| *partition),
        column!("next_offset": Integer = |(_, range), _| range.next),
        column!("updated_at": Timestamp = |_, c| c.now),
        column!("load_id": Text = |_, c| c.load_id),
    ],
};

/// Messages that could not be loaded, with the reason and every byte of the payload.
pub static DEAD_LETTERS: Table<DeadLetter> = Table {
    name: "_dead_letters",
    key: &[],
    columns: &[
        column!("topic": Text = |d, _| d.topic.as_str()),
        column!("partition": Int32 = |d, _| d.kafka.partition),
        column!("offset": Integer = |d, _| d.kafka.offset),
        column!("key": Text = |d, _| d.kafka.key_text()),
        column!("key_bytes": Bytes = |d, _| d.kafka.key_bytes()),
        column!("payload": Bytes = |d, _| d.payload.as_slice()),
        column!("payload_text": Text = |d, _| std::str::from_utf8(&d.payload).ok()),
        column!("error": Text = |d, _| d.error.as_str()),
        column!("kafka_timestamp": Timestamp = |d, _| d.kafka.timestamp),
        column!("failed_at": Timestamp = |_, c| c.now),
        column!("load_id": Text = |_, c| c.load_id),
    ],
};

/// One row per run of the loader, rewritten with every batch.
pub static LOADS: Table<LoadRecord> = Table {
    name: "_loads",
    key: &["load_id"],
    columns: &[
        column!("load_id": Text = |l, _| l.load_id.as_str()),
        column!("started_at": Timestamp = |l, _| l.started_at),
        column!("finished_at": Timestamp = |l, _| l.finished_at),
        column!("status": Text = |l, _| l.status),
        column!("rows_loaded": Integer = |l, _| l.total_rows() as i64),
        column!("rows_per_table": Json = |l, _| json(&l.rows)),
        column!("dead_letters": Integer = |l, _| l.dead_letters as i64),
        column!("offsets": Json = |l, _| json(&l.offsets)),
        column!("gaps": Json = |l, _| json(&l.gaps)),
        column!("resets": Json = |l, _| json(&l.resets)),
        column!("error": Text = |l, _| l.error.as_deref()),
    ],
};

/// Every table, events first.
pub fn layouts() -> Vec<Layout> {
    let mut all: Vec<Layout> = EventKind::ALL.iter().map(|&k| events(k).layout()).collect();
    all.extend([OFFSETS.layout(), DEAD_LETTERS.layout(), LOADS.layout()]);
    all
}

fn json<T: serde::Serialize>(value: &T) -> Option<Cow<'static, str>> {
    // Maps of names to counts and lists of ranges always serialise.
    serde_json::to_string(value).ok().map(Cow::Owned)
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
    use crate::rows::KafkaMeta;

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

    fn row(event: Event) -> Row {
        Row {
            kafka: KafkaMeta {
                partition: 3,
                offset: 17,
                timestamp: None,
                key: Some(crate::rows::Key::new(b"k")),
            },
            event,
            extra: None,
        }
    }

    /// The model's own columns of an event table: all but those the loader adds,
    /// whose names start with an underscore, after them.
    fn model_columns(kind: EventKind) -> &'static [Column<Row>] {
        let columns = events(kind).columns;
        let own = columns.iter().take_while(|c| !c.name.starts_with('_'));
        &columns[..own.count()]
    }

    #[test]
    fn event_tables_are_named_after_their_default_topic() {
        for kind in EventKind::ALL {
            assert_eq!(events(kind).name, kind.default_topic());
        }
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
    fn every_value_is_the_field_the_model_wrote() {
        let context = Context::new("l").on("t");
        for event in one_of_each() {
            let mut json = Vec::new();
            event.encode(&mut json);
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let kind = event.kind();
            let row = row(event);
            for column in model_columns(kind) {
                let field = &value[column.name];
                let agrees = match (column.value)(&row, &context) {
                    Cell::Uuid(Some(u)) => field.as_str() == Some(u.to_string().as_str()),
                    Cell::Timestamp(Some(t)) => field.as_str() == Some(t.to_string().as_str()),
                    Cell::Double(Some(f)) => field.as_f64() == Some(f),
                    Cell::Integer(Some(i)) => field.as_i64() == Some(i),
                    Cell::Text(Some(s)) => field.as_str() == Some(s),
                    _ => false,
                };
                assert!(agrees, "{kind}.{} vs {field}", column.name);
            }
        }
    }

    #[test]
    fn a_row_of_another_kind_reads_null_rather_than_wrong_values() {
        let gps = one_of_each()
            .into_iter()
            .find(|e| e.kind() == EventKind::Gps)
            .unwrap();
        let context = Context::new("l");
        let lat = events(EventKind::Weather)
            .columns
            .iter()
            .find(|c| c.name == "lat")
            .unwrap();
        assert_eq!((lat.value)(&row(gps), &context), Cell::Double(None));
    }

    #[test]
    fn a_text_key_reads_as_text_and_any_other_byte_for_byte() {
        fn value<'a>(row: &'a Row, name: &str) -> Cell<'a> {
            let table = events(row.event.kind());
            let column = table.columns.iter().find(|c| c.name == name).unwrap();
            (column.value)(row, &Context::new("l"))
        }
        let mut row = row(one_of_each().remove(0));
        assert_eq!(value(&row, "_kafka_key"), Cell::Text(Some("k")));
        assert_eq!(value(&row, "_kafka_key_bytes"), Cell::Bytes(None));
        row.kafka.key = Some(crate::rows::Key::new(b"\x00\xff"));
        assert_eq!(value(&row, "_kafka_key"), Cell::Text(None));
        assert_eq!(
            value(&row, "_kafka_key_bytes"),
            Cell::Bytes(Some(b"\x00\xff"))
        );
    }

    #[test]
    fn every_table_has_unique_column_names_and_a_key_among_them() {
        for layout in layouts() {
            let names: BTreeSet<&str> = layout.columns.iter().map(|c| c.0).collect();
            assert_eq!(names.len(), layout.columns.len(), "{}", layout.name);
            for key in layout.key {
                assert!(names.contains(key), "{}.{key}", layout.name);
            }
        }
    }
}
