//! `serve --dev` serves metrics on its debug listener, and the `process_*`
//! and build-info series there describe the server's own process.

mod common;

use common::metrics::*;
use common::*;
use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn must(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:?}"))
}

/// The soft limit on open files, which the server inherits from this test.
fn soft_nofile_limit() -> f64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// `serve --dev` with both of its ports moved to free ones: other registries
/// may hold 5000 and 5001 on this machine (the dev configuration's own
/// addresses are checked by its unit test).
fn start_dev(dir: &TempDir) -> Server {
    Server::start_dev(
        &dir.0,
        &[
            ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
            ("REGISTRY_HTTP_DEBUG_ADDR", "127.0.0.1:0"),
        ],
    )
}

#[test]
fn dev_server_reports_its_process() {
    let dir = TempDir::new("dev-metrics");
    let before_start = now();
    let s = start_dev(&dir);
    let debug = s.debug_addr();
    let m = scrape(debug);

    let started = must(&m, "process_start_time_seconds");
    assert!(
        started >= before_start - 1.0 && started <= now(),
        "{started} vs {before_start}"
    );
    let rss = must(&m, "process_resident_memory_bytes");
    assert!((1e6..2e9).contains(&rss), "{rss}");
    assert!(must(&m, "process_virtual_memory_bytes") > rss);
    assert_eq!(must(&m, "process_max_fds"), soft_nofile_limit());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        must(&m, &format!("registry_build_info{{version=\"{version}\"}}")),
        1.0
    );

    // Each idle client connection holds one descriptor in the server. The
    // background work just after a start (its first usage scan, claiming
    // its turn at the periodic jobs) holds files for moments: the baseline
    // is the fewest seen over a second.
    let counted = || must(&scrape(debug), "process_open_fds");
    let fds = (0..10)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            counted()
        })
        .fold(f64::MAX, f64::min);
    assert!(fds >= 3.0, "{fds}");
    let clients: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    assert!(wait_for(10, || counted() >= fds + 20.0), "{}", counted());
    drop(clients);
    assert!(wait_for(10, || counted() < fds + 20.0), "{}", counted());

    // Hashing 64 MiB takes CPU time, well over the clock's 10 ms ticks.
    let cpu = must(&m, "process_cpu_seconds_total");
    push_blob(&s, "team/app", &random_bytes(64 << 20, 1));
    let spent = must(&scrape(debug), "process_cpu_seconds_total") - cpu;
    assert!(spent >= 0.05, "{spent}");
}

#[test]
fn dev_server_keeps_its_data_in_the_working_directory() {
    let dir = TempDir::new("dev-data");
    let s = start_dev(&dir);
    let digest = push_blob(&s, "team/app", b"hello\n");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let blob = dir.0.join(format!(
        "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    assert_eq!(std::fs::read(&blob).unwrap(), b"hello\n");
}
