//! The pull-through cache as the mirror tests drive it: our server with
//! `privateregistry.mirrors` and its `registry_mirror_*` metrics, images
//! pushed to an upstream, and clients pulling at once.

use super::metrics::scrape;
use super::oci::{Image, Layout};
use super::upstream::{Target, image, requests};
use super::{Server, TempDir, wait_for};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

pub const PREFIX: &str = "docker.io";
/// The debug listener with Prometheus metrics, under `http:`.
pub const DEBUG: &str = "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n";

/// One `privateregistry.mirrors` entry: its prefix, upstream, and other
/// keys (`ttl: 5s`, `unprefixed: true`, credentials).
pub struct Mirror<'a> {
    pub prefix: &'a str,
    /// The upstream's URL, `http(addr)` for a plain one.
    pub upstream: String,
    pub keys: &'a [&'a str],
}

/// The URL of a plain HTTP registry on `addr`.
pub fn http(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Mirror<'_> {
    pub fn yaml(&self) -> String {
        let mut y = format!(
            "    - prefix: {}\n      remoteurl: {}\n",
            self.prefix, self.upstream
        );
        for k in self.keys {
            y.push_str(&format!("      {k}\n"));
        }
        y
    }
}

/// Our server with `mirrors`, metrics on, `top` YAML (such as `auth:`) and
/// `ours` further keys under `privateregistry:`.
pub fn start_mirror(top: &str, mirrors: &[Mirror], ours: &str) -> Server {
    start_mirror_env(top, mirrors, ours, &[])
}

/// [`start_mirror`] with `env` on top (such as `SSL_CERT_FILE`).
pub fn start_mirror_env(top: &str, mirrors: &[Mirror], ours: &str, env: &[(&str, &str)]) -> Server {
    let entries: String = mirrors.iter().map(Mirror::yaml).collect();
    Server::start_with_env(
        &format!("{DEBUG}{top}privateregistry:\n  mirrors:\n{entries}{ours}"),
        env,
    )
}

/// The sum of the samples of `name` whose labels include every `labels` pair.
pub fn metric(s: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape(s.debug_addr())
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

pub fn hits(s: &Server, upstream: &str, kind: &str) -> f64 {
    metric(
        s,
        "registry_mirror_hits_total",
        &[("upstream", upstream), ("kind", kind)],
    )
}

pub fn misses(s: &Server, upstream: &str, kind: &str) -> f64 {
    metric(
        s,
        "registry_mirror_misses_total",
        &[("upstream", upstream), ("kind", kind)],
    )
}

/// Waits until the upstream's log shows `n` requests `method path`, and
/// returns the count then (more than `n` is returned at once).
pub fn upstream_requests(log: impl Fn() -> String, method: &str, path: &str, n: usize) -> usize {
    let mut seen = 0;
    wait_for(10, || {
        seen = requests(&log(), method, path);
        seen >= n
    });
    seen
}

/// A scratch directory, an image built in it and pushed as `repo:tag` to
/// `target`.
/// Our registry as an upstream on disk (in the returned directory), with an
/// image `pushed` to `team/app:1`.
pub fn app_upstream(seed: u64, big: usize) -> (TempDir, Server, (TempDir, Layout, Image)) {
    let dir = TempDir::new("mirror-up");
    let up = super::upstream::fs_server(&dir.0);
    let img = pushed(&Target::anonymous(up.addr), "team/app", "1", seed, big);
    (dir, up, img)
}

pub fn pushed(
    target: &Target,
    repo: &str,
    tag: &str,
    seed: u64,
    big: usize,
) -> (TempDir, Layout, Image) {
    let work = TempDir::new("mirror-img");
    let (layout, image) = image(&work.0, seed, big);
    target.push(&layout, &image, repo, tag);
    (work, layout, image)
}

/// `curl` GETs of `url`, all started before any is waited for: for each,
/// curl's exit code, the HTTP status it saw and the bytes it received.
pub fn parallel_curls(
    url: &str,
    accept: Option<&str>,
    n: usize,
    dir: &std::path::Path,
) -> Vec<(i32, String, Vec<u8>)> {
    let out = |i: usize| dir.join(format!("curl-{i}"));
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut c = Command::new("curl");
            c.args(["-sS", "--max-time", "120", "-w", "%{http_code}", "-o"])
                .arg(out(i));
            if let Some(a) = accept {
                c.args(["-H", &format!("Accept: {a}")]);
            }
            c.arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run curl: {e}"))
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .map(|(i, child)| {
            let done = child.wait_with_output().unwrap();
            (
                done.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&done.stdout).into_owned(),
                std::fs::read(out(i)).unwrap_or_default(),
            )
        })
        .collect()
}
