//! Decoding and validating messages read back from Kafka.
//!
//! Anything may arrive on a topic: bytes that are not UTF-8, JSON of another shape, a
//! latitude of 123. [`decode`] turns each of these into a [`DecodeError`] that says
//! what is wrong, so that a consumer can set the message aside with its reason instead
//! of stopping. Fields the model does not know are kept aside, verbatim, in the
//! same pass.

mod fast;
mod keep_unknown;

use serde::de::DeserializeOwned;

use crate::{Event, EventKind, SCHEMA_VERSION};
use keep_unknown::KeepUnknown;

/// A valid event and the fields of its message the model does not know, as a JSON
/// object (`None` when there are none).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: Event,
    pub extra: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not UTF-8 (invalid byte at position {position})")]
    NotUtf8 { position: usize },
    #[error("payload is not a valid {kind} event: {reason}")]
    Malformed { kind: EventKind, reason: String },
    #[error("field `{field}` is {value}, outside the possible range {range}")]
    Impossible {
        field: &'static str,
        value: f64,
        range: &'static str,
    },
    #[error(
        "schema_version {found} is newer than this program understands ({SCHEMA_VERSION}); upgrade it"
    )]
    UnsupportedVersion { found: u16 },
}

/// Decodes one message of the given kind and checks that its values are possible.
pub fn decode(kind: EventKind, payload: &[u8]) -> Result<Decoded, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8 {
        position: e.valid_up_to(),
    })?;
    let mut extra = None;
    let out = &mut extra;
    let event = match kind {
        EventKind::Vehicle => Event::Vehicle(parse(kind, text, out)?),
        EventKind::Gps => Event::Gps(parse(kind, text, out)?),
        EventKind::TrafficCamera => Event::TrafficCamera(parse(kind, text, out)?),
        EventKind::Weather => Event::Weather(parse(kind, text, out)?),
        EventKind::Emergency => Event::Emergency(parse(kind, text, out)?),
    };
    validate(&event)?;
    Ok(Decoded { event, extra })
}

/// The quick reader for messages as `simulate` writes them; `serde_json` for the
/// rest, keeping the fields the model does not know and naming what is wrong.
fn parse<T: DeserializeOwned>(
    kind: EventKind,
    text: &str,
    unknown: &mut Option<String>,
) -> Result<T, DecodeError> {
    if let Some(value) = fast::from_str(text) {
        return Ok(value);
    }
    let mut json = serde_json::Deserializer::from_str(text);
    T::deserialize(KeepUnknown {
        inner: &mut json,
        unknown,
    })
    .and_then(|value| json.end().map(|()| value))
    .map_err(|e| DecodeError::Malformed {
        kind,
        reason: e.to_string(),
    })
}

fn validate(event: &Event) -> Result<(), DecodeError> {
    let (version, lat, lon) = match event {
        Event::Vehicle(e) => {
            check("speed_kmh", e.speed_kmh, 0.0, 500.0, "0 to 500")?;
            check("heading_deg", e.heading_deg, 0.0, 360.0, "0 to 360")?;
            check("fuel_level_pct", e.fuel_level_pct, 0.0, 100.0, "0 to 100")?;
            check("odometer_km", e.odometer_km, 0.0, 1e7, "0 to 10,000,000")?;
            (e.schema_version, e.lat, e.lon)
        }
        Event::Gps(e) => {
            check("speed_kmh", e.speed_kmh, 0.0, 500.0, "0 to 500")?;
            check("heading_deg", e.heading_deg, 0.0, 360.0, "0 to 360")?;
            check("accuracy_m", e.accuracy_m, 0.0, 1e4, "0 to 10,000")?;
            (e.schema_version, e.lat, e.lon)
        }
        Event::TrafficCamera(e) => {
            check(
                "measured_speed_kmh",
                e.measured_speed_kmh,
                0.0,
                500.0,
                "0 to 500",
            )?;
            (e.schema_version, e.lat, e.lon)
        }
        Event::Weather(e) => {
            check("temperature_c", e.temperature_c, -90.0, 60.0, "-90 to 60")?;
            check("humidity_pct", e.humidity_pct, 0.0, 100.0, "0 to 100")?;
            check(
                "precipitation_mm_h",
                e.precipitation_mm_h,
                0.0,
                500.0,
                "0 to 500",
            )?;
            check("wind_speed_kmh", e.wind_speed_kmh, 0.0, 500.0, "0 to 500")?;
            check(
                "wind_direction_deg",
                e.wind_direction_deg,
                0.0,
                360.0,
                "0 to 360",
            )?;
            (e.schema_version, e.lat, e.lon)
        }
        Event::Emergency(e) => (e.schema_version, e.lat, e.lon),
    };
    if version > SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    check("lat", lat, -90.0, 90.0, "-90 to 90")?;
    check("lon", lon, -180.0, 180.0, "-180 to 180")
}

fn check(
    field: &'static str,
    value: f64,
    min: f64,
    max: f64,
    range: &'static str,
) -> Result<(), DecodeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(DecodeError::Impossible {
            field,
            value,
            range,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GPS: &str = r#"{"schema_version":1,"id":"6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11",
        "device_id":"0d7c6b8a-1f2e-4d3c-8b7a-6f5e4d3c2b1a","trip_id":"1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d",
        "timestamp":"2026-11-26T09:30:00.250Z","lat":52.39,"lon":13.06,"speed_kmh":48.2,
        "heading_deg":181.5,"accuracy_m":3.0}"#;

    #[test]
    fn decodes_a_valid_reading() {
        let Event::Gps(gps) = decode(EventKind::Gps, GPS.as_bytes()).unwrap().event else {
            panic!("decoded into another kind")
        };
        assert_eq!(gps.lat, 52.39);
        assert_eq!(gps.timestamp.to_string(), "2026-11-26T09:30:00.250Z");
    }

    #[test]
    fn keeps_fields_it_does_not_know_verbatim() {
        let head = r#"{"satellites":9,"fix":{"mode":"3d", "dop":[1.2,0.9]},"#;
        let tail = r#","say \"hi\"":"a\u00e9\\"}"#;
        let extended = format!("{head}{}{tail}", &GPS[1..GPS.len() - 1]);
        let decoded = decode(EventKind::Gps, extended.as_bytes()).unwrap();
        assert_eq!(
            decoded.extra.as_deref(),
            Some(
                r#"{"satellites":9,"fix":{"mode":"3d", "dop":[1.2,0.9]},"say \"hi\"":"a\u00e9\\"}"#
            )
        );
        let plain = decode(EventKind::Gps, GPS.as_bytes()).unwrap();
        assert_eq!(plain.extra, None);
        assert_eq!(plain.event, decoded.event);
        let keys: serde_json::Value =
            serde_json::from_str(decoded.extra.as_deref().unwrap()).unwrap();
        assert_eq!(keys["say \"hi\""], "aé\\");
    }

    #[test]
    fn rejects_a_repeated_field_and_trailing_text() {
        let twice = GPS.replacen('{', r#"{"lat":1.0,"#, 1);
        let err = decode(EventKind::Gps, twice.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("duplicate field `lat`"), "{err}");
        let trailing = format!("{GPS} {{}}");
        let err = decode(EventKind::Gps, trailing.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("trailing characters"), "{err}");
    }

    #[test]
    fn rejects_an_impossible_latitude() {
        let bad = GPS.replace("52.39", "123.0");
        let err = decode(EventKind::Gps, bad.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Impossible {
                field: "lat",
                value: 123.0,
                range: "-90 to 90"
            }
        );
    }

    #[test]
    fn names_a_missing_field() {
        let bad = GPS.replace(r#""lon":13.06,"#, "");
        let err = decode(EventKind::Gps, bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("missing field `lon`"), "{err}");
    }

    #[test]
    fn names_a_mistyped_field() {
        let bad = GPS.replace("48.2", r#""fast""#);
        let err = decode(EventKind::Gps, bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn reports_where_utf8_breaks() {
        let err = decode(EventKind::Gps, b"{\"a\":\xff}").unwrap_err();
        assert_eq!(err, DecodeError::NotUtf8 { position: 5 });
    }

    #[test]
    fn refuses_a_newer_schema() {
        let newer = GPS.replace(r#""schema_version":1"#, r#""schema_version":9"#);
        let err = decode(EventKind::Gps, newer.as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion { found: 9 });
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for kind in EventKind::ALL {
                let _ = decode(kind, &bytes);
            }
        }

        #[test]
        fn never_panics_on_mutated_events(cut in 0usize..400, byte in any::<u8>()) {
            let mut bytes = GPS.as_bytes().to_vec();
            let at = cut % bytes.len();
            bytes[at] = byte;
            let _ = decode(EventKind::Gps, &bytes);
        }
    }
}
