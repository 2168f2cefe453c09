//! Event time on the wire: RFC 3339 in UTC with exactly three fractional digits
//! (`2026-11-26T09:30:00.250Z`), the form DuckDB, Snowflake and most JSON tools parse
//! without a format string.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Truncates to whole milliseconds, the precision the wire carries, so that a
    /// value survives a round trip unchanged.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at))
    }

    pub fn now() -> Self {
        Self::new(Utc::now())
    }

    pub fn from_millis(millis: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(millis).map(Self)
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// This instant, `span` later: to the millisecond, and no later than the last
    /// instant a timestamp can hold.
    pub fn plus(&self, span: std::time::Duration) -> Self {
        Duration::from_std(span)
            .ok()
            .and_then(|span| self.0.checked_add_signed(span))
            .map_or(Self(DateTime::<Utc>::MAX_UTC), Self::new)
    }

    /// This instant, `span` earlier, and no earlier than the first a timestamp can hold.
    pub fn minus(&self, span: std::time::Duration) -> Self {
        Duration::from_std(span)
            .ok()
            .and_then(|span| self.0.checked_sub_signed(span))
            .map_or(Self(DateTime::<Utc>::MIN_UTC), Self::new)
    }

    /// Whether the wire can carry this instant: years 0 to 9999, as RFC 3339 has them.
    pub fn has_wire_form(&self) -> bool {
        self.wire_form().is_some()
    }

    /// The time from `earlier` to this instant; zero if `earlier` is not earlier.
    pub fn since(&self, earlier: Timestamp) -> std::time::Duration {
        (self.0 - earlier.0).to_std().unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(wire) = self.wire_form() {
            return f.write_str(wire.as_str());
        }
        // Years before 0 or after 9999: not on the wire, but printable.
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis().min(999)
        )
    }
}

/// The 24 ASCII bytes of a timestamp's wire form.
struct WireForm([u8; 24]);

impl WireForm {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("digits and separators are ASCII")
    }
}

impl Timestamp {
    /// `2026-11-26T09:30:00.250Z`, digit by digit, for years 0 to 9999. Written by
    /// hand rather than through a format string: events are encoded a million times
    /// a second, and `write!` with seven padded numbers would cost more than the rest
    /// of a field's encoding.
    fn wire_form(&self) -> Option<WireForm> {
        let t = self.0.naive_utc();
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let millis = (t.nanosecond() / 1_000_000).min(999);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let fields = [
            (4, year),
            (7, t.month()),
            (10, t.day()),
            (13, t.hour()),
            (16, t.minute()),
            (19, t.second()),
            (23, millis),
        ];
        // Each field ends where its separator starts, and is padded with the zeros
        // already there.
        for (end, mut n) in fields {
            let mut at = end;
            while n > 0 {
                at -= 1;
                out[at] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        Some(WireForm(out))
    }
}

impl FromStr for Timestamp {
    type Err = chrono::ParseError;

    /// Accepts any RFC 3339 offset and converts it to UTC.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Self::from_wire_form(s) {
            Some(t) => Ok(t),
            None => DateTime::parse_from_rfc3339(s).map(|t| Self::new(t.with_timezone(&Utc))),
        }
    }
}

impl Timestamp {
    /// Reads the form [`Display`](fmt::Display) writes, `2026-11-26T09:30:00.250Z`,
    /// without a general parser: the loader reads one or more per message. Any other
    /// form, or an impossible date, is `None`, left to the RFC 3339 parser.
    fn from_wire_form(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if b.len() != 24
            || b[19] != b'.'
            || b[23] != b'Z'
            || separators.iter().any(|&(at, c)| b[at] != c)
        {
            return None;
        }
        let number = |from: usize, to: usize| {
            b[from..to].iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
        let at = date.and_hms_milli_opt(
            number(11, 13)?,
            number(14, 16)?,
            number(17, 19)?,
            number(20, 23)?,
        )?;
        Some(Self(at.and_utc()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.wire_form() {
            Some(wire) => serializer.serialize_str(wire.as_str()),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;

        impl Visitor<'_> for Text {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }

            // Borrowed or not, the text is read in place: no copy per value.
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                text.parse()
                    .map_err(|e| E::custom(format!("invalid RFC 3339 timestamp {text:?}: {e}")))
            }
        }

        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_by_spans_and_measures_them() {
        let t = Timestamp::from_millis(1_764_149_400_250).unwrap();
        let span = std::time::Duration::from_millis(61_500);
        assert_eq!(t.plus(span).millis(), 1_764_149_461_750);
        assert_eq!(t.minus(span).millis(), 1_764_149_338_750);
        assert_eq!(t.plus(span).since(t), span);
        assert_eq!(t.since(t.plus(span)), std::time::Duration::ZERO);
        let far = t.plus(std::time::Duration::MAX);
        assert!(far > t, "saturates instead of overflowing");
    }

    #[test]
    fn writes_milliseconds_and_zulu() {
        let t = Timestamp::from_millis(1_764_149_400_250).unwrap();
        assert_eq!(t.to_string(), "2025-11-26T09:30:00.250Z");
    }

    #[test]
    fn the_wire_form_is_chronos_rfc_3339_for_every_year_it_covers() {
        // From year 0 to 9999 in uneven steps, so that every digit of every field varies.
        let (first, last) = (-62_167_219_200_000_i64, 253_402_300_799_999_i64);
        let mut millis = first;
        while millis <= last {
            let t = Timestamp::from_millis(millis).unwrap();
            let chrono = t.0.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(t.to_string(), chrono);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{chrono}\""));
            millis += 31_557_601_733;
        }
        let outside = Timestamp::from_millis(last + 1).unwrap();
        assert_eq!(outside.to_string(), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn round_trips_through_text() {
        let t = Timestamp::from_millis(1_700_000_000_007).unwrap();
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn reads_its_own_form_and_any_other_rfc_3339() {
        for text in [
            "2026-11-26T09:30:00.250Z",
            "2024-02-29T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z",
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
            let general = DateTime::parse_from_rfc3339(text).unwrap();
            assert_eq!(t.millis(), general.timestamp_millis());
        }
        assert_eq!(
            "2026-11-26T09:30:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .millis()
                % 1000,
            0
        );
        for bad in [
            "2026-02-30T09:30:00.250Z",
            "2026-11-26T24:30:00.250Z",
            "2026-11-26T09:30:00.2x0Z",
            "2026-11-26T09:30:00.250",
            "+026-11-26T09:30:00.250Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn converts_offsets_to_utc() {
        let t: Timestamp = "2026-01-01T01:00:00.5+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.500Z");
    }

    #[test]
    fn truncates_below_a_millisecond() {
        let at = DateTime::from_timestamp(10, 1_999_999).unwrap();
        assert_eq!(Timestamp::new(at).millis(), 10_001);
    }
}
