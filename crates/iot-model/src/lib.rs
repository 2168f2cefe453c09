//! The events a connected-vehicle fleet reports, the Kafka topics they travel on and
//! their JSON wire format.
//!
//! This crate is pure data: `simulate` builds these types and encodes them, `load`
//! decodes and validates them. Nothing here talks to Kafka or a database, so both
//! programs agree on the format by construction.

mod encode;
mod event;
mod flat;
mod timestamp;
mod topic;
mod unknown;
mod wire;

pub use event::{
    EmergencyEvent, Event, FuelType, GpsReading, IncidentStatus, IncidentType, RouteSource,
    TrafficCameraEvent, VehicleReading, WeatherCondition, WeatherReading,
};
pub use timestamp::Timestamp;
pub use topic::{EventKind, Topics};
pub use wire::{DecodeError, Decoded, decode};

/// Version of the wire format written into every event as `schema_version`.
///
/// Raised when a field changes meaning or type; adding a field does not raise it.
pub const SCHEMA_VERSION: u16 = 1;
