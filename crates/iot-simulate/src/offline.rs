//! A plausible road between two points when no routing service is available.
//!
//! The road leaves the straight line in a few gentle bends (a sum of low sine
//! harmonics that vanish at both ends), has a vertex every ~200 m, and the speed
//! profile of a German trip: town streets near each end, country roads after them,
//! motorway in between. It depends only on the two end points, so a given pair
//! always gets the same road, whatever the seed.

use std::f64::consts::PI;

use iot_model::RouteSource;
use rand::Rng;

use crate::geo::{GeoPoint, LocalFrame};
use crate::route::{Route, RouteError, Stretch};
use crate::seed::{self, Stream};

const VERTEX_SPACING_M: f64 = 200.0;
const HARMONICS: usize = 6;
/// Largest sideways excursion of the first bend, as a fraction of the distance;
/// harmonic `k` reaches `1/sqrt(k)` of it. Makes roads some 10–25% longer than the
/// straight line, as real ones are.
const BEND_AMPLITUDE: f64 = 0.12;

/// The speed a kind of road is driven at, and how far from either end it reaches.
const TOWN: (f64, f64) = (50.0 / 3.6, 3_000.0);
const COUNTRY: (f64, f64) = (90.0 / 3.6, 12_000.0);
const MOTORWAY_MPS: f64 = 125.0 / 3.6;

pub fn route(from: GeoPoint, to: GeoPoint) -> Result<Route, RouteError> {
    let frame = LocalFrame::new(from);
    let (dx, dy) = frame.to_xy(to);
    let straight = dx.hypot(dy);
    if straight < 1.0 {
        return Err(RouteError::TooShort(1));
    }
    let (ux, uy) = (dx / straight, dy / straight);

    let mut rng = seed::rng(Stream::Road { from, to });
    let bends: Vec<(f64, f64)> = (1..=HARMONICS)
        .map(|k| {
            let amplitude = BEND_AMPLITUDE / (k as f64).sqrt() * rng.random_range(-1.0..1.0);
            (k as f64, amplitude * straight)
        })
        .collect();

    let n = ((straight * 1.1 / VERTEX_SPACING_M).ceil() as usize).max(2);
    let points: Vec<GeoPoint> = (0..=n)
        .map(|i| {
            let t = i as f64 / n as f64;
            let offset: f64 = bends.iter().map(|(k, a)| a * (k * PI * t).sin()).sum();
            // Along the straight line, pushed sideways by the bends.
            let x = ux * straight * t - uy * offset;
            let y = uy * straight * t + ux * offset;
            frame.to_geo(x, y)
        })
        .collect();

    let stretches = speed_profile(&points);
    Route::new(RouteSource::Offline, points, &stretches)
}

/// Town, country and motorway stretches by distance from the nearer end.
fn speed_profile(points: &[GeoPoint]) -> Vec<Stretch> {
    let mut along = Vec::with_capacity(points.len());
    let mut total = 0.0;
    along.push(0.0);
    for w in points.windows(2) {
        total += w[0].distance_m(w[1]);
        along.push(total);
    }
    let speed_at = |i: usize| {
        let mid = (along[i] + along[i + 1]) / 2.0;
        let from_end = mid.min(total - mid);
        if from_end < TOWN.1 {
            TOWN.0
        } else if from_end < COUNTRY.1 {
            COUNTRY.0
        } else {
            MOTORWAY_MPS
        }
    };
    let mut stretches: Vec<Stretch> = Vec::new();
    for i in 0..points.len() - 1 {
        let speed = speed_at(i);
        let distance = along[i + 1] - along[i];
        match stretches.last_mut() {
            Some(s) if (s.distance_m / s.duration_s - speed).abs() < 1e-9 => {
                s.to = i + 1;
                s.distance_m += distance;
                s.duration_s += distance / speed;
            }
            _ => stretches.push(Stretch {
                from: i,
                to: i + 1,
                distance_m: distance,
                duration_s: distance / speed,
            }),
        }
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;

    const POTSDAM: GeoPoint = GeoPoint {
        lat: 52.3906,
        lon: 13.0645,
    };
    const LEIPZIG: GeoPoint = GeoPoint {
        lat: 51.3397,
        lon: 12.3731,
    };

    #[test]
    fn connects_the_two_points_by_a_road_like_path() {
        let r = route(POTSDAM, LEIPZIG).unwrap();
        assert_eq!(r.source, RouteSource::Offline);
        assert!(r.start().distance_m(POTSDAM) < 1.0);
        assert!(r.end().distance_m(LEIPZIG) < 1.0);
        let crow = POTSDAM.distance_m(LEIPZIG);
        let ratio = r.length_m() / crow;
        // Real roads run 10–40% longer than the straight line.
        assert!((1.0..1.5).contains(&ratio), "road/crow ratio {ratio}");
        let max_gap = r
            .points()
            .windows(2)
            .map(|w| w[0].distance_m(w[1]))
            .fold(0.0, f64::max);
        assert!(max_gap < 400.0, "vertices {max_gap} m apart");
    }

    #[test]
    fn bends_gently() {
        let r = route(POTSDAM, LEIPZIG).unwrap();
        let headings: Vec<f64> = r
            .points()
            .windows(2)
            .map(|w| w[0].bearing_deg(w[1]))
            .collect();
        let sharpest = headings
            .windows(2)
            .map(|h| {
                let d = (h[1] - h[0]).abs();
                d.min(360.0 - d)
            })
            .fold(0.0, f64::max);
        assert!(sharpest < 10.0, "a {sharpest}° turn between vertices");
    }

    #[test]
    fn town_at_the_ends_motorway_in_the_middle() {
        let r = route(POTSDAM, LEIPZIG).unwrap();
        let len = r.length_m();
        assert!((r.speed_at(500.0, 0) - TOWN.0).abs() < 1e-9);
        assert!((r.speed_at(len - 500.0, 0) - TOWN.0).abs() < 1e-9);
        assert!((r.speed_at(6_000.0, 0) - COUNTRY.0).abs() < 1e-9);
        assert!((r.speed_at(len / 2.0, 0) - MOTORWAY_MPS).abs() < 1e-9);
        let hours = r.expected_duration_s() / 3600.0;
        assert!((1.0..2.5).contains(&hours), "{hours} h Potsdam–Leipzig");
    }

    #[test]
    fn the_same_ends_give_the_same_road() {
        let a = route(POTSDAM, LEIPZIG).unwrap();
        let b = route(POTSDAM, LEIPZIG).unwrap();
        assert_eq!(a.points(), b.points());
    }

    #[test]
    fn short_trips_are_town_only_and_identical_ends_fail() {
        let near = GeoPoint {
            lat: 52.40,
            lon: 13.07,
        };
        let r = route(POTSDAM, near).unwrap();
        assert!((r.speed_at(r.length_m() / 2.0, 0) - TOWN.0).abs() < 1e-9);
        assert!(route(POTSDAM, POTSDAM).is_err());
    }
}
