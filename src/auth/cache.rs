//! Recently verified credentials. Docker sends the password with every
//! request and bcrypt costs tens of milliseconds by design, so without this
//! an authenticated pull of many layers would be bcrypt-bound. Entries are
//! keyed by a salted hash of user and password (the password itself is never
//! kept), expire, and belong to one generation of the htpasswd file.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Key = [u8; 32];

pub struct CredentialCache {
    salt: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, (Instant, u64)>>,
}

impl CredentialCache {
    pub fn new(ttl: Duration, capacity: usize) -> CredentialCache {
        let mut salt = [0u8; 32];
        // A fixed salt would only weaken the keys, never break the cache.
        let _ = getrandom::fill(&mut salt);
        CredentialCache {
            salt,
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, user: &str, password: &str) -> Key {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// True if this pair was verified within the TTL against `generation`.
    pub fn contains(&self, user: &str, password: &str, generation: u64) -> bool {
        let key = self.key(user, password);
        let map = self.entries.lock().expect("cache lock");
        map.get(&key)
            .is_some_and(|(expires, g)| *g == generation && Instant::now() < *expires)
    }

    pub fn insert(&self, user: &str, password: &str, generation: u64) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let key = self.key(user, password);
        let now = Instant::now();
        let mut map = self.entries.lock().expect("cache lock");
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (expires, g)| *expires > now && *g == generation);
            if map.len() >= self.capacity
                && let Some(oldest) = map.iter().min_by_key(|(_, (e, _))| *e).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(key, (now + self.ttl, generation));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("cache lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_pairs_per_generation_and_stays_bounded() {
        let c = CredentialCache::new(Duration::from_secs(60), 2);
        c.insert("alice", "pw", 1);
        assert!(c.contains("alice", "pw", 1));
        assert!(!c.contains("alice", "pw2", 1));
        assert!(!c.contains("alice", "pw", 2), "a reload invalidates");
        c.insert("bob", "x", 1);
        c.insert("carol", "y", 1);
        assert_eq!(c.len(), 2);
        assert!(c.contains("carol", "y", 1));
    }

    #[test]
    fn entries_expire() {
        let c = CredentialCache::new(Duration::from_millis(1), 8);
        c.insert("alice", "pw", 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!c.contains("alice", "pw", 1));
    }
}
