//! Bodies in and out: whole buffers for small responses, a streaming reader
//! for blobs, and request bodies adapted into the storage layer's byte stream.

use bytes::Bytes;
use futures_core::Stream;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub type Body = UnsyncBoxBody<Bytes, io::Error>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The most a blob body hands hyper at once, so the most each socket write
/// carries (hyper writes frames one by one while they exceed its buffer,
/// which is `maxheaderbytes`, 32 KiB by default).
///
/// Why: pulls over loopback measured about a third faster plain and a fifth
/// with TLS in pieces of 48-62 KiB than in the storage layer's 1 MiB chunks,
/// and 64 KiB or more was slower than 1 MiB (bench/README.md). Each such
/// write fits one loopback segment (MTU 64 KiB); our reading is that it goes
/// out at once and the receiver copies it while the next goes in. nginx (2 x 32 KiB)
/// and Go (32 KiB) write pieces of this order too; slicing copies nothing.
const SEND_PIECE: usize = 56 << 10;

/// A response body of exactly `len` bytes from a stream of chunks.
pub struct StreamBody {
    stream: crate::storage::ByteStream,
    /// Bytes not yet taken from the stream.
    remaining: u64,
    /// The rest of the last chunk, still to be sent.
    held: Bytes,
}

impl StreamBody {
    pub fn boxed(stream: crate::storage::ByteStream, len: u64) -> Body {
        StreamBody {
            stream,
            remaining: len,
            held: Bytes::new(),
        }
        .boxed_unsync()
    }
}

impl HttpBody for StreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        while self.held.is_empty() {
            if self.remaining == 0 {
                return Poll::Ready(None);
            }
            match ready!(self.stream.as_mut().poll_next(cx)) {
                Some(Ok(b)) => {
                    self.remaining = self.remaining.saturating_sub(b.len() as u64);
                    self.held = b;
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(Some(Err(short_blob()))),
            }
        }
        let n = self.held.len().min(SEND_PIECE);
        Poll::Ready(Some(Ok(Frame::data(self.held.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.held.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining + self.held.len() as u64)
    }
}

fn short_blob() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "blob shorter than its recorded size",
    )
}

/// A request body as a stream of data chunks (trailers are dropped).
pub struct IncomingStream(pub Incoming);

impl Stream for IncomingStream {
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match ready!(Pin::new(&mut self.0).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

/// Reads a whole request body, refusing more than `limit` bytes.
pub async fn collect_limited(body: Incoming, limit: usize) -> Result<Bytes, Option<io::Error>> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(None),
        Err(e) => Err(Some(io::Error::other(e))),
    }
}
