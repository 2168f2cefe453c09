//! Reading an event's JSON in less time, for the messages `simulate` writes.
//!
//! `load` decodes every message it loads, on the thread that also reads Kafka, so its
//! rate follows the CPU decoding spends. [`from_str`] reads the common case directly:
//! one flat object whose keys are all the struct's own, whose strings hold no escape
//! and whose numbers fit their fields. Anything else (an escape, an unknown or
//! repeated field, a nested value or `null`, a number where a string is expected)
//! makes it give up, and the message is read again by `serde_json`, which keeps the
//! unknown fields or says what is wrong. What it accepts it reads as `serde_json`
//! would: a property test compares the two on events and on their mutations.

use std::fmt;

use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

/// `text` read as `T`, or `None` where the quick reading does not apply.
pub(crate) fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Option<T> {
    let mut reader = Reader { text, at: 0 };
    let value = T::deserialize(&mut reader).ok()?;
    reader.skip_whitespace();
    (reader.at == text.len()).then_some(value)
}

/// Why the quick reading gave up; never shown: the full reader says what is wrong.
#[derive(Debug)]
pub(crate) struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a flat event the quick reader takes")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Declined
    }
}

/// The bytes that end a string the quick reader takes: its closing quote, or what
/// it leaves to `serde_json` (an escape, a control character).
static ENDS_STRING: [bool; 256] = {
    let mut ends = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        ends[b] = true;
        b += 1;
    }
    ends[b'"' as usize] = true;
    ends[b'\\' as usize] = true;
    ends
};

/// Where the first byte of [`ENDS_STRING`] sits in `bytes`, looked for eight bytes
/// at a time: most of a message's bytes are inside strings (keys, UUIDs,
/// timestamps), so this is the quick reader's inner loop. Strings are short, so a
/// word read plainly beats a vectorised search's set-up (memchr).
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `word` that is zero. A borrow can set bits
    // above a zero byte too, never below the first: the lowest is exact.
    let zeros = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = zeros(word ^ (ONES * u64::from(b'"')));
        let backslash = zeros(word ^ (ONES * u64::from(b'\\')));
        // Bytes below 0x20, by the same borrow (bytes from 0x80 up are excluded).
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        let found = quote | backslash | control;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes[at..]
        .iter()
        .position(|&b| ENDS_STRING[usize::from(b)])?;
    Some(at + tail)
}

/// A number of at most 15 digits and no exponent, such as `simulate` writes
/// (`52.390595`, `206.9`): its digits as an integer and the power of ten below
/// them are both exact doubles, so one division rounds it as a full parser would
/// (Clinger's fast path), in about half the instructions of Rust's general parser.
/// `None` for anything else, which that parser reads.
fn short_decimal(token: &str) -> Option<f64> {
    /// The powers of ten a double holds exactly, as far as 15 digits need.
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, bytes) = match token.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        bytes => (false, bytes),
    };
    // 15 digits and a point at most; checked first, so `digits` cannot overflow.
    if bytes.len() > 16 {
        return None;
    }
    let mut digits: u64 = 0;
    let mut point = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'0'..=b'9' => digits = digits * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    let fraction = point.map_or(0, |at| bytes.len() - at - 1);
    if bytes.len() - usize::from(point.is_some()) > 15 {
        return None;
    }
    // Below 10^15, under 2^53: the integer converts exactly.
    let magnitude = digits as f64 / POWERS[fraction];
    Some(if negative { -magnitude } else { magnitude })
}

struct Reader<'de> {
    text: &'de str,
    at: usize,
}

impl<'de> Reader<'de> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Passes over what JSON counts as whitespace, and nothing else.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Declined> {
        self.skip_whitespace();
        if self.peek() != Some(byte) {
            return Err(Declined);
        }
        self.at += 1;
        Ok(())
    }

    /// A string with no escape and no control character, borrowed from the text.
    fn string(&mut self) -> Result<&'de str, Declined> {
        self.expect(b'"')?;
        let start = self.at;
        let rest = &self.text.as_bytes()[start..];
        let len = string_end(rest).ok_or(Declined)?;
        if rest[len] != b'"' {
            return Err(Declined);
        }
        self.at = start + len + 1;
        // Both ends sit at ASCII bytes, so on character boundaries.
        Ok(&self.text[start..start + len])
    }

    /// A number as JSON's grammar writes it, and whether it is a bare integer.
    fn number(&mut self) -> Result<(&'de str, bool), Declined> {
        self.skip_whitespace();
        let bytes = self.text.as_bytes();
        let digits = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let start = self.at;
        let mut at = start + usize::from(bytes.get(start) == Some(&b'-'));
        at = match bytes.get(at) {
            Some(b'0') => at + 1,
            Some(b'1'..=b'9') => digits(at),
            _ => return Err(Declined),
        };
        let mut integer = true;
        if bytes.get(at) == Some(&b'.') {
            integer = false;
            let end = digits(at + 1);
            if end == at + 1 {
                return Err(Declined);
            }
            at = end;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            integer = false;
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            let end = digits(at);
            if end == at {
                return Err(Declined);
            }
            at = end;
        }
        self.at = at;
        Ok((&self.text[start..at], integer))
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Declined;

    /// Whatever the events do not hold: nested values, `null`, `true`, and the
    /// values of fields a struct does not declare.
    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        self.expect(b'{')?;
        visitor.visit_map(Fields {
            reader: self,
            first: true,
        })
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_borrowed_str(self.string()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_str(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_enum(BorrowedStrDeserializer::new(self.string()?))
    }

    /// Rounded to the nearest double, as `serde_json` (with `float_roundtrip`) and
    /// Rust's parser both do; out of range is `serde_json`'s error, not infinity.
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        let (token, _) = self.number()?;
        let value = match short_decimal(token) {
            Some(value) => value,
            None => token.parse().map_err(|_| Declined)?,
        };
        if !value.is_finite() {
            return Err(Declined);
        }
        visitor.visit_f64(value)
    }

    /// Unsigned integers, the only kind the events hold; whether one fits its
    /// field is the field's visitor's to say, as with `serde_json`.
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        match self.number()? {
            (token, true) if !token.starts_with('-') => {
                visitor.visit_u64(token.parse().map_err(|_| Declined)?)
            }
            _ => Err(Declined),
        }
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        self.deserialize_u64(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u128 f32 char bytes byte_buf option unit unit_struct
        newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The fields of one object, each key handed to the struct's own field visitor.
struct Fields<'r, 'de> {
    reader: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Fields<'_, 'de> {
    type Error = Declined;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Declined> {
        self.reader.skip_whitespace();
        match self.reader.peek() {
            Some(b'}') => {
                self.reader.at += 1;
                return Ok(None);
            }
            Some(b',') if !self.first => self.reader.at += 1,
            _ if self.first => {}
            _ => return Err(Declined),
        }
        self.first = false;
        let key = self.reader.string()?;
        self.reader.expect(b':')?;
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Declined> {
        seed.deserialize(&mut *self.reader)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Serialize;
    use uuid::Uuid;

    use super::*;
    use crate::{FuelType, Timestamp};

    /// Every kind of value an event holds.
    #[derive(Debug, Serialize, Deserialize)]
    struct Sample {
        text: String,
        x: f64,
        n: u16,
        id: Uuid,
        at: Timestamp,
        fuel: FuelType,
    }

    /// Both readings of `text`, as text: `{:?}` tells -0.0 from 0.0, `==` does not.
    fn both(text: &str) -> (Option<String>, Option<String>) {
        let ours = from_str::<Sample>(text).map(|s| format!("{s:?}"));
        let theirs = serde_json::from_str::<Sample>(text)
            .ok()
            .map(|s| format!("{s:?}"));
        (ours, theirs)
    }

    /// One value written another way than `simulate` writes it: some ways JSON
    /// allows, some it does not.
    fn rewrite(value: &serde_json::Value, choice: u8) -> String {
        let plain = value.to_string();
        let x = value.as_f64();
        let others = [
            x.map(|x| format!("{x:e}")),
            x.map(|x| format!("{x:E}")),
            x.map(|x| format!("{}", x.trunc() as i64)),
            value.as_str().map(|s| format!("\"\\u0041{s}\"")),
            value.as_str().map(|s| format!("\"{s}\u{1}\"")),
            Some(format!("\"{}\"", plain.trim_matches('"'))),
            Some(format!("[{plain}]")),
        ];
        let fixed = [
            "-0",
            "-0.0",
            "1e400",
            "0.1e-400",
            "01",
            "1.",
            ".5",
            "-",
            "65536",
            "1e2",
            "null",
            "12345678901234567890123.5e-3",
            "18446744073709551616",
        ];
        let choice = usize::from(choice);
        match others.get(choice % 20) {
            Some(other) => other.clone().unwrap_or(plain),
            None => fixed[choice % fixed.len()].to_owned(),
        }
    }

    const SPACES: [&str; 4] = ["", " ", "\n\t", "\r "];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Bytes mostly plain, now and then one that ends a string, a control byte
        /// or one from 0x80 up (whose borrows the word-at-a-time search must not
        /// mistake), at any distance from a word's start.
        #[test]
        fn finds_a_strings_end_where_a_byte_at_a_time_does(
            bytes in proptest::collection::vec(
                prop_oneof![
                    8 => b'0'..=b'z',
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    1 => 0x20u8..=0xff,
                ],
                0..40,
            ),
        ) {
            let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_end(&bytes), expected);
        }

        /// Decimals of up to 15 digits read exactly as Rust's parser reads them;
        /// longer ones, and exponents, are left to it.
        #[test]
        fn reads_short_decimals_as_rusts_parser_does(
            digits in 0u64..1_000_000_000_000_000_000,
            width in 1usize..=19,
            point in 0usize..=19,
            negative in any::<bool>(),
            exponent in proptest::option::of(-30i32..30),
        ) {
            let text = format!("{:0width$}", digits % 10u64.pow(width as u32));
            let point = point.min(text.len() - 1);
            let mut token = if point == 0 {
                text
            } else {
                format!("{}.{}", &text[..text.len() - point], &text[text.len() - point..])
            };
            if negative {
                token.insert(0, '-');
            }
            if let Some(e) = exponent {
                token.push_str(&format!("e{e}"));
            }
            let quick = short_decimal(&token);
            prop_assert_eq!(quick.is_some(), exponent.is_none() && width <= 15, "{}", token);
            if let Some(quick) = quick {
                let parsed: f64 = token.parse().unwrap();
                prop_assert_eq!(quick.to_bits(), parsed.to_bits(), "{}", token);
            }
        }

        #[test]
        fn reads_what_simulate_writes_as_serde_json_does(
            text in any::<String>(),
            x in any::<f64>().prop_filter("finite", |x| x.is_finite()),
            n in any::<u16>(),
            id in any::<u128>(),
            millis in -62_167_219_200_000_i64..253_402_300_799_999,
            fuel in prop::sample::select(FuelType::ALL),
        ) {
            let sample = Sample { text, x, n, id: Uuid::from_u128(id), at: Timestamp::from_millis(millis).unwrap(), fuel };
            let mut json = Vec::new();
            crate::encode::to_vec(&mut json, &sample).unwrap();
            let json = String::from_utf8(json).unwrap();
            let (ours, theirs) = both(&json);
            prop_assert!(theirs.is_some());
            // The quick reader takes every message with nothing to unescape.
            if !json.contains('\\') {
                prop_assert!(ours.is_some(), "declined {}", json);
            }
            if ours.is_some() {
                prop_assert_eq!(ours, theirs);
            }
        }

        /// Fields in any order, repeated or unknown, values written every way JSON
        /// allows and some it does not, whitespace anywhere: whatever the quick reader
        /// takes, `serde_json` reads alike.
        #[test]
        fn takes_nothing_serde_json_reads_otherwise(
            x in any::<f64>().prop_filter("finite", |x| x.is_finite()),
            n in any::<u16>(),
            choices in proptest::collection::vec(any::<u8>(), 48),
            order in Just(()).prop_perturb(|_, mut rng| {
                let mut keys: Vec<usize> = (0..8).collect();
                for i in (1..keys.len()).rev() {
                    keys.swap(i, rng.random_range(0..=i));
                }
                keys
            }),
        ) {
            let sample = Sample {
                text: "Volkswagen ID.4 é".into(), x, n,
                id: Uuid::from_u128(u128::from(n) << 64 | 7),
                at: Timestamp::from_millis(1_764_000_000_000).unwrap(),
                fuel: FuelType::Electric,
            };
            let serde_json::Value::Object(fields) = serde_json::to_value(&sample).unwrap() else {
                unreachable!("a struct is an object")
            };
            let mut fields: Vec<(String, serde_json::Value)> = fields.into_iter().collect();
            fields.push(("n".into(), serde_json::json!(3)));
            fields.push(("unknown".into(), serde_json::json!(1.5)));
            let mut choice = choices.iter().copied().cycle();
            let mut space = || SPACES[usize::from(choice.next().unwrap()) % SPACES.len()];
            let mut json = format!("{}{{", space());
            let mut written = 0;
            for &k in &order {
                // The repeated and the unknown field only now and then.
                if k >= 6 && choices[k] % 4 != 0 {
                    continue;
                }
                let (key, value) = &fields[k];
                if written > 0 {
                    json.push(',');
                }
                written += 1;
                let value = if k == order[0] {
                    rewrite(value, choices[47])
                } else {
                    value.to_string()
                };
                json.push_str(&format!("{}\"{key}\"{}:{}{value}{}", space(), space(), space(), space()));
            }
            json.push_str(&format!("}}{}", space()));
            let (ours, theirs) = both(&json);
            if ours.is_some() {
                prop_assert_eq!(ours, theirs, "{}", json);
            }
        }
    }

    #[test]
    fn takes_whitespace_and_any_order_and_declines_the_rest() {
        let at = "2026-11-26T09:30:00.250Z";
        let id = "6f1c2f9e-6a59-4f0e-9a43-2f1d1f0c9b11";
        let base = format!(
            "{{\"fuel\":\"diesel\", \"n\" : 3,\n\"x\":-0.0,\"text\":\"é\",\"id\":\"{id}\",\"at\":\"{at}\"}} "
        );
        let (ours, theirs) = both(&base);
        assert!(ours.is_some(), "{base}");
        assert_eq!(ours, theirs);
        assert!(ours.unwrap().contains("x: -0.0"));
        for declined in [
            base.replace("\"é\"", "\"\\u00e9\""),
            base.replace("3,", "3.0,"),
            base.replace("3,", "3,\"more\":1,"),
            base.replace("\"n\" : 3,", "\"n\" : 3,\"n\":4,"),
            base.replace("-0.0", "1e400"),
            format!("{base}x"),
        ] {
            assert_eq!(both(&declined).0, None, "{declined}");
        }
    }
}
