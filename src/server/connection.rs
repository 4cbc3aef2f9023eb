//! Serves one accepted connection: the TLS handshake, then HTTP/1.1 or h2
//! through hyper. The header timeout bounds everything up to the first
//! request's head; the connection closes when nothing moves for the idle
//! timeout, or gives way between requests when its slot is needed.

use super::idle::{Activity, Tracked};
use super::listen::Accepted;
use super::plain;
use super::runtime::Current;
use super::slots::{Busy, Slot};
use crate::api;
use crate::config::listeners::Limits;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Whether a stream is encrypted, known from its type.
pub trait Secure {
    const SECURE: bool;
}

impl<T> Secure for Tracked<T> {
    const SECURE: bool = false;
}

impl<T> Secure for tokio_rustls::server::TlsStream<T> {
    const SECURE: bool = true;
}

/// What every connection shares.
pub struct Shared {
    pub current: Arc<Current>,
    pub http: auto::Builder<TokioExecutor>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Requests served, for the status line.
    pub requests: Arc<AtomicU64>,
}

impl Shared {
    pub fn new(current: Arc<Current>, limits: &Limits) -> Shared {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.headertimeout.0)
            .max_buf_size(limits.maxheaderbytes);
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.maxheaderbytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256);
        Shared {
            current,
            http,
            header_timeout: limits.headertimeout.0,
            idle_timeout: limits.idletimeout.0,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }
}

pub async fn serve(shared: Arc<Shared>, c: Accepted) {
    let Accepted {
        stream,
        peer,
        tls,
        open,
        anonymous,
        slot,
    } = c;
    // The header timeout runs from the accept to the first request's head:
    // a connection that never speaks holds its slot no longer than that.
    let first_request = tokio::time::Instant::now() + shared.header_timeout;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return log::warn!("connection from {peer}: {e}"),
    };
    let activity = Activity::new();
    let conn = Conn {
        shared: &shared,
        activity: activity.clone(),
        slot: &slot,
        peer,
        open,
        anonymous,
        first_request,
    };
    if !tls {
        return conn.run_http(Tracked::new(stream, activity)).await;
    }
    let hello = conn.until_first_request(plain::sniff(&stream)).await;
    let configs = shared.current.get().tls.as_ref().and_then(|t| t.config());
    let configs = match (hello, configs) {
        (Some(Ok(plain::Hello::Tls)), Some(c)) => c,
        (Some(Ok(plain::Hello::Tls)), None) => return plain::no_certificate(stream, peer).await,
        (Some(Ok(plain::Hello::PlainHttp)), c) => {
            return plain::refuse(stream, peer, c.is_some()).await;
        }
        (Some(Ok(plain::Hello::Closed) | Err(_)) | None, _) => return,
    };
    // The configuration depends on the hello: see `tls::suites`.
    let io = Tracked::new(stream, activity);
    let handshake = async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let config = configs.for_hello(&start.client_hello());
        start.into_stream(config).await
    };
    match conn.until_first_request(handshake).await {
        Some(Ok(stream)) => conn.run_http(stream).await,
        Some(Err(e)) => log::debug!("tls handshake with {peer}: {e}"),
        None => {}
    }
}

/// How long a connection asked to close may take over it while idle.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One connection being served.
struct Conn<'a> {
    shared: &'a Shared,
    activity: Activity,
    slot: &'a Slot,
    peer: std::net::SocketAddr,
    /// Served without authentication.
    open: bool,
    anonymous: bool,
    /// When the first request's head must have arrived.
    first_request: tokio::time::Instant,
}

impl Conn<'_> {
    /// Runs a step before the first request (the TLS hello and handshake),
    /// bounded by the header timeout; `None` if it ran out or the slot is
    /// needed elsewhere.
    async fn until_first_request<T>(&self, step: impl Future<Output = T>) -> Option<T> {
        let peer = self.peer;
        tokio::select! {
            r = tokio::time::timeout_at(self.first_request, step) => {
                if r.is_err() {
                    log::debug!("connection from {peer}: no request within the header timeout");
                }
                r.ok()
            }
            _ = self.slot.closing() => {
                log::debug!("connection from {peer} closed before its first request: slot needed");
                None
            }
        }
    }

    async fn run_http<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static + Secure,
    {
        // Each request takes the API current when it starts, so a reload reaches
        // long-lived (keep-alive, h2) connections too.
        let current = self.shared.current.clone();
        let requests = self.shared.requests.clone();
        let (tls, open, peer, handle) = (IO::SECURE, self.open, self.peer, self.slot.handle());
        let anonymous = self.anonymous;
        let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let busy = handle.busy();
            requests.fetch_add(1, Ordering::Relaxed);
            if tls {
                req.extensions_mut().insert(api::Tls);
            }
            if open {
                req.extensions_mut().insert(api::Unauthenticated);
            }
            if anonymous {
                req.extensions_mut().insert(api::AnonymousOnly);
            }
            let h1 = req.version() <= hyper::Version::HTTP_11;
            let response = api::handle(current.get().api.clone(), req, peer);
            async move {
                let mut resp = response.await?;
                if h1 && api::health::draining() {
                    // The client (a balancer's pool) must not send another
                    // request on this connection: it would close under it.
                    let close = hyper::header::HeaderValue::from_static("close");
                    resp.headers_mut().insert(hyper::header::CONNECTION, close);
                }
                Ok::<_, Infallible>(resp.map(|body| Held { body, _busy: busy }))
            }
        });
        let conn = self
            .shared
            .http
            .serve_connection(TokioIo::new(io), svc)
            .into_owned();
        let mut conn = std::pin::pin!(conn);
        let first_request = tokio::time::sleep_until(self.first_request);
        let mut first_request = std::pin::pin!(first_request);
        let (mut waiting_first, mut closing) = (true, false);
        let grace = tokio::time::sleep(Duration::MAX);
        let mut grace = std::pin::pin!(grace);
        let idle = self.shared.idle_timeout;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        log::debug!("connection from {peer}: {e}");
                    }
                    return;
                }
                _ = &mut first_request, if waiting_first => {
                    if !self.slot.handle().has_started() {
                        return log::debug!("connection from {peer}: no request within the header timeout");
                    }
                    waiting_first = false;
                }
                _ = self.slot.closing(), if !closing => {
                    // Finishes a request in flight, then closes (h2: GOAWAY).
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    grace.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                _ = &mut grace, if closing => {
                    // h2 waits for the client to acknowledge the GOAWAY; an
                    // idle client may never read it.
                    if !self.slot.handle().is_busy() {
                        return log::debug!("connection from {peer}: closed, its slot was needed");
                    }
                    grace.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                _ = self.activity.idle_for(idle) => {
                    return log::info!("closing connection from {peer}: idle for {idle:?}");
                }
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been sent (or dropped): a connection streaming a download is busy.
struct Held {
    body: api::body::Body,
    _busy: Busy,
}

impl HttpBody for Held {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
