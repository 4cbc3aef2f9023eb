//! The published form of an [`Inventory`]: little-endian binary, digests as
//! their bytes, repositories as their names and id lists. About 40 bytes
//! per distinct blob and 20 plus 4 per blob reached per repository, so
//! a registry of 50,000 repositories publishes a few MiB. Manifest
//! references are not included: a loading node reads those it needs.

use super::table::{Id, Key, Table};
use super::{ABSENT, Inventory, RepoRefs};
use std::time::{Duration, UNIX_EPOCH};

/// Changes whenever the layout does; an unknown version is not read.
const MAGIC: &[u8; 8] = b"PRUSAGE1";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    #[error("not a published usage snapshot of this version")]
    Version,
    #[error("published usage snapshot is truncated")]
    Truncated,
    #[error("published usage snapshot is malformed: {0}")]
    Malformed(&'static str),
}

impl Inventory {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.table.len() * 41 + self.repos.len() * 48);
        out.extend_from_slice(MAGIC);
        let at = (self.scanned_at.unwrap_or(UNIX_EPOCH))
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        put_u64(&mut out, at.as_millis() as u64);
        put_u32(&mut out, self.table.len() as u32);
        for k in self.table.keys() {
            out.push(match k {
                Key::Sha256(_) => 1,
                Key::Sha512(_) => 2,
            });
            out.extend_from_slice(k.bytes());
        }
        for id in 0..self.table.len() {
            put_u64(&mut out, self.sizes.get(id).copied().unwrap_or(ABSENT));
        }
        put_u32(&mut out, self.repos.len() as u32);
        for (name, r) in &self.repos {
            put_u32(&mut out, name.len() as u32);
            out.extend_from_slice(name.as_bytes());
            put_u32(&mut out, r.tags);
            put_u32(&mut out, r.manifests);
            put_u32(&mut out, r.reached.len() as u32);
            for id in &r.reached {
                put_u32(&mut out, *id);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Inventory, CodecError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(CodecError::Version);
        }
        let scanned_at = UNIX_EPOCH + Duration::from_millis(r.u64()?);
        let keys = r.u32()?;
        let mut all = Vec::with_capacity(keys as usize);
        for _ in 0..keys {
            all.push(match r.take(1)?[0] {
                1 => Key::Sha256(r.take(32)?.try_into().expect("32 bytes")),
                2 => Key::Sha512(Box::new(r.take(64)?.try_into().expect("64 bytes"))),
                _ => return Err(CodecError::Malformed("digest algorithm")),
            });
        }
        let table = Table::from_keys(all).ok_or(CodecError::Malformed("digest listed twice"))?;
        let sizes = (0..keys).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let mut inv = Inventory {
            table,
            sizes,
            scanned_at: Some(scanned_at),
            ..Inventory::default()
        };
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            let name = std::str::from_utf8(r.take(len)?)
                .map_err(|_| CodecError::Malformed("repository name"))?;
            let (tags, manifests, n) = (r.u32()?, r.u32()?, r.u32()?);
            let reached = (0..n)
                .map(|_| match r.u32()? {
                    id if id < keys => Ok(id),
                    _ => Err(CodecError::Malformed("blob id")),
                })
                .collect::<Result<Box<[Id]>, _>>()?;
            let refs = RepoRefs {
                tags,
                manifests,
                reached,
            };
            inv.repos.insert(name.into(), refs);
        }
        if !r.0.is_empty() {
            return Err(CodecError::Malformed("trailing bytes"));
        }
        Ok(inv)
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    #[test]
    fn decoding_gives_back_the_same_figures() {
        let mut inv = Inventory::default();
        let (a, b, c) = (
            inv.table.intern(&digest(1)),
            inv.table.intern(&digest(2)),
            inv.table.intern(&digest(3)),
        );
        inv.sizes = vec![10, 20, ABSENT];
        for (name, reached) in [("x", vec![a, b]), ("y/z", vec![b, c])] {
            let refs = RepoRefs {
                tags: 1,
                manifests: 2,
                reached: reached.into_boxed_slice(),
            };
            inv.repos.insert(name.into(), refs);
        }
        inv.scanned_at = Some(UNIX_EPOCH + Duration::from_millis(1234));
        let bytes = inv.encode();
        let back = Inventory::decode(&bytes).unwrap();
        assert_eq!(back.scanned_at, inv.scanned_at);
        let (s1, s2) = (inv.snapshot(), back.snapshot());
        assert_eq!(s1.repositories, s2.repositories);
        assert_eq!(
            (s1.blobs, s1.total_bytes, s1.reclaimable_bytes),
            (s2.blobs, s2.total_bytes, s2.reclaimable_bytes)
        );
        assert_eq!(s2.repository("x").unwrap().unique_bytes, 10);
        for cut in [0, 8, bytes.len() - 1] {
            assert!(Inventory::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
