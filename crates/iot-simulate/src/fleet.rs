//! Which vehicles drive which routes: either `--vehicles N` on the one route of
//! `--from`/`--to`, or a fleet file (TOML, see `config/fleet.example.toml`) with
//! several routes and named vehicles.

use std::path::Path;

use iot_model::FuelType;
use rand::Rng;
use serde::Deserialize;

/// What a vehicle is, as it reports itself.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleSpec {
    pub make: String,
    pub model: String,
    pub year: u16,
    pub fuel_type: FuelType,
}

impl VehicleSpec {
    /// Energy used per kilometre, as a percentage of a full tank or battery.
    pub fn consumption_pct_per_km(&self) -> f64 {
        // Litres or kWh per 100 km over tank or battery size.
        let (per_100_km, capacity) = match self.fuel_type {
            FuelType::Petrol => (7.0, 50.0),
            FuelType::Diesel => (5.8, 55.0),
            FuelType::Hybrid => (4.8, 43.0),
            FuelType::Electric => (18.0, 77.0),
        };
        per_100_km / capacity
    }

    /// A vehicle from a small catalogue of cars common on German roads.
    pub fn random(rng: &mut impl Rng) -> Self {
        const CATALOGUE: &[(&str, &str, FuelType)] = &[
            ("Volkswagen", "Golf", FuelType::Petrol),
            ("Volkswagen", "Passat", FuelType::Diesel),
            ("Volkswagen", "ID.4", FuelType::Electric),
            ("BMW", "320d", FuelType::Diesel),
            ("BMW", "i4", FuelType::Electric),
            ("Mercedes-Benz", "C 200", FuelType::Petrol),
            ("Mercedes-Benz", "Sprinter", FuelType::Diesel),
            ("Audi", "A4", FuelType::Diesel),
            ("Opel", "Corsa", FuelType::Petrol),
            ("Skoda", "Octavia", FuelType::Diesel),
            ("Toyota", "Corolla", FuelType::Hybrid),
            ("Tesla", "Model Y", FuelType::Electric),
            ("Ford", "Transit", FuelType::Diesel),
            ("Hyundai", "Ioniq 5", FuelType::Electric),
        ];
        let (make, model, fuel_type) = CATALOGUE[rng.random_range(0..CATALOGUE.len())];
        Self {
            make: make.into(),
            model: model.into(),
            year: rng.random_range(2014..=2025),
            fuel_type,
        }
    }
}

/// One route and the vehicles that drive it.
#[derive(Debug, Clone, PartialEq)]
pub struct TripPlan {
    /// Place names or `lat,lon`, as the user wrote them.
    pub from: String,
    pub to: String,
    /// Vehicles named in the fleet file; the rest are drawn from the catalogue.
    pub vehicles: Vec<VehicleSpec>,
    pub random_vehicles: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("fleet file {path}: {reason}")]
pub struct FleetFileError {
    pub path: String,
    pub reason: String,
}

/// Reads a fleet file.
pub fn read_fleet_file(path: &Path) -> Result<Vec<TripPlan>, FleetFileError> {
    let error = |reason: String| FleetFileError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    parse_fleet(&text).map_err(error)
}

fn parse_fleet(text: &str) -> Result<Vec<TripPlan>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        routes: Vec<RouteEntry>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RouteEntry {
        from: String,
        to: String,
        #[serde(default)]
        random_vehicles: usize,
        #[serde(default)]
        vehicles: Vec<VehicleEntry>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct VehicleEntry {
        make: String,
        model: String,
        year: u16,
        fuel_type: FuelType,
        #[serde(default = "one")]
        count: usize,
    }
    fn one() -> usize {
        1
    }

    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.routes.is_empty() {
        return Err("it lists no [[routes]]".into());
    }
    let plans: Vec<TripPlan> = file
        .routes
        .into_iter()
        .map(|r| TripPlan {
            from: r.from,
            to: r.to,
            vehicles: r
                .vehicles
                .into_iter()
                .flat_map(|v| {
                    let spec = VehicleSpec {
                        make: v.make,
                        model: v.model,
                        year: v.year,
                        fuel_type: v.fuel_type,
                    };
                    std::iter::repeat_n(spec, v.count)
                })
                .collect(),
            random_vehicles: r.random_vehicles,
        })
        .collect();
    if let Some(empty) = plans
        .iter()
        .find(|p| p.vehicles.is_empty() && p.random_vehicles == 0)
    {
        return Err(format!(
            "the route from {} to {} has no vehicles; add [[routes.vehicles]] or random_vehicles",
            empty.from, empty.to
        ));
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn reads_the_example_fleet() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/fleet.example.toml");
        let plans = read_fleet_file(&path).unwrap();
        assert!(plans.len() >= 2);
        assert!(
            plans
                .iter()
                .all(|p| !p.vehicles.is_empty() || p.random_vehicles > 0)
        );
    }

    #[test]
    fn repeats_vehicles_by_count() {
        let plans = parse_fleet(
            r#"
            [[routes]]
            from = "Berlin"
            to = "52.1,11.6"
            [[routes.vehicles]]
            make = "Volkswagen"
            model = "ID.4"
            year = 2022
            fuel_type = "electric"
            count = 3
            "#,
        )
        .unwrap();
        assert_eq!(plans[0].vehicles.len(), 3);
        assert_eq!(plans[0].vehicles[0].fuel_type, FuelType::Electric);
        assert_eq!(plans[0].to, "52.1,11.6");
    }

    #[test]
    fn explains_mistakes() {
        let unknown_fuel = parse_fleet(
            "[[routes]]\nfrom='A'\nto='B'\n[[routes.vehicles]]\nmake='X'\nmodel='Y'\nyear=2020\nfuel_type='steam'\n",
        )
        .unwrap_err();
        assert!(unknown_fuel.contains("steam"), "{unknown_fuel}");
        let no_vehicles = parse_fleet("[[routes]]\nfrom='A'\nto='B'\n").unwrap_err();
        assert!(no_vehicles.contains("no vehicles"), "{no_vehicles}");
        assert!(
            parse_fleet("routes = []")
                .unwrap_err()
                .contains("no [[routes]]")
        );
    }

    #[test]
    fn consumption_is_plausible() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let v = VehicleSpec::random(&mut rng);
            let range_km = 100.0 / v.consumption_pct_per_km();
            assert!(
                (300.0..1_000.0).contains(&range_km),
                "{v:?}: {range_km} km range"
            );
        }
    }
}
