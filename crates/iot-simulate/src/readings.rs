//! The events a vehicle's motion produces in a tick, built here and nowhere else:
//! the cameras it passed (at the moment it passed each, with the speed it had then),
//! its own reading, its GPS fix, and, once a weather interval has gone by, the
//! weather where it is. Values are rounded to what a real sensor would report.

use std::time::Duration;

use iot_model::{
    Event, GpsReading, SCHEMA_VERSION, Timestamp, TrafficCameraEvent, VehicleReading,
    WeatherReading,
};
use rand::Rng;

use crate::geo::round_to;
use crate::seed::uuid;
use crate::vehicle::{Motion, Vehicle};
use crate::weather::WeatherField;

/// What a tick's readings draw on besides the vehicle.
pub struct Tick<'a> {
    /// The end of the tick: when the vehicle reports.
    pub now: Timestamp,
    pub length: Duration,
    pub weather: &'a WeatherField,
    pub weather_interval: Duration,
}

/// Appends the events of `motion` to `out`.
pub fn report(
    vehicle: &mut Vehicle,
    motion: &Motion,
    tick: &Tick,
    rng: &mut impl Rng,
    out: &mut Vec<Event>,
) {
    cameras(vehicle, motion, tick, rng, out);

    let position = motion.position;
    let timestamp = tick.now;
    let speed_kmh = round_to(motion.average_mps * 3.6, 100.0);
    out.push(Event::Vehicle(VehicleReading {
        schema_version: SCHEMA_VERSION,
        id: uuid(rng),
        device_id: vehicle.device_id,
        trip_id: vehicle.trip_id,
        timestamp,
        lat: position.lat,
        lon: position.lon,
        speed_kmh,
        heading_deg: motion.heading_deg,
        odometer_km: round_to(vehicle.odometer_km, 1e3),
        fuel_level_pct: round_to(vehicle.fuel_pct, 100.0),
        make: vehicle.spec.make.clone(),
        model: vehicle.spec.model.clone(),
        year: vehicle.spec.year,
        fuel_type: vehicle.spec.fuel_type,
        route_source: vehicle.road.route.source,
    }));
    out.push(Event::Gps(GpsReading {
        schema_version: SCHEMA_VERSION,
        id: uuid(rng),
        device_id: vehicle.device_id,
        trip_id: vehicle.trip_id,
        timestamp,
        lat: position.lat,
        lon: position.lon,
        speed_kmh,
        heading_deg: motion.heading_deg,
        accuracy_m: round_to(rng.random_range(2.5..6.0), 10.0),
    }));

    if timestamp >= vehicle.next_weather {
        vehicle.next_weather = timestamp.plus(tick.weather_interval);
        let hours = timestamp.millis() as f64 / 3_600_000.0;
        let w = tick.weather.at(position, hours);
        out.push(Event::Weather(WeatherReading {
            schema_version: SCHEMA_VERSION,
            id: uuid(rng),
            device_id: vehicle.device_id,
            trip_id: vehicle.trip_id,
            timestamp,
            lat: position.lat,
            lon: position.lon,
            temperature_c: round_to(w.temperature_c, 10.0),
            humidity_pct: round_to(w.humidity_pct, 10.0),
            precipitation_mm_h: round_to(w.precipitation_mm_h, 10.0),
            wind_speed_kmh: round_to(w.wind_speed_kmh, 10.0),
            wind_direction_deg: round_to(w.wind_direction_deg, 1.0) % 360.0,
            air_quality_index: w.air_quality_index,
            condition: w.condition,
        }));
    }
}

/// Every camera passed in the tick, at the moment it was passed, with the speed the
/// vehicle had then (and a camera's 1–2% error).
fn cameras(
    vehicle: &mut Vehicle,
    motion: &Motion,
    tick: &Tick,
    rng: &mut impl Rng,
    out: &mut Vec<Event>,
) {
    let travelled = motion.to_m - motion.from_m;
    while let Some(camera) = vehicle.road.cameras.get(vehicle.next_camera) {
        if camera.at_m > motion.to_m {
            break;
        }
        vehicle.next_camera += 1;
        let fraction = if travelled > 0.0 {
            (camera.at_m - motion.from_m) / travelled
        } else {
            1.0
        };
        let before_ms = (tick.length.as_millis() as f64 * (1.0 - fraction)).round();
        let speed = motion.v0 + (motion.v1 - motion.v0) * fraction;
        out.push(Event::TrafficCamera(TrafficCameraEvent {
            schema_version: SCHEMA_VERSION,
            id: uuid(rng),
            device_id: vehicle.device_id,
            trip_id: vehicle.trip_id,
            timestamp: tick
                .now
                .minus(Duration::from_millis(before_ms.max(0.0) as u64)),
            camera_id: camera.id,
            lat: camera.position.lat,
            lon: camera.position.lon,
            measured_speed_kmh: round_to(speed * 3.6 * rng.random_range(0.98..1.02), 10.0),
            speed_limit_kmh: camera.limit_kmh,
        }));
    }
}
