//! The OpenRouteService client against a local HTTP server that answers the way ORS
//! does: GeoJSON routes, its error bodies, 401/403 for keys and 429 for rate limits.

use std::time::Duration;

use iot_model::RouteSource;
use iot_runtime::Retriable;
use iot_simulate::geo::GeoPoint;
use iot_simulate::ors::{Ends, OrsClient, OrsError, OrsOptions};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DIRECTIONS: &str = "/v2/directions/driving-car/geojson";
const POTSDAM: GeoPoint = GeoPoint {
    lat: 52.3906,
    lon: 13.0645,
};
const LEIPZIG: GeoPoint = GeoPoint {
    lat: 51.3397,
    lon: 12.3731,
};

fn ends() -> Ends<'static> {
    Ends {
        from: ("Potsdam", POTSDAM),
        to: ("Leipzig", LEIPZIG),
    }
}

fn client(server: &MockServer, cache: Option<&std::path::Path>) -> OrsClient {
    OrsClient::new(OrsOptions {
        key: Some("test-key".into()),
        url: server.uri(),
        cache_dir: cache.map(|c| c.to_path_buf()),
        attempts: 3,
        max_wait: Duration::from_millis(50),
    })
    .expect("the HTTP client is built")
    .expect("a key is set")
}

/// An ORS-shaped answer: five points, a slow first step and a fast second one.
fn route_body() -> serde_json::Value {
    json!({
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [
                    [13.0645, 52.3906], [13.0, 52.2], [12.8, 51.9], [12.5, 51.5], [12.3731, 51.3397]
                ]
            },
            "properties": {
                "segments": [{
                    "distance": 130000.0,
                    "duration": 4700.0,
                    "steps": [
                        { "distance": 21500.0, "duration": 1548.0, "way_points": [0, 1], "type": 11 },
                        { "distance": 108500.0, "duration": 3152.0, "way_points": [1, 4], "type": 1 },
                        { "distance": 0.0, "duration": 0.0, "way_points": [4, 4], "type": 10 }
                    ]
                }],
                "summary": { "distance": 130000.0, "duration": 4700.0 }
            }
        }]
    })
}

fn ors_error(code: i64, message: &str) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message } })
}

#[tokio::test]
async fn reads_the_route_and_its_speeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .and(header("Authorization", "test-key"))
        .and(body_json(
            json!({ "coordinates": [[13.0645, 52.3906], [12.3731, 51.3397]] }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(route_body()))
        .expect(1)
        .mount(&server)
        .await;

    let route = client(&server, None).directions(ends()).await.unwrap();
    assert_eq!(route.source, RouteSource::Ors);
    assert_eq!(route.points().len(), 5);
    assert_eq!(route.start(), POTSDAM);
    assert_eq!(route.end(), LEIPZIG);
    // 21.5 km in 1548 s is 50 km/h; 108.5 km in 3152 s is about 124 km/h.
    assert!((route.speed_at(1_000.0, 0) * 3.6 - 50.0).abs() < 0.5);
    assert!((route.speed_at(route.length_m() - 1_000.0, 0) * 3.6 - 123.9).abs() < 0.5);
}

#[tokio::test]
async fn a_cached_route_is_not_fetched_again() {
    let server = route_server(1).await;
    let cache = cache_dir();

    let first = client(&server, Some(cache.path()))
        .directions(ends())
        .await
        .unwrap();
    let second = client(&server, Some(cache.path()))
        .directions(ends())
        .await
        .unwrap();
    assert_eq!(first.points(), second.points());
    assert_eq!(files(cache.path()).len(), 1);
}

/// A server that answers `expect` route requests (checked as it drops) with the
/// route of [`route_body`].
async fn route_server(expect: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(route_body()))
        .expect(expect)
        .mount(&server)
        .await;
    server
}

/// A cache directory no other test uses, removed when dropped.
fn cache_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ors-cache-")
        .tempdir()
        .unwrap()
}

/// Every file below `dir`, with its contents.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path, text));
        }
    }
    found
}

#[tokio::test]
async fn a_truncated_cache_entry_is_fetched_again_and_replaced() {
    let server = route_server(2).await;
    let cache = cache_dir();
    client(&server, Some(cache.path()))
        .directions(ends())
        .await
        .unwrap();
    let [(entry, whole)] = files(cache.path()).try_into().unwrap();
    // As a run killed mid-write would have left it before entries were renamed in.
    std::fs::write(&entry, &whole[..whole.len() / 2]).unwrap();

    let route = client(&server, Some(cache.path()))
        .directions(ends())
        .await
        .unwrap();
    assert_eq!(route.points().len(), 5);
    assert_eq!(
        files(cache.path()),
        [(entry, whole)],
        "replaced whole, nothing beside it"
    );
}

#[tokio::test]
async fn the_cache_keeps_each_service_apart() {
    let cache = cache_dir();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let server = route_server(1).await;
        for _ in 0..2 {
            client(&server, Some(cache.path()))
                .directions(ends())
                .await
                .unwrap();
        }
        servers.push(server);
    }
    // Each server was asked once (its expect(1) is checked as it drops).
    assert_eq!(files(cache.path()).len(), 2);
}

#[tokio::test]
async fn no_road_near_a_point_names_that_point() {
    let server = MockServer::start().await;
    let message = "Could not find routable point within a radius of 350.0 meters of specified coordinate 0: 13.0645000 52.3906000.";
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .respond_with(ResponseTemplate::new(404).set_body_json(ors_error(2010, message)))
        .mount(&server)
        .await;

    let err = client(&server, None).directions(ends()).await.unwrap_err();
    assert!(
        matches!(err, OrsError::NoRoadNear { end: "start", .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Potsdam at 52.39060,13.06450"),
        "{err}"
    );
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn a_refused_key_says_what_to_do() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(DIRECTIONS))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(json!({ "error": "Access to this API has been disallowed" })),
            )
            .expect(1)
            .mount(&server)
            .await;

        let err = client(&server, None).directions(ends()).await.unwrap_err();
        assert!(matches!(err, OrsError::KeyRejected { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("OPENROUTE_KEY") && text.contains("quota"),
            "{text}"
        );
        assert!(!text.contains("test-key"), "the key leaked: {text}");
    }
}

#[tokio::test]
async fn waits_out_a_rate_limit_and_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "0")
                .set_body_json(ors_error(429, "Rate limit exceeded")),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(route_body()))
        .expect(1)
        .mount(&server)
        .await;

    let route = client(&server, None).directions(ends()).await.unwrap();
    assert_eq!(route.points().len(), 5);
}

#[tokio::test]
async fn gives_up_on_a_rate_limit_that_does_not_lift() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DIRECTIONS))
        .respond_with(ResponseTemplate::new(429).insert_header("x-ratelimit-reset", "0"))
        .expect(3)
        .mount(&server)
        .await;

    let err = client(&server, None).directions(ends()).await.unwrap_err();
    assert!(
        matches!(err, OrsError::RateLimited { attempts: 3 }),
        "{err:?}"
    );
    assert!(err.is_retriable());
}

#[tokio::test]
async fn an_unreachable_service_points_to_offline_mode() {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = OrsClient::new(OrsOptions {
        key: Some("test-key".into()),
        url: format!("http://127.0.0.1:{port}"),
        attempts: 2,
        max_wait: Duration::from_millis(50),
        ..OrsOptions::default()
    })
    .unwrap()
    .unwrap();

    let err = client.directions(ends()).await.unwrap_err();
    assert!(matches!(err, OrsError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("offline route"), "{text}");
}

#[tokio::test]
async fn geocodes_a_place_name() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/geocode/search"))
        .and(query_param("text", "Wittenberge"))
        .and(header("Authorization", "test-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "features": [{ "geometry": { "type": "Point", "coordinates": [11.7512, 53.0036] },
                           "properties": { "label": "Wittenberge, BB, Germany" } }]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/geocode/search"))
        .and(query_param("text", "Atlantis"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "features": [] })))
        .mount(&server)
        .await;

    let ors = client(&server, None);
    assert_eq!(
        ors.geocode("Wittenberge").await.unwrap(),
        GeoPoint {
            lat: 53.0036,
            lon: 11.7512
        }
    );
    let err = ors.geocode("Atlantis").await.unwrap_err();
    assert!(
        matches!(err, OrsError::NotFound(ref name) if name == "Atlantis"),
        "{err:?}"
    );
}

#[test]
fn without_a_key_there_is_no_client() {
    assert!(OrsClient::new(OrsOptions::default()).unwrap().is_none());
    let blank = OrsOptions {
        key: Some("  ".into()),
        ..OrsOptions::default()
    };
    assert!(OrsClient::new(blank).unwrap().is_none());
}
