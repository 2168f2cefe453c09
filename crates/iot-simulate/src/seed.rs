//! Where every random choice comes from. A run is replayed byte for byte by its
//! `--seed`; each part of it draws from a stream of its own, so that changing one
//! part (a named vehicle added to a fleet) leaves the others' draws alone.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::geo::GeoPoint;

/// The independent streams of randomness in a run.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The fleet on the road: ids, drivers, traffic, readings, incidents, weather.
    Fleet { seed: u64 },
    /// Vehicles drawn from the catalogue for fleets that do not name them.
    Catalogue { seed: u64 },
    /// An offline road between two points: the same road whatever the seed, decided
    /// by the end points' coordinates (to a metre or so).
    Road { from: GeoPoint, to: GeoPoint },
}

/// The generator of a stream: the one place seeds are decided.
pub fn rng(stream: Stream) -> StdRng {
    let seed = match stream {
        Stream::Fleet { seed } => seed,
        Stream::Catalogue { seed } => seed ^ 0x9e37_79b9_7f4a_7c15,
        // FNV-1a over the coordinates.
        Stream::Road { from, to } => [from.lat, from.lon, to.lat, to.lon]
            .iter()
            .map(|c| (c * 1e5).round() as i64 as u64)
            .fold(0xcbf2_9ce4_8422_2325, |h, v| {
                (h ^ v).wrapping_mul(0x0000_0100_0000_01b3)
            }),
    };
    StdRng::seed_from_u64(seed)
}

/// A random (version 4) UUID from `rng`, so that ids replay with the seed too.
pub fn uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_of_one_seed_differ_and_each_replays() {
        let draw = |stream| rng(stream).random::<u64>();
        let (fleet, catalogue) = (Stream::Fleet { seed: 7 }, Stream::Catalogue { seed: 7 });
        assert_eq!(draw(fleet), draw(fleet));
        assert_ne!(draw(fleet), draw(catalogue));
        let a = GeoPoint {
            lat: 52.0,
            lon: 13.0,
        };
        let b = GeoPoint {
            lat: 51.0,
            lon: 12.0,
        };
        let road = |from, to| draw(Stream::Road { from, to });
        assert_eq!(road(a, b), road(a, b));
        assert_ne!(road(a, b), road(b, a));
        assert_eq!(uuid(&mut rng(fleet)).get_version_num(), 4);
    }
}
