//! Serves one accepted connection: the TLS handshake (bounded by the header
//! timeout), then HTTP/1.1 or h2 through hyper, closed when idle.

use super::idle::{Activity, Tracked};
use super::listen::Accepted;
use super::runtime::Current;
use crate::api;
use crate::config::listeners::Limits;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

pub async fn serve(shared: Arc<Shared>, c: Accepted, watcher: Watcher) {
    let _slot = c.slot;
    let peer = c.peer;
    let stream = match tokio::net::TcpStream::from_std(c.stream) {
        Ok(s) => s,
        Err(e) => return log::warn!("connection from {peer}: {e}"),
    };
    let activity = Activity::new();
    let io = Tracked::new(stream, activity.clone());
    let open = c.open;
    if !c.tls {
        return run_http(&shared, io, activity, watcher, peer, open).await;
    }
    let Some(configs) = shared.current.get().tls.as_ref().and_then(|t| t.config()) else {
        log::debug!("tls connection from {peer} closed: no certificate yet");
        return;
    };
    // The configuration depends on the hello: see `tls::suites`.
    let handshake = async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let config = configs.for_hello(&start.client_hello());
        start.into_stream(config).await
    };
    match tokio::time::timeout(shared.header_timeout, handshake).await {
        Ok(Ok(stream)) => run_http(&shared, stream, activity, watcher, peer, open).await,
        Ok(Err(e)) => log::debug!("tls handshake with {peer}: {e}"),
        Err(_) => log::debug!("tls handshake with {peer}: timed out"),
    }
}

async fn run_http<IO>(
    shared: &Shared,
    io: IO,
    activity: Activity,
    watcher: Watcher,
    peer: std::net::SocketAddr,
    open: bool,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static + Secure,
{
    // Each request takes the API current when it starts, so a reload reaches
    // long-lived (keep-alive, h2) connections too.
    let current = shared.current.clone();
    let requests = shared.requests.clone();
    let tls = IO::SECURE;
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        requests.fetch_add(1, Ordering::Relaxed);
        if tls {
            req.extensions_mut().insert(api::Tls);
        }
        if open {
            req.extensions_mut().insert(api::Unauthenticated);
        }
        api::handle(current.get().api.clone(), req, peer)
    });
    let conn = shared
        .http
        .serve_connection(TokioIo::new(io), svc)
        .into_owned();
    tokio::select! {
        r = watcher.watch(conn) => if let Err(e) = r {
            log::debug!("connection from {peer}: {e}");
        },
        _ = activity.idle_for(shared.idle_timeout) => {
            log::info!("closing connection from {peer}: idle for {:?}", shared.idle_timeout);
        }
    }
}
