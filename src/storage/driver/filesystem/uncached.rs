//! Filling direct-I/O buffers: with ordinary stores while they are fast, with
//! non-temporal (streaming) stores, which write around the CPU caches, while
//! the host makes ordinary ones slow.
//!
//! Why: a buffer the virtual disk has just read for an `O_DIRECT` write is
//! slow to write into again in phases the host decides, lasting seconds:
//! copying 1 MiB into it ran at 2.3-3.3 GB/s instead of 30-48 (a C loop of
//! copy, then direct write, of one buffer; without the write it stayed at
//! 48). Pushes in such a phase spent a fifth of the server's time in that
//! copy (perf). Streaming stores ran at 22-25 GB/s in and out of those
//! phases, but the direct write that follows them is slower (1.4-2.1
//! against 2.0-2.7 GB/s in the same C loop; our reading: the disk then
//! takes the bytes from memory rather than from a cache), which lengthened
//! the wait at the end of each 16 MiB PATCH from 1.0 to 1.8 ms (medians of
//! 390, timers in the server). So streaming is only used once ordinary
//! copies are seen to be slow, and ordinary ones are tried again after a
//! while.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// An ordinary fill slower than this (bytes per second) is a slow phase.
const SLOW: f64 = 8e9;
/// Slow fills in a row before streaming starts: one alone may be a thread
/// that was preempted mid-copy.
const SLOW_IN_A_ROW: u32 = 2;
/// Buffers filled by streaming before ordinary stores are tried again.
const STREAM_FOR: u32 = 64;
/// Fills smaller than this are not timed: too short to tell.
const MIN_TIMED: usize = 256 << 10;

/// What the recent fills showed, shared by all uploads: the phases are the
/// host's, not one buffer's.
struct Phase {
    /// Buffers still to fill by streaming.
    streaming: AtomicU32,
    /// Slow ordinary fills seen in a row.
    slow_seen: AtomicU32,
}

static PHASE: Phase = Phase::new();

impl Phase {
    const fn new() -> Phase {
        Phase {
            streaming: AtomicU32::new(0),
            slow_seen: AtomicU32::new(0),
        }
    }

    fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Relaxed) > 0
    }

    /// Takes in one buffer's fill: `bytes` copied in `nanos` with ordinary
    /// stores, or by streaming.
    fn judge(&self, bytes: usize, nanos: u128, streamed: bool) {
        if streamed {
            let _ = self
                .streaming
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        } else if bytes >= MIN_TIMED {
            let slow = (bytes as f64) * 1e9 < SLOW * nanos.max(1) as f64;
            if !slow {
                self.slow_seen.store(0, Ordering::Relaxed);
            } else if self.slow_seen.fetch_add(1, Ordering::Relaxed) + 1 >= SLOW_IN_A_ROW {
                self.slow_seen.store(0, Ordering::Relaxed);
                if self.streaming.swap(STREAM_FOR, Ordering::Relaxed) == 0 {
                    log::debug!(
                        "copies into upload buffers are slow ({:.1} GB/s): streaming for {STREAM_FOR} buffers",
                        bytes as f64 / nanos.max(1) as f64
                    );
                }
            }
        }
    }
}

/// Copies into one buffer until it is written out, timing ordinary copies.
#[derive(Default)]
pub struct Filler {
    bytes: usize,
    nanos: u128,
    streamed: bool,
}

impl Filler {
    /// Copies `src` into `dst` (of equal length). Streaming stores are fenced
    /// before returning, so a write issued afterwards sees them all.
    pub fn copy(&mut self, dst: &mut [u8], src: &[u8]) {
        if PHASE.streaming() {
            self.streamed = true;
            return copy_streaming(dst, src);
        }
        let t = Instant::now();
        dst.copy_from_slice(src);
        self.nanos += t.elapsed().as_nanos();
        self.bytes += src.len();
    }

    /// The buffer is about to be written: judges how its filling went.
    pub fn filled(&mut self) {
        let f = std::mem::take(self);
        PHASE.judge(f.bytes, f.nanos, f.streamed);
    }
}

/// Makes the next `n` buffers fill by streaming, for tests of what uses it.
#[cfg(test)]
pub fn stream_next(n: u32) {
    PHASE.streaming.store(n, Ordering::Relaxed);
}

/// Copies with streaming stores where the CPU has them.
fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    assert_eq!(
        dst.len(),
        src.len(),
        "copy between slices of unequal length"
    );
    #[cfg(target_arch = "x86_64")]
    {
        // Up to the first 16-byte boundary of `dst`, and the part after the
        // last whole 64 bytes, go through the cache as usual.
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        let body = (dst.len() - head) / 64 * 64;
        dst[..head].copy_from_slice(&src[..head]);
        if body > 0 {
            stream(&mut dst[head..head + body], &src[head..head + body]);
        }
        dst[head + body..].copy_from_slice(&src[head + body..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// `dst` is 16-byte aligned, both are a multiple of 64 bytes long.
#[cfg(target_arch = "x86_64")]
fn stream(dst: &mut [u8], src: &[u8]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
    debug_assert!(dst.len() == src.len() && dst.len().is_multiple_of(64));
    debug_assert_eq!(dst.as_ptr().align_offset(16), 0);
    for (d, s) in dst.chunks_exact_mut(64).zip(src.chunks_exact(64)) {
        let (d, s) = (
            d.as_mut_ptr().cast::<__m128i>(),
            s.as_ptr().cast::<__m128i>(),
        );
        // SAFETY: SSE2 is part of x86_64. Each 64-byte piece is in bounds of
        // its slice; loads are unaligned, and `d` is 16-byte aligned because
        // `dst` is and the pieces are 64 bytes.
        unsafe {
            let v = [0, 1, 2, 3].map(|i| _mm_loadu_si128(s.add(i)));
            for (i, v) in v.into_iter().enumerate() {
                _mm_stream_si128(d.add(i), v);
            }
        }
    }
    // SAFETY: a fence has no preconditions; it orders the streaming stores
    // before any later store, and with them before the write that sends them.
    unsafe { _mm_sfence() };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two slow fills in a row start streaming, for [`STREAM_FOR`] buffers;
    /// a slow fill alone, or one too small to time, changes nothing.
    #[test]
    fn streams_for_a_while_after_slow_fills() {
        let p = Phase::new();
        let (mib, slow, fast) = (1 << 20, 1_000_000, 30_000);
        p.judge(mib, slow, false);
        p.judge(mib, fast, false);
        p.judge(mib, slow, false);
        p.judge(MIN_TIMED - 1, u128::MAX, false);
        assert!(!p.streaming(), "no two slow fills in a row yet");
        p.judge(mib, slow, false);
        assert!(p.streaming());
        for _ in 0..STREAM_FOR {
            assert!(p.streaming());
            p.judge(mib, 0, true);
        }
        assert!(!p.streaming(), "ordinary stores are tried again");
    }

    /// Every offset and length around the alignment edges copies exactly.
    #[test]
    fn streaming_copies_exactly_at_any_offset_and_length() {
        let src: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        for off in 0..70 {
            for len in (0..300).chain([1000, 4096, 4099]) {
                let mut dst = vec![0xAAu8; 5000 + 140];
                copy_streaming(&mut dst[off..off + len], &src[off..off + len]);
                assert_eq!(&dst[off..off + len], &src[off..off + len], "{off}+{len}");
                assert!(dst[..off].iter().all(|&b| b == 0xAA), "before {off}+{len}");
                assert!(
                    dst[off + len..].iter().all(|&b| b == 0xAA),
                    "after {off}+{len}"
                );
            }
        }
    }
}
