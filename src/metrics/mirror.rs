//! The pull-through cache's series, labelled by upstream (its repository
//! prefix; empty in distribution's `proxy:` mode): hits and misses by kind,
//! bytes fetched, and failed upstream requests.

use super::head;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// (series, upstream, kind) → count; kind is empty where it does not apply.
type Counts = BTreeMap<(&'static str, String, &'static str), u64>;

static COUNTS: Mutex<Counts> = Mutex::new(BTreeMap::new());

const HITS: &str = "registry_mirror_hits_total";
const MISSES: &str = "registry_mirror_misses_total";
const BYTES: &str = "registry_mirror_upstream_bytes_total";
const ERRORS: &str = "registry_mirror_upstream_errors_total";

fn add(series: &'static str, upstream: &str, kind: &'static str, n: u64) {
    let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *c.entry((series, upstream.to_string(), kind)).or_default() += n;
}

/// A manifest or blob found cached (`hit`) or fetched from the upstream.
pub fn lookup(upstream: &str, kind: &'static str, hit: bool) {
    add(if hit { HITS } else { MISSES }, upstream, kind, 1);
}

pub fn upstream_bytes(upstream: &str, n: u64) {
    add(BYTES, upstream, "", n);
}

pub fn upstream_error(upstream: &str) {
    add(ERRORS, upstream, "", 1);
}

pub fn render(o: &mut String) {
    let c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if c.is_empty() {
        return;
    }
    let series = [
        (
            HITS,
            "Manifests and blobs served from the cache, by upstream and kind.",
        ),
        (
            MISSES,
            "Manifests and blobs fetched from the upstream, by upstream and kind.",
        ),
        (BYTES, "Bytes received from the upstream, by upstream."),
        (ERRORS, "Upstream requests that failed, by upstream."),
    ];
    for (name, help) in series {
        head(o, name, "counter", help);
        for ((_, upstream, kind), n) in c.iter().filter(|((s, ..), _)| *s == name) {
            let kind = if kind.is_empty() {
                String::new()
            } else {
                format!(",kind=\"{kind}\"")
            };
            let _ = writeln!(o, "{name}{{upstream=\"{upstream}\"{kind}}} {n}");
        }
    }
}
