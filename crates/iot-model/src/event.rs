//! The five event types. Field names are the JSON keys; units are in the names where a
//! number has one (`speed_kmh`, `heading_deg`), so a reader of a raw message needs no
//! schema to understand it. The README has a table per type.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{EventKind, Timestamp, encode};

/// `as_str()` for a unit enum: its JSON name, for tables and messages. The tests
/// check that each name is what serde writes.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }
    };
}

/// Where a trip's route came from: the OpenRouteService API or the offline
/// generator used when no API key is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    Ors,
    Offline,
}

wire_names!(RouteSource { Ors => "ors", Offline => "offline" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FuelType {
    Petrol,
    Diesel,
    Hybrid,
    Electric,
}

wire_names!(FuelType { Petrol => "petrol", Diesel => "diesel", Hybrid => "hybrid", Electric => "electric" });

/// A vehicle's own report, once a tick: where it is, how fast, and its meters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleReading {
    pub schema_version: u16,
    pub id: Uuid,
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub timestamp: Timestamp,
    pub lat: f64,
    pub lon: f64,
    /// Average speed over the last tick, km/h.
    pub speed_kmh: f64,
    /// Direction of travel, degrees clockwise from north.
    pub heading_deg: f64,
    pub odometer_km: f64,
    /// Tank or battery level, percent of capacity.
    pub fuel_level_pct: f64,
    pub make: String,
    pub model: String,
    pub year: u16,
    pub fuel_type: FuelType,
    pub route_source: RouteSource,
}

/// The GPS unit's fix, once a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsReading {
    pub schema_version: u16,
    pub id: Uuid,
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub timestamp: Timestamp,
    pub lat: f64,
    pub lon: f64,
    /// Distance from the previous fix over the time since it, km/h.
    pub speed_kmh: f64,
    pub heading_deg: f64,
    /// Estimated horizontal error, metres.
    pub accuracy_m: f64,
}

/// A roadside speed camera saw the vehicle pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficCameraEvent {
    pub schema_version: u16,
    pub id: Uuid,
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub timestamp: Timestamp,
    /// Stable for a camera position, so that every vehicle passing it reports the same id.
    pub camera_id: Uuid,
    /// The camera's position.
    pub lat: f64,
    pub lon: f64,
    pub measured_speed_kmh: f64,
    pub speed_limit_kmh: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherCondition {
    Clear,
    Cloudy,
    Fog,
    Rain,
    Snow,
}

wire_names!(WeatherCondition { Clear => "clear", Cloudy => "cloudy", Fog => "fog", Rain => "rain", Snow => "snow" });

/// Weather where the vehicle is, once a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherReading {
    pub schema_version: u16,
    pub id: Uuid,
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub timestamp: Timestamp,
    pub lat: f64,
    pub lon: f64,
    pub temperature_c: f64,
    pub humidity_pct: f64,
    pub precipitation_mm_h: f64,
    pub wind_speed_kmh: f64,
    /// Direction the wind blows from, degrees clockwise from north.
    pub wind_direction_deg: f64,
    pub air_quality_index: u16,
    pub condition: WeatherCondition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentType {
    Accident,
    Breakdown,
    Fire,
    Medical,
    Police,
}

wire_names!(IncidentType {
    Accident => "accident",
    Breakdown => "breakdown",
    Fire => "fire",
    Medical => "medical",
    Police => "police",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Active,
    Resolved,
}

wire_names!(IncidentStatus { Active => "active", Resolved => "resolved" });

/// One step in an incident's life: reported `active`, later `resolved`, both under
/// the same `incident_id` and at the incident's position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmergencyEvent {
    pub schema_version: u16,
    pub id: Uuid,
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub timestamp: Timestamp,
    pub incident_id: Uuid,
    pub incident_type: IncidentType,
    pub status: IncidentStatus,
    pub lat: f64,
    pub lon: f64,
    pub description: String,
}

/// Any of the five events.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Vehicle(VehicleReading),
    Gps(GpsReading),
    TrafficCamera(TrafficCameraEvent),
    Weather(WeatherReading),
    Emergency(EmergencyEvent),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Vehicle(_) => EventKind::Vehicle,
            Event::Gps(_) => EventKind::Gps,
            Event::TrafficCamera(_) => EventKind::TrafficCamera,
            Event::Weather(_) => EventKind::Weather,
            Event::Emergency(_) => EventKind::Emergency,
        }
    }

    /// The Kafka message key: every event of one vehicle lands in one partition, in order.
    pub fn device_id(&self) -> Uuid {
        match self {
            Event::Vehicle(e) => e.device_id,
            Event::Gps(e) => e.device_id,
            Event::TrafficCamera(e) => e.device_id,
            Event::Weather(e) => e.device_id,
            Event::Emergency(e) => e.device_id,
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::Vehicle(e) => e.timestamp,
            Event::Gps(e) => e.timestamp,
            Event::TrafficCamera(e) => e.timestamp,
            Event::Weather(e) => e.timestamp,
            Event::Emergency(e) => e.timestamp,
        }
    }

    /// Appends the event's JSON to `out`, with no trailing newline.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let written = match self {
            Event::Vehicle(e) => encode::to_vec(out, e),
            Event::Gps(e) => encode::to_vec(out, e),
            Event::TrafficCamera(e) => encode::to_vec(out, e),
            Event::Weather(e) => encode::to_vec(out, e),
            Event::Emergency(e) => encode::to_vec(out, e),
        };
        // Writing plain structs into a Vec cannot fail: no I/O, no maps with
        // non-string keys. Non-finite floats are written as `null`, which the
        // loader then rejects into its dead-letter table.
        written.expect("serialising an event into memory cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn wire_names_are_what_serde_writes() {
        for &v in RouteSource::ALL {
            assert_eq!(v.as_str(), serde_name(v));
        }
        for &v in FuelType::ALL {
            assert_eq!(v.as_str(), serde_name(v));
        }
        for &v in WeatherCondition::ALL {
            assert_eq!(v.as_str(), serde_name(v));
        }
        for &v in IncidentType::ALL {
            assert_eq!(v.as_str(), serde_name(v));
        }
        for &v in IncidentStatus::ALL {
            assert_eq!(v.as_str(), serde_name(v));
        }
    }
}
