//! Appending large objects: through the page cache, with write-back started
//! per MiB, while new page-cache pages are cheap ([`pagecost`]); with
//! `O_DIRECT` from one reused, aligned buffer while they are not.
//!
//! Why both: profiling a 1 GiB push (perf) on a host that faults every new
//! page in showed over half the server's time in the kernel copying into
//! freshly allocated page-cache pages (`copy_folio_from_iter_atomic`), then
//! the final `fdatasync` waiting for all of it to be written back. Direct
//! writes skip both: the data is on the disk when `pwrite` returns, and the
//! closing `fdatasync` only flushes metadata and the device cache. But a blob
//! written directly is not in the page cache, so its first pull reads the
//! disk; written buffered into recycled pages it is served from memory, and
//! the push is no slower. Write-back is started as each MiB is written and
//! waited for [`LAG`] behind, so the closing `fdatasync` finds little left
//! and dirty pages stay bounded per upload; either way, nothing is
//! acknowledged before `finish` has made it durable.
//!
//! Bytes for direct writes are copied into the buffer by
//! [`super::uncached::Filler`], which switches to streaming stores while the
//! host makes ordinary ones slow. Direct I/O needs block-aligned offsets,
//! lengths and memory: whole blocks are written directly; the last partial
//! block stays in the buffer until [`Appender::finish`] writes it through the
//! page cache, and a direct append to a file that ends mid-block starts by
//! reading that block back. Where the filesystem refuses `O_DIRECT` (tmpfs),
//! everything is written buffered.

use super::aligned::{ALIGN, AlignedBuf, MAX_BUF};
use super::pagecost::{self, PageCost};
use bytes::Bytes;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

/// Write-back is started for each whole MiB written through the page cache.
const KICK: u64 = 1 << 20;
/// How far behind the newest byte write-back is waited for. In the C loop,
/// waiting 4 MiB behind halved the rate of waiting 16 MiB behind.
const LAG: u64 = 16 << 20;

pub struct Appender {
    file: File,
    /// Whether the filesystem takes `O_DIRECT` at all.
    can_direct: bool,
    /// Whether the descriptor has `O_DIRECT` set now.
    direct: bool,
    /// Where the buffer's first byte belongs in the file; always aligned
    /// while the buffer holds bytes for direct writes.
    flushed: u64,
    buf: AlignedBuf,
    /// Write-back of buffered bytes: started up to `started`, and finished
    /// up to `settled`.
    started: u64,
    settled: u64,
    cost: &'static PageCost,
}

impl Appender {
    /// Opens `path` for appending (or truncated).
    pub fn open(path: &Path, append: bool) -> io::Result<Appender> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .read(true)
            .truncate(!append)
            .open(path)?;
        let size = file.metadata()?.len();
        let done = size / KICK * KICK;
        Ok(Appender {
            file,
            can_direct: true,
            direct: false,
            flushed: size,
            buf: AlignedBuf::new(ALIGN),
            started: done,
            settled: done,
            cost: pagecost::shared(),
        })
    }

    /// Bytes in the object, counting what is still buffered.
    pub fn size(&self) -> u64 {
        self.flushed + self.buf.len as u64
    }

    /// Appends one batch of a request body.
    pub fn write_batch(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        if self.can_direct && !self.cost.cached() {
            return chunks.iter().try_for_each(|c| self.write_direct(c));
        }
        self.set_direct(false)?;
        self.write_out_buffer()?;
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let t = Instant::now();
        self.pwritev(chunks)?;
        self.cost.judge(len, t.elapsed());
        self.write_back()
    }

    /// Appends `b` as a batch of one, for tests.
    #[cfg(test)]
    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.write_batch(&[Bytes::copy_from_slice(b)])
    }

    /// Writes `chunks` at the end, through the page cache.
    fn pwritev(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            // IOV_MAX (1024) slices per call.
            let n = rest.len().min(1024);
            let wrote = nix::sys::uio::pwritev(&self.file, &rest[..n], self.flushed as i64)
                .map_err(io::Error::from)?;
            if wrote == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.flushed += wrote as u64;
            IoSlice::advance_slices(&mut rest, wrote);
        }
        Ok(())
    }

    /// Starts write-back of the whole MiBs written, and waits for it up to
    /// [`LAG`] behind them.
    fn write_back(&mut self) -> io::Result<()> {
        use nix::libc::{
            SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE,
        };
        let end = self.flushed / KICK * KICK;
        if end > self.started {
            self.sync_range(self.started, end, SYNC_FILE_RANGE_WRITE)?;
            self.started = end;
        }
        if self.started >= self.settled + LAG + KICK {
            let upto = self.started - LAG;
            let wait =
                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
            self.sync_range(self.settled, upto, wait)?;
            self.settled = upto;
        }
        Ok(())
    }

    fn sync_range(&self, from: u64, to: u64, flags: u32) -> io::Result<()> {
        // SAFETY: sync_file_range takes no pointers; an invalid descriptor or
        // range is reported as an error.
        let r = unsafe {
            nix::libc::sync_file_range(
                self.file.as_raw_fd(),
                from as i64,
                (to - from) as i64,
                flags,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Copies `b` into the aligned buffer, writing it out directly when full.
    fn write_direct(&mut self, mut b: &[u8]) -> io::Result<()> {
        if !self.direct {
            self.read_back_tail()?;
            self.set_direct(true)?;
            if !self.direct {
                return self.write_batch(&[Bytes::copy_from_slice(b)]);
            }
        }
        while !b.is_empty() {
            self.buf.reserve(b.len());
            let n = self.buf.push(b);
            b = &b[n..];
            if self.buf.len == self.buf.cap {
                self.flush_blocks()?;
            }
        }
        Ok(())
    }

    /// Before direct writes: takes the file's partial last block into the
    /// (empty) buffer, so that writes start on a block boundary.
    fn read_back_tail(&mut self) -> io::Result<()> {
        let tail = (self.flushed % ALIGN as u64) as usize;
        if self.buf.len > 0 || tail == 0 {
            return Ok(());
        }
        let mut block = vec![0u8; tail];
        self.file
            .read_exact_at(&mut block, self.flushed - tail as u64)?;
        self.flushed -= tail as u64;
        self.buf.push(&block);
        Ok(())
    }

    /// Writes the buffer's whole blocks directly (all of it when buffered).
    fn flush_blocks(&mut self) -> io::Result<()> {
        let n = if self.direct {
            self.buf.len / ALIGN * ALIGN
        } else {
            self.buf.len
        };
        if n == 0 {
            return Ok(());
        }
        self.buf.filler.filled();
        match self.file.write_all_at(&self.buf.data()[..n], self.flushed) {
            // Some filesystems accept O_DIRECT at open but not the write.
            Err(e) if self.direct && e.raw_os_error() == Some(nix::libc::EINVAL) => {
                self.can_direct = false;
                self.set_direct(false)?;
                return self.flush_blocks();
            }
            r => r?,
        }
        self.flushed += n as u64;
        self.buf.consume(n);
        Ok(())
    }

    /// Writes out whatever the buffer holds, through the page cache.
    fn write_out_buffer(&mut self) -> io::Result<()> {
        if self.buf.len > 0 {
            self.set_direct(false)?;
            self.flush_blocks()?;
        }
        Ok(())
    }

    /// Sets or clears `O_DIRECT` on the descriptor; a filesystem that
    /// refuses it leaves the appender buffered for good.
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        let on = on && self.can_direct;
        if on == self.direct {
            return Ok(());
        }
        let flags = OFlag::from_bits_truncate(fcntl(&self.file, FcntlArg::F_GETFL)?);
        let flags = if on {
            flags | OFlag::O_DIRECT
        } else {
            flags - OFlag::O_DIRECT
        };
        match fcntl(&self.file, FcntlArg::F_SETFL(flags)) {
            Err(nix::errno::Errno::EINVAL) if on => self.can_direct = false,
            r => {
                r?;
                self.direct = on;
            }
        }
        Ok(())
    }

    /// Writes what is buffered (whole blocks of a full buffer directly, the
    /// rest through the page cache) and makes everything durable. A direct
    /// write that never filled the buffer (under [`MAX_BUF`]) goes through
    /// the page cache whole, where its next read finds it.
    pub fn finish(mut self) -> io::Result<()> {
        if self.direct && self.buf.cap == MAX_BUF {
            self.flush_blocks()?;
        }
        self.write_out_buffer()?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    /// Appends of awkward sizes, across reopenings, buffered, direct, and
    /// switching between the two mid-append, read back exactly.
    #[test]
    fn appends_of_any_size_read_back_exactly() {
        let dir = std::env::current_dir()
            .unwrap()
            .join(format!("target/append-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let mut expected = vec![];
        let cost: &'static PageCost = Box::leak(Box::new(PageCost::new()));
        // The second large direct append normally reuses the first one's
        // buffer, stale bytes and all (unless a test running alongside took
        // it first).
        let sizes = [
            1usize,
            4095,
            4097,
            10,
            5 << 20,
            3,
            (3 << 20) + 17,
            8192,
            123_457,
            (2 << 20) + 1,
            (6 << 20) + 4095,
            (4 << 20) + 1,
        ];
        for (i, s) in sizes.iter().enumerate() {
            // Some direct ones filled with streaming stores (see `uncached`).
            if i % 4 == 1 {
                super::super::uncached::stream_next(u32::MAX);
            }
            let mut w = Appender::open(&path, i > 0).unwrap();
            w.cost = cost;
            assert_eq!(w.size(), expected.len() as u64);
            let p = pattern(*s, i as u8);
            // Buffered, direct, buffered then direct, direct then buffered.
            let switch = |piece: usize| match i % 4 {
                0 => false,
                1 => true,
                2 => piece > 40,
                _ => piece <= 40,
            };
            for (n, piece) in p.chunks(70_001).enumerate() {
                cost.force_direct(switch(n));
                w.write(piece).unwrap();
            }
            expected.extend_from_slice(&p);
            assert_eq!(w.size(), expected.len() as u64);
            w.finish().unwrap();
            super::super::uncached::stream_next(0);
            assert_eq!(std::fs::read(&path).unwrap(), expected, "after {s} bytes");
        }
        let w = Appender::open(&path, false).unwrap();
        assert_eq!(w.size(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
