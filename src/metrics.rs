//! Prometheus metrics, kept in process-wide atomics and rendered in the text
//! exposition format (version 0.0.4) on the debug listener. Labels are
//! bounded by construction: a route is its kind (never a repository name), a
//! method outside the registry's verbs is `OTHER`, a status is one of the
//! few the API answers.

pub mod mirror;
pub mod process;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; summed when rendered),
    /// the last one being everything above the largest bound.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let i = BUCKETS.iter().position(|b| secs <= *b);
        self.counts[i.unwrap_or(BUCKETS.len())] += 1;
        self.sum += secs;
    }
}

struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    in_flight: AtomicI64,
    uploads_in_progress: AtomicI64,
    received: AtomicU64,
    sent: AtomicU64,
    auth_failures: AtomicU64,
    credential_hits: AtomicU64,
    credential_misses: AtomicU64,
    gc_runs: Mutex<BTreeMap<&'static str, u64>>,
    /// Storage figures from the latest usage snapshot; -1 until there is one.
    storage_bytes: AtomicI64,
    reclaimable_bytes: AtomicI64,
    repositories: AtomicI64,
}

static M: Metrics = Metrics {
    requests: Mutex::new(BTreeMap::new()),
    latency: Mutex::new(BTreeMap::new()),
    in_flight: AtomicI64::new(0),
    uploads_in_progress: AtomicI64::new(0),
    received: AtomicU64::new(0),
    sent: AtomicU64::new(0),
    auth_failures: AtomicU64::new(0),
    credential_hits: AtomicU64::new(0),
    credential_misses: AtomicU64::new(0),
    gc_runs: Mutex::new(BTreeMap::new()),
    storage_bytes: AtomicI64::new(-1),
    reclaimable_bytes: AtomicI64::new(-1),
    repositories: AtomicI64::new(-1),
};

/// The method as a label: the verbs the API knows, anything else `OTHER`.
pub fn method_label(m: &hyper::Method) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"];
    KNOWN
        .iter()
        .find(|k| **k == m.as_str())
        .copied()
        .unwrap_or("OTHER")
}

/// A request in progress; its end is recorded when dropped with [`Self::done`].
pub struct InFlight {
    upload: bool,
}

impl InFlight {
    /// `upload`: the request carries (or starts) a blob upload.
    pub fn start(upload: bool) -> InFlight {
        M.in_flight.fetch_add(1, Relaxed);
        if upload {
            M.uploads_in_progress.fetch_add(1, Relaxed);
        }
        InFlight { upload }
    }

    /// Records the answered request: `elapsed` is the time to the response head.
    pub fn done(self, method: &'static str, route: &'static str, status: u16, elapsed: Duration) {
        *lock(&M.requests)
            .entry((method, route, status))
            .or_default() += 1;
        lock(&M.latency)
            .entry(route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        M.in_flight.fetch_sub(1, Relaxed);
        if self.upload {
            M.uploads_in_progress.fetch_sub(1, Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes read from and written to client connections (TLS included).
pub fn network_received(n: usize) {
    M.received.fetch_add(n as u64, Relaxed);
}

pub fn network_sent(n: usize) {
    M.sent.fetch_add(n as u64, Relaxed);
}

/// Credentials presented and refused (wrong, unknown, malformed, throttled).
pub fn auth_failure() {
    M.auth_failures.fetch_add(1, Relaxed);
}

/// A credential check answered from the cache (`hit`) or by bcrypt.
pub fn credential_cache(hit: bool) {
    let c = if hit {
        &M.credential_hits
    } else {
        &M.credential_misses
    };
    c.fetch_add(1, Relaxed);
}

pub use mirror::{
    lookup as mirror_lookup, upstream_bytes as mirror_upstream_bytes,
    upstream_error as mirror_upstream_error,
};

/// A garbage collection run finished, successfully or not.
pub fn gc_run(ok: bool) {
    let outcome = if ok { "success" } else { "failure" };
    *lock(&M.gc_runs).entry(outcome).or_default() += 1;
}

/// The storage figures of the latest usage snapshot.
pub fn storage(total_bytes: u64, reclaimable_bytes: u64, repositories: usize) {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    M.storage_bytes.store(i(total_bytes), Relaxed);
    M.reclaimable_bytes.store(i(reclaimable_bytes), Relaxed);
    M.repositories.store(i(repositories as u64), Relaxed);
}

/// Everything, in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    let o = &mut out;
    head(
        o,
        "registry_http_requests_total",
        "counter",
        "HTTP requests answered, by method, route kind and status.",
    );
    for ((m, r, s), n) in lock(&M.requests).iter() {
        let _ = writeln!(
            o,
            "registry_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
        );
    }
    render_latency(o);
    let gauges: [(&str, &str, i64); 5] = [
        (
            "registry_http_requests_in_flight",
            "Requests being handled.",
            M.in_flight.load(Relaxed),
        ),
        (
            "registry_uploads_in_progress",
            "Blob upload requests (POST, PATCH, PUT) whose body is being received.",
            M.uploads_in_progress.load(Relaxed),
        ),
        (
            "registry_storage_bytes",
            "Bytes of all blobs in storage, from the latest usage snapshot (-1 before the first).",
            M.storage_bytes.load(Relaxed),
        ),
        (
            "registry_storage_reclaimable_bytes",
            "Bytes of blobs no manifest references (what garbage collection would free).",
            M.reclaimable_bytes.load(Relaxed),
        ),
        (
            "registry_repositories",
            "Repositories in storage, from the latest usage snapshot.",
            M.repositories.load(Relaxed),
        ),
    ];
    for (name, help, v) in gauges {
        head(o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    }
    let counters = [
        (
            "registry_network_received_bytes_total",
            "Bytes read from client connections, TLS records included.",
            &M.received,
        ),
        (
            "registry_network_sent_bytes_total",
            "Bytes written to client connections, TLS records included.",
            &M.sent,
        ),
        (
            "registry_auth_failures_total",
            "Requests whose credentials were refused (wrong, malformed or throttled).",
            &M.auth_failures,
        ),
        (
            "registry_credential_cache_hits_total",
            "Credential checks answered from the cache.",
            &M.credential_hits,
        ),
        (
            "registry_credential_cache_misses_total",
            "Credential checks that needed bcrypt.",
            &M.credential_misses,
        ),
    ];
    for (name, help, v) in counters {
        head(o, name, "counter", help);
        let _ = writeln!(o, "{name} {}", v.load(Relaxed));
    }
    head(
        o,
        "registry_gc_runs_total",
        "counter",
        "Garbage collection runs by this process, by outcome.",
    );
    let gc = lock(&M.gc_runs);
    for outcome in ["success", "failure"] {
        let n = gc.get(outcome).copied().unwrap_or(0);
        let _ = writeln!(o, "registry_gc_runs_total{{outcome=\"{outcome}\"}} {n}");
    }
    drop(gc);
    mirror::render(o);
    process::render(o);
    render_build_info(o);
    out
}

/// Constant 1, labelled with the version, so a query can tell which release
/// each instance runs, and when an upgrade reached it.
fn render_build_info(o: &mut String) {
    let name = "registry_build_info";
    head(
        o,
        name,
        "gauge",
        "Always 1; the version of the running binary.",
    );
    let version = env!("CARGO_PKG_VERSION");
    let _ = writeln!(o, "{name}{{version=\"{version}\"}} 1");
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_latency(o: &mut String) {
    let name = "registry_http_request_duration_seconds";
    head(
        o,
        name,
        "histogram",
        "Time from a request's arrival to its response head, by route kind.",
    );
    for (route, h) in lock(&M.latency).iter() {
        let mut cumulative = 0;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                o,
                "{name}_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(o, "{name}_sum{{route=\"{route}\"}} {}", h.sum);
        let _ = writeln!(o, "{name}_count{{route=\"{route}\"}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let r = "test-route";
        for ms in [0, 3, 3, 200, 60_000] {
            InFlight::start(false).done("GET", r, 200, Duration::from_millis(ms));
        }
        let text = render();
        let bucket = |le: &str| -> u64 {
            let key = format!(
                "registry_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{le}\"}} "
            );
            let line = text.lines().find(|l| l.starts_with(&key)).unwrap();
            line[key.len()..].parse().unwrap()
        };
        assert_eq!(bucket("0.001"), 1);
        assert_eq!(bucket("0.005"), 3);
        assert_eq!(bucket("0.25"), 4);
        assert_eq!(bucket("10"), 4);
        assert_eq!(bucket("+Inf"), 5);
        assert!(text.contains(&format!(
            "registry_http_requests_total{{method=\"GET\",route=\"{r}\",status=\"200\"}} 5"
        )));
    }
}
