//! Listening sockets: binds each configured listener and feeds accepted
//! connections, each holding one of the bounded connection slots, to the
//! serving loop.

use super::slots::{Slot, Slots};
use crate::config::listeners::Listener;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
#[error("{key}: cannot listen on {addr}: {source}")]
pub struct BindError {
    key: String,
    addr: SocketAddr,
    source: std::io::Error,
}

impl BindError {
    pub fn new(key: String, addr: SocketAddr, source: std::io::Error) -> BindError {
        BindError { key, addr, source }
    }
}

/// A connection that has been accepted and counts against the limit. Its
/// socket belongs to no runtime yet: the connection thread that serves it
/// registers it.
pub struct Accepted {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub tls: bool,
    /// Served without authentication (`auth: false` on a loopback listener).
    pub open: bool,
    /// Every request anonymous (`anonymous: true`).
    pub anonymous: bool,
    pub slot: Slot,
}

/// Binds `l.addr`; `[::]` falls back to `0.0.0.0` on hosts without IPv6.
pub async fn bind(l: &Listener) -> Result<TcpListener, BindError> {
    let err = |addr, source| BindError {
        key: l.key.clone(),
        addr,
        source,
    };
    match TcpListener::bind(l.addr).await {
        Err(e) if l.addr.ip().is_unspecified() && l.addr.is_ipv6() => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], l.addr.port()));
            log::debug!("IPv6 bind failed ({e}); trying {v4}");
            TcpListener::bind(v4).await.map_err(|e| err(v4, e))
        }
        r => r.map_err(|e| err(l.addr, e)),
    }
}

/// Accepts on `listener` until `out` closes. Each accepted connection then
/// takes a slot (see [`Slots::acquire`]); while it waits for one, further
/// connections wait in the kernel's backlog.
pub async fn accept_loop(
    listener: TcpListener,
    config: Listener,
    slots: Arc<Slots>,
    out: mpsc::Sender<Accepted>,
) {
    let mut warned = false;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    log::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = out.closed() => return,
        };
        let full = || {
            if !std::mem::replace(&mut warned, true) {
                log::warn!(
                    "connection limit reached (privateregistry.limits.maxconnections) with every connection busy; new connections wait"
                );
            }
        };
        let slot = tokio::select! {
            s = slots.acquire(full) => match s {
                Some(s) => s,
                None => return,
            },
            _ = out.closed() => return,
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                continue;
            }
        };
        let accepted = Accepted {
            stream,
            peer,
            tls: config.tls,
            open: !config.auth,
            anonymous: config.anonymous,
            slot,
        };
        if out.send(accepted).await.is_err() {
            return;
        }
    }
}
