//! The daemon under a service manager, without booting one: sockets passed
//! by `systemd-socket-activate` (systemd's own tool), and the sd_notify
//! messages received on a NOTIFY_SOCKET of the test's own. Also the access
//! log file and its reopening for logrotate.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Collects sd_notify datagrams sent to a socket in `dir`.
struct Notify {
    socket: UnixDatagram,
    path: String,
    seen: Vec<String>,
}

impl Notify {
    fn bind(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Notify {
            socket,
            path: path.display().to_string(),
            seen: vec![],
        }
    }

    /// Everything received within `d`.
    fn collect_for(&mut self, d: Duration) -> Vec<String> {
        let until = std::time::Instant::now() + d;
        let mut got = std::mem::take(&mut self.seen);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buf = [0u8; 4096];
            match self.socket.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        self.socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        got
    }

    /// Waits for a message containing `field` (e.g. `READY=1`); returns it.
    fn wait_for(&mut self, field: &str) -> String {
        loop {
            if let Some(m) = self.seen.iter().find(|m| m.lines().any(|l| l == field)) {
                let m = m.clone();
                self.seen.retain(|x| *x != m);
                return m;
            }
            let mut buf = [0u8; 4096];
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {field} (seen {:?}): {e}", self.seen));
            self.seen
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// Connects once systemd-socket-activate listens; the connection starts the daemon.
fn first_connection(port: u16) -> std::net::TcpStream {
    let mut conn = None;
    assert!(wait_for(20, || {
        conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        conn.is_some()
    }));
    conn.unwrap()
}

/// `systemd-socket-activate` listening on 127.0.0.1 at `ports` with `names`,
/// to run the daemon on `config` with `env` once a connection arrives.
fn socket_activate(ports: &[u16], names: &str, env: &[String], config: &Path) -> Child {
    let log = std::fs::File::create(config.with_extension("log")).unwrap();
    let mut cmd = Command::new("systemd-socket-activate");
    for p in ports {
        cmd.args(["-l", &format!("127.0.0.1:{p}")]);
    }
    cmd.arg(format!("--fdname={names}"));
    for e in env {
        cmd.args(["-E", e]);
    }
    cmd.arg(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)")
}

fn kill(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

/// A config with plain listeners "local" and "network" on free ports.
fn two_listeners(dir: &TempDir) -> (u16, u16, std::path::PathBuf) {
    let (local, network) = (free_port(), free_port());
    let config = dir.0.join("config.yml");
    let extra = format!(
        "privateregistry:\n  listeners:\n    - {{name: local, addr: '127.0.0.1:{local}'}}\n    - {{name: network, addr: '127.0.0.1:{network}'}}\n"
    );
    std::fs::write(&config, config_yaml(&dir.0.join("data"), &extra)).unwrap();
    (local, network, config)
}

#[test]
fn socket_activation_and_notify_messages() {
    let dir = TempDir::new("sd");
    let (local, network, config) = two_listeners(&dir);
    let mut notify = Notify::bind(&dir.0);
    // Names given in the opposite order to the ports: the daemon must go by
    // name, not by position or address.
    let env = [
        format!("NOTIFY_SOCKET={}", notify.path),
        "WATCHDOG_USEC=1000000".to_string(),
    ];
    let child = socket_activate(&[network, local], "network:local", &env, &config);
    let mut proc = ProcGuard(Some(child));
    // The first connection starts the daemon; it is answered, not refused.
    let mut first = first_connection(local);
    first
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let addr = format!("127.0.0.1:{local}").parse().unwrap();
    let ready = notify.wait_for("READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready}");
    let addr2 = format!("127.0.0.1:{network}").parse().unwrap();
    assert_eq!(req_to(addr2, "GET", "/v2/").send().status, 200);
    notify.wait_for("WATCHDOG=1");

    // The daemon is systemd-socket-activate's child, exec'd in its place.
    let pid = proc.pid();
    kill(pid, "HUP");
    let reloading = notify.wait_for("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    // Both earlier connections have closed: the status counts connections,
    // not the listeners waiting for them.
    let reloaded = notify.wait_for("READY=1");
    assert!(
        reloaded.contains("STATUS=serving: 0 connection(s) open"),
        "{reloaded}"
    );
    assert_eq!(req_to(addr, "GET", "/v2/").send().status, 200);

    // SIGTERM during a request: the drain lets it finish, and the watchdog
    // falls silent (a probe during the drain would sit in systemd's socket
    // and start the service again once it stopped).
    let upload = req_to(addr, "POST", "/v2/a/blobs/uploads/")
        .send()
        .location_path();
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    // `Expect: 100-continue`: the interim answer comes once the handler
    // reads the body, so the request is known to be in flight before the
    // SIGTERM (a connection whose head is unread yet counts as idle).
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    slow.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    slow.write_all(b"12345").unwrap();
    kill(pid, "TERM");
    notify.wait_for("STOPPING=1");
    let during_drain = notify.collect_for(Duration::from_millis(2500));
    assert!(
        !during_drain
            .iter()
            .any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "{during_drain:?}"
    );
    slow.write_all(b"67890").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = proc.signal_and_wait("TERM").unwrap();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(config.with_extension("log")).unwrap();
    let drain = log.split("shutting down").nth(1).expect("drain logged");
    assert!(
        !drain.contains("watchdog"),
        "the watchdog probed during the drain: {drain}"
    );
}

#[test]
fn a_passed_socket_no_listener_claims_is_refused() {
    let dir = TempDir::new("sd");
    let port = free_port();
    let config = dir.0.join("config.yml");
    std::fs::write(&config, config_yaml(&dir.0.join("data"), "")).unwrap();
    let mut out = socket_activate(&[port], "mystery", &[], &config);
    // Trigger the start, then collect the daemon's refusal.
    let _conn = first_connection(port);
    let status = out.wait().unwrap();
    let err = std::fs::read_to_string(config.with_extension("log")).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("\"mystery\"") && err.contains("matches no configured listener"),
        "{err}"
    );
}

/// A listener systemd passes no socket for (its socket unit failed: the
/// port is taken) is named in the status line, while the others serve.
#[test]
fn a_listener_systemd_did_not_pass_is_named_in_the_status() {
    let dir = TempDir::new("sd");
    let (local, network, config) = two_listeners(&dir);
    let mut notify = Notify::bind(&dir.0);
    let env = [format!("NOTIFY_SOCKET={}", notify.path)];
    let child = socket_activate(&[local], "local", &env, &config);
    let _proc = ProcGuard(Some(child));
    let _first = first_connection(local);
    let ready = notify.wait_for("READY=1");
    let absent = format!("NOT listening on 127.0.0.1:{network} (\"network\")");
    assert!(ready.contains(&absent), "{ready}");
    let addr = format!("127.0.0.1:{local}").parse().unwrap();
    assert_eq!(req_to(addr, "GET", "/v2/").send().status, 200);
}

/// The debug listener takes a passed socket bound to its address (here
/// named for nothing the daemon knows), instead of binding its own.
#[test]
fn a_passed_socket_at_the_debug_address_serves_metrics() {
    let dir = TempDir::new("sd");
    let (local, debug) = (free_port(), free_port());
    let config = dir.0.join("config.yml");
    let extra = format!(
        "  debug:\n    addr: 127.0.0.1:{debug}\n    prometheus:\n      enabled: true\nprivateregistry:\n  listeners:\n    - {{name: local, addr: '127.0.0.1:{local}'}}\n"
    );
    std::fs::write(&config, config_yaml(&dir.0.join("data"), &extra)).unwrap();
    let child = socket_activate(&[local, debug], "local:stats", &[], &config);
    let mut proc = ProcGuard(Some(child));
    let _first = first_connection(local);
    let addr = format!("127.0.0.1:{debug}").parse().unwrap();
    assert!(wait_for(20, || probe(addr, "/metrics") == Some(200)));
    let r = req_to(addr, "GET", "/metrics").send();
    assert!(
        r.text().contains("registry_http_requests_total"),
        "{}",
        r.text()
    );
    assert_eq!(req_to(addr, "GET", "/debug/health").send().status, 200);
    let status = proc.signal_and_wait("TERM").unwrap();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(config.with_extension("log")).unwrap();
    assert!(
        log.contains(&format!("debug listener on 127.0.0.1:{debug}")),
        "{log}"
    );
}

#[test]
fn access_log_file_in_combined_format_reopens_on_sigusr1() {
    let dir = TempDir::new("alog");
    let log = dir.0.join("access.log");
    let s = Server::start_with(&format!(
        "privateregistry:\n  accesslog: {}\n",
        log.display()
    ));
    s.req("GET", "/v2/_catalog?n=5")
        .header("User-Agent", "test-agent/1.0")
        .send();
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().last().unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with("] \"GET /v2/_catalog?n=5 HTTP/1.1\" 200 19 \"-\" \"test-agent/1.0\""),
        "{line}"
    );
    // logrotate moves the file, then signals.
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    kill(s.pid(), "USR1");
    assert!(wait_for(10, || s.log_text().contains("reopened")));
    s.req("GET", "/v2/").send();
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), text);
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(fresh.contains("\"GET /v2/ HTTP/1.1\" 200"), "{fresh}");
}
