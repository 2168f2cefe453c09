//! A vehicle on its road: one state (distance along the route and speed, plus its
//! meters), and one tick of driving, which moves it and answers with a [`Motion`].
//! Everything a vehicle reports is built from that motion (`readings.rs`), so the
//! streams agree with each other by construction.

use std::sync::Arc;
use std::time::Duration;

use iot_model::Timestamp;
use rand::Rng;
use uuid::Uuid;

use crate::fleet::VehicleSpec;
use crate::geo::GeoPoint;
use crate::geo::{round_to, rounded};
use crate::incidents::OpenIncidents;
use crate::road::Road;
use crate::seed;

/// Gentle acceleration and braking of ordinary traffic, m/s².
const ACCELERATION: f64 = 1.2;
const BRAKING: f64 = 2.5;
/// Closer than this to its destination, metres, a vehicle is there.
const ARRIVED_WITHIN_M: f64 = 0.5;

#[derive(Debug)]
pub struct Vehicle {
    pub device_id: Uuid,
    pub trip_id: Uuid,
    pub spec: VehicleSpec,
    pub road: Arc<Road>,
    /// When it leaves; it reports from then on, standing still in its first tick.
    pub depart: Timestamp,
    on_road: bool,
    pub arrived: bool,
    /// Distance driven along the route, metres, and current speed, m/s.
    s: f64,
    v: f64,
    segment: usize,
    /// The first camera not yet passed.
    pub next_camera: usize,
    /// How this driver treats the speed traffic moves at (1.0 = exactly).
    temperament: f64,
    /// Slowly wandering traffic on top of it: -0.3 is a jam, +0.1 a free road.
    traffic: f64,
    pub odometer_km: f64,
    pub fuel_pct: f64,
    pub next_weather: Timestamp,
    pub incidents: OpenIncidents,
}

/// What a vehicle did in one tick.
#[derive(Debug, Clone, Copy)]
pub struct Motion {
    /// Distance along the route at the start and at the end of the tick, metres.
    pub from_m: f64,
    pub to_m: f64,
    /// Speed at the start and at the end of the tick, m/s.
    pub v0: f64,
    pub v1: f64,
    /// Average speed over the tick, m/s.
    pub average_mps: f64,
    /// Where the vehicle is at the end of the tick, and which way it faces.
    pub position: GeoPoint,
    pub heading_deg: f64,
}

impl Vehicle {
    pub fn new(spec: VehicleSpec, road: Arc<Road>, depart: Timestamp, rng: &mut impl Rng) -> Self {
        Vehicle {
            device_id: seed::uuid(rng),
            trip_id: seed::uuid(rng),
            spec,
            road,
            depart,
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
            next_weather: Timestamp::from_millis(0).expect("the epoch is an instant"),
            incidents: OpenIncidents::default(),
        }
    }

    /// Whether it is on its way at `now`: left, and not yet arrived.
    pub fn is_driving(&self, now: Timestamp) -> bool {
        !self.arrived && now >= self.depart
    }

    /// Whether it has driven its first tick and not yet arrived.
    pub fn is_on_the_road(&self) -> bool {
        self.on_road && !self.arrived
    }

    /// One tick: drift the traffic a little, steer the speed towards what the road,
    /// the road ahead and the distance to the destination allow, and move. The tick
    /// after it reaches its destination the vehicle stands there, and has arrived:
    /// its last readings say 0 km/h.
    pub fn drive(&mut self, tick: Duration, rng: &mut impl Rng) -> Motion {
        let dt = tick.as_secs_f64();
        let road = self.road.clone();
        let route = &road.route;
        let length = route.length_m();
        let (from_m, v0) = (self.s, self.v);

        let average_mps = if !self.on_road {
            self.on_road = true;
            0.0
        } else if length - self.s < ARRIVED_WITHIN_M {
            // At the destination: it stands still for this tick, reporting 0 km/h
            // where it stopped, and has arrived.
            self.v = 0.0;
            self.arrived = true;
            0.0
        } else {
            self.traffic = (self.traffic * (1.0 - dt / 900.0)
                + rng.random_range(-0.02..0.02) * dt.sqrt())
            .clamp(-0.3, 0.1);
            let here = route.speed_at(self.s, self.segment);
            let braking_distance = self.v * self.v / (2.0 * BRAKING) + 30.0;
            let ahead = route.speed_at(self.s + braking_distance, self.segment);
            // The fastest it may end this tick at and still stop at the destination
            // braking gently: v1 with v1² / 2B ≤ what is left after the tick, whose
            // distance is (v0 + v1) / 2 · dt.
            let left = (length - self.s - v0 * dt / 2.0).max(0.0);
            let b_dt = BRAKING * dt;
            let to_stop = ((b_dt * b_dt + 8.0 * BRAKING * left).sqrt() - b_dt) / 2.0;
            let target = (here.min(ahead) * self.temperament * (1.0 + self.traffic))
                .min(to_stop)
                .max(1.0);
            let v1 = target.clamp(v0 - BRAKING * dt, v0 + ACCELERATION * dt);
            let mut ds = ((v0 + v1) / 2.0 * dt).min(length - self.s);
            if length - (self.s + ds) < ARRIVED_WITHIN_M {
                // The last bit is driven in this tick, so that the speed reported
                // covers all of the move.
                ds = length - self.s;
            }
            self.s += ds;
            self.v = v1;
            self.odometer_km += ds / 1000.0;
            self.fuel_pct -= ds / 1000.0 * self.spec.consumption_pct_per_km();
            if self.fuel_pct < 8.0 {
                // A stop at the pump or the charger, taken between two ticks.
                self.fuel_pct = 100.0;
            }
            ds / dt
        };
        let to_m = self.s;

        let placed = route.place(self.s, self.segment);
        self.segment = placed.segment;
        Motion {
            from_m,
            to_m,
            v0,
            v1: self.v,
            average_mps,
            position: rounded(placed.position),
            heading_deg: round_to(placed.heading_deg, 10.0) % 360.0,
        }
    }
}
