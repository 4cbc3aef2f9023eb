//! Whether uploads can afford the page cache right now: judged from how long
//! buffered writes take, and shared by all uploads, because what decides it
//! is the machine, not one file.
//!
//! Why: a blob written through the page cache is served to its first pull
//! from memory; written with `O_DIRECT`, from the disk (issue 28: the first
//! pull after a push ran at 0.28x the reference's, which writes buffered).
//! Where the kernel reuses pages, as on a server whose page cache is full, a
//! buffered write with write-back started per MiB is as fast as a direct one
//! (a C loop of 1 MiB writes, 1 GiB, then `fdatasync`: 1.9 GB/s buffered
//! into recycled pages, 1.3-1.4 direct). But a host that takes freed memory
//! back (this VM: the balloon's free page reporting with DAMON reclaim)
//! faults every new page in again: the same loop ran at 340-370 MB/s, each
//! 1 MiB `pwrite` taking 2.3-3.5 ms instead of 0.2-0.3 (touching fresh
//! anonymous memory there took 1.7-3.2 s per GiB, huge pages or not). There,
//! uploads write directly, and buffered writes are tried again after a while.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A buffered write slower than this many nanoseconds per byte (1 GB/s)
/// faulted in new pages: the two cases measured 0.2-0.3 and 2.3-3.5.
const SLOW_NS_PER_BYTE: u128 = 1;
/// Writes smaller than this are not timed: too short to tell.
const MIN_TIMED: usize = 256 << 10;
/// Slow writes in a row before uploads write directly: one or two alone may
/// be a thread preempted mid-copy, with the network, hashing and the client
/// sharing two cores.
const SLOW_IN_A_ROW: u32 = 3;
/// How long uploads write directly after slow buffered writes; doubled each
/// time the buffered writes that follow are slow again, up to [`DIRECT_MAX`].
/// Each retry costs about three 1 MiB writes at the slow rate, some 7 ms.
const DIRECT_FOR: Duration = Duration::from_secs(1);
const DIRECT_MAX: Duration = Duration::from_secs(16);

pub struct PageCost {
    /// Milliseconds since [`epoch`] until which uploads write directly.
    direct_until: AtomicU64,
    /// How long the last direct period lasted (ms); 0 after a fast write.
    backoff: AtomicU64,
    slow_seen: AtomicU32,
}

static COST: PageCost = PageCost::new();

/// The process-wide judgement.
pub fn shared() -> &'static PageCost {
    &COST
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl PageCost {
    pub const fn new() -> PageCost {
        PageCost {
            direct_until: AtomicU64::new(0),
            backoff: AtomicU64::new(0),
            slow_seen: AtomicU32::new(0),
        }
    }

    /// Whether the next write should go through the page cache.
    pub fn cached(&self) -> bool {
        now_ms() >= self.direct_until.load(Ordering::Relaxed)
    }

    /// Takes in one buffered write of `bytes` that took `took`.
    pub fn judge(&self, bytes: usize, took: Duration) {
        if bytes < MIN_TIMED {
            return;
        }
        if took.as_nanos() <= SLOW_NS_PER_BYTE * bytes as u128 {
            self.slow_seen.store(0, Ordering::Relaxed);
            self.backoff.store(0, Ordering::Relaxed);
            return;
        }
        if self.slow_seen.fetch_add(1, Ordering::Relaxed) + 1 < SLOW_IN_A_ROW {
            return;
        }
        self.slow_seen.store(0, Ordering::Relaxed);
        let last = self.backoff.load(Ordering::Relaxed);
        let ms = (last * 2).clamp(DIRECT_FOR.as_millis() as u64, DIRECT_MAX.as_millis() as u64);
        self.backoff.store(ms, Ordering::Relaxed);
        self.direct_until.store(now_ms() + ms, Ordering::Relaxed);
        log::debug!(
            "buffered writes are slow ({:.0} MB/s): uploads write directly for {ms} ms",
            bytes as f64 * 1e3 / took.as_nanos().max(1) as f64
        );
    }

    /// Makes uploads write directly (`true`) or buffered (`false`) until
    /// judged otherwise, for tests of what uses it.
    #[cfg(test)]
    pub fn force_direct(&self, direct: bool) {
        let until = if direct { u64::MAX } else { 0 };
        self.direct_until.store(until, Ordering::Relaxed);
        self.slow_seen.store(0, Ordering::Relaxed);
        self.backoff.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const SLOW: Duration = Duration::from_millis(3);
    const FAST: Duration = Duration::from_micros(250);

    /// Three slow writes in a row switch to direct writes; fewer, or ones
    /// too small to time, change nothing.
    #[test]
    fn three_slow_writes_in_a_row_switch_to_direct() {
        let c = PageCost::new();
        c.judge(MIB, SLOW);
        c.judge(MIB, SLOW);
        c.judge(MIB, FAST);
        c.judge(MIB, SLOW);
        c.judge(MIB, SLOW);
        c.judge(MIN_TIMED - 1, Duration::MAX);
        assert!(c.cached(), "no three slow writes in a row yet");
        c.judge(MIB, SLOW);
        assert!(!c.cached());
    }

    /// Each failed retry doubles the direct period, up to the maximum, and a
    /// fast write starts over.
    #[test]
    fn retries_back_off_and_a_fast_write_resets_them() {
        let c = PageCost::new();
        let mut periods = vec![];
        let slow = |c: &PageCost| (0..SLOW_IN_A_ROW).for_each(|_| c.judge(MIB, SLOW));
        for _ in 0..7 {
            slow(&c);
            periods.push(c.backoff.load(Ordering::Relaxed));
        }
        assert_eq!(periods, [1000, 2000, 4000, 8000, 16000, 16000, 16000]);
        c.judge(MIB, FAST);
        slow(&c);
        assert_eq!(c.backoff.load(Ordering::Relaxed), 1000);
    }
}
