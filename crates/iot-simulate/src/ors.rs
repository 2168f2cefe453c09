//! The OpenRouteService client: driving directions and place-name search.
//!
//! Answers are cached on disk, because the free plan allows 40 routes a minute and
//! 2,000 a day and a fleet drives the same route again and again. `429 Too Many
//! Requests` and gateway errors are retried after the wait the service asks for;
//! every other failure becomes an [`OrsError`] that tells the user what to change.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iot_model::RouteSource;
use iot_runtime::{Retriable, RetryPolicy};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::json;

use crate::geo::GeoPoint;
use crate::route::{Route, RouteError, Stretch};

pub const DEFAULT_URL: &str = "https://api.openrouteservice.org";

/// What to do when the key is unusable or the service is out of reach.
const GO_OFFLINE: &str = "or unset OPENROUTE_KEY to drive an offline route";

#[derive(Debug, thiserror::Error)]
pub enum OrsError {
    #[error(
        "OpenRouteService refused the API key (HTTP {status}): the key in OPENROUTE_KEY is invalid \
         or today's quota (2,000 routes on the free plan) is spent; check it on your \
         openrouteservice.org dashboard, {GO_OFFLINE}"
    )]
    KeyRejected { status: u16 },
    #[error(
        "OpenRouteService is still rate-limiting after {attempts} attempts (the free plan allows \
         40 routes a minute); try again in a minute, {GO_OFFLINE}"
    )]
    RateLimited { attempts: u32 },
    #[error(
        "there is no road within reach of the {end} ({place}): {message}; choose a point on or near a road"
    )]
    NoRoadNear {
        end: &'static str,
        place: String,
        message: String,
    },
    #[error(
        "could not reach OpenRouteService at {url}; check the network and --ors-url, {GO_OFFLINE}"
    )]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("OpenRouteService answered HTTP {status}: {message}")]
    Service { status: u16, message: String },
    /// Rate-limited or a gateway error: worth another attempt, as the service says.
    #[error("OpenRouteService is busy (HTTP {status}): {message}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("OpenRouteService's answer could not be understood: {0}")]
    BadAnswer(String),
    #[error("OpenRouteService knows no place called {0:?}")]
    NotFound(String),
    #[error(
        "the HTTP client for OpenRouteService cannot be set up (check the proxy variables and \
         the system's TLS certificates), {GO_OFFLINE}"
    )]
    Client {
        #[source]
        source: reqwest::Error,
    },
}

impl Retriable for OrsError {
    /// Whether the same request may succeed later without any change by the user.
    fn is_retriable(&self) -> bool {
        matches!(
            self,
            OrsError::RateLimited { .. } | OrsError::Unreachable { .. } | OrsError::Busy { .. }
        ) || matches!(self, OrsError::Service { status, .. } if *status >= 500)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            OrsError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<RouteError> for OrsError {
    fn from(e: RouteError) -> Self {
        OrsError::BadAnswer(e.to_string())
    }
}

/// Connection settings for OpenRouteService.
#[derive(Debug, Clone)]
pub struct OrsOptions {
    /// API key; read from OPENROUTE_KEY only. Without one, routes are made offline.
    pub key: Option<String>,
    /// Base URL, for a self-hosted instance or a test server.
    pub url: String,
    /// Where answers are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Attempts for a request that is rate-limited or meets a gateway error.
    pub attempts: u32,
    /// The longest single wait between attempts, whatever the service asks for.
    pub max_wait: Duration,
}

impl Default for OrsOptions {
    fn default() -> Self {
        Self {
            key: None,
            url: DEFAULT_URL.into(),
            cache_dir: None,
            attempts: 5,
            max_wait: Duration::from_secs(65),
        }
    }
}

/// The two ends of a route, with the names the user gave them for messages.
#[derive(Debug, Clone, Copy)]
pub struct Ends<'a> {
    pub from: (&'a str, GeoPoint),
    pub to: (&'a str, GeoPoint),
}

pub struct OrsClient {
    http: reqwest::Client,
    key: String,
    options: OrsOptions,
}

impl OrsClient {
    /// A client, if a key is configured.
    pub fn new(options: OrsOptions) -> Result<Option<Self>, OrsError> {
        let Some(key) = options.key.clone().filter(|k| !k.trim().is_empty()) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!(
                "iot-streaming-simulate/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|source| OrsError::Client { source })?;
        Ok(Some(Self { http, key, options }))
    }

    /// A driving route between the two ends.
    pub async fn directions(&self, ends: Ends<'_>) -> Result<Route, OrsError> {
        let (from, to) = (ends.from.1, ends.to.1);
        let cache_name = format!("directions-{from}-{to}.json");
        let url = format!(
            "{}/v2/directions/driving-car/geojson",
            self.options.url.trim_end_matches('/')
        );
        let body = json!({ "coordinates": [[from.lon, from.lat], [to.lon, to.lat]] });
        self.cached(
            &cache_name,
            || self.http.post(&url).json(&body),
            Some(ends),
            parse_directions,
        )
        .await
    }

    /// The position of a place name, by the service's geocoder.
    pub async fn geocode(&self, name: &str) -> Result<GeoPoint, OrsError> {
        let cache_name = format!("geocode-{}.json", file_safe(name));
        let url = format!("{}/geocode/search", self.options.url.trim_end_matches('/'));
        self.cached(
            &cache_name,
            || self.http.get(&url).query(&[("text", name), ("size", "1")]),
            None,
            |text| parse_geocode(text).ok_or_else(|| OrsError::NotFound(name.to_owned())),
        )
        .await
    }

    /// The answer from the cache, or else from the service (and then cached, if
    /// `parse` takes it). Entries are kept per service URL, so that a test server or
    /// a self-hosted ORS never answers for another; one that does not parse (cut
    /// short, or written by another version) counts as missing.
    async fn cached<T>(
        &self,
        file_name: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        ends: Option<Ends<'_>>,
        parse: impl Fn(&str) -> Result<T, OrsError>,
    ) -> Result<T, OrsError> {
        let path = self.options.cache_dir.as_ref().map(|dir| {
            dir.join(file_safe(self.options.url.trim_end_matches('/')))
                .join(file_name)
        });
        if let Some(path) = &path
            && let Ok(text) = std::fs::read_to_string(path)
        {
            match parse(&text) {
                Ok(answer) => {
                    tracing::debug!(file = %path.display(), "route answer from cache");
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "a cached OpenRouteService answer is unreadable; asking the service again");
                }
            }
        }
        let text = self.send(request, ends).await?;
        let answer = parse(&text)?;
        if let Some(path) = path
            && let Err(e) = write_whole(&path, &text)
        {
            // A cache that cannot be written costs quota, not correctness.
            tracing::warn!(file = %path.display(), error = %e, "cannot cache the OpenRouteService answer");
        }
        Ok(answer)
    }

    /// One request under the retry policy: a rate limit or a gateway error is
    /// tried again, as long as the service asks (`Retry-After`, ORS's
    /// `x-ratelimit-reset`) or doubling from a second, up to `max_wait` a pause, for
    /// `attempts` attempts; so is a service out of reach.
    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
        ends: Option<Ends<'_>>,
    ) -> Result<String, OrsError> {
        let attempts = self.options.attempts.max(1);
        let policy = RetryPolicy {
            first: Duration::from_secs(1),
            max: self.options.max_wait,
            limit: Duration::MAX,
            attempts,
        };
        let outcome = policy
            .run_async("an OpenRouteService request", || {
                self.attempt(&request, ends)
            })
            .await;
        match outcome {
            Err(OrsError::Busy { status: 429, .. }) => Err(OrsError::RateLimited { attempts }),
            Err(OrsError::Busy {
                status, message, ..
            }) => Err(OrsError::Service { status, message }),
            done => done,
        }
    }

    async fn attempt(
        &self,
        request: &impl Fn() -> reqwest::RequestBuilder,
        ends: Option<Ends<'_>>,
    ) -> Result<String, OrsError> {
        let unreachable = |source| OrsError::Unreachable {
            url: self.options.url.clone(),
            source,
        };
        let response = request()
            .header("Authorization", &self.key)
            .header("Accept", "application/json, application/geo+json")
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let retry_after = asked_wait(response.headers(), unix_now());
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            Ok(text)
        } else if status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 502..=504) {
            Err(OrsError::Busy {
                status: status.as_u16(),
                retry_after,
                message: text.chars().take(300).collect(),
            })
        } else {
            Err(answer_error(status, &text, ends))
        }
    }
}

/// How long the service asked to wait: `Retry-After`, or ORS's `x-ratelimit-reset`
/// (a Unix time in seconds).
fn asked_wait(headers: &HeaderMap, now_s: u64) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    header(RETRY_AFTER.as_str())
        .or_else(|| header("x-ratelimit-reset").map(|reset| reset.saturating_sub(now_s)))
        .map(Duration::from_secs)
}

fn answer_error(status: StatusCode, text: &str, ends: Option<Ends<'_>>) -> OrsError {
    #[derive(Deserialize)]
    struct Body {
        error: serde_json::Value,
    }
    let (code, message) = match serde_json::from_str::<Body>(text) {
        Ok(Body { error }) => (
            error.get("code").and_then(|c| c.as_i64()),
            error
                .get("message")
                .and_then(|m| m.as_str())
                .or(error.as_str())
                .unwrap_or(text)
                .to_owned(),
        ),
        Err(_) => (None, text.chars().take(300).collect()),
    };
    match (status.as_u16(), code, ends) {
        (401 | 403, _, _) => OrsError::KeyRejected {
            status: status.as_u16(),
        },
        (404, Some(2010), Some(ends)) => {
            // "…within a radius of 350.0 meters of specified coordinate 1: …"
            let (end, (name, point)) = if message.contains("coordinate 1") {
                ("destination", ends.to)
            } else {
                ("start", ends.from)
            };
            OrsError::NoRoadNear {
                end,
                place: format!("{name} at {point}"),
                message,
            }
        }
        _ => OrsError::Service {
            status: status.as_u16(),
            message,
        },
    }
}

fn parse_directions(text: &str) -> Result<Route, OrsError> {
    #[derive(Deserialize)]
    struct Answer {
        features: Vec<Feature>,
    }
    #[derive(Deserialize)]
    struct Feature {
        geometry: Geometry,
        properties: Properties,
    }
    #[derive(Deserialize)]
    struct Geometry {
        coordinates: Vec<Vec<f64>>,
    }
    #[derive(Deserialize)]
    struct Properties {
        #[serde(default)]
        segments: Vec<Segment>,
    }
    #[derive(Deserialize)]
    struct Segment {
        #[serde(default)]
        steps: Vec<Step>,
    }
    #[derive(Deserialize)]
    struct Step {
        distance: f64,
        duration: f64,
        way_points: [usize; 2],
    }

    let answer: Answer =
        serde_json::from_str(text).map_err(|e| OrsError::BadAnswer(e.to_string()))?;
    let feature = answer
        .features
        .into_iter()
        .next()
        .ok_or_else(|| OrsError::BadAnswer("no route in the answer".into()))?;
    let points = feature
        .geometry
        .coordinates
        .iter()
        .map(|c| match c[..] {
            [lon, lat, ..] => GeoPoint::new(lat, lon),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| OrsError::BadAnswer("a coordinate is not a [lon, lat] position".into()))?;
    let stretches: Vec<Stretch> = feature
        .properties
        .segments
        .iter()
        .flat_map(|s| &s.steps)
        .map(|s| Stretch {
            from: s.way_points[0],
            to: s.way_points[1],
            distance_m: s.distance,
            duration_s: s.duration,
        })
        .collect();
    Ok(Route::new(RouteSource::Ors, points, &stretches)?)
}

fn parse_geocode(text: &str) -> Option<GeoPoint> {
    let answer: serde_json::Value = serde_json::from_str(text).ok()?;
    let c = answer.pointer("/features/0/geometry/coordinates")?;
    GeoPoint::new(c.get(1)?.as_f64()?, c.get(0)?.as_f64()?)
}

/// Writes `text` to `path` through a temporary file beside it and a rename, so that
/// a run killed mid-write leaves the old entry or none, never half of one.
fn write_whole(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn waits_as_long_as_the_service_asks() {
        let mut headers = HeaderMap::new();
        assert_eq!(asked_wait(&headers, 1_000_000), None);
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1000012"));
        assert_eq!(
            asked_wait(&headers, 1_000_000),
            Some(Duration::from_secs(12))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(
            asked_wait(&headers, 1_000_000),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn names_the_end_that_has_no_road() {
        let ends = Ends {
            from: (
                "Potsdam",
                GeoPoint {
                    lat: 52.39,
                    lon: 13.06,
                },
            ),
            to: (
                "the North Sea",
                GeoPoint {
                    lat: 54.5,
                    lon: 6.0,
                },
            ),
        };
        let body = r#"{"error":{"code":2010,"message":"Could not find routable point within a radius of 350.0 meters of specified coordinate 1: 6.0000000 54.5000000."}}"#;
        let err = answer_error(StatusCode::NOT_FOUND, body, Some(ends));
        let text = err.to_string();
        assert!(
            text.contains("destination (the North Sea at 54.50000,6.00000)"),
            "{text}"
        );
    }

    #[test]
    fn reads_a_geocoder_answer() {
        let body = r#"{"features":[{"geometry":{"type":"Point","coordinates":[13.06,52.39]}}]}"#;
        assert_eq!(parse_geocode(body), GeoPoint::new(52.39, 13.06));
        assert_eq!(parse_geocode(r#"{"features":[]}"#), None);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_safe("Bad Homburg v.d. Höhe"), "bad_homburg_v_d__höhe");
    }
}
