//! Slows down password guessing without letting one user's mistakes lock out
//! the others behind the same address (a NAT, a CI farm).
//!
//! Two counters per `failurewindow`: failed logins for one user from one
//! address (`maxfailures`: then that user gets 429 from that address, right
//! password included, so guessing one password stops), and failed logins
//! from one address for all users together (`maxaddressfailures`: then the
//! whole address gets 429, so trying one password on many users stops too).
//! A client whose logins keep failing is refused before bcrypt runs, and
//! refusals are not failures, so a misconfigured job adds at most
//! `maxfailures` to its address's count per window. IPv6 clients are counted
//! per /64, since one host usually owns a whole prefix.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Windows kept before expired ones are pruned.
const MAX_TRACKED: usize = 65_536;

struct Window {
    start: Instant,
    failures: u32,
}

impl Window {
    fn current(&self, window: Duration, now: Instant) -> u32 {
        if now.duration_since(self.start) < window {
            self.failures
        } else {
            0
        }
    }
}

/// Failure windows by key, pruned when the table grows large.
struct Counts<K> {
    max: u32,
    windows: HashMap<K, Window>,
}

impl<K: Hash + Eq> Counts<K> {
    fn new(max: u32) -> Counts<K> {
        Counts {
            max,
            windows: HashMap::new(),
        }
    }

    /// How long `key` stays refused, if it is over its limit.
    fn refused(&self, key: &K, window: Duration, now: Instant) -> Option<Duration> {
        let w = self.windows.get(key)?;
        (w.current(window, now) >= self.max)
            .then(|| window.saturating_sub(now.duration_since(w.start)))
            .filter(|left| !left.is_zero())
    }

    fn fail(&mut self, key: K, window: Duration, now: Instant) -> u32 {
        if self.windows.len() >= MAX_TRACKED {
            self.windows
                .retain(|_, w| now.duration_since(w.start) < window);
        }
        let w = self.windows.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if w.current(window, now) == 0 {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures += 1;
        w.failures
    }
}

/// Which limit a failed login reached, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Reached {
    None,
    User(u32),
    Address(u32),
}

pub struct Throttle {
    window: Duration,
    /// User names are kept as keyed hashes: a name is whatever a client
    /// sends, and the table must stay small whatever that is.
    names: RandomState,
    users: Mutex<Counts<(IpAddr, u64)>>,
    addresses: Mutex<Counts<IpAddr>>,
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
        v4 => v4,
    }
}

impl Throttle {
    pub fn new(max_user: u32, max_address: u32, window: Duration) -> Throttle {
        Throttle {
            window,
            names: RandomState::new(),
            users: Mutex::new(Counts::new(max_user)),
            addresses: Mutex::new(Counts::new(max_address.max(max_user))),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn user_key(&self, ip: IpAddr, user: &str) -> (IpAddr, u64) {
        (client_key(ip), self.names.hash_one(user))
    }

    /// `Err(wait)` while `user` from `ip`, or `ip` as a whole, is over its limit.
    pub fn check(&self, ip: IpAddr, user: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let address = self.addresses.lock().expect("throttle lock");
        let users = self.users.lock().expect("throttle lock");
        let refused = [
            address.refused(&client_key(ip), self.window, now),
            users.refused(&self.user_key(ip, user), self.window, now),
        ];
        match refused.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed login; says whether it just reached a limit.
    pub fn fail(&self, ip: IpAddr, user: &str) -> Reached {
        let now = Instant::now();
        let mut addresses = self.addresses.lock().expect("throttle lock");
        let mut users = self.users.lock().expect("throttle lock");
        let a = addresses.fail(client_key(ip), self.window, now);
        let u = users.fail(self.user_key(ip, user), self.window, now);
        if a == addresses.max {
            Reached::Address(a)
        } else if u == users.max {
            Reached::User(u)
        } else {
            Reached::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_prefix() {
        let t = Throttle::new(2, 100, Duration::from_secs(60));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_prefix: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.check(a, "alice").is_ok());
        assert_eq!(t.fail(a, "alice"), Reached::None);
        assert!(t.check(a, "alice").is_ok());
        assert_eq!(t.fail(same_prefix, "alice"), Reached::User(2));
        let wait = t.check(a, "alice").unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(t.check(a, "bob").is_ok(), "another user there");
        assert!(t.check(other, "alice").is_ok(), "the user elsewhere");
    }

    #[test]
    fn many_users_from_one_address_reach_its_limit() {
        let t = Throttle::new(2, 5, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for user in ["u1", "u2", "u3", "u4"] {
            assert_ne!(t.fail(a, user), Reached::Address(5));
        }
        assert!(t.check(a, "u5").is_ok());
        assert_eq!(t.fail(a, "u5"), Reached::Address(5));
        assert!(t.check(a, "u6").is_err(), "the whole address waits");
        assert!(t.check("192.0.2.2".parse().unwrap(), "u6").is_ok());
    }

    #[test]
    fn window_ends() {
        let t = Throttle::new(1, 100, Duration::from_millis(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        t.fail(a, "alice");
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.check(a, "alice").is_ok());
        assert_eq!(t.fail(a, "alice"), Reached::User(1), "a new window starts");
    }
}
