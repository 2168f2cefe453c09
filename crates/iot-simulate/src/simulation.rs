//! The fleet on a simulated clock. Each [`Simulation::step`] advances the clock one
//! tick and returns what every vehicle on the road reported in it: each vehicle
//! drives (`vehicle.rs`), its motion becomes readings (`readings.rs`), and now and
//! then an incident (`incidents.rs`).
//!
//! Simulated time is the model's [`Timestamp`] for instants and [`Duration`] for
//! spans, throughout. One seeded generator (`seed.rs`) drives all randomness, ids
//! included, and vehicles are stepped in a fixed order, so a seed replays a run
//! byte for byte.

use std::sync::Arc;
use std::time::Duration;

use iot_model::{Event, Timestamp};
use rand::rngs::StdRng;

use crate::incidents::{self, IncidentRate};
use crate::plan::Trip;
use crate::readings::{self, Tick};
use crate::road::Road;
use crate::seed::{self, Stream};
use crate::vehicle::Vehicle;
use crate::weather::WeatherField;

#[derive(Debug, Clone)]
pub struct SimulationOptions {
    /// Simulated time of the first tick.
    pub start: Timestamp,
    /// Simulated time between two readings of a vehicle.
    pub tick: Duration,
    /// Time between the departures of two vehicles on the same route.
    pub stagger: Duration,
    /// Time between two weather readings of a vehicle.
    pub weather_interval: Duration,
    /// Incidents per vehicle per hour of driving.
    pub emergency_rate_per_hour: f64,
    /// Distance between speed cameras along a route, metres.
    pub camera_spacing_m: f64,
    /// Stop after this much simulated time; `None` runs until every vehicle has
    /// arrived.
    pub duration: Option<Duration>,
    pub seed: u64,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        Self {
            start: Timestamp::from_millis(1_735_718_400_000).expect("a valid instant"),
            tick: Duration::from_secs(1),
            stagger: Duration::from_secs(60),
            weather_interval: Duration::from_secs(60),
            emergency_rate_per_hour: 1.0,
            camera_spacing_m: 10_000.0,
            duration: None,
            seed: 0,
        }
    }
}

pub struct Simulation {
    options: SimulationOptions,
    rng: StdRng,
    weather: WeatherField,
    vehicles: Vec<Vehicle>,
    /// The time of the next tick.
    now: Timestamp,
}

impl Simulation {
    pub fn new(trips: &[Trip], options: SimulationOptions) -> Self {
        let mut rng = seed::rng(Stream::Fleet { seed: options.seed });
        let weather = WeatherField::new(&mut rng);
        let mut vehicles = Vec::new();
        for trip in trips {
            let road = Arc::new(Road::new(trip.route.clone(), options.camera_spacing_m));
            let mut depart = options.start;
            for spec in &trip.vehicles {
                vehicles.push(Vehicle::new(spec.clone(), road.clone(), depart, &mut rng));
                depart = depart.plus(options.stagger);
            }
        }
        Simulation {
            now: options.start,
            options,
            rng,
            weather,
            vehicles,
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.since(self.options.start)
    }

    /// Simulated time of the next tick.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Vehicles that have left and not yet arrived.
    pub fn on_the_road(&self) -> usize {
        self.vehicles.iter().filter(|v| v.is_on_the_road()).count()
    }

    pub fn vehicle_count(&self) -> usize {
        self.vehicles.len()
    }

    /// Whether the run is over: its duration has gone by, every vehicle has arrived,
    /// or the clock has run past the last instant an event can carry (year 9999).
    pub fn finished(&self) -> bool {
        let out_of_time = self.options.duration.is_some_and(|d| self.elapsed() > d);
        out_of_time || !self.now.has_wire_form() || self.vehicles.iter().all(|v| v.arrived)
    }

    /// Advances to the next tick in which a vehicle drives and appends the events of
    /// that tick to `out`. Returns `false`, appending nothing, once the run is over.
    pub fn step(&mut self, out: &mut Vec<Event>) -> bool {
        self.skip_idle_ticks();
        if self.finished() {
            if !self.now.has_wire_form() {
                let waiting = self.vehicles.iter().filter(|v| !v.arrived).count();
                tracing::warn!(
                    vehicles = waiting,
                    "the simulated clock passed the year 9999, the last an event can carry: \
                     ending the run with these vehicles not yet arrived"
                );
            }
            return false;
        }
        let tick = Tick {
            now: self.now,
            length: self.options.tick,
            weather: &self.weather,
            weather_interval: self.options.weather_interval,
        };
        let rate = IncidentRate {
            per_hour: self.options.emergency_rate_per_hour,
            tick: self.options.tick,
        };
        for vehicle in &mut self.vehicles {
            if !vehicle.is_driving(self.now) {
                continue;
            }
            let motion = vehicle.drive(self.options.tick, &mut self.rng);
            readings::report(vehicle, &motion, &tick, &mut self.rng, out);
            let involved = incidents::Involved {
                device_id: vehicle.device_id,
                trip_id: vehicle.trip_id,
                arrived: vehicle.arrived,
            };
            incidents::report(
                &mut vehicle.incidents,
                involved,
                motion.position,
                self.now,
                rate,
                &mut self.rng,
                out,
            );
        }
        self.now = self.now.plus(self.options.tick);
        true
    }

    /// When no vehicle is on its way, moves the clock on to the first tick in which
    /// the next one leaves: a long --stagger at --speed max is not thousands of empty
    /// ticks, and in real time the wait is the same (the run sleeps until then).
    fn skip_idle_ticks(&mut self) {
        if self.vehicles.iter().any(|v| v.is_driving(self.now)) {
            return;
        }
        let Some(next) = self
            .vehicles
            .iter()
            .filter(|v| !v.arrived)
            .map(|v| v.depart)
            .min()
        else {
            return;
        };
        const NANOS: u128 = 1_000_000_000;
        let tick = self.options.tick.as_nanos();
        let span = next.since(self.now).as_nanos().div_ceil(tick) * tick;
        let span = Duration::new(
            u64::try_from(span / NANOS).unwrap_or(u64::MAX),
            (span % NANOS) as u32,
        );
        self.now = self.now.plus(span);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use iot_model::{
        EmergencyEvent, EventKind, GpsReading, IncidentStatus, RouteSource, VehicleReading,
    };
    use uuid::Uuid;

    use super::*;
    use crate::fleet::VehicleSpec;
    use crate::geo::GeoPoint;
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
        // Every fix, the last one at the destination too, within what the analytics
        // layer's physics test allows (analytics/data_tests): 2% or 1 km/h, since
        // coordinates carry 6 decimals.
        let events: Vec<Event> = (0..20)
            .flat_map(|seed| {
                run(
                    3,
                    SimulationOptions {
                        seed,
                        ..Default::default()
                    },
                )
            })
            .collect();
        for readings in gps_by_device(&events).values() {
            for w in readings.windows(2) {
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
                let speed = w[1].speed_kmh;
                assert!(
                    (implied - speed).abs() <= (0.02 * speed).max(1.0),
                    "a fix at {} says {speed} km/h, its track {implied} km/h",
                    w[1].timestamp.millis()
                );
            }
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
            duration: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let events = run(1, options);
        let last = events.iter().map(Event::timestamp).max().unwrap();
        let start = SimulationOptions::default().start;
        assert!(last.millis() - start.millis() <= 600_000);
        assert!(events.iter().filter(|e| e.kind() == EventKind::Gps).count() > 500);
    }

    #[test]
    fn the_clock_skips_the_ticks_in_which_nobody_drives() {
        // A day and a second apart, on a 7 s tick: the second vehicle's first fix
        // comes in the first tick at or after it leaves.
        let options = SimulationOptions {
            tick: Duration::from_secs(7),
            stagger: Duration::from_secs(86_401),
            ..Default::default()
        };
        let route = Arc::new(offline::route(POTSDAM, LEIPZIG).unwrap());
        let trip = Trip {
            route,
            vehicles: vec![spec(); 2],
        };
        let mut sim = Simulation::new(&[trip], options);
        let (mut events, mut steps) = (Vec::new(), 0);
        while sim.step(&mut events) {
            steps += 1;
        }
        let mut departures: Vec<i64> = gps_by_device(&events)
            .values()
            .map(|r| r[0].timestamp.millis())
            .collect();
        departures.sort();
        assert_eq!(
            departures[1] - departures[0],
            86_401_u64.div_ceil(7) as i64 * 7_000
        );
        // Each vehicle needs about 650 ticks of 7 s; a day of empty ticks is 12,343.
        assert!(steps < 2_000, "{steps} steps");
    }

    #[test]
    fn the_run_ends_where_the_calendar_does() {
        let options = SimulationOptions {
            start: "9999-12-31T23:30:00.000Z".parse().unwrap(),
            ..Default::default()
        };
        let events = run(2, options);
        assert!(events.iter().all(|e| e.timestamp().has_wire_form()));
        let last = events.iter().map(Event::timestamp).max().unwrap();
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.000Z");
        // The vehicles, an hour and more from their destination, end on the road.
        assert_eq!(gps_by_device(&events).len(), 2);
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
