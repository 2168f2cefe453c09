//! Decoding a struct and keeping the fields it does not declare, in one pass.
//!
//! [`KeepUnknown`] wraps a JSON deserializer. A derived struct visitor sees only
//! the keys of its own fields; every other field is copied verbatim, as raw JSON,
//! into a JSON object of its own. Messages from newer producers thus keep what
//! this version of the model cannot name, at no cost to messages that carry
//! nothing extra.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A deserializer for one JSON object that collects undeclared fields into `unknown`,
/// as `{"name":value,…}`. Anything but a struct is read as the inner one reads it.
pub struct KeepUnknown<'u, D> {
    pub inner: D,
    pub unknown: &'u mut Option<String>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for KeepUnknown<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let value = self.inner.deserialize_map(Declared {
            visitor,
            fields,
            unknown: &mut *self.unknown,
        })?;
        if let Some(out) = self.unknown {
            out.push('}');
        }
        Ok(value)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Hands the struct visitor a map of its declared fields only.
struct Declared<'u, V> {
    visitor: V,
    fields: &'static [&'static str],
    unknown: &'u mut Option<String>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Declared<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(DeclaredFields {
            map,
            fields: self.fields,
            unknown: self.unknown,
        })
    }
}

struct DeclaredFields<'u, A> {
    map: A,
    fields: &'static [&'static str],
    unknown: &'u mut Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for DeclaredFields<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key_seed(Key)? {
            if self.fields.contains(&key.as_ref()) {
                return seed.deserialize(key.as_ref().into_deserializer()).map(Some);
            }
            let value: &'de RawValue = self.map.next_value()?;
            let out = self.unknown.get_or_insert_with(|| String::from("{"));
            if out.len() > 1 {
                out.push(',');
            }
            // The key as JSON again: it may hold quotes or escapes.
            out.push_str(&serde_json::to_string(&key).map_err(de::Error::custom)?);
            out.push(':');
            out.push_str(value.get());
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// An object key, borrowed from the input unless it holds escapes (serde's own
/// `Cow` always allocates).
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
