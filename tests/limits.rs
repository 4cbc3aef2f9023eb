//! Hardening against bad clients: oversized requests get clear errors, slow
//! or stalled clients are cut off, and connections are bounded.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
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

#[test]
fn connections_are_bounded() {
    let s = Server::start_with(
        "privateregistry:\n  limits:\n    maxconnections: 2\n    headertimeout: 30s\n    idletimeout: 30s\n",
    );
    let hold1 = TcpStream::connect(s.addr).unwrap();
    let hold2 = TcpStream::connect(s.addr).unwrap();
    // The kernel accepts the third connection into the backlog; the server
    // does not serve it while both slots are taken.
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
    drop(hold2);
    s.expect_log("connection limit reached");
}
