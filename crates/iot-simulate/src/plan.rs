//! From what the user typed to roads to drive: place names or `lat,lon` become
//! positions, pairs of positions become routes (OpenRouteService with a key, the
//! offline generator without).

use std::sync::Arc;

use iot_runtime::Retriable;
use rand::Rng;

use crate::fleet::{TripPlan, VehicleSpec};
use crate::gazetteer::Gazetteer;
use crate::geo::GeoPoint;
use crate::offline;
use crate::ors::{Ends, OrsClient, OrsError};
use crate::route::{Route, RouteError};

/// A route and the vehicles that drive it: what planning makes of a [`TripPlan`].
#[derive(Debug, Clone)]
pub struct Trip {
    pub route: Arc<Route>,
    pub vehicles: Vec<VehicleSpec>,
}

/// Ends closer than this, metres, are one place: there is no route to drive.
const SAME_PLACE_M: f64 = 100.0;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "unknown place {name:?}: it is not in simulate's list of places (config/places.csv){suggestion}; \
         give it as lat,lon (e.g. 52.3906,13.0645) or set OPENROUTE_KEY to look it up online"
    )]
    UnknownPlace { name: String, suggestion: String },
    #[error(
        "{from} and {to} are the same place ({metres:.0} m apart), so there is no route to \
         drive: give two places apart (e.g. --from Potsdam --to Leipzig)"
    )]
    SamePlace {
        from: String,
        to: String,
        metres: f64,
    },
    #[error("cannot look up {name:?}: {source}")]
    Geocode {
        name: String,
        #[source]
        source: OrsError,
    },
    #[error("cannot find a route from {from} to {to}: {source}")]
    Routing {
        from: String,
        to: String,
        #[source]
        source: OrsError,
    },
    /// The HTTP client for OpenRouteService could not be set up (TLS, proxy).
    #[error("cannot use OpenRouteService: {0}")]
    Client(#[source] OrsError),
    #[error("cannot make a route from {from} to {to}: {source}")]
    Offline {
        from: String,
        to: String,
        #[source]
        source: RouteError,
    },
}

impl PlanError {
    /// Whether the request may succeed later without the user changing anything.
    pub fn is_retriable(&self) -> bool {
        match self {
            PlanError::Geocode { source, .. } | PlanError::Routing { source, .. } => {
                source.is_retriable()
            }
            PlanError::UnknownPlace { .. }
            | PlanError::SamePlace { .. }
            | PlanError::Offline { .. }
            | PlanError::Client(_) => false,
        }
    }

    /// Whether the fault is in the places given rather than in the routing service.
    pub fn is_bad_place(&self) -> bool {
        match self {
            PlanError::UnknownPlace { .. }
            | PlanError::SamePlace { .. }
            | PlanError::Offline { .. } => true,
            PlanError::Client(_) => false,
            PlanError::Geocode { source, .. } | PlanError::Routing { source, .. } => {
                matches!(source, OrsError::NoRoadNear { .. } | OrsError::NotFound(_))
            }
        }
    }
}

/// Resolves every plan into a trip with its route and vehicles. Vehicles not named
/// in a plan are drawn from the catalogue with `rng`.
pub async fn resolve(
    plans: &[TripPlan],
    gazetteer: &Gazetteer,
    ors: Option<&OrsClient>,
    rng: &mut impl Rng,
) -> Result<Vec<Trip>, PlanError> {
    let mut trips = Vec::with_capacity(plans.len());
    for plan in plans {
        let from = locate(&plan.from, gazetteer, ors).await?;
        let to = locate(&plan.to, gazetteer, ors).await?;
        let metres = from.distance_m(to);
        if metres < SAME_PLACE_M {
            return Err(PlanError::SamePlace {
                from: plan.from.clone(),
                to: plan.to.clone(),
                metres,
            });
        }
        let route = match ors {
            Some(client) => {
                let ends = Ends {
                    from: (&plan.from, from),
                    to: (&plan.to, to),
                };
                client
                    .directions(ends)
                    .await
                    .map_err(|source| PlanError::Routing {
                        from: plan.from.clone(),
                        to: plan.to.clone(),
                        source,
                    })?
            }
            None => offline::route(from, to).map_err(|source| PlanError::Offline {
                from: plan.from.clone(),
                to: plan.to.clone(),
                source,
            })?,
        };
        tracing::info!(
            from = %plan.from,
            to = %plan.to,
            source = ?route.source,
            km = format!("{:.1}", route.length_m() / 1000.0),
            hours = format!("{:.2}", route.expected_duration_s() / 3600.0),
            "route ready"
        );
        let mut vehicles = plan.vehicles.clone();
        vehicles.extend((0..plan.random_vehicles).map(|_| VehicleSpec::random(rng)));
        trips.push(Trip {
            route: Arc::new(route),
            vehicles,
        });
    }
    Ok(trips)
}

/// A position for `lat,lon`, a known place name, or (with a key) a geocoded one.
async fn locate(
    text: &str,
    gazetteer: &Gazetteer,
    ors: Option<&OrsClient>,
) -> Result<GeoPoint, PlanError> {
    if let Some(point) = GeoPoint::parse(text) {
        return Ok(point);
    }
    if let Some(place) = gazetteer.lookup(text) {
        return Ok(place.position);
    }
    match ors {
        Some(client) => client
            .geocode(text)
            .await
            .map_err(|source| PlanError::Geocode {
                name: text.to_owned(),
                source,
            }),
        None => {
            let suggestions = gazetteer.suggestions(text);
            let suggestion = if suggestions.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", suggestions.join(", "))
            };
            Err(PlanError::UnknownPlace {
                name: text.to_owned(),
                suggestion,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn plan(from: &str, to: &str) -> TripPlan {
        TripPlan {
            from: from.into(),
            to: to.into(),
            vehicles: Vec::new(),
            random_vehicles: 2,
        }
    }

    #[tokio::test]
    async fn resolves_names_and_coordinates_offline() {
        let trips = resolve(
            &[plan("Potsdam", "51.3397,12.3731")],
            &Gazetteer::builtin(),
            None,
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap();
        assert_eq!(trips.len(), 1);
        assert_eq!(trips[0].vehicles.len(), 2);
        assert_eq!(trips[0].route.source, iot_model::RouteSource::Offline);
    }

    #[tokio::test]
    async fn an_unknown_place_is_named_with_a_way_out() {
        let err = resolve(
            &[plan("Atlantis", "Leipzig")],
            &Gazetteer::builtin(),
            None,
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap_err();
        assert!(err.is_bad_place());
        let text = err.to_string();
        assert!(text.contains("\"Atlantis\""), "{text}");
        assert!(text.contains("lat,lon"), "{text}");
    }

    #[tokio::test]
    async fn a_near_miss_gets_a_suggestion() {
        let err = resolve(
            &[plan("Potsdam", "Lepizig")],
            &Gazetteer::builtin(),
            None,
            &mut StdRng::seed_from_u64(1),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("did you mean Leipzig?"), "{err}");
    }
}
