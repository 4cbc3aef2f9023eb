//! Serving a file as a stream of large chunks, read on the async worker
//! while they come from the page cache, and on the blocking pool, one read
//! ahead, once they come from the disk.
//!
//! Why: perf of a 1 GiB pull through `tokio::fs::File` showed a third of the
//! time in context switches (one blocking-pool hop per 256 KiB read, plus a
//! copy out of tokio's own buffer). Reading 1 MiB per hop, with the next hop
//! overlapping the send, halved that; perf of that version on a cached blob
//! still showed 8% in the scheduler and 20% in wakeup interrupts, all hops.
//! A page-cache read of 1 MiB takes about 100 µs, shorter than a hop's
//! round trip, so it is done in place; a read that took long says the disk
//! is involved, and from then on reads go to the blocking pool with the
//! kernel asked to read ahead, until one is fast again.

use bytes::Bytes;
use futures_core::Stream;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const CHUNK: u64 = 1 << 20;

/// A chunk read faster than this came from the page cache (a cached 1 MiB
/// read measured 60-150 µs here; the disk's fastest, over 500 µs).
const FAST: Duration = Duration::from_micros(400);

/// How far ahead the kernel is asked to read (`POSIX_FADV_WILLNEED`), at
/// every [`ADVISE_EVERY`] bytes read on the blocking pool only. Advice ahead
/// of every read made a cold pull up to 3.5x faster, but the kernel reads
/// advised ranges into single pages, and later pulls from the cache were
/// 15-20% slower than from the large folios sequential reads leave
/// (bench/README.md), so most of a cold blob gets the kernel's own read-ahead.
const ADVISE_AHEAD: u64 = 16 << 20;
const ADVISE_EVERY: u64 = 8 << 20;

type Read1 = io::Result<(Bytes, Duration)>;

pub struct Prefetch {
    file: Arc<File>,
    /// File offset of the next read.
    pos: u64,
    remaining: u64,
    /// Whether the last read was fast enough to do the next one in place.
    inline: bool,
    pending: Option<JoinHandle<Read1>>,
}

impl Prefetch {
    /// `file` is positioned at `offset`, where the stream starts.
    pub fn new(file: File, offset: u64, len: u64) -> Prefetch {
        Prefetch {
            file: Arc::new(file),
            pos: offset,
            remaining: len,
            inline: true,
            pending: None,
        }
    }

    /// The next chunk's position and length, taken off what remains.
    fn take_next(&mut self) -> (u64, u64, u64) {
        let n = self.remaining.min(CHUNK);
        let (pos, end) = (self.pos, self.pos + self.remaining);
        self.remaining -= n;
        self.pos += n;
        (pos, n, end)
    }

    fn read_ahead(&mut self) {
        if self.remaining == 0 {
            return;
        }
        let (pos, n, end) = self.take_next();
        let file = self.file.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || {
            if pos % ADVISE_EVERY < CHUNK {
                advise(&file, pos, ADVISE_AHEAD.min(end - pos));
            }
            read_chunk(&file, n)
        }));
    }

    /// Hands a chunk on, choosing where the next read happens.
    fn deliver(&mut self, r: Read1) -> Poll<Option<io::Result<Bytes>>> {
        match r {
            Ok((b, took)) => {
                self.inline = took < FAST;
                if !self.inline {
                    self.read_ahead();
                }
                Poll::Ready(Some(Ok(b)))
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// Reads the next `n` bytes at the file's position, timing the read.
fn read_chunk(mut file: &File, n: u64) -> Read1 {
    let start = Instant::now();
    let mut buf = Vec::with_capacity(n as usize);
    (&mut file).take(n).read_to_end(&mut buf)?;
    if (buf.len() as u64) < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than its recorded size",
        ));
    }
    Ok((Bytes::from(buf), start.elapsed()))
}

/// Asks the kernel to start reading a range; only a hint, so failures are ignored.
fn advise(file: &File, offset: u64, len: u64) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let (Ok(o), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    let _ = posix_fadvise(file, o, l, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
}

impl Stream for Prefetch {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(pending) = self.pending.as_mut() {
            let r = ready!(Pin::new(pending).poll(cx));
            self.pending = None;
            return self.deliver(r.unwrap_or_else(|e| Err(io::Error::other(e))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if self.inline {
            let (_, n, _) = self.take_next();
            let r = read_chunk(&self.file, n);
            return self.deliver(r);
        }
        self.read_ahead();
        self.poll_next(cx)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(p) = &self.pending {
            p.abort();
        }
    }
}
