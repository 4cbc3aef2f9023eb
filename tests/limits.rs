//! Hardening against bad clients: oversized requests get clear errors, slow
//! or stalled clients are cut off, and connections are bounded.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

const TIGHT: &str = "privateregistry:
  limits:
    maxheaderbytes: 8192
    maxurlbytes: 1024
    headertimeout: 1s
    idletimeout: 2s
";

/// Reads until the server closes the connection (or `limit` passes).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = vec![];
    match s.read_to_end(&mut buf) {
        Ok(_) => Some(buf),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(buf),
        Err(_) => None,
    }
}

#[test]
fn oversized_headers_and_urls_are_refused() {
    let s = Server::start_with(TIGHT);
    let r = s
        .req("GET", "/v2/")
        .header("X-Big", &"a".repeat(9000))
        .send();
    assert_eq!(r.status, 431);
    let r = s
        .req("GET", &format!("/v2/{}/tags/list", "a".repeat(2000)))
        .send();
    assert_eq!(r.status, 414);
    assert_eq!(r.code(), "UNSUPPORTED");
    assert!(r.text().contains("1024 bytes"), "{}", r.text());
    assert_eq!(s.req("GET", "/v2/").send().status, 200, "still serving");
}

#[test]
fn slow_headers_and_stalled_uploads_are_cut_off() {
    let s = Server::start_with(TIGHT);
    // Slowloris: header bytes trickle in faster than the idle timeout, so
    // only the header timeout can end it.
    let mut c = TcpStream::connect(s.addr).unwrap();
    let mut w = c.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = w.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            std::thread::sleep(Duration::from_millis(300));
            if w.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
                return;
            }
        }
    });
    assert!(
        read_until_closed(&mut c, Duration::from_secs(20)).is_some(),
        "the server closes a connection whose headers never finish"
    );

    // An upload whose body stops arriving: the connection is closed and
    // nothing unacknowledged becomes visible.
    let r = s.req("POST", "/v2/a/blobs/uploads/").send();
    let upload = r.location_path();
    let mut c = TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&[7u8; 1000]).unwrap();
    assert!(
        read_until_closed(&mut c, Duration::from_secs(30)).is_some(),
        "a stalled upload is closed"
    );
    let r = s.req("GET", &upload).send();
    assert_eq!(r.status, 204, "the upload itself survives: {}", r.text());
    s.expect_log("idle for");
}

/// `maxconnections` bounds the connections served at once: with every slot
/// held by a request in flight (uploads whose bodies stall), a new
/// connection waits in the backlog until one of them ends.
#[test]
fn connections_are_bounded() {
    let s = Server::start_with(
        "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\nprivateregistry:\n  limits:\n    maxconnections: 2\n    headertimeout: 30s\n    idletimeout: 30s\n",
    );
    let metrics = s.debug_addr();
    let stalled_upload = || {
        let upload = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
        let mut c = TcpStream::connect(s.addr).unwrap();
        let head = format!("PATCH {upload} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&[7u8; 10]).unwrap();
        c
    };
    let hold1 = stalled_upload();
    let _hold2 = stalled_upload();
    // Both PATCHes are in the server's hands before the third arrives.
    assert!(wait_for(20, || {
        let m = req_to(metrics, "GET", "/metrics").send().text();
        m.contains("registry_uploads_in_progress 2")
    }));
    // The kernel accepts the third connection into the backlog; the server
    // does not serve it while both slots are busy.
    let mut third = TcpStream::connect(s.addr).unwrap();
    third
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "served beyond the limit");
    drop(hold1);
    let answer = read_until_closed(&mut third, Duration::from_secs(30)).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    s.expect_log("connection limit reached");
}

/// A TCP connection from `source` (any address of 127.0.0.0/8 is this
/// host's), so a test can play many clients.
fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let [a, b, c, d] = source;
    bind(fd.as_raw_fd(), &SockaddrIn::new(a, b, c, d, 0)).unwrap();
    let s = TcpStream::from(fd);
    // std connects only new sockets; connect(2) on this bound one directly.
    let SocketAddr::V4(v4) = to else {
        panic!("IPv4 only")
    };
    nix::sys::socket::connect(s.as_raw_fd(), &SockaddrIn::from(v4)).unwrap();
    s
}

/// Sixteen slots, and timeouts longer than a client's patience: only giving
/// way can let a new client in.
const SIXTEEN_PATIENT_SLOTS: &str = "privateregistry:\n  limits:\n    maxconnections: 16\n    headertimeout: 5m\n    idletimeout: 10m\n";

/// A plain `GET /v2/` on a new connection is answered 200.
fn assert_answered(addr: SocketAddr, when: &str) {
    let r = req_to(addr, "GET", "/v2/").try_send();
    assert_eq!(r.map(|r| r.status).ok(), Some(200), "{when}");
}

/// Connections that never send a request, from eight addresses, more than
/// `maxconnections`: each new client takes the slot of the one that has
/// waited longest, and a normal client is answered every time. The header
/// timeout is longer than the client's patience, so only that can answer it.
#[test]
fn silent_connections_beyond_the_limit_do_not_lock_out_clients() {
    let s = Server::start_with(SIXTEEN_PATIENT_SLOTS);
    let mut silent = vec![];
    for round in 0..3u8 {
        for i in 0..24u8 {
            silent.push(connect_from([127, 0, 0, 1 + (i % 8)], s.addr));
        }
        assert_answered(s.addr, &format!("round {round}"));
    }
    let closed = silent
        .iter_mut()
        .map(|c| read_until_closed(c, Duration::from_millis(100)))
        .filter(Option::is_some)
        .count();
    assert!(
        closed >= silent.len() - 16,
        "{closed} of {} closed",
        silent.len()
    );
}

/// Idle keep-alive connections, more than `maxconnections`, each having been
/// answered once: the longest idle give way and a normal client is answered.
#[test]
fn idle_keepalive_connections_beyond_the_limit_give_way() {
    let s = Server::start_with(SIXTEEN_PATIENT_SLOTS);
    let mut idle = vec![];
    for i in 0..40u8 {
        let mut c = connect_from([127, 0, 0, 1 + (i % 8)], s.addr);
        c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut buf = [0u8; 12];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200", "keep-alive connection {i}");
        idle.push(c);
        if i % 10 == 9 {
            assert_answered(s.addr, &format!("after {i}"));
        }
    }
    // The first to go idle were the first to be closed.
    assert!(read_until_closed(&mut idle[0], Duration::from_secs(10)).is_some());
    assert!(
        read_until_closed(&mut idle[39], Duration::from_millis(200)).is_none(),
        "the newest idle connection was closed"
    );
}

/// The header timeout covers the wait for a connection's first request: a
/// connection that says nothing, on HTTP/1.1 or after an HTTP/2 preface, is
/// closed then, long before the idle timeout.
#[test]
fn a_connection_that_never_sends_a_request_gets_the_header_timeout() {
    let s = Server::start_with(
        "privateregistry:\n  limits:\n    headertimeout: 1s\n    idletimeout: 10m\n",
    );
    let mut silent = TcpStream::connect(s.addr).unwrap();
    let mut preface = TcpStream::connect(s.addr).unwrap();
    preface.write_all(H2_PREFACE).unwrap();
    for (what, c) in [("silent", &mut silent), ("h2 preface", &mut preface)] {
        assert!(
            read_until_closed(c, Duration::from_secs(30)).is_some(),
            "{what}: held open"
        );
    }
}

/// The client preface of HTTP/2 with prior knowledge, and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

mod tls_port {
    use super::*;
    use common::tls::*;

    fn start(dir: &TempDir, limits: &str) -> (Server, std::sync::Arc<rustls::ClientConfig>, Pki) {
        let pki = Pki::new(&dir.0.join("pki"));
        let cert = pki.server("localhost", KeyType::EcdsaP256, &["localhost", "127.0.0.1"]);
        let s = Server::start_with(&format!(
            "{}privateregistry:\n  limits:\n{limits}",
            http_tls_yaml(&cert, &[])
        ));
        let config = client_config(
            pki.ca_pem(),
            &ClientOpts {
                alpn: &["h2", "http/1.1"],
                ..Default::default()
            },
        );
        (s, config, pki)
    }

    /// Handshakes completed, then nothing (or only the HTTP/2 preface):
    /// closed at the header timeout.
    #[test]
    fn silent_tls_connections_get_the_header_timeout() {
        let dir = TempDir::new("limits-tls");
        let (s, config, _pki) = start(&dir, "    headertimeout: 1s\n    idletimeout: 10m\n");
        let mut silent = KeepAlive::open(s.addr, "localhost", &config).unwrap();
        let mut preface = KeepAlive::open(s.addr, "localhost", &config).unwrap();
        assert_eq!(preface.info.alpn.as_deref(), Some(&b"h2"[..]));
        preface.send_raw(H2_PREFACE).unwrap();
        assert!(silent.closed_within(Duration::from_secs(30)), "silent");
        assert!(preface.closed_within(Duration::from_secs(30)), "preface");
        // And one that never finishes its handshake.
        let mut bare = TcpStream::connect(s.addr).unwrap();
        assert!(read_until_closed(&mut bare, Duration::from_secs(30)).is_some());
    }

    /// More silent TLS connections than `maxconnections` (handshaken, or
    /// after an HTTP/2 preface) while a TLS client keeps being answered.
    #[test]
    fn silent_tls_connections_beyond_the_limit_do_not_lock_out_clients() {
        let dir = TempDir::new("limits-tls");
        let limits = "    maxconnections: 8\n    headertimeout: 5m\n    idletimeout: 10m\n";
        let (s, config, _pki) = start(&dir, limits);
        let mut held = vec![];
        for round in 0..3 {
            for i in 0..12 {
                let mut c = KeepAlive::open(s.addr, "localhost", &config).unwrap();
                if i % 2 == 0 {
                    c.send_raw(H2_PREFACE).unwrap();
                }
                held.push(c);
            }
            let r = req_to(s.addr, "GET", "/v2/")
                .tls("localhost", &config)
                .try_send();
            assert_eq!(r.map(|r| r.status).ok(), Some(200), "round {round}");
        }
    }

    /// Plain HTTP sent to the TLS port gets a readable 400, not alert bytes.
    #[test]
    fn plain_http_to_the_tls_port_is_told_to_use_https() {
        let dir = TempDir::new("limits-tls");
        let (s, config, _pki) = start(&dir, "    headertimeout: 10s\n");
        let r = req_to(s.addr, "GET", "/v2/").send();
        assert_eq!(r.status, 400);
        assert!(r.text().contains("https://"), "{}", r.text());
        let r = req_to(s.addr, "GET", "/v2/")
            .tls("localhost", &config)
            .send();
        assert_eq!(r.status, 200, "TLS still served");
    }
}

/// Sends `head` and `body` from another thread, ignoring write errors (the
/// server may answer and close before taking the whole body), and returns
/// everything the server sent before closing.
fn send_early_answered(addr: SocketAddr, head: String, body: Vec<u8>) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        for piece in body.chunks(64 << 10) {
            if w.write_all(piece).is_err() {
                return;
            }
        }
    });
    let answer =
        read_until_closed(&mut c, Duration::from_secs(60)).expect("server kept the connection");
    let _ = writer.join();
    String::from_utf8_lossy(&answer).into_owned()
}

/// `privateregistry.limits.maxuploadbytes` caps one upload, all its
/// requests together: a body announcing more is refused before it is read,
/// one that streams past the limit is cut off before the excess is written,
/// and what was acknowledged before stays and still completes.
#[test]
fn an_upload_past_maxuploadbytes_is_refused_and_loses_nothing() {
    const MIB: usize = 1 << 20;
    let limit = 5 * MIB / 2;
    let s = Server::start_with(&format!(
        "privateregistry:\n  limits:\n    maxuploadbytes: {limit}\n"
    ));
    let big = vec![1u8; 3 * MIB];
    let digest = sha256(&big);
    // Announced too large: 413 at once.
    let head = format!(
        "POST /v2/a/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let answer = send_early_answered(s.addr, head, big.clone());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
    assert!(answer.contains("maxuploadbytes"), "{answer}");

    // Acknowledged 2 MiB, then a chunked PATCH (no length announced) that
    // would go past the limit: refused, and the 2 MiB are still there.
    let first = vec![2u8; 2 * MIB];
    let r = s.req("POST", "/v2/a/blobs/uploads/").send();
    let r = s
        .req("PATCH", &r.location_path())
        .body(first.clone())
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    let upload = r.location_path();
    let mut chunked = Vec::new();
    for piece in big.chunks(64 << 10) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!("PATCH {upload} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let answer = send_early_answered(s.addr, head, chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let r = s.req("GET", &upload).send();
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", 2 * MIB - 1).as_str())
    );
    let sep = if upload.contains('?') { '&' } else { '?' };
    let done = s
        .req("PUT", &format!("{upload}{sep}digest={}", sha256(&first)))
        .send();
    assert_eq!(done.status, 201, "{}", done.text());
}
