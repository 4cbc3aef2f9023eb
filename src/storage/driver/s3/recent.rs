//! Listings that agree with this node's deletes. Garage answers a listing
//! from two of its three replicas, and each drops deleted keys before the
//! answers are merged: until the last replica has applied a `DeleteObjects`
//! (50-100 ms on loopback, after about one delete in thirty), a listing can
//! still name the keys, although `HEAD`, which merges first, says they are
//! gone. The layers above list right after deleting (a deleted tag, a purged
//! upload, gc), so the driver remembers what it deleted in the last seconds
//! and asks `HEAD` about those keys when a listing names them. Waiting after
//! each delete for a clean listing instead cost a listing per delete: a
//! quarter of the small-push rate on Garage. Another node's listing can
//! still show such a key for those milliseconds, as for any S3 client.

use super::S3Driver;
use crate::storage::driver::DriverError;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Far longer than the lag measured, short enough that the memory stays small.
const KEEP: Duration = Duration::from_secs(5);
/// Past this many, the oldest are forgotten early (a gc sweep of a huge store).
const MOST: usize = 65_536;

/// Driver paths deleted lately, with when.
#[derive(Default)]
pub(super) struct RecentDeletes(Mutex<Memory>);

#[derive(Default)]
struct Memory {
    by_path: BTreeMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Memory {
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, path)) = self.order.front() {
            if now.duration_since(*at) < KEEP && self.order.len() <= MOST {
                break;
            }
            if self.by_path.get(path) == Some(at) {
                self.by_path.remove(path);
            }
            self.order.pop_front();
        }
    }

    fn holds(&self, path: &str, now: Instant) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|at| now.duration_since(*at) < KEEP)
    }

    fn holds_under(&self, prefix: &str, now: Instant) -> bool {
        self.by_path
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(p, _)| p.starts_with(prefix))
            .any(|(_, at)| now.duration_since(*at) < KEEP)
    }
}

impl RecentDeletes {
    pub(super) fn deleted(&self, paths: &[String]) {
        let now = Instant::now();
        let mut m = self.0.lock().unwrap();
        for p in paths {
            m.by_path.insert(p.clone(), now);
            m.order.push_back((now, p.clone()));
        }
        m.forget_old(now);
    }

    /// The listed paths deleted here lately.
    fn suspects(&self, paths: &[String]) -> Vec<String> {
        let now = Instant::now();
        let m = self.0.lock().unwrap();
        if m.by_path.is_empty() {
            return vec![];
        }
        paths.iter().filter(|p| m.holds(p, now)).cloned().collect()
    }

    fn any_under(&self, prefix: &str) -> bool {
        self.0.lock().unwrap().holds_under(prefix, Instant::now())
    }
}

impl S3Driver {
    /// Drops from listed object paths those deleted here lately that `HEAD`
    /// says are gone; one written again since is kept.
    pub(super) async fn drop_deleted(
        &self,
        mut paths: Vec<String>,
    ) -> Result<Vec<String>, DriverError> {
        let mut gone = HashSet::new();
        for p in self.recent.suspects(&paths) {
            match self.head(&p).await {
                Ok(_) => {}
                Err(DriverError::NotFound(_)) => {
                    gone.insert(p);
                }
                Err(e) => return Err(e),
            }
        }
        paths.retain(|p| !gone.contains(p));
        Ok(paths)
    }

    /// Whether a listed directory (`prefix` ends with its delimiter) still
    /// holds something, asked only where something under it was deleted here
    /// lately.
    pub(super) async fn still_holds(&self, prefix: &str) -> Result<bool, DriverError> {
        if !self.recent.any_under(prefix) {
            return Ok(true);
        }
        Ok(!self.keys_starting(prefix).await?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn remembers_deletes_for_a_while() {
        let r = RecentDeletes::default();
        r.deleted(&paths(&["a/b/c", "a/d"]));
        assert_eq!(
            r.suspects(&paths(&["a/b", "a/b/c", "a/d", "x"])),
            ["a/b/c", "a/d"]
        );
        assert!(r.any_under("a/b/"));
        assert!(!r.any_under("a/c/"));
        let later = Instant::now() + KEEP;
        let mut m = r.0.lock().unwrap();
        assert!(!m.holds("a/d", later));
        assert!(!m.holds_under("a/", later));
        m.forget_old(later);
        assert!(m.by_path.is_empty() && m.order.is_empty());
    }

    #[test]
    fn forgets_the_oldest_past_the_limit() {
        let r = RecentDeletes::default();
        let many: Vec<String> = (0..MOST + 10).map(|i| format!("k/{i}")).collect();
        r.deleted(&many);
        let m = r.0.lock().unwrap();
        assert_eq!(m.order.len(), MOST);
        assert!(!m.by_path.contains_key("k/0") && m.by_path.contains_key("k/10"));
    }
}
