//! The JSON shapes AWS allows in a policy document, mapped onto plain Rust types.
//!
//! AWS lets most elements be either a single value or an array of values (`"Action": "s3:*"`
//! or `"Action": ["s3:*"]`), and `Statement` either one object or an array of them. The public
//! model uses `Vec`s everywhere so that callers never deal with that choice; the helpers here
//! accept both forms when reading and write the shortest form (a bare value for one element).
//! Visitors are written by hand rather than with `#[serde(untagged)]` so that an error deep
//! inside a statement keeps its own message and serde_json's line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::document::{Condition, ConditionValue, Principal};

/// A value that AWS accepts either bare or as an array.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> V<T> {
            fn one<E: de::Error>(r: Result<T, E>) -> Result<OneOrMany<T>, E> {
                r.map(|v| OneOrMany(vec![v]))
            }
        }

        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or an array of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Self::one(T::deserialize(MapAccessDeserializer::new(map)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Self::one(T::deserialize(v.into_deserializer()))
            }
        }

        d.deserialize_any(V(PhantomData))
    }
}

/// Writes one element bare and anything else as an array, as the AWS console does.
struct OneOrManyRef<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for OneOrManyRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// `Statement`: one object or an array; always written as an array.
pub(super) mod statements {
    use super::*;
    use crate::policy::document::Statement;

    pub(in crate::policy) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Statement>, D::Error> {
        OneOrMany::deserialize(d).map(|v| v.0)
    }
}

/// `Action`, `Resource` and their `Not` forms: a string or an array of strings.
pub(super) mod opt_list {
    use super::*;

    // `skip_serializing_if = "Option::is_none"` keeps `None` from ever reaching here.
    pub(in crate::policy) fn serialize<S: Serializer>(v: &Option<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
        OneOrManyRef(v.as_deref().unwrap_or_default()).serialize(s)
    }

    pub(in crate::policy) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        OneOrMany::deserialize(d).map(|v| Some(v.0))
    }
}

/// `Condition`: operator -> key -> a value or an array of values.
pub(super) mod opt_condition {
    use super::*;

    struct Keys<'a>(&'a BTreeMap<String, Vec<ConditionValue>>);

    impl Serialize for Keys<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, OneOrManyRef(v))))
        }
    }

    pub(in crate::policy) fn serialize<S: Serializer>(v: &Option<Condition>, s: S) -> Result<S::Ok, S::Error> {
        let empty = Condition::new();
        s.collect_map(v.as_ref().unwrap_or(&empty).iter().map(|(op, keys)| (op, Keys(keys))))
    }

    pub(in crate::policy) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Condition>, D::Error> {
        let raw = BTreeMap::<String, BTreeMap<String, OneOrMany<ConditionValue>>>::deserialize(d)?;
        Ok(Some(raw.into_iter().map(|(op, keys)| (op, keys.into_iter().map(|(k, v)| (k, v.0)).collect())).collect()))
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Principal::Any => s.serialize_str("*"),
            Principal::Typed(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (kind, ids) in map {
                    m.serialize_entry(kind, &OneOrManyRef(ids))?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = Principal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""*" or an object such as {"AWS": ["arn:..."]}"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Principal, E> {
                match v {
                    "*" => Ok(Principal::Any),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Principal, A::Error> {
                let raw = BTreeMap::<String, OneOrMany<String>>::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Principal::Typed(raw.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
        }

        d.deserialize_any(V)
    }
}

impl Serialize for ConditionValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ConditionValue::String(v) => s.serialize_str(v),
            ConditionValue::Bool(v) => s.serialize_bool(*v),
            ConditionValue::Number(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ConditionValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl Visitor<'_> for V {
            type Value = ConditionValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a boolean or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConditionValue, E> {
                Ok(ConditionValue::String(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ConditionValue, E> {
                Ok(ConditionValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConditionValue, E> {
                Ok(ConditionValue::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConditionValue, E> {
                Ok(ConditionValue::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConditionValue, E> {
                serde_json::Number::from_f64(v)
                    .map(ConditionValue::Number)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }

        d.deserialize_any(V)
    }
}
