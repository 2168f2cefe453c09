//! Writing an event as JSON, byte for byte what `serde_json` writes, in less time.
//!
//! `simulate` encodes every event it sends, and on a machine it shares with the
//! broker its rate follows the CPU it spends. Through `serde_json`, most of that
//! goes to checking, byte by byte, whether field names and values (UUIDs,
//! timestamps, enum names) need escaping, which they never do. [`Compact`] writes each field name as it is and
//! copies a string whole once one pass finds nothing to escape; numbers, `null`
//! and any string that does need escaping are still written by `serde_json`. It
//! knows flat structs of such values, which is what the events are; anything else
//! is refused. A test compares its output with `serde_json`'s for every kind.

use serde::ser::{self, Impossible, Serialize, SerializeStruct};

/// Appends `value`, a flat struct, as compact JSON.
pub(crate) fn to_vec<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    value.serialize(&mut Compact { out })
}

struct Compact<'a> {
    out: &'a mut Vec<u8>,
}

impl Compact<'_> {
    /// The value as `serde_json` writes it.
    fn plain<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        serde_json::to_writer(&mut *self.out, value)
    }
}

/// Whether JSON needs any byte of `text` escaped. A pass with no early exit, which
/// the compiler turns into wide comparisons.
fn needs_escaping(text: &str) -> bool {
    text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn refused() -> serde_json::Error {
    ser::Error::custom("only flat structs of numbers, strings and enums are encoded here")
}

impl<'b, 'a> ser::Serializer for &'b mut Compact<'a> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<(), serde_json::Error>;
    type SerializeTuple = Impossible<(), serde_json::Error>;
    type SerializeTupleStruct = Impossible<(), serde_json::Error>;
    type SerializeTupleVariant = Impossible<(), serde_json::Error>;
    type SerializeMap = Impossible<(), serde_json::Error>;
    type SerializeStruct = Fields<'b, 'a>;
    type SerializeStructVariant = Impossible<(), serde_json::Error>;

    fn serialize_str(self, v: &str) -> Result<(), Self::Error> {
        if needs_escaping(v) {
            return self.plain(v);
        }
        self.out.reserve(v.len() + 2);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Self::Error> {
        self.serialize_str(variant)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Fields<'b, 'a>, Self::Error> {
        self.out.push(b'{');
        Ok(Fields {
            json: self,
            first: true,
        })
    }

    fn serialize_bool(self, v: bool) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_char(self, v: char) -> Result<(), Self::Error> {
        self.plain(&v)
    }
    fn serialize_none(self) -> Result<(), Self::Error> {
        self.plain(&())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Self::Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Self::Error> {
        self.plain(&())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Self::Error> {
        self.plain(&())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        value.serialize(self)
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Self::Error> {
        Err(refused())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Self::Error> {
        Err(refused())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(refused())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(refused())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(refused())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(refused())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(refused())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(refused())
    }
}

/// A struct's fields, as they are written.
struct Fields<'b, 'a> {
    json: &'b mut Compact<'a>,
    first: bool,
}

impl SerializeStruct for Fields<'_, '_> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        let out = &mut *self.json.out;
        if !std::mem::take(&mut self.first) {
            out.push(b',');
        }
        // Field names are the model's own Rust names: nothing in them to escape.
        debug_assert!(!needs_escaping(key), "field name {key:?}");
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        value.serialize(&mut *self.json)
    }

    fn end(self) -> Result<(), Self::Error> {
        self.json.out.push(b'}');
        Ok(())
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
    #[derive(Serialize)]
    struct Sample {
        text: String,
        x: f64,
        n: u16,
        id: Uuid,
        at: Timestamp,
        fuel: FuelType,
        maybe: Option<f64>,
    }

    fn both(sample: &Sample) -> (String, String) {
        let mut ours = Vec::new();
        to_vec(&mut ours, sample).unwrap();
        let theirs = serde_json::to_vec(sample).unwrap();
        (
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn writes_what_serde_json_writes(
            text in any::<String>(),
            x in any::<f64>(),
            n in any::<u16>(),
            id in any::<u128>(),
            millis in -62_167_219_200_000_i64..253_402_300_799_999,
            fuel in prop::sample::select(FuelType::ALL),
            maybe in any::<Option<f64>>(),
        ) {
            let sample = Sample {
                text,
                x,
                n,
                id: Uuid::from_u128(id),
                at: Timestamp::from_millis(millis).unwrap(),
                fuel,
                maybe,
            };
            let (ours, theirs) = both(&sample);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn escapes_what_needs_escaping() {
        let sample = Sample {
            text: "say \"hi\" \\ \n\t\u{1} é".into(),
            x: f64::NAN,
            n: 0,
            id: Uuid::nil(),
            at: Timestamp::from_millis(0).unwrap(),
            fuel: FuelType::Diesel,
            maybe: None,
        };
        let (ours, theirs) = both(&sample);
        assert!(
            ours.contains(r#""text":"say \"hi\" \\ \n\t\u0001 é""#),
            "{ours}"
        );
        assert!(ours.contains(r#""x":null"#), "{ours}");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn refuses_what_an_event_never_holds() {
        assert!(to_vec(&mut Vec::new(), &vec![1, 2]).is_err());
    }
}
