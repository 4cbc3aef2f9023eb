//! "Did you mean": for an unknown key, the known key at the same place
//! that is closest in spelling. A typo such as `storage.delete.enabeld` is
//! otherwise ignored (as distribution ignores it) and its default silently
//! applies, so the warning must say what was meant.
//!
//! The known keys come from the types themselves: a probe deserializer
//! walks `Config`'s derived `Deserialize` down the key's path and records
//! the field names serde hands to the struct there, so the suggestions can
//! never drift from the keys actually read.

use super::Config;
use serde::Deserialize;
use serde::de::value::{Error, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// One step of a key's path.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The path of an ignored key as `serde_ignored` reports it, outermost first.
pub fn steps(p: &serde_ignored::Path) -> Vec<Step> {
    use serde_ignored::Path;
    let (parent, step) = match p {
        Path::Root => return vec![],
        Path::Seq { parent, index } => (parent, Some(Step::Index(*index))),
        Path::Map { parent, key } => (parent, Some(Step::Key(key.clone()))),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => (parent, None),
    };
    let mut out = steps(parent);
    out.extend(step);
    out
}

/// The known key nearest to the last step of `path`, as a full key, if one
/// is close enough to be a plausible typo.
pub fn suggestion(path: &[Step]) -> Option<String> {
    let (Step::Key(typed), parent) = path.split_last()? else {
        return None;
    };
    let known = fields_at(parent)?;
    let typed = typed.to_lowercase();
    let (best, distance) = known
        .iter()
        .map(|k| (*k, edit_distance(&typed, k)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= typed.chars().count().max(3) / 3).then(|| key_of(parent, best))
}

/// `a.b[0].c`, as the other messages spell keys.
pub fn key_of(parent: &[Step], last: &str) -> String {
    let mut s = String::new();
    for step in parent {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => s.push_str(&format!(".{k}")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        last.to_string()
    } else {
        format!("{s}.{last}")
    }
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The field names of the struct `Config` has at `path`, if it is a struct.
fn fields_at(path: &[Step]) -> Option<&'static [&'static str]> {
    let mut found = None;
    let _ = Config::deserialize(Probe {
        path,
        found: &mut found,
    });
    found
}

/// A deserializer that presents only the keys of `path`, one level at a
/// time, and stops with an error once it reaches the struct at its end.
struct Probe<'a, 'p> {
    path: &'p [Step],
    found: &'a mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for Probe<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.path.split_first() {
            None => {
                *self.found = Some(fields);
                Err(de::Error::custom("found"))
            }
            Some((Step::Key(key), rest)) => visitor.visit_map(One {
                key: Some(key),
                probe: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            Some((Step::Index(_), _)) => Err(de::Error::custom("not a sequence")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.path.split_first() {
            Some((Step::Index(_), rest)) => visitor.visit_seq(One {
                key: None,
                probe: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            _ => Err(de::Error::custom("not a sequence")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A map of one key, or a sequence of one element, whose value is a probe.
struct One<'a, 'p> {
    key: Option<&'p str>,
    probe: Option<Probe<'a, 'p>>,
}

impl<'de> MapAccess<'de> for One<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(key) = self.key.take() else {
            return Ok(None);
        };
        let key: StrDeserializer<Error> = key.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let probe = self
            .probe
            .take()
            .ok_or_else(|| de::Error::custom("no value"))?;
        seed.deserialize(probe)
    }
}

impl<'de> SeqAccess<'de> for One<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.probe.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(keys: &[&str]) -> Vec<Step> {
        keys.iter().map(|k| Step::Key(k.to_string())).collect()
    }

    #[test]
    fn suggests_the_key_at_the_same_place() {
        let s = suggestion(&path(&["storage", "delete", "enabeld"]));
        assert_eq!(s.as_deref(), Some("storage.delete.enabled"));
        // Through an optional section and a list.
        let s = suggestion(&path(&["http", "tls", "certficate"]));
        assert_eq!(s.as_deref(), Some("http.tls.certificate"));
        let mut p = path(&["privateregistry", "listeners"]);
        p.extend([Step::Index(1), Step::Key("adr".into())]);
        let s = suggestion(&p);
        assert_eq!(s.as_deref(), Some("privateregistry.listeners[1].addr"));
        assert_eq!(suggestion(&path(&["Storage"])).as_deref(), Some("storage"));
    }

    #[test]
    fn no_suggestion_when_nothing_is_close() {
        assert_eq!(suggestion(&path(&["http", "colour"])), None);
        assert_eq!(suggestion(&path(&["http", "headers", "x"])), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("enabeld", "enabled"), 2);
        assert_eq!(edit_distance("adr", "addr"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
