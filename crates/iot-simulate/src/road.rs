//! A route with its speed cameras, shared by the vehicles that drive it. Cameras
//! stand every `spacing` metres, none in the last kilometre (where vehicles crawl to
//! a stop), and enforce the lowest usual limit at or above the speed traffic moves
//! at there.

use std::sync::Arc;

use uuid::Uuid;

use crate::geo::GeoPoint;
use crate::geo::rounded;
use crate::route::Route;

/// Speed limits cameras enforce, km/h.
const SPEED_LIMITS: [u16; 7] = [30, 50, 70, 80, 100, 120, 130];
/// Camera ids are UUID v5 of the position in this namespace, so the same camera has
/// the same id in every run.
const CAMERA_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_3c1e_8a7b_4e55_9f6e_2b1d_7c4a_9e01);

#[derive(Debug, Clone)]
pub struct Camera {
    /// Where along the route, metres.
    pub at_m: f64,
    pub id: Uuid,
    pub position: GeoPoint,
    pub limit_kmh: u16,
}

#[derive(Debug)]
pub struct Road {
    pub route: Arc<Route>,
    pub cameras: Vec<Camera>,
}

impl Road {
    pub fn new(route: Arc<Route>, spacing_m: f64) -> Self {
        let mut cameras = Vec::new();
        let mut at_m = spacing_m / 2.0;
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
