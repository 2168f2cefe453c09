//! A road to drive: a polyline with the speed traffic moves at on each stretch.
//!
//! Built from an OpenRouteService answer or by the offline generator; either way the
//! fleet only asks it "where am I, which way am I facing and how fast may I go, `s`
//! metres from the start".

use iot_model::RouteSource;

use crate::geo::GeoPoint;

/// Speed assumed where the routing service gives none (a step of zero duration).
const FALLBACK_SPEED_MPS: f64 = 50.0 / 3.6;
/// The slowest and fastest stretch speeds we accept from a routing service.
const SPEED_RANGE_MPS: (f64, f64) = (5.0 / 3.6, 140.0 / 3.6);

/// A stretch of road, as routing services describe them: vertices `from..=to` driven
/// in `duration_s` over `distance_m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub from: usize,
    pub to: usize,
    pub distance_m: f64,
    pub duration_s: f64,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub source: RouteSource,
    points: Vec<GeoPoint>,
    /// Distance from the start to each vertex, metres; `cumulative_m[0] == 0`.
    cumulative_m: Vec<f64>,
    /// Per segment `i` (vertex `i` to `i + 1`): its bearing and expected speed.
    bearings_deg: Vec<f64>,
    speeds_mps: Vec<f64>,
}

/// Where on a route a distance falls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub position: GeoPoint,
    pub heading_deg: f64,
    /// The speed traffic moves at here, metres per second.
    pub speed_limit_mps: f64,
    /// Index of the segment, to start the next search from.
    pub segment: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("the route has {0} distinct points; it needs at least two")]
    TooShort(usize),
    #[error("a step refers to point {index}, but the route has only {len}")]
    StepOutOfRange { index: usize, len: usize },
}

impl Route {
    /// Builds a route from its vertices and the stretches that give its speeds.
    /// Repeated vertices are dropped; segments no stretch covers get a town speed.
    pub fn new(
        source: RouteSource,
        points: Vec<GeoPoint>,
        stretches: &[Stretch],
    ) -> Result<Self, RouteError> {
        let len = points.len();
        let mut speed_of_vertex = vec![FALLBACK_SPEED_MPS; len.saturating_sub(1)];
        for s in stretches {
            if s.to >= len || s.from > s.to {
                return Err(RouteError::StepOutOfRange {
                    index: s.to.max(s.from),
                    len,
                });
            }
            let speed = if s.duration_s > 0.0 && s.distance_m > 0.0 {
                (s.distance_m / s.duration_s).clamp(SPEED_RANGE_MPS.0, SPEED_RANGE_MPS.1)
            } else {
                FALLBACK_SPEED_MPS
            };
            for v in &mut speed_of_vertex[s.from..s.to] {
                *v = speed;
            }
        }

        let mut route = Route {
            source,
            points: Vec::with_capacity(len),
            cumulative_m: Vec::with_capacity(len),
            bearings_deg: Vec::with_capacity(len),
            speeds_mps: Vec::with_capacity(len),
        };
        for (i, p) in points.iter().copied().enumerate() {
            let Some(&last) = route.points.last() else {
                route.points.push(p);
                route.cumulative_m.push(0.0);
                continue;
            };
            let d = last.distance_m(p);
            if d < 0.01 {
                continue;
            }
            route.bearings_deg.push(last.bearing_deg(p));
            route.speeds_mps.push(speed_of_vertex[i - 1]);
            route
                .cumulative_m
                .push(route.cumulative_m.last().unwrap_or(&0.0) + d);
            route.points.push(p);
        }
        if route.points.len() < 2 {
            return Err(RouteError::TooShort(route.points.len()));
        }
        Ok(route)
    }

    pub fn length_m(&self) -> f64 {
        *self.cumulative_m.last().unwrap_or(&0.0)
    }

    pub fn start(&self) -> GeoPoint {
        self.points[0]
    }

    pub fn end(&self) -> GeoPoint {
        self.points[self.points.len() - 1]
    }

    pub fn points(&self) -> &[GeoPoint] {
        &self.points
    }

    /// The time the route takes at its stretch speeds, seconds.
    pub fn expected_duration_s(&self) -> f64 {
        self.cumulative_m
            .windows(2)
            .zip(&self.speeds_mps)
            .map(|(w, v)| (w[1] - w[0]) / v)
            .sum()
    }

    /// Where `s` metres from the start lies, clamped to the route. `hint` is the
    /// segment of the previous call: vehicles move forward, so the search is almost
    /// always a step or two.
    pub fn place(&self, s: f64, hint: usize) -> Placement {
        let s = s.clamp(0.0, self.length_m());
        let segment = self.segment_at(s, hint);
        let (start, end) = (self.cumulative_m[segment], self.cumulative_m[segment + 1]);
        let t = ((s - start) / (end - start)).clamp(0.0, 1.0);
        Placement {
            position: self.points[segment].lerp(self.points[segment + 1], t),
            heading_deg: self.bearings_deg[segment],
            speed_limit_mps: self.speeds_mps[segment],
            segment,
        }
    }

    /// The expected speed `s` metres from the start.
    pub fn speed_at(&self, s: f64, hint: usize) -> f64 {
        self.speeds_mps[self.segment_at(s.clamp(0.0, self.length_m()), hint)]
    }

    fn segment_at(&self, s: f64, hint: usize) -> usize {
        let last = self.speeds_mps.len() - 1;
        // A short walk forward covers the usual case; fall back to bisection.
        let start = hint.min(last);
        for i in start..(start + 8).min(last + 1) {
            if s < self.cumulative_m[i] {
                break;
            }
            if s <= self.cumulative_m[i + 1] || i == last {
                return i;
            }
        }
        let upper = self.cumulative_m.partition_point(|&c| c <= s);
        upper.saturating_sub(1).min(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn straight_north(n: usize, spacing_deg: f64) -> Vec<GeoPoint> {
        (0..n)
            .map(|i| GeoPoint {
                lat: 50.0 + i as f64 * spacing_deg,
                lon: 10.0,
            })
            .collect()
    }

    #[test]
    fn interpolates_along_the_polyline() {
        let route = Route::new(RouteSource::Offline, straight_north(3, 0.01), &[]).unwrap();
        let len = route.length_m();
        assert!((len - 2_223.9).abs() < 1.0, "{len}");
        let middle = route.place(len / 2.0, 0);
        assert!((middle.position.lat - 50.01).abs() < 1e-9);
        assert_eq!(middle.heading_deg, 0.0);
        let quarter = route.place(len / 4.0, 0);
        assert!((quarter.position.lat - 50.005).abs() < 1e-9);
        assert_eq!(quarter.segment, 0);
        assert_eq!(route.place(len * 0.75, quarter.segment).segment, 1);
    }

    #[test]
    fn clamps_beyond_the_ends() {
        let route = Route::new(RouteSource::Offline, straight_north(3, 0.01), &[]).unwrap();
        assert_eq!(route.place(-5.0, 0).position, route.start());
        assert_eq!(route.place(1e9, 0).position, route.end());
    }

    #[test]
    fn finds_the_segment_from_any_hint() {
        let route = Route::new(RouteSource::Offline, straight_north(200, 0.001), &[]).unwrap();
        let s = route.length_m() * 0.7;
        let from_start = route.place(s, 0);
        let from_end = route.place(s, 198);
        let from_near = route.place(s, from_start.segment - 1);
        assert_eq!(from_start, from_end);
        assert_eq!(from_start, from_near);
    }

    #[test]
    fn speeds_come_from_the_stretches() {
        let points = straight_north(5, 0.01);
        let stretches = [
            Stretch {
                from: 0,
                to: 2,
                distance_m: 2_224.0,
                duration_s: 160.0,
            },
            Stretch {
                from: 2,
                to: 4,
                distance_m: 2_224.0,
                duration_s: 66.7,
            },
        ];
        let route = Route::new(RouteSource::Ors, points, &stretches).unwrap();
        let slow = route.speed_at(1_000.0, 0);
        let fast = route.speed_at(3_000.0, 0);
        assert!((slow - 13.9).abs() < 0.1, "{slow}");
        assert!((fast - 33.3).abs() < 0.1, "{fast}");
        let expected = 160.0 + 66.7;
        assert!((route.expected_duration_s() - expected).abs() < 1.0);
    }

    #[test]
    fn drops_repeated_points_and_rejects_degenerate_routes() {
        let mut points = straight_north(3, 0.01);
        points.insert(1, points[0]);
        let route = Route::new(RouteSource::Ors, points, &[]).unwrap();
        assert_eq!(route.points().len(), 3);
        let single = vec![GeoPoint { lat: 1.0, lon: 1.0 }; 4];
        assert_eq!(
            Route::new(RouteSource::Ors, single, &[]).unwrap_err(),
            RouteError::TooShort(1)
        );
    }

    #[test]
    fn rejects_steps_beyond_the_points() {
        let stretch = Stretch {
            from: 0,
            to: 9,
            distance_m: 1.0,
            duration_s: 1.0,
        };
        let err = Route::new(RouteSource::Ors, straight_north(3, 0.01), &[stretch]).unwrap_err();
        assert_eq!(err, RouteError::StepOutOfRange { index: 9, len: 3 });
    }
}
