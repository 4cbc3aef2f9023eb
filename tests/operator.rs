//! The operator surface against the real server: `docker search` with the
//! real Docker engine, storage usage (endpoint and `du`) checked against
//! figures computed by hand, Prometheus metrics scraped from the debug
//! listener and parsed, and the health endpoint.

mod common;

use common::docker::*;
use common::metrics::*;
use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;

const ALICE: (&str, &str) = ("alice", "alice-pw");
const BOB: (&str, &str) = ("bob", "bob-pw");
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A server with htpasswd users alice (everything) and bob (pulls `team/*`),
/// a debug listener with metrics, `http_extra` under `http:` and `ours`
/// under `privateregistry:`.
fn start_with_users(dir: &TempDir, ours: &str) -> Server {
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[ALICE, BOB]);
    let extra = format!(
        "  debug:
    addr: 127.0.0.1:0
    prometheus:
      enabled: true
auth:
  htpasswd:
    realm: ops
    path: {}
privateregistry:
  usagerescan: 1s
  access:
    rules:
      - {{repositories: ['*'], users: [alice], allow: [pull, push, delete]}}
      - {{repositories: ['team/*'], users: [bob], allow: [pull]}}
{ours}",
        htpasswd.display()
    );
    let mut s = Server::start_with(&extra);
    s.credentials = Some((ALICE.0.into(), ALICE.1.into()));
    s
}

fn as_user(s: &Server, (user, password): (&str, &str), method: &str, path: &str) -> Resp {
    req_to(s.addr, method, path)
        .header("Authorization", &basic_auth(user, password))
        .send()
}

// ---------------------------------------------------------------------------
// docker search
// ---------------------------------------------------------------------------

/// Pushes an image made with `docker import` as `image`.
fn docker_push(dk: &Dockerd, work: &std::path::Path, image: &str, seed: u64) {
    let (tar, _) = rootfs_tar(work, seed);
    dk.docker(&["import", tar.to_str().unwrap(), image]);
    dk.docker(&["push", image]);
}

/// The repository names in `docker search` output (first column, header skipped).
fn search_names(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn docker_search_lists_what_the_user_may_pull_on_a_plain_loopback_registry() {
    if lacks_tools(
        "docker_search_lists_what_the_user_may_pull_on_a_plain_loopback_registry",
        &[&dockerd_bin(), &docker_bin()],
    ) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("search-dk");
    let s = start_with_users(&dir, "");
    let host = s.addr.to_string();
    let dk = Dockerd::start();
    let login = |(u, p): (&str, &str)| {
        dk.docker_stdin(&["login", "-u", u, "--password-stdin", &host], p);
    };
    login(ALICE);
    for (i, repo) in ["team/app", "team/api", "other/app"].iter().enumerate() {
        docker_push(&dk, &dir.0, &format!("{host}/{repo}:1"), i as u64);
    }
    let search = |term: &str| search_names(&dk.docker(&["search", &format!("{host}/{term}")]));
    assert_eq!(search("app"), ["other/app", "team/app"]);
    assert_eq!(search("team"), ["team/api", "team/app"]);
    assert_eq!(search("nothing"), Vec::<String>::new());
    let limited = dk.docker(&["search", "--limit", "1", &format!("{host}/app")]);
    assert_eq!(search_names(&limited), ["other/app"]);
    // The columns Docker prints: no stars, no description.
    let out = dk.docker(&[
        "search",
        "--format",
        "{{.Name}}|{{.StarCount}}|{{.Description}}|",
        &format!("{host}/api"),
    ]);
    assert_eq!(out.trim(), "team/api|0||");

    login(BOB);
    assert_eq!(search("app"), ["team/app"], "bob may not pull other/app");
    dk.docker(&["logout", &host]);
    let err = dk.docker_fails(&["search", &format!("{host}/app")]);
    assert!(err.contains("401"), "{err}");
    // What the engine asked: its v1 ping (401 like any path), then the search.
    let log = s.log_text();
    assert!(log.contains("GET /v1/_ping 401"), "{log}");
    assert!(log.contains("alice GET /v1/search?q=app&n=25 200"), "{log}");
    assert!(log.contains("bob GET /v1/search?q=app&n=25 200"), "{log}");
}

#[test]
fn search_and_usage_follow_the_access_rules() {
    let dir = TempDir::new("search-api");
    let s = start_with_users(&dir, "");
    for repo in ["team/app", "team/api", "other/app"] {
        push_image(&s, repo, "1", repo);
    }
    let r = s.req("GET", "/v1/search?q=app").send();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["num_results"], 2);
    assert_eq!(v["query"], "app");
    assert_eq!(v["page"], 1);
    assert_eq!(v["page_size"], 25);
    assert_eq!(
        v["results"][0],
        json!({"name": "other/app", "description": "", "star_count": 0, "is_official": false, "is_automated": false})
    );
    let r = s.req("GET", "/v1/search?q=a&n=2&page=2").send().json();
    assert_eq!(
        (r["num_results"].clone(), r["num_pages"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    assert_eq!(r["results"][0]["name"], "team/app");
    assert_eq!(
        s.req("GET", "/v1/search?q=a&n=x").send().code(),
        "PAGINATION_NUMBER_INVALID"
    );
    let bob = as_user(&s, BOB, "GET", "/v1/search?q=app").json();
    assert_eq!(bob["num_results"], 1);
    assert_eq!(bob["results"][0]["name"], "team/app");

    // Usage: bob sees his repositories, and no registry-wide totals.
    let names = |v: &Value| -> Vec<String> {
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let mut all = Value::Null;
    assert!(
        wait_for(20, || {
            all = s.req("GET", "/v2/_ext/usage").send().json();
            all["repositories"].as_array().is_some_and(|a| a.len() == 3)
        }),
        "{all}"
    );
    assert_eq!(names(&all), ["other/app", "team/api", "team/app"]);
    assert!(all["registry"]["totalBytes"].as_u64().unwrap() > 0, "{all}");
    let bobs = as_user(&s, BOB, "GET", "/v2/_ext/usage").json();
    assert_eq!(names(&bobs), ["team/api", "team/app"]);
    assert_eq!(bobs["registry"], Value::Null);
    let denied = as_user(&s, BOB, "GET", "/v2/_ext/usage/other/app");
    assert_eq!(denied.status, 403, "{}", denied.text());
    let one = as_user(&s, BOB, "GET", "/v2/_ext/usage/team/app");
    assert_eq!(one.status, 200, "{}", one.text());
    assert_eq!(one.json()["name"], "team/app");
    assert_eq!(one.json()["manifests"], 1);
    let unknown = s.req("GET", "/v2/_ext/usage/no/such").send();
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "NAME_UNKNOWN".to_string())
    );
    assert_eq!(
        s.req("GET", "/v2/_ext/usage/BAD..name").send().code(),
        "NAME_INVALID"
    );
    assert_eq!(s.req("DELETE", "/v2/_ext/usage").send().status, 405);
}

// ---------------------------------------------------------------------------
// Storage usage
// ---------------------------------------------------------------------------

/// Pushes `bytes` as a manifest of `media_type` under `reference`; returns its digest.
fn put_manifest(s: &Server, repo: &str, reference: &str, media_type: &str, bytes: &str) -> String {
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(bytes.to_string())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    sha256(bytes.as_bytes())
}

/// Waits until the usage endpoint answers `expected` (figures lag a change by
/// about a second, and a full rescan catches other processes' changes).
fn usage_becomes(s: &Server, expected: &Value) {
    let mut got = Value::Null;
    let ok = wait_for(30, || {
        got = s.req("GET", "/v2/_ext/usage").send().json();
        got["repositories"] == expected["repositories"] && got["registry"] == expected["registry"]
    });
    assert!(ok, "usage:\n{got:#}\nexpected:\n{expected:#}");
}

fn du(s: &Server, args: &[&str]) -> String {
    let config = s.config.to_str().unwrap();
    run_ok(
        Command::new(BIN)
            .args(["du", "--config", config])
            .args(args),
    )
}

fn repo(name: &str, tags: u64, manifests: u64, referenced: usize, unique: usize) -> Value {
    json!({"name": name, "tags": tags, "manifests": manifests, "referencedBytes": referenced, "uniqueBytes": unique})
}

#[test]
fn usage_matches_figures_computed_by_hand_through_pushes_deletes_and_gc() {
    let dir = TempDir::new("usage");
    let s = start_with_users(&dir, "");
    // Repository a: image ma (config ca, layers shared + la), tagged 1 and 2,
    // and a signature-like referrer of it (config rc, layer sig).
    // Repository b: image mb (config cb, layers shared + lb), tagged 1, and
    // an index over it tagged multi. An orphan blob in a: only reclaimable.
    let blob = |repo: &str, n: usize, seed: u64| -> (String, usize) {
        (push_blob(&s, repo, &random_bytes(n, seed)), n)
    };
    let shared = blob("a", 1000, 1);
    let la = blob("a", 2000, 2);
    let ca = blob("a", 100, 3);
    let rc = (push_blob(&s, "a", b"{}"), 2);
    let sig = blob("a", 500, 5);
    let orphan = blob("a", 700, 6);
    let lb = blob("b", 3000, 7);
    let cb = blob("b", 110, 8);
    // b gets the shared layer by mount, as clients do.
    let m = s
        .req(
            "POST",
            &format!("/v2/b/blobs/uploads/?mount={}&from=a", shared.0),
        )
        .send();
    assert_eq!(m.status, 201, "{}", m.text());

    let ma_bytes = image_manifest(
        OCI_MANIFEST,
        (&ca.0, ca.1),
        &[(&shared.0, shared.1), (&la.0, la.1)],
    );
    let ma = put_manifest(&s, "a", "1", OCI_MANIFEST, &ma_bytes);
    put_manifest(&s, "a", "2", OCI_MANIFEST, &ma_bytes);
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/x-sig","digest":"{}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{ma}","size":{}}}}}"#,
        rc.0,
        rc.1,
        sig.0,
        sig.1,
        ma_bytes.len()
    );
    let rf = put_manifest(
        &s,
        "a",
        &sha256(referrer.as_bytes()),
        OCI_MANIFEST,
        &referrer,
    );
    let mb_bytes = image_manifest(
        OCI_MANIFEST,
        (&cb.0, cb.1),
        &[(&shared.0, shared.1), (&lb.0, lb.1)],
    );
    let mb = put_manifest(&s, "b", "1", OCI_MANIFEST, &mb_bytes);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{mb}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        mb_bytes.len()
    );
    let ix = put_manifest(&s, "b", "multi", OCI_INDEX, &index);

    // By hand: a reaches ma, ca, shared, la, the referrer, rc, sig; b reaches
    // the index, mb, cb, shared, lb. Only `shared` is in both.
    let (ma_n, rf_n, mb_n, ix_n) = (ma_bytes.len(), referrer.len(), mb_bytes.len(), index.len());
    let a_only = ma_n + ca.1 + la.1 + rf_n + rc.1 + sig.1;
    let b_only = ix_n + mb_n + cb.1 + lb.1;
    let total = a_only + b_only + shared.1 + orphan.1;
    let registry = |blobs: usize, total: usize, reclaimable: usize| json!({"blobs": blobs, "totalBytes": total, "reclaimableBytes": reclaimable});
    let expected = json!({
        "repositories": [
            repo("a", 2, 2, a_only + shared.1, a_only),
            repo("b", 2, 2, b_only + shared.1, b_only),
        ],
        "registry": registry(12, total, orphan.1),
    });
    usage_becomes(&s, &expected);
    // The CLI computes the same from storage alone.
    let cli: Value = serde_json::from_str(&du(&s, &["--json"])).unwrap();
    assert_eq!(cli["repositories"], expected["repositories"]);
    assert_eq!(cli["registry"], expected["registry"]);
    let one: Value = serde_json::from_str(&du(&s, &["--json", "b"])).unwrap();
    assert_eq!(one["uniqueBytes"], b_only);
    let table = du(&s, &[]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    let row_b = table
        .lines()
        .find(|l| l.starts_with("b "))
        .unwrap_or_default();
    assert_eq!(
        row_b.split_whitespace().take(3).collect::<Vec<_>>(),
        ["b", "2", "2"],
        "{table}"
    );
    assert!(table.contains("12 blobs"), "{table}");
    // The web UI's size column shows the same referenced bytes.
    let cols: Vec<&str> = row_b.split_whitespace().collect();
    let referenced = format!("{} {}", cols[3], cols[4]);
    let page = s.req("GET", "/ui/").send().text();
    let cell = format!(
        "<a href=\"/ui/r/b\">b</a></td><td class=\"num\">2</td><td class=\"num\">{referenced}</td>"
    );
    assert!(page.contains(&cell), "{cell} not in:\n{page}");

    // Deleting the index leaves b its image; the index's bytes become reclaimable.
    assert_eq!(
        s.req("DELETE", &format!("/v2/b/manifests/{ix}"))
            .send()
            .status,
        202
    );
    let b_only = b_only - ix_n;
    let expected = json!({
        "repositories": [
            repo("a", 2, 2, a_only + shared.1, a_only),
            repo("b", 1, 1, b_only + shared.1, b_only),
        ],
        "registry": registry(12, total, orphan.1 + ix_n),
    });
    usage_becomes(&s, &expected);

    // Deleting ma (and so both its tags) leaves a its referrer only; the
    // shared layer becomes b's alone.
    assert_eq!(
        s.req("DELETE", &format!("/v2/a/manifests/{ma}"))
            .send()
            .status,
        202
    );
    let a_only = rf_n + rc.1 + sig.1;
    let freed = ma_n + ca.1 + la.1;
    let expected = json!({
        "repositories": [
            repo("a", 0, 1, a_only, a_only),
            repo("b", 1, 1, b_only + shared.1, b_only + shared.1),
        ],
        "registry": registry(12, total, orphan.1 + ix_n + freed),
    });
    usage_becomes(&s, &expected);

    // A garbage collection by the CLI, another process: the daemon's full
    // rescan finds the reclaimable bytes gone.
    let config = s.config.to_str().unwrap();
    run_ok(Command::new(BIN).args(["garbage-collect", "--grace", "0s", "--config", config]));
    let expected = json!({
        "repositories": expected["repositories"].clone(),
        "registry": registry(7, total - orphan.1 - ix_n - freed, 0),
    });
    usage_becomes(&s, &expected);
    assert_eq!(get_manifest(&s, "a", &rf).status, 200, "the referrer stays");
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// Checks every latency histogram: buckets cumulative, `+Inf` equal to the
/// count, and the count equal to the requests counted for that route.
fn check_histograms(m: &HashMap<String, f64>) {
    let name = "registry_http_request_duration_seconds";
    let mut routes: Vec<&str> = m
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{name}_count{{route=\"")))
        .map(|r| r.trim_end_matches("\"}"))
        .collect();
    routes.sort();
    assert!(!routes.is_empty());
    for route in routes {
        let mut buckets: Vec<(f64, f64)> = m
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&format!("{name}_bucket{{route=\"{route}\",le=\""))?;
                let le = le.trim_end_matches("\"}");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{route}: {buckets:?}"
        );
        let count = get(m, &format!("{name}_count{{route=\"{route}\"}}"));
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count), "{route}");
        let requests: f64 = m
            .iter()
            .filter(|(k, _)| {
                k.starts_with("registry_http_requests_total{")
                    && k.contains(&format!("route=\"{route}\""))
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(requests, count, "{route}");
    }
}

#[test]
fn metrics_move_with_the_requests_made() {
    let dir = TempDir::new("metrics");
    let s = start_with_users(&dir, "");
    let debug = s.debug_addr();
    let before = scrape(debug);
    let base_ok = "registry_http_requests_total{method=\"GET\",route=\"base\",status=\"200\"}";
    let base_401 = "registry_http_requests_total{method=\"GET\",route=\"base\",status=\"401\"}";
    for _ in 0..3 {
        assert_eq!(s.req("GET", "/v2/").send().status, 200);
    }
    assert_eq!(as_user(&s, (ALICE.0, "wrong"), "GET", "/v2/").status, 401);
    push_image(&s, "team/app", "1", "m");
    let after = scrape(debug);
    let delta = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(delta(base_ok), 3.0);
    assert_eq!(delta(base_401), 1.0);
    assert_eq!(delta("registry_auth_failures_total"), 1.0);
    // alice's first request runs bcrypt, her others hit the cache; the wrong
    // password misses it.
    assert_eq!(delta("registry_credential_cache_misses_total"), 2.0);
    assert_eq!(delta("registry_credential_cache_hits_total"), 2.0 + 3.0);
    assert_eq!(
        delta("registry_http_requests_total{method=\"PUT\",route=\"manifest\",status=\"201\"}"),
        1.0
    );
    assert_eq!(
        delta("registry_http_requests_total{method=\"POST\",route=\"blob_upload\",status=\"201\"}"),
        2.0
    );
    assert!(delta("registry_network_received_bytes_total") > 500.0);
    assert!(delta("registry_network_sent_bytes_total") > 500.0);
    assert_eq!(get(&after, "registry_uploads_in_progress"), 0.0);
    assert_eq!(
        get(&after, "registry_gc_runs_total{outcome=\"success\"}"),
        0.0
    );
    check_histograms(&after);
    // No series names a repository.
    assert!(!after.keys().any(|k| k.contains("team")), "{after:?}");

    // An upload whose body is still arriving is in progress.
    let upload = s
        .req("POST", "/v2/team/app/blobs/uploads/")
        .send()
        .location_path();
    let mut slow = std::net::TcpStream::connect(s.addr).unwrap();
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 10\r\n\r\n12345",
        basic_auth(ALICE.0, ALICE.1)
    );
    use std::io::{Read, Write};
    slow.write_all(head.as_bytes()).unwrap();
    assert!(wait_for(10, || get(
        &scrape(debug),
        "registry_uploads_in_progress"
    ) == 1.0));
    slow.write_all(b"67890").unwrap();
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 202");
    assert!(wait_for(10, || get(
        &scrape(debug),
        "registry_uploads_in_progress"
    ) == 0.0));

    // Storage bytes come from the usage snapshot.
    let mut usage = Value::Null;
    assert!(
        wait_for(20, || {
            usage = s.req("GET", "/v2/_ext/usage").send().json();
            let m = scrape(debug);
            let total = usage["registry"]["totalBytes"].as_f64();
            get(&m, "registry_repositories") == 1.0
                && total > Some(0.0)
                && total == Some(get(&m, "registry_storage_bytes"))
        }),
        "{usage}"
    );
    check_histograms(&scrape(debug));

    // Only the metrics path and the health check are served there.
    assert_eq!(req_to(debug, "GET", "/v2/").send().status, 404);
    assert_eq!(req_to(debug, "POST", "/metrics").send().status, 405);
    // The main listener does not serve metrics.
    assert_eq!(s.req("GET", "/metrics").send().status, 404);
}

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

#[test]
fn health_answers_without_credentials_and_reports_unusable_storage() {
    let dir = TempDir::new("health");
    let mut s = start_with_users(&dir, "");
    let debug = s.debug_addr();
    s.credentials = None;
    let r = s.req("GET", "/healthz").send();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("WWW-Authenticate"), None);
    let head = s.req("HEAD", "/healthz").send();
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(s.req("POST", "/healthz").send().status, 405);
    assert_eq!(req_to(debug, "GET", "/debug/health").send().status, 200);
    // Nothing else is open: not even the debug path on the main listener.
    assert_eq!(s.req("GET", "/debug/health").send().status, 401);
    assert_eq!(s.req("GET", "/healthz/../v2/_catalog").send().status, 401);

    // Tests run as root, for whom permissions do not stop a write; so the
    // storage is made unusable for real: the registry's directory is moved
    // away and a plain file put where it was, as a failed mount or a
    // mistaken clean-up would leave it.
    let v2 = s.root.join("docker/registry/v2");
    let away = s.root.join("v2.away");
    std::fs::rename(&v2, &away).unwrap();
    std::fs::write(&v2, "not a directory").unwrap();
    let started = std::time::Instant::now();
    let mut statuses = vec![];
    assert!(
        wait_for(10, || {
            let r = s.req("GET", "/healthz").send();
            statuses.push(r.status);
            r.status == 503 && r.text() == "unavailable\n"
        }),
        "{statuses:?}"
    );
    assert_eq!(req_to(debug, "GET", "/debug/health").send().status, 503);
    for _ in 0..50 {
        assert_eq!(s.req("GET", "/healthz").send().status, 503);
    }
    // The storage check behind it runs at most once per 2 s, however often asked.
    let checks = s
        .log_text()
        .matches("health check: storage is not usable")
        .count();
    let allowed = started.elapsed().as_secs() / 2 + 2;
    assert!(
        checks as u64 <= allowed,
        "{checks} storage checks for {} requests",
        statuses.len() + 51
    );
    std::fs::remove_file(&v2).unwrap();
    std::fs::rename(&away, &v2).unwrap();
    assert!(wait_for(10, || s.req("GET", "/healthz").send().status == 200));
}

// ---------------------------------------------------------------------------
// The debug listener's configuration
// ---------------------------------------------------------------------------

#[test]
fn debug_listener_off_loopback_needs_the_explicit_opt_in() {
    let dir = TempDir::new("debug-cfg");
    let check = |extra: &str| {
        let root = dir.0.join("data");
        let config = dir.0.join("c.yml");
        std::fs::write(&config, config_yaml(&root, extra)).unwrap();
        let o = Command::new(BIN)
            .args(["check-config", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = check("  debug:\n    addr: 0.0.0.0:5001\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("http.debug.addr") && err.contains("insecurenetwork"),
        "{err}"
    );
    let (code, err) = check("  debug:\n    addr: ':5001'\n");
    assert_eq!(code, Some(1), "{err}");
    let (code, err) =
        check("  debug:\n    addr: 0.0.0.0:5001\nprivateregistry:\n  insecurenetwork: true\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("INSECURE") && err.contains("http.debug.addr"),
        "{err}"
    );
    let (code, err) = check(
        "  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n      path: metrics\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("http.debug.prometheus.path"), "{err}");
    let (code, err) =
        check("  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n");
    assert_eq!(code, Some(0), "{err}");
}
