//! Manifest bytes by digest, kept in memory: content-addressed, so never
//! stale, and safe to share between nodes on one store (only mutable
//! things, tags and links, must be read fresh). Bounded in bytes; the
//! oldest entries go first. On a bucket this saves a round trip per pull
//! of a manifest; on disk, a read.

use crate::digest::Digest;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Total bytes kept.
const BUDGET: usize = 16 << 20;
/// Larger objects are not kept (a manifest is a few KiB).
const MAX_ENTRY: usize = 256 << 10;

#[derive(Default)]
pub struct ContentCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ContentCache {
    pub fn get(&self, d: &Digest) -> Option<Bytes> {
        self.inner.lock().expect("cache lock").map.get(d).cloned()
    }

    /// Keeps `bytes` as the content of `d`; the caller has checked they hash to it.
    pub fn put(&self, d: &Digest, bytes: &Bytes) {
        if bytes.len() > MAX_ENTRY {
            return;
        }
        let mut e = self.inner.lock().expect("cache lock");
        if e.map.contains_key(d) {
            return;
        }
        while e.bytes + bytes.len() > BUDGET {
            let Some(old) = e.order.pop_front() else {
                break;
            };
            if let Some(b) = e.map.remove(&old) {
                e.bytes -= b.len();
            }
        }
        e.bytes += bytes.len();
        e.order.push_back(d.clone());
        e.map.insert(d.clone(), bytes.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_its_budget_dropping_the_oldest() {
        let c = ContentCache::default();
        let big = Bytes::from(vec![0u8; MAX_ENTRY]);
        let digests: Vec<Digest> = (0..(BUDGET / MAX_ENTRY + 2))
            .map(|i| Digest::sha256_of(&i.to_le_bytes()))
            .collect();
        for d in &digests {
            c.put(d, &big);
        }
        assert!(c.get(&digests[0]).is_none(), "the oldest went");
        assert!(c.get(digests.last().unwrap()).is_some());
        assert!(c.inner.lock().unwrap().bytes <= BUDGET);
        c.put(&digests[0], &Bytes::from(vec![0u8; MAX_ENTRY + 1]));
        assert!(c.get(&digests[0]).is_none(), "too large to keep");
    }
}

/// What a bucket was recently seen to hold, for blob `HEAD`s: which blobs a
/// repository links, with their size, and which blobs a `HEAD` touched.
/// distribution keeps the same ("blob descriptor cache"). Entries live
/// [`SEEN_FOR`]: a link removed by another node or a collector in another
/// process may be answered for that long; removals in this process forget
/// at once, which is why the links are consulted only with
/// `storage.cache.blobdescriptor: inmemory` (one node on the bucket).
/// Only drivers without atomic moves (buckets) use it: on disk the lookups
/// cost microseconds. The `HEAD` touch bound applies either way.
#[derive(Default)]
pub struct Seen {
    links: Mutex<HashMap<(String, Digest), (u64, std::time::Instant)>>,
    /// When each blob's last `HEAD` touch started, and whether it is done.
    touching: std::sync::Arc<Mutex<HashMap<Digest, (std::time::Instant, bool)>>>,
}

/// The least time between two `HEAD` touches of one blob.
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Entries kept before the table is emptied (a bound, not an LRU: a full
/// table is rebuilt from the store within [`SEEN_FOR`] anyway).
const SEEN_MAX: usize = 100_000;

impl Seen {
    pub fn link(&self, repo: &str, d: &Digest) -> Option<u64> {
        let links = self.links.lock().expect("seen lock");
        let (size, at) = links.get(&(repo.to_string(), d.clone()))?;
        (at.elapsed() < SEEN_FOR).then_some(*size)
    }

    pub fn saw_link(&self, repo: &str, d: &Digest, size: u64) {
        let mut links = self.links.lock().expect("seen lock");
        if links.len() >= SEEN_MAX {
            links.clear();
        }
        links.insert(
            (repo.to_string(), d.clone()),
            (size, std::time::Instant::now()),
        );
    }

    /// Forgets links: of `repo` (all of them, or `d`'s), or `d` in every repository.
    pub fn forget(&self, repo: Option<&str>, d: Option<&Digest>) {
        let mut links = self.links.lock().expect("seen lock");
        links.retain(|(r, dd), _| !(repo.is_none_or(|x| x == r) && d.is_none_or(|x| x == dd)));
    }

    /// Whether a `HEAD` of `d` should record its reference: not while an
    /// earlier one is under way or began less than [`TOUCH_EVERY`] ago, so a
    /// client asking in a loop neither queues writes to the store (each one
    /// left running held memory until done) nor keeps it busy, while the
    /// recorded time stays that close to the last `HEAD`. The guard marks
    /// the touch done when dropped.
    pub fn start_touch(&self, d: &Digest) -> Option<TouchGuard> {
        let mut touching = self.touching.lock().expect("seen lock");
        if let Some((at, done)) = touching.get(d)
            && (!done || at.elapsed() < TOUCH_EVERY)
        {
            return None;
        }
        if touching.len() >= SEEN_MAX {
            touching.clear();
        }
        touching.insert(d.clone(), (std::time::Instant::now(), false));
        Some(TouchGuard {
            touching: self.touching.clone(),
            digest: d.clone(),
        })
    }
}

/// A `HEAD`'s touch under way (see [`Seen::start_touch`]).
pub struct TouchGuard {
    touching: std::sync::Arc<Mutex<HashMap<Digest, (std::time::Instant, bool)>>>,
    digest: Digest,
}

impl Drop for TouchGuard {
    fn drop(&mut self) {
        let mut touching = self.touching.lock().expect("seen lock");
        if let Some(entry) = touching.get_mut(&self.digest) {
            entry.1 = true;
        }
    }
}
