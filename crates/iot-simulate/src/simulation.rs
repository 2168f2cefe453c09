//! The fleet on a simulated clock. Each [`Simulation::step`] advances the clock one
//! tick and returns what every vehicle on the road reported in it.
//!
//! Everything follows from one state per vehicle (distance along its route and
//! speed), so the streams agree with each other: GPS speed is the distance since the
//! last fix over the tick, the odometer and the tank follow the distance driven,
//! cameras fire when a vehicle passes them and weather is read at its position.
//! One seeded generator drives all randomness, ids included, so a seed replays a
//! run byte for byte.

use std::sync::Arc;

use iot_model::{
    EmergencyEvent, Event, GpsReading, IncidentStatus, IncidentType, SCHEMA_VERSION, Timestamp,
    TrafficCameraEvent, VehicleReading, WeatherReading,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::fleet::VehicleSpec;
use crate::geo::GeoPoint;
use crate::route::Route;
use crate::weather::WeatherField;

/// Gentle acceleration and braking of ordinary traffic, m/s².
const ACCELERATION: f64 = 1.2;
const BRAKING: f64 = 2.5;
/// Speed limits cameras enforce, km/h; a camera takes the lowest one at or above the
/// speed traffic moves at there.
const SPEED_LIMITS: [u16; 7] = [30, 50, 70, 80, 100, 120, 130];
/// Camera ids are UUID v5 of the position in this namespace, so the same camera has
/// the same id in every run.
const CAMERA_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_3c1e_8a7b_4e55_9f6e_2b1d_7c4a_9e01);

#[derive(Debug, Clone)]
pub struct SimulationOptions {
    /// Simulated time of the first tick.
    pub start: Timestamp,
    /// Simulated time between two readings of a vehicle, milliseconds.
    pub tick_ms: i64,
    /// Time between the departures of two vehicles on the same route, milliseconds.
    pub stagger_ms: i64,
    /// Time between two weather readings of a vehicle, milliseconds.
    pub weather_interval_ms: i64,
    /// Incidents per vehicle per hour of driving.
    pub emergency_rate_per_hour: f64,
    /// Distance between speed cameras along a route, metres.
    pub camera_spacing_m: f64,
    /// Stop after this much simulated time, milliseconds; `None` runs until every
    /// vehicle has arrived.
    pub duration_ms: Option<i64>,
    pub seed: u64,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        Self {
            start: Timestamp::from_millis(1_735_718_400_000).expect("a valid instant"),
            tick_ms: 1_000,
            stagger_ms: 60_000,
            weather_interval_ms: 60_000,
            emergency_rate_per_hour: 1.0,
            camera_spacing_m: 10_000.0,
            duration_ms: None,
            seed: 0,
        }
    }
}

/// A route and the vehicles that drive it.
#[derive(Debug, Clone)]
pub struct Trip {
    pub route: Arc<Route>,
    pub vehicles: Vec<VehicleSpec>,
}

#[derive(Debug, Clone)]
struct Camera {
    at_m: f64,
    id: Uuid,
    position: GeoPoint,
    limit_kmh: u16,
}

/// A route with its cameras, shared by the vehicles that drive it.
#[derive(Debug)]
struct Road {
    route: Arc<Route>,
    cameras: Vec<Camera>,
}

impl Road {
    fn new(route: Arc<Route>, spacing_m: f64) -> Self {
        let mut cameras = Vec::new();
        let mut at_m = spacing_m / 2.0;
        // None in the last kilometre, where vehicles crawl to a stop.
        while spacing_m > 0.0 && at_m < route.length_m() - 1_000.0 {
            let placed = route.place(at_m, 0);
            let kmh = placed.speed_limit_mps * 3.6;
            let limit_kmh = SPEED_LIMITS
                .into_iter()
                .find(|&l| f64::from(l) >= kmh * 0.95)
                .unwrap_or(130);
            let position = rounded(placed.position);
            let name = format!("{:.5},{:.5}", position.lat, position.lon);
            cameras.push(Camera {
                at_m,
                id: Uuid::new_v5(&CAMERA_NAMESPACE, name.as_bytes()),
                position,
                limit_kmh,
            });
            at_m += spacing_m;
        }
        Road { route, cameras }
    }
}

#[derive(Debug)]
struct PendingResolution {
    at_ms: i64,
    event: EmergencyEvent,
}

#[derive(Debug)]
struct Vehicle {
    device_id: Uuid,
    trip_id: Uuid,
    spec: VehicleSpec,
    road: Arc<Road>,
    depart_ms: i64,
    on_road: bool,
    arrived: bool,
    /// Distance driven along the route, metres, and current speed, m/s.
    s: f64,
    v: f64,
    segment: usize,
    next_camera: usize,
    /// How this driver treats the speed traffic moves at (1.0 = exactly).
    temperament: f64,
    /// Slowly wandering traffic on top of it: -0.3 is a jam, +0.1 a free road.
    traffic: f64,
    odometer_km: f64,
    fuel_pct: f64,
    next_weather_ms: i64,
    incidents: Vec<PendingResolution>,
}

pub struct Simulation {
    options: SimulationOptions,
    rng: StdRng,
    weather: WeatherField,
    vehicles: Vec<Vehicle>,
    now_ms: i64,
    start_ms: i64,
}

impl Simulation {
    pub fn new(trips: &[Trip], options: SimulationOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let weather = WeatherField::new(&mut rng);
        let start_ms = options.start.millis();
        let mut vehicles = Vec::new();
        for trip in trips {
            let road = Arc::new(Road::new(trip.route.clone(), options.camera_spacing_m));
            for (i, spec) in trip.vehicles.iter().enumerate() {
                vehicles.push(Vehicle {
                    device_id: uuid(&mut rng),
                    trip_id: uuid(&mut rng),
                    spec: spec.clone(),
                    road: road.clone(),
                    depart_ms: start_ms + i as i64 * options.stagger_ms,
                    on_road: false,
                    arrived: false,
                    s: 0.0,
                    v: 0.0,
                    segment: 0,
                    next_camera: 0,
                    temperament: rng.random_range(0.92..1.06),
                    traffic: 0.0,
                    odometer_km: round_to(rng.random_range(3_000.0..160_000.0), 1e3),
                    fuel_pct: rng.random_range(55.0..100.0),
                    next_weather_ms: 0,
                    incidents: Vec::new(),
                });
            }
        }
        Simulation {
            options,
            rng,
            weather,
            vehicles,
            now_ms: start_ms,
            start_ms,
        }
    }

    /// Simulated time since the start, milliseconds.
    pub fn elapsed_ms(&self) -> i64 {
        self.now_ms - self.start_ms
    }

    /// Simulated time of the next tick.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms).unwrap_or(self.options.start)
    }

    /// Vehicles that have left and not yet arrived.
    pub fn on_the_road(&self) -> usize {
        self.vehicles
            .iter()
            .filter(|v| v.on_road && !v.arrived)
            .count()
    }

    pub fn vehicle_count(&self) -> usize {
        self.vehicles.len()
    }

    pub fn finished(&self) -> bool {
        let out_of_time = self
            .options
            .duration_ms
            .is_some_and(|d| self.elapsed_ms() > d);
        out_of_time || self.vehicles.iter().all(|v| v.arrived)
    }

    /// Advances one tick and appends the events of that tick to `out`. Returns
    /// `false`, appending nothing, once the run is over.
    pub fn step(&mut self, out: &mut Vec<Event>) -> bool {
        if self.finished() {
            return false;
        }
        let now_ms = self.now_ms;
        for vehicle in &mut self.vehicles {
            if vehicle.arrived || now_ms < vehicle.depart_ms {
                continue;
            }
            drive(
                vehicle,
                now_ms,
                &self.options,
                &mut self.rng,
                &self.weather,
                out,
            );
        }
        self.now_ms += self.options.tick_ms;
        true
    }
}

/// One tick of one vehicle: move it, then report.
fn drive(
    vehicle: &mut Vehicle,
    now_ms: i64,
    options: &SimulationOptions,
    rng: &mut StdRng,
    weather: &WeatherField,
    out: &mut Vec<Event>,
) {
    let dt = options.tick_ms as f64 / 1000.0;
    let road = vehicle.road.clone();
    let route = &road.route;
    let length = route.length_m();

    let average_mps = if vehicle.on_road {
        // Drift the traffic a little, then steer the speed towards what the road,
        // the road ahead and the distance to the destination allow.
        vehicle.traffic = (vehicle.traffic * (1.0 - dt / 900.0)
            + rng.random_range(-0.02..0.02) * dt.sqrt())
        .clamp(-0.3, 0.1);
        let here = route.speed_at(vehicle.s, vehicle.segment);
        let braking_distance = vehicle.v * vehicle.v / (2.0 * BRAKING) + 30.0;
        let ahead = route.speed_at(vehicle.s + braking_distance, vehicle.segment);
        let to_stop = (2.0 * BRAKING * (length - vehicle.s)).sqrt();
        let target = (here.min(ahead) * vehicle.temperament * (1.0 + vehicle.traffic))
            .min(to_stop)
            .max(1.0);
        let v0 = vehicle.v;
        let v1 = target.clamp(v0 - BRAKING * dt, v0 + ACCELERATION * dt);
        let ds = ((v0 + v1) / 2.0 * dt).min(length - vehicle.s);
        let s0 = vehicle.s;
        vehicle.s += ds;
        vehicle.v = v1;
        vehicle.odometer_km += ds / 1000.0;
        vehicle.fuel_pct -= ds / 1000.0 * vehicle.spec.consumption_pct_per_km();
        if vehicle.fuel_pct < 8.0 {
            // A stop at the pump or the charger, taken between two ticks.
            vehicle.fuel_pct = 100.0;
        }
        report_cameras(vehicle, &road, s0, v0, v1, now_ms, dt, rng, out);
        if length - vehicle.s < 0.5 {
            vehicle.s = length;
            vehicle.arrived = true;
        }
        ds / dt
    } else {
        vehicle.on_road = true;
        0.0
    };

    let placed = route.place(vehicle.s, vehicle.segment);
    vehicle.segment = placed.segment;
    let position = rounded(placed.position);
    let timestamp = Timestamp::from_millis(now_ms).expect("simulated time stays in range");
    let speed_kmh = round_to(average_mps * 3.6, 100.0);
    let heading_deg = round_to(placed.heading_deg, 10.0) % 360.0;

    out.push(Event::Vehicle(VehicleReading {
        schema_version: SCHEMA_VERSION,
        id: uuid(rng),
        device_id: vehicle.device_id,
        trip_id: vehicle.trip_id,
        timestamp,
        lat: position.lat,
        lon: position.lon,
        speed_kmh,
        heading_deg,
        odometer_km: round_to(vehicle.odometer_km, 1e3),
        fuel_level_pct: round_to(vehicle.fuel_pct, 100.0),
        make: vehicle.spec.make.clone(),
        model: vehicle.spec.model.clone(),
        year: vehicle.spec.year,
        fuel_type: vehicle.spec.fuel_type,
        route_source: route.source,
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
        heading_deg,
        accuracy_m: round_to(rng.random_range(2.5..6.0), 10.0),
    }));

    if now_ms >= vehicle.next_weather_ms {
        vehicle.next_weather_ms = now_ms + options.weather_interval_ms;
        let w = weather.at(position, now_ms as f64 / 3_600_000.0);
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

    report_incidents(vehicle, position, now_ms, timestamp, options, rng, out);
}

/// Reports every camera passed between `s0` and the vehicle's new position, at the
/// moment it passed, with the speed it had then (and a camera's 1–2% error).
#[allow(clippy::too_many_arguments)]
fn report_cameras(
    vehicle: &mut Vehicle,
    road: &Road,
    s0: f64,
    v0: f64,
    v1: f64,
    now_ms: i64,
    dt: f64,
    rng: &mut StdRng,
    out: &mut Vec<Event>,
) {
    let travelled = vehicle.s - s0;
    while let Some(camera) = road.cameras.get(vehicle.next_camera) {
        if camera.at_m > vehicle.s {
            break;
        }
        vehicle.next_camera += 1;
        let fraction = if travelled > 0.0 {
            (camera.at_m - s0) / travelled
        } else {
            1.0
        };
        let tick_ms = dt * 1000.0;
        let at_ms = now_ms - (tick_ms * (1.0 - fraction)).round() as i64;
        let speed = v0 + (v1 - v0) * fraction;
        out.push(Event::TrafficCamera(TrafficCameraEvent {
            schema_version: SCHEMA_VERSION,
            id: uuid(rng),
            device_id: vehicle.device_id,
            trip_id: vehicle.trip_id,
            timestamp: Timestamp::from_millis(at_ms.min(now_ms))
                .expect("simulated time stays in range"),
            camera_id: camera.id,
            lat: camera.position.lat,
            lon: camera.position.lon,
            measured_speed_kmh: round_to(speed * 3.6 * rng.random_range(0.98..1.02), 10.0),
            speed_limit_kmh: camera.limit_kmh,
        }));
    }
}

/// Perhaps starts an incident where the vehicle is, and resolves those that are due.
/// On arrival, what is still open is resolved at its due time, after the last reading.
fn report_incidents(
    vehicle: &mut Vehicle,
    position: GeoPoint,
    now_ms: i64,
    timestamp: Timestamp,
    options: &SimulationOptions,
    rng: &mut StdRng,
    out: &mut Vec<Event>,
) {
    let chance = options.emergency_rate_per_hour * options.tick_ms as f64 / 3_600_000.0;
    if !vehicle.arrived && rng.random_bool(chance.clamp(0.0, 1.0)) {
        let (incident_type, description) = incident(rng);
        let active = EmergencyEvent {
            schema_version: SCHEMA_VERSION,
            id: uuid(rng),
            device_id: vehicle.device_id,
            trip_id: vehicle.trip_id,
            timestamp,
            incident_id: uuid(rng),
            incident_type,
            status: IncidentStatus::Active,
            lat: position.lat,
            lon: position.lon,
            description: description.into(),
        };
        let lasts_ms = rng.random_range(5 * 60_000..40 * 60_000);
        let at_ms = now_ms + lasts_ms / options.tick_ms.max(1) * options.tick_ms.max(1);
        vehicle.incidents.push(PendingResolution {
            at_ms,
            event: EmergencyEvent {
                status: IncidentStatus::Resolved,
                ..active.clone()
            },
        });
        out.push(Event::Emergency(active));
    }

    vehicle.incidents.sort_by_key(|p| p.at_ms);
    let due = if vehicle.arrived {
        vehicle.incidents.len()
    } else {
        vehicle.incidents.partition_point(|p| p.at_ms <= now_ms)
    };
    for pending in vehicle.incidents.drain(..due) {
        let at_ms = pending.at_ms.max(now_ms + 1);
        let at_ms = if vehicle.arrived { at_ms } else { now_ms };
        out.push(Event::Emergency(EmergencyEvent {
            id: uuid(rng),
            timestamp: Timestamp::from_millis(at_ms).expect("simulated time stays in range"),
            ..pending.event
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

fn uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Rounds to `1 / per_unit`: `round_to(x, 100.0)` keeps two decimals. Keeps the JSON
/// short; the precision kept is far below what a real sensor reports.
fn round_to(x: f64, per_unit: f64) -> f64 {
    (x * per_unit).round() / per_unit
}

/// Positions to 1e-6 degrees, about 10 cm.
fn rounded(p: GeoPoint) -> GeoPoint {
    GeoPoint {
        lat: round_to(p.lat, 1e6),
        lon: round_to(p.lon, 1e6),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use iot_model::{EventKind, RouteSource};

    use super::*;
    use crate::offline;

    const POTSDAM: GeoPoint = GeoPoint {
        lat: 52.3906,
        lon: 13.0645,
    };
    const LEIPZIG: GeoPoint = GeoPoint {
        lat: 51.3397,
        lon: 12.3731,
    };

    fn spec() -> VehicleSpec {
        VehicleSpec {
            make: "Volkswagen".into(),
            model: "Golf".into(),
            year: 2020,
            fuel_type: iot_model::FuelType::Petrol,
        }
    }

    fn run(vehicles: usize, options: SimulationOptions) -> Vec<Event> {
        let route = Arc::new(offline::route(POTSDAM, LEIPZIG).unwrap());
        let trip = Trip {
            route,
            vehicles: vec![spec(); vehicles],
        };
        let mut sim = Simulation::new(&[trip], options);
        let mut out = Vec::new();
        while sim.step(&mut out) {}
        out
    }

    fn gps_by_device(events: &[Event]) -> HashMap<Uuid, Vec<&GpsReading>> {
        let mut by_device: HashMap<Uuid, Vec<&GpsReading>> = HashMap::new();
        for e in events {
            if let Event::Gps(g) = e {
                by_device.entry(g.device_id).or_default().push(g);
            }
        }
        by_device
    }

    #[test]
    fn every_vehicle_drives_from_start_to_destination() {
        let events = run(3, SimulationOptions::default());
        let by_device = gps_by_device(&events);
        assert_eq!(by_device.len(), 3);
        for readings in by_device.values() {
            let first = GeoPoint {
                lat: readings[0].lat,
                lon: readings[0].lon,
            };
            let last = readings.last().unwrap();
            let last = GeoPoint {
                lat: last.lat,
                lon: last.lon,
            };
            assert!(first.distance_m(POTSDAM) < 10.0);
            assert!(last.distance_m(LEIPZIG) < 10.0);
            assert!(readings.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        }
    }

    #[test]
    fn gps_speed_agrees_with_the_distance_between_fixes() {
        let events = run(2, SimulationOptions::default());
        for readings in gps_by_device(&events).values() {
            let mut gaps: Vec<f64> = readings
                .windows(2)
                .filter(|w| w[1].speed_kmh > 5.0)
                .map(|w| {
                    let a = GeoPoint {
                        lat: w[0].lat,
                        lon: w[0].lon,
                    };
                    let b = GeoPoint {
                        lat: w[1].lat,
                        lon: w[1].lon,
                    };
                    let hours = (w[1].timestamp.millis() - w[0].timestamp.millis()) as f64 / 3.6e6;
                    let implied = a.distance_m(b) / 1000.0 / hours;
                    (implied - w[1].speed_kmh).abs() / w[1].speed_kmh
                })
                .collect();
            gaps.sort_by(f64::total_cmp);
            let median = gaps[gaps.len() / 2];
            let p99 = gaps[gaps.len() * 99 / 100];
            assert!(median < 0.01, "median gap {median}");
            assert!(p99 < 0.05, "99th percentile gap {p99}");
        }
    }

    #[test]
    fn odometer_and_tank_follow_the_distance() {
        let events = run(1, SimulationOptions::default());
        let readings: Vec<&VehicleReading> = events
            .iter()
            .filter_map(|e| {
                if let Event::Vehicle(v) = e {
                    Some(v)
                } else {
                    None
                }
            })
            .collect();
        let (first, last) = (readings[0], readings[readings.len() - 1]);
        let route = offline::route(POTSDAM, LEIPZIG).unwrap();
        let driven = last.odometer_km - first.odometer_km;
        assert!(
            (driven - route.length_m() / 1000.0).abs() < 0.01,
            "{driven} km"
        );
        let used = first.fuel_level_pct - last.fuel_level_pct;
        let expected = driven * spec().consumption_pct_per_km();
        assert!(
            (used - expected).abs() < 0.05,
            "used {used}%, expected {expected}%"
        );
        assert!(
            readings
                .iter()
                .all(|r| r.route_source == RouteSource::Offline)
        );
    }

    #[test]
    fn cameras_fire_once_per_vehicle_as_it_passes() {
        let events = run(2, SimulationOptions::default());
        let route = offline::route(POTSDAM, LEIPZIG).unwrap();
        let expected = ((route.length_m() - 1_000.0 - 5_000.0) / 10_000.0).floor() as usize + 1;
        let mut per_camera: HashMap<Uuid, usize> = HashMap::new();
        for e in &events {
            if let Event::TrafficCamera(c) = e {
                *per_camera.entry(c.camera_id).or_default() += 1;
                assert!(c.measured_speed_kmh > 0.0 && c.measured_speed_kmh < 180.0);
            }
        }
        assert_eq!(per_camera.len(), expected);
        assert!(per_camera.values().all(|&n| n == 2), "{per_camera:?}");
    }

    #[test]
    fn weather_comes_once_a_minute() {
        let events = run(1, SimulationOptions::default());
        let gps = events.iter().filter(|e| e.kind() == EventKind::Gps).count();
        let weather = events
            .iter()
            .filter(|e| e.kind() == EventKind::Weather)
            .count();
        assert_eq!(weather, gps.div_ceil(60));
    }

    #[test]
    fn every_incident_is_resolved_later_under_its_id() {
        let options = SimulationOptions {
            emergency_rate_per_hour: 6.0,
            ..Default::default()
        };
        let events = run(3, options);
        let mut lifecycle: HashMap<Uuid, Vec<&EmergencyEvent>> = HashMap::new();
        for e in &events {
            if let Event::Emergency(e) = e {
                lifecycle.entry(e.incident_id).or_default().push(e);
            }
        }
        assert!(lifecycle.len() >= 5, "{} incidents", lifecycle.len());
        for steps in lifecycle.values() {
            assert_eq!(steps.len(), 2);
            assert_eq!(steps[0].status, IncidentStatus::Active);
            assert_eq!(steps[1].status, IncidentStatus::Resolved);
            assert!(steps[0].timestamp < steps[1].timestamp);
            assert_eq!((steps[0].lat, steps[0].lon), (steps[1].lat, steps[1].lon));
        }
    }

    #[test]
    fn vehicles_leave_staggered() {
        let events = run(3, SimulationOptions::default());
        let mut departures: Vec<i64> = gps_by_device(&events)
            .values()
            .map(|r| r[0].timestamp.millis())
            .collect();
        departures.sort();
        assert_eq!(departures[1] - departures[0], 60_000);
        assert_eq!(departures[2] - departures[1], 60_000);
    }

    #[test]
    fn the_seed_decides_everything() {
        let seeded = |seed| {
            run(
                2,
                SimulationOptions {
                    seed,
                    ..Default::default()
                },
            )
        };
        let (a, b, c) = (seeded(7), seeded(7), seeded(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_duration_bounds_the_run() {
        let options = SimulationOptions {
            duration_ms: Some(600_000),
            ..Default::default()
        };
        let events = run(1, options);
        let last = events.iter().map(Event::timestamp).max().unwrap();
        let start = SimulationOptions::default().start;
        assert!(last.millis() - start.millis() <= 600_000);
        assert!(events.iter().filter(|e| e.kind() == EventKind::Gps).count() > 500);
    }

    #[test]
    fn every_event_passes_the_loaders_validation() {
        let events = run(
            2,
            SimulationOptions {
                emergency_rate_per_hour: 4.0,
                ..Default::default()
            },
        );
        let mut buf = Vec::new();
        for event in &events {
            buf.clear();
            event.encode(&mut buf);
            let decoded = iot_model::decode(event.kind(), &buf).unwrap();
            assert_eq!(&decoded.event, event);
            assert_eq!(decoded.extra, None);
        }
    }
}
