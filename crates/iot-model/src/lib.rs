//! The events a connected-vehicle fleet reports, the Kafka topics they travel on and
//! their JSON wire format.
//!
//! This crate is pure data: `simulate` builds these types and encodes them, `load`
//! decodes and validates them. Nothing here talks to Kafka or a database, so both
//! programs agree on the format by construction.

mod decode;
mod encode;
mod event;
mod timestamp;
mod topic;

pub use decode::{DecodeError, Decoded, decode};
pub use event::{
    EmergencyEvent, Event, FuelType, GpsReading, IncidentStatus, IncidentType, RouteSource,
    TrafficCameraEvent, VehicleReading, WeatherCondition, WeatherReading,
};
pub use timestamp::Timestamp;
pub use topic::{EventKind, Topics};

/// Version of the wire format written into every event as `schema_version`.
///
/// Raised when a field changes meaning or type; adding a field does not raise it.
pub const SCHEMA_VERSION: u16 = 1;
