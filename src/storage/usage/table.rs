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

/// Ids are stable for the table's life. Most keys sit in `base`, sorted
/// and found by binary search, 32 bytes each with no index beside them;
/// keys added since (new pushes between full scans, and any sha512 ones)
/// go to a small hashed `extra`. A full rescan builds a new table
/// ([`Table::from_keys`]) holding only digests still named.
#[derive(Default)]
pub struct Table {
    base: Vec<[u8; 32]>,
    extra: Vec<Key>,
    extra_ids: HashMap<Key, Id>,
}

impl Table {
    /// A table whose ids are the positions in `keys`, or `None` if a key
    /// repeats. The leading run of ascending sha256 keys becomes the base.
    pub fn from_keys(keys: Vec<Key>) -> Option<Table> {
        let mut t = Table::default();
        let mut rest = keys.into_iter().peekable();
        while let Some(Key::Sha256(b)) = rest.peek() {
            if t.base.last().is_some_and(|last| last >= b) {
                break;
            }
            t.base.push(*b);
            rest.next();
        }
        t.base.shrink_to_fit();
        for k in rest {
            let expected = t.len();
            if t.intern_key(k) as usize != expected {
                return None;
            }
        }
        Some(t)
    }

    fn find(&self, k: &Key) -> Option<Id> {
        if let Key::Sha256(b) = k
            && let Ok(i) = self.base.binary_search(b)
        {
            return Some(i as Id);
        }
        self.extra_ids.get(k).copied()
    }

    pub fn intern_key(&mut self, k: Key) -> Id {
        if let Some(id) = self.find(&k) {
            return id;
        }
        let id = Id::try_from(self.len()).expect("fewer than 4 billion blobs");
        self.extra.push(k.clone());
        self.extra_ids.insert(k, id);
        id
    }

    pub fn intern(&mut self, d: &Digest) -> Id {
        self.intern_key(Key::of(d))
    }

    pub fn key(&self, id: Id) -> Key {
        let i = id as usize;
        match self.base.get(i) {
            Some(b) => Key::Sha256(*b),
            None => self.extra[i - self.base.len()].clone(),
        }
    }

    /// Every key, in id order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        (self.base.iter().map(|b| Key::Sha256(*b))).chain(self.extra.iter().cloned())
    }

    pub fn len(&self) -> usize {
        self.base.len() + self.extra.len()
    }

    /// Whether enough keys sit in the hashed part (about 100 bytes each,
    /// against 32 in the base) that rebuilding the table sorted is worth
    /// it: a first scan would otherwise intern every digest there.
    pub fn wants_sorting(&self) -> bool {
        self.extra.len() > 16_384 && self.extra.len() > self.base.len() / 2
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
        // Sorted into the base, then found there and beside it.
        let c: Digest = format!("sha256:{}", "01".repeat(32)).parse().unwrap();
        let mut keys: Vec<Key> = t.keys().collect();
        keys.push(Key::of(&c));
        keys.sort_by(|x, y| x.bytes().cmp(y.bytes()));
        let mut sorted = Table::from_keys(keys.clone()).unwrap();
        assert_eq!(sorted.base.len(), 2, "the two sha256 keys");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(sorted.intern_key(k.clone()), i as Id);
        }
        keys.push(Key::of(&c));
        assert!(Table::from_keys(keys).is_none(), "a repeated key");
    }
}
