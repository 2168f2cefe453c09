//! Incidents on the road: now and then a vehicle reports one where it is (`active`),
//! and some minutes later the same incident, under the same id and at the same
//! place, is `resolved`. What is still open when the vehicle arrives is resolved at
//! its due time, after the vehicle's last reading.

use std::time::Duration;

use iot_model::{EmergencyEvent, Event, IncidentStatus, IncidentType, SCHEMA_VERSION, Timestamp};
use rand::Rng;
use uuid::Uuid;

use crate::geo::GeoPoint;
use crate::seed::uuid;

/// A vehicle's incidents waiting to be resolved.
#[derive(Debug, Default)]
pub struct OpenIncidents(Vec<Resolution>);

#[derive(Debug)]
struct Resolution {
    at: Timestamp,
    event: EmergencyEvent,
}

/// How often incidents happen, and the tick they are drawn in.
#[derive(Debug, Clone, Copy)]
pub struct IncidentRate {
    /// Incidents per vehicle per hour of driving.
    pub per_hour: f64,
    pub tick: Duration,
}

/// The vehicle incidents happen to.
#[derive(Debug, Clone, Copy)]
pub struct Involved {
    pub device_id: Uuid,
    pub trip_id: Uuid,
    /// At its destination: its open incidents are resolved now.
    pub arrived: bool,
}

/// Perhaps starts an incident at `position`, and resolves those of `open` that are
/// due.
pub fn report(
    open: &mut OpenIncidents,
    vehicle: Involved,
    position: GeoPoint,
    now: Timestamp,
    rate: IncidentRate,
    rng: &mut impl Rng,
    out: &mut Vec<Event>,
) {
    let tick_ms = (rate.tick.as_millis() as i64).max(1);
    let chance = rate.per_hour * tick_ms as f64 / 3_600_000.0;
    if !vehicle.arrived && rng.random_bool(chance.clamp(0.0, 1.0)) {
        let (incident_type, description) = incident(rng);
        let active = EmergencyEvent {
            schema_version: SCHEMA_VERSION,
            id: uuid(rng),
            device_id: vehicle.device_id,
            trip_id: vehicle.trip_id,
            timestamp: now,
            incident_id: uuid(rng),
            incident_type,
            status: IncidentStatus::Active,
            lat: position.lat,
            lon: position.lon,
            description: description.into(),
        };
        // Resolved after 5 to 40 minutes, on a tick.
        let lasts_ms = rng.random_range(5 * 60_000..40 * 60_000) / tick_ms * tick_ms;
        open.0.push(Resolution {
            at: now.plus(Duration::from_millis(lasts_ms as u64)),
            event: EmergencyEvent {
                status: IncidentStatus::Resolved,
                ..active.clone()
            },
        });
        out.push(Event::Emergency(active));
    }

    let open = &mut open.0;
    open.sort_by_key(|r| r.at);
    let due = if vehicle.arrived {
        open.len()
    } else {
        open.partition_point(|r| r.at <= now)
    };
    for resolution in open.drain(..due) {
        let at = if vehicle.arrived {
            resolution.at.max(now.plus(Duration::from_millis(1)))
        } else {
            now
        };
        out.push(Event::Emergency(EmergencyEvent {
            id: uuid(rng),
            timestamp: at,
            ..resolution.event
        }));
    }
}

fn incident(rng: &mut impl Rng) -> (IncidentType, &'static str) {
    const INCIDENTS: &[(IncidentType, &str)] = &[
        (IncidentType::Accident, "Collision blocking the right lane"),
        (
            IncidentType::Accident,
            "Rear-end collision on the hard shoulder",
        ),
        (
            IncidentType::Breakdown,
            "Vehicle broken down in a live lane",
        ),
        (
            IncidentType::Breakdown,
            "Lorry with a burst tyre on the hard shoulder",
        ),
        (IncidentType::Fire, "Vehicle fire on the verge"),
        (
            IncidentType::Medical,
            "Driver taken ill, ambulance on its way",
        ),
        (
            IncidentType::Police,
            "Police checkpoint, traffic slowed to one lane",
        ),
    ];
    INCIDENTS[rng.random_range(0..INCIDENTS.len())]
}
