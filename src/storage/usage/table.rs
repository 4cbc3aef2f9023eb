//! Digests interned once, as their binary bytes, so the usage inventory
//! names a blob by a 4-byte id wherever it appears: a registry with many
//! repositories sharing layers holds each digest once instead of once per
//! repository that reaches it (about 100 bytes each as a `Digest`).

use crate::digest::{Algorithm, Digest};
use std::collections::HashMap;

/// A blob's index in its [`Table`].
pub type Id = u32;

/// A digest as bytes; sha512 (rare) boxed so the common case stays 33 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl Key {
    pub fn of(d: &Digest) -> Key {
        let hex = d.hex().as_bytes();
        match d.algorithm() {
            Algorithm::Sha256 => Key::Sha256(unhex(hex)),
            Algorithm::Sha512 => Key::Sha512(Box::new(unhex(hex))),
        }
    }

    /// Rebuilds the digest; the bytes came from a valid one or from a
    /// decoded snapshot, which checks lengths.
    pub fn digest(&self) -> Digest {
        let (alg, bytes) = match self {
            Key::Sha256(b) => (Algorithm::Sha256, &b[..]),
            Key::Sha512(b) => (Algorithm::Sha512, &b[..]),
        };
        format!("{}:{}", alg.name(), crate::digest::to_hex(bytes))
            .parse()
            .expect("bytes of a valid digest")
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Key::Sha256(b) => &b[..],
            Key::Sha512(b) => &b[..],
        }
    }
}

/// Lowercase hex (validated by `Digest`) to bytes.
fn unhex<const N: usize>(hex: &[u8]) -> [u8; N] {
    let nibble = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = nibble(pair[0]) << 4 | nibble(pair[1]);
    }
    out
}

/// Ids are stable for the table's life; a full rescan builds a new table
/// so digests nothing names any more are dropped.
#[derive(Default)]
pub struct Table {
    keys: Vec<Key>,
    ids: HashMap<Key, Id>,
}

impl Table {
    pub fn intern_key(&mut self, k: Key) -> Id {
        if let Some(id) = self.ids.get(&k) {
            return *id;
        }
        let id = Id::try_from(self.keys.len()).expect("fewer than 4 billion blobs");
        self.keys.push(k.clone());
        self.ids.insert(k, id);
        id
    }

    pub fn intern(&mut self, d: &Digest) -> Id {
        self.intern_key(Key::of(d))
    }

    pub fn key(&self, id: Id) -> &Key {
        &self.keys[id as usize]
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.ids.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_intern_once() {
        let a: Digest = format!("sha256:{}", "0a".repeat(32)).parse().unwrap();
        let b: Digest = format!("sha512:{}", "f1".repeat(64)).parse().unwrap();
        let mut t = Table::default();
        let (ia, ib) = (t.intern(&a), t.intern(&b));
        assert_ne!(ia, ib);
        assert_eq!(t.intern(&a), ia);
        assert_eq!(t.key(ia).digest(), a);
        assert_eq!(t.key(ib).digest(), b);
        assert_eq!(t.len(), 2);
    }
}
