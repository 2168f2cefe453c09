//! Positions on the earth and the few formulas the simulation needs: distance,
//! bearing and a local flat frame for building offline roads.

use std::fmt;

/// Mean earth radius in metres (IUGG), the usual choice for haversine distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS 84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    /// A point, if the coordinates are on the earth.
    pub fn new(lat: f64, lon: f64) -> Option<Self> {
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
            .then_some(Self { lat, lon })
    }

    /// Parses `lat,lon`, e.g. `52.39,13.06`. Returns `None` for text that is not two
    /// numbers, and for numbers that are not a position.
    pub fn parse(text: &str) -> Option<Self> {
        let (lat, lon) = text.split_once(',')?;
        Self::new(lat.trim().parse().ok()?, lon.trim().parse().ok()?)
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: GeoPoint) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let dphi = phi2 - phi1;
        let dlambda = (other.lon - self.lon).to_radians();
        let a =
            (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }

    /// Initial bearing towards `other`, degrees clockwise from north in `[0, 360)`.
    pub fn bearing_deg(self, other: GeoPoint) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlambda = (other.lon - self.lon).to_radians();
        let y = dlambda.sin() * phi2.cos();
        let x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * dlambda.cos();
        normalize_deg(y.atan2(x).to_degrees())
    }

    /// The point a fraction `t` of the way to `other`, interpolating the
    /// coordinates linearly: exact enough over the few hundred metres between two
    /// vertices of a road.
    pub fn lerp(self, other: GeoPoint, t: f64) -> GeoPoint {
        GeoPoint {
            lat: self.lat + (other.lat - self.lat) * t,
            lon: self.lon + (other.lon - self.lon) * t,
        }
    }
}

impl fmt::Display for GeoPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.5},{:.5}", self.lat, self.lon)
    }
}

/// Folds an angle into `[0, 360)`.
pub fn normalize_deg(deg: f64) -> f64 {
    let d = deg.rem_euclid(360.0);
    if d >= 360.0 { 0.0 } else { d }
}

/// An equirectangular projection around an origin: metres east and north. Good to a
/// fraction of a percent over a few hundred kilometres, which is all an offline road
/// needs.
#[derive(Debug, Clone, Copy)]
pub struct LocalFrame {
    origin: GeoPoint,
    metres_per_deg_lat: f64,
    metres_per_deg_lon: f64,
}

impl LocalFrame {
    pub fn new(origin: GeoPoint) -> Self {
        let metres_per_deg_lat = EARTH_RADIUS_M.to_radians();
        Self {
            origin,
            metres_per_deg_lat,
            metres_per_deg_lon: metres_per_deg_lat * origin.lat.to_radians().cos(),
        }
    }

    pub fn to_xy(&self, p: GeoPoint) -> (f64, f64) {
        (
            (p.lon - self.origin.lon) * self.metres_per_deg_lon,
            (p.lat - self.origin.lat) * self.metres_per_deg_lat,
        )
    }

    pub fn to_geo(&self, x: f64, y: f64) -> GeoPoint {
        GeoPoint {
            lat: self.origin.lat + y / self.metres_per_deg_lat,
            lon: self.origin.lon + x / self.metres_per_deg_lon,
        }
    }
}

/// Rounds to `1 / per_unit`: `round_to(x, 100.0)` keeps two decimals. Keeps the JSON
/// short; the precision kept is far below what a real sensor reports.
pub fn round_to(x: f64, per_unit: f64) -> f64 {
    (x * per_unit).round() / per_unit
}

/// Positions to 1e-6 degrees, about 10 cm.
pub fn rounded(p: GeoPoint) -> GeoPoint {
    GeoPoint {
        lat: round_to(p.lat, 1e6),
        lon: round_to(p.lon, 1e6),
    }
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
    fn haversine_matches_a_known_distance() {
        // Potsdam to Leipzig is about 126 km as the crow flies.
        let d = POTSDAM.distance_m(LEIPZIG);
        assert!((d - 126_000.0).abs() < 2_000.0, "{d}");
        assert_eq!(POTSDAM.distance_m(POTSDAM), 0.0);
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = GeoPoint { lat: 0.0, lon: 0.0 }.distance_m(GeoPoint { lat: 1.0, lon: 0.0 });
        assert!((d - 111_195.0).abs() < 5.0, "{d}");
    }

    #[test]
    fn bearings_point_the_right_way() {
        let origin = GeoPoint {
            lat: 50.0,
            lon: 10.0,
        };
        let north = GeoPoint {
            lat: 51.0,
            lon: 10.0,
        };
        let east = GeoPoint {
            lat: 50.0,
            lon: 11.0,
        };
        assert!(origin.bearing_deg(north).abs() < 1e-9);
        assert!((origin.bearing_deg(east) - 90.0).abs() < 0.5);
        assert!((north.bearing_deg(origin) - 180.0).abs() < 1e-9);
        let west = GeoPoint {
            lat: 50.0,
            lon: 9.0,
        };
        assert!((origin.bearing_deg(west) - 270.0).abs() < 0.5);
        // Leipzig lies south-south-west of Potsdam.
        let b = POTSDAM.bearing_deg(LEIPZIG);
        assert!((195.0..225.0).contains(&b), "{b}");
    }

    #[test]
    fn parses_coordinates_and_rejects_impossible_ones() {
        assert_eq!(
            GeoPoint::parse(" 52.39, 13.06 "),
            Some(GeoPoint {
                lat: 52.39,
                lon: 13.06
            })
        );
        assert_eq!(GeoPoint::parse("123,13"), None);
        assert_eq!(GeoPoint::parse("52.39"), None);
        assert_eq!(GeoPoint::parse("Potsdam"), None);
    }

    #[test]
    fn local_frame_round_trips_and_measures_metres() {
        let frame = LocalFrame::new(POTSDAM);
        let (x, y) = frame.to_xy(LEIPZIG);
        let back = frame.to_geo(x, y);
        assert!((back.lat - LEIPZIG.lat).abs() < 1e-12 && (back.lon - LEIPZIG.lon).abs() < 1e-12);
        let flat = x.hypot(y);
        let round = POTSDAM.distance_m(LEIPZIG);
        assert!((flat - round).abs() / round < 0.005, "{flat} vs {round}");
    }

    #[test]
    fn normalizes_angles() {
        assert_eq!(normalize_deg(-90.0), 270.0);
        assert_eq!(normalize_deg(360.0), 0.0);
        assert_eq!(normalize_deg(725.0), 5.0);
    }
}
