//! Slows down password guessing: after `max` failed logins from one client
//! within a window, that client gets 429 until the window ends. IPv6
//! clients are counted per /64, since one host usually owns a whole prefix.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Windows kept before expired ones are pruned.
const MAX_TRACKED: usize = 65_536;

struct Window {
    start: Instant,
    failures: u32,
}

pub struct Throttle {
    max: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, Window>>,
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
    pub fn new(max: u32, window: Duration) -> Throttle {
        Throttle {
            max,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// `Err(wait)` while `ip` is over its limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let clients = self.clients.lock().expect("throttle lock");
        match clients.get(&client_key(ip)) {
            Some(w) if w.failures >= self.max => {
                let left = self.window.saturating_sub(w.start.elapsed());
                if left.is_zero() { Ok(()) } else { Err(left) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the failures in the current window.
    pub fn fail(&self, ip: IpAddr) -> u32 {
        let now = Instant::now();
        let mut clients = self.clients.lock().expect("throttle lock");
        if clients.len() >= MAX_TRACKED {
            clients.retain(|_, w| now.duration_since(w.start) < self.window);
        }
        let w = clients.entry(client_key(ip)).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now.duration_since(w.start) >= self.window {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures += 1;
        w.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_prefix() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_prefix: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(t.check(a).is_ok());
        t.fail(a);
        assert!(t.check(a).is_ok());
        t.fail(same_prefix);
        let wait = t.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(t.check(other).is_ok());
    }

    #[test]
    fn window_ends() {
        let t = Throttle::new(1, Duration::from_millis(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        t.fail(a);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.check(a).is_ok());
        assert_eq!(t.fail(a), 1, "a new window starts");
    }
}
