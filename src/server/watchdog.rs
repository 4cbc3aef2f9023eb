//! systemd's watchdog (`WatchdogSec=`): `WATCHDOG=1` is sent only after the
//! daemon has answered a real request on one of its own listeners, so a
//! wedged accept loop or runtime gets the service restarted.

use super::Bound;
use crate::systemd;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where to probe: a plain listener gets an HTTP request; a TLS-only daemon
/// gets a TCP connection, which still proves the accept loop runs.
#[derive(Clone, Copy)]
pub struct Probe {
    addr: SocketAddr,
    http: bool,
}

pub fn probe_target(bound: &[Bound]) -> Option<Probe> {
    let pick = |tls: bool| bound.iter().find(|b| b.listener.tls == tls);
    let b = pick(false).or_else(|| pick(true))?;
    let mut addr = b.socket.local_addr().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Some(Probe {
        addr,
        http: !b.listener.tls,
    })
}

async fn answers(p: Probe) -> std::io::Result<bool> {
    let mut s = tokio::net::TcpStream::connect(p.addr).await?;
    if !p.http {
        return Ok(true);
    }
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: watchdog\r\nConnection: close\r\n\r\n")
        .await?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    Ok(head.starts_with(b"HTTP/1.1 "))
}

/// Starts pinging systemd at half the interval it asked for, if it asked.
pub fn spawn(probe: Option<Probe>) {
    let (Some(interval), Some(probe)) = (systemd::watchdog_interval(), probe) else {
        return;
    };
    let every = interval / 2;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match tokio::time::timeout(every, answers(probe)).await {
                Ok(Ok(true)) => systemd::watchdog(),
                Ok(Ok(false)) => log::warn!("watchdog: {} answered oddly", probe.addr),
                Ok(Err(e)) => log::warn!("watchdog: {} does not answer: {e}", probe.addr),
                Err(_) => log::warn!("watchdog: {} did not answer within {every:?}", probe.addr),
            }
        }
    });
}
