//! What a TLS port says when it cannot speak TLS with the client. Plain
//! HTTP would get alert bytes, which Docker prints as `malformed HTTP
//! response "\x15\x03…"`; like Go's servers, we answer with a readable
//! HTTP 400 instead. Before a certificate exists, TLS clients get a
//! handshake-failure alert.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the client's first byte says it speaks.
pub enum Hello {
    /// A TLS record (or anything rustls should judge).
    Tls,
    /// An HTTP method's first letter.
    PlainHttp,
    /// Closed before sending anything.
    Closed,
}

/// Waits for the first byte without taking it.
pub async fn sniff(stream: &TcpStream) -> std::io::Result<Hello> {
    let mut first = [0u8; 1];
    Ok(match stream.peek(&mut first).await? {
        0 => Hello::Closed,
        // A TLS handshake record starts with 0x16; methods are upper case.
        _ if first[0].is_ascii_uppercase() => Hello::PlainHttp,
        _ => Hello::Tls,
    })
}

const USE_HTTPS: &str = "This port speaks HTTPS only: use https:// in the registry's address.\n";
const NO_CERTIFICATE: &str = "This port speaks HTTPS only, and has no certificate yet: \
    the administrator creates one with private-registry-certgen HOST.\n";

/// Answers 400 and closes; `ready` says whether TLS is being served yet.
pub async fn refuse(mut stream: TcpStream, peer: std::net::SocketAddr, ready: bool) {
    log::debug!("connection from {peer}: plain HTTP on a TLS port, answered 400");
    let answer = if ready { USE_HTTPS } else { NO_CERTIFICATE };
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    if stream.write_all(head.as_bytes()).await.is_err()
        || stream.write_all(answer.as_bytes()).await.is_err()
        || stream.shutdown().await.is_err()
    {
        return;
    }
    // Closing with the request unread would reset the connection, and the
    // client might never see the answer: read what it sent first, briefly.
    let mut sink = [0u8; 8192];
    let drain = async {
        let mut left = 64 << 10;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// A fatal `handshake_failure` alert, TLS 1.2 record framing (which TLS 1.3
/// clients accept for alerts sent before the handshake completes).
const HANDSHAKE_FAILURE: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40];

/// Ends a TLS hello arriving before any certificate exists with an alert, so
/// clients report a failed handshake rather than a connection closed
/// mid-handshake; the log and the status line say what to do.
pub async fn no_certificate(mut stream: TcpStream, peer: std::net::SocketAddr) {
    log::debug!("tls connection from {peer}: no certificate yet, answered handshake_failure");
    let _ = stream.write_all(&HANDSHAKE_FAILURE).await;
    let _ = stream.shutdown().await;
}
