//! Big transfers (1 GiB pushes and pulls) on one blocking keep-alive socket,
//! moved through one reused 1 MiB buffer: the client does what curl does (a
//! read and a send per piece, plus encryption over TLS) and nothing more, so
//! the figure is the server's. Through hyper's client on the runtime, pulls
//! topped out near 2 GB/s where curl reached 3.5 GB/s against the same server,
//! and each pushed piece was a fresh zeroed allocation.

use crate::conn::{Blocking, Target};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::{Deref, DerefMut};

const PIECE: usize = 1 << 20;
const PAGE: usize = 4096;

/// A zeroed buffer that starts on a page boundary, without unsafe code: a
/// vector one page longer, used from its first aligned byte.
///
/// Why: the kernel copies with `rep movsb`, which on this CPU (AMD EPYC,
/// Zen 4) runs at half speed or less when the destination is 1-63 bytes past
/// the source modulo 4096. A 1 MiB `vec!` is a fresh mapping whose data
/// starts 16 bytes into a page, so every read of the (page-aligned) file
/// into it hit that case: 7.4 against 15 GB/s from the page cache, and 1 GiB
/// pushes were 4-11% faster once aligned (bench/README.md). curl's upload
/// buffer comes from the heap, where 3 of a page's 256 16-byte offsets do.
struct PageBuf {
    mem: Vec<u8>,
    at: usize,
}

impl PageBuf {
    fn new(len: usize) -> PageBuf {
        let mem = vec![0u8; len + PAGE];
        let at = mem.as_ptr().align_offset(PAGE);
        PageBuf { mem, at }
    }

    /// Where the aligned window lies in `mem`.
    fn window(&self) -> std::ops::Range<usize> {
        self.at..self.at + self.mem.len() - PAGE
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.mem[self.window()]
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let w = self.window();
        &mut self.mem[w]
    }
}

pub struct Bulk {
    s: Box<dyn Blocking>,
    host: String,
    auth: Option<String>,
    buf: PageBuf,
    /// Bytes after the last response head that belong to its body.
    held: usize,
}

/// A response head.
pub struct Reply {
    pub status: u16,
    head: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn len(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Bulk {
    pub fn connect(t: &Target) -> io::Result<Bulk> {
        Ok(Bulk {
            s: t.connect_blocking()?,
            host: t.addr.clone(),
            auth: t.auth.clone(),
            buf: PageBuf::new(PIECE),
            held: 0,
        })
    }

    /// Sends a request whose body is `len` bytes of `file` from `offset`,
    /// and reads the response head. The response body is the caller's:
    /// [`Bulk::skip`] or [`Bulk::drain`] it before the next request.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<(&mut File, u64, u64)>,
    ) -> io::Result<Reply> {
        let len = body.as_ref().map_or(0, |b| b.2);
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(a) = &self.auth {
            head += &format!("Authorization: {a}\r\n");
        }
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        head += &format!("Content-Length: {len}\r\n\r\n");
        // The head goes out with the first piece, as hyper's client sends it.
        let mut out = head.into_bytes();
        if let Some((file, offset, mut left)) = body {
            file.seek(SeekFrom::Start(offset))?;
            while left > 0 {
                let n = (left as usize).min(PIECE);
                file.read_exact(&mut self.buf[..n])?;
                if out.is_empty() {
                    self.s.write_all(&self.buf[..n])?;
                } else {
                    out.extend_from_slice(&self.buf[..n]);
                    self.s.write_all(&std::mem::take(&mut out))?;
                }
                left -= n as u64;
            }
        }
        self.s.write_all(&out)?;
        self.s.flush()?;
        self.read_head()
    }

    fn read_head(&mut self) -> io::Result<Reply> {
        let mut got = 0;
        let end = loop {
            let n = self.s.read(&mut self.buf[got..])?;
            if n == 0 {
                return Err(io::Error::other("connection closed in a response head"));
            }
            got += n;
            if let Some(i) = self.buf[..got].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if got == self.buf.len() {
                return Err(io::Error::other("response head too large"));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("no status in a response head"))?;
        self.buf.copy_within(end..got, 0);
        self.held = got - end;
        Ok(Reply { status, head })
    }

    /// Reads and discards a response body of `len` bytes; returns how many came.
    pub fn drain(&mut self, len: u64) -> io::Result<u64> {
        let mut n = self.held as u64;
        self.held = 0;
        while n < len {
            match self.s.read(&mut self.buf)? {
                0 => break,
                r => n += r as u64,
            }
        }
        Ok(n)
    }

    /// Discards the body of `r`, expecting status `want`.
    pub fn expect(&mut self, r: &Reply, want: u16, what: &str) -> Result<(), String> {
        self.drain(r.len()).map_err(|e| e.to_string())?;
        if r.status == want {
            Ok(())
        } else {
            Err(format!("{what}: status {} (expected {want})", r.status))
        }
    }
}
