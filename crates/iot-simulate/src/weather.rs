//! A weather field that changes smoothly in space and time, so that vehicles close
//! together see the same weather and one vehicle's readings drift rather than jump.
//!
//! Each quantity is a season-and-daytime baseline plus a few travelling waves with
//! random phases: cheap to sample, continuous everywhere, and the same for every
//! vehicle of a run.

use std::f64::consts::TAU;

use iot_model::WeatherCondition;
use rand::Rng;

use crate::geo::GeoPoint;

/// A wave `amplitude * sin(k_lat * lat + k_lon * lon + omega * hours + phase)`.
#[derive(Debug, Clone, Copy)]
struct Wave {
    amplitude: f64,
    k_lat: f64,
    k_lon: f64,
    omega: f64,
    phase: f64,
}

impl Wave {
    fn at(&self, p: GeoPoint, hours: f64) -> f64 {
        self.amplitude
            * (self.k_lat * p.lat + self.k_lon * p.lon + self.omega * hours + self.phase).sin()
    }
}

/// Waves of one quantity: features about 100–300 km across that change over hours.
#[derive(Debug, Clone)]
struct Field([Wave; 3]);

impl Field {
    fn random(rng: &mut impl Rng, amplitude: f64) -> Self {
        Field(std::array::from_fn(|i| Wave {
            amplitude: amplitude / (i + 1) as f64,
            k_lat: rng.random_range(-3.0..3.0),
            k_lon: rng.random_range(-3.0..3.0),
            omega: rng.random_range(-0.5..0.5),
            phase: rng.random_range(0.0..TAU),
        }))
    }

    fn at(&self, p: GeoPoint, hours: f64) -> f64 {
        self.0.iter().map(|w| w.at(p, hours)).sum()
    }
}

/// Weather at one place and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weather {
    pub temperature_c: f64,
    pub humidity_pct: f64,
    pub precipitation_mm_h: f64,
    pub wind_speed_kmh: f64,
    pub wind_direction_deg: f64,
    pub air_quality_index: u16,
    pub condition: WeatherCondition,
}

#[derive(Debug, Clone)]
pub struct WeatherField {
    temperature: Field,
    clouds: Field,
    wind: Field,
    wind_direction: Field,
}

impl WeatherField {
    pub fn new(rng: &mut impl Rng) -> Self {
        Self {
            temperature: Field::random(rng, 3.0),
            clouds: Field::random(rng, 0.6),
            wind: Field::random(rng, 12.0),
            wind_direction: Field::random(rng, 120.0),
        }
    }

    /// The weather at `p`, `unix_hours` hours after 1970-01-01 UTC.
    pub fn at(&self, p: GeoPoint, unix_hours: f64) -> Weather {
        let day_of_year = (unix_hours / 24.0).rem_euclid(365.25);
        let local_hour = (unix_hours + p.lon / 15.0).rem_euclid(24.0);
        // Coldest in mid-January, warmest in mid-July; colder further north.
        let seasonal =
            9.5 - 9.0 * (TAU * (day_of_year - 15.0) / 365.25).cos() - 0.6 * (p.lat - 50.0);
        // Warmest at three in the afternoon.
        let daily = 4.5 * (TAU * (local_hour - 9.0) / 24.0).sin();
        let temperature_c = seasonal + daily + self.temperature.at(p, unix_hours);

        let cloud = (0.45 + self.clouds.at(p, unix_hours)).clamp(0.0, 1.0);
        let precipitation_mm_h = ((cloud - 0.7) * 20.0).max(0.0);
        let humidity_pct = (45.0 + 50.0 * cloud - 0.5 * daily).clamp(5.0, 100.0);
        let wind_speed_kmh = (14.0 + self.wind.at(p, unix_hours)).max(0.0);
        let wind_direction_deg = (250.0 + self.wind_direction.at(p, unix_hours)).rem_euclid(360.0);
        // Still air traps pollution; rain washes it out.
        let air_quality_index = (25.0 + 45.0 * (1.0 - wind_speed_kmh / 40.0).max(0.0)
            - 2.0 * precipitation_mm_h)
            .clamp(5.0, 300.0) as u16;

        let condition = if precipitation_mm_h > 0.1 {
            if temperature_c < 0.5 {
                WeatherCondition::Snow
            } else {
                WeatherCondition::Rain
            }
        } else if humidity_pct > 88.0 && wind_speed_kmh < 8.0 {
            WeatherCondition::Fog
        } else if cloud > 0.5 {
            WeatherCondition::Cloudy
        } else {
            WeatherCondition::Clear
        };
        Weather {
            temperature_c,
            humidity_pct,
            precipitation_mm_h,
            wind_speed_kmh,
            wind_direction_deg,
            air_quality_index,
            condition,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const BERLIN: GeoPoint = GeoPoint {
        lat: 52.52,
        lon: 13.40,
    };
    /// 2026-07-15 12:00 UTC and 2026-01-15 12:00 UTC, in hours since the epoch.
    const JULY: f64 = 1_784_116_800.0 / 3600.0;
    const JANUARY: f64 = 1_768_478_400.0 / 3600.0;

    #[test]
    fn changes_smoothly_in_time_and_space() {
        let field = WeatherField::new(&mut StdRng::seed_from_u64(3));
        let now = field.at(BERLIN, JULY);
        let a_minute_later = field.at(BERLIN, JULY + 1.0 / 60.0);
        assert!((now.temperature_c - a_minute_later.temperature_c).abs() < 0.2);
        assert!((now.wind_speed_kmh - a_minute_later.wind_speed_kmh).abs() < 1.0);
        let a_km_away = field.at(
            GeoPoint {
                lat: 52.529,
                lon: 13.40,
            },
            JULY,
        );
        assert!((now.temperature_c - a_km_away.temperature_c).abs() < 0.2);
    }

    #[test]
    fn summer_is_warmer_than_winter() {
        for seed in 0..20 {
            let field = WeatherField::new(&mut StdRng::seed_from_u64(seed));
            let summer = field.at(BERLIN, JULY).temperature_c;
            let winter = field.at(BERLIN, JANUARY).temperature_c;
            assert!(summer > winter + 5.0, "seed {seed}: {summer} vs {winter}");
            assert!((-25.0..42.0).contains(&winter) && (-25.0..42.0).contains(&summer));
        }
    }

    #[test]
    fn values_stay_in_range_and_conditions_vary() {
        let field = WeatherField::new(&mut StdRng::seed_from_u64(11));
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000 {
            let p = GeoPoint {
                lat: 47.0 + (i % 40) as f64 * 0.2,
                lon: 6.0 + (i / 40) as f64 * 0.2,
            };
            let w = field.at(p, JANUARY + i as f64 * 3.0);
            assert!((0.0..=100.0).contains(&w.humidity_pct));
            assert!(w.precipitation_mm_h >= 0.0 && w.wind_speed_kmh >= 0.0);
            assert!((0.0..360.0).contains(&w.wind_direction_deg));
            seen.insert(format!("{:?}", w.condition));
        }
        assert!(seen.len() >= 3, "only {seen:?}");
    }
}
