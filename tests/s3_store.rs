//! The registry on object storage: a three-node Garage cluster of the test's
//! own (replication factor 3), started with `tests/garage/cluster`. What is
//! particular to a bucket: start-up errors that name the key to fix, the
//! secret masked, blob redirects to the store (and streaming when they are
//! disabled), large blobs committed by multipart copy, abandoned multipart
//! uploads aborted by purging, read-only mode, and a Garage node down.

mod common;

use common::s3::{Cluster, Garage, s3api};
use common::*;
use std::process::Command;

const MIB: usize = 1 << 20;

/// A registry config on the cluster under `prefix`, plus `extra` YAML.
fn config(c: &Cluster, prefix: &str, storage_extra: &str, extra: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: debug\nstorage:\n{}{storage_extra}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n{extra}",
        c.storage_yaml_at(prefix)
    )
}

/// Runs `private-registry ARGS --config <yaml>` and returns (success, stderr+stdout).
fn run(dir: &std::path::Path, yaml: &str, args: &[&str]) -> (bool, String) {
    let path = dir.join("check.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&path)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

/// Chunked upload in `pieces`; returns the digest.
fn push_chunked(s: &Server, repo: &str, data: &[u8], pieces: usize) -> String {
    let d = sha256(data);
    let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let mut loc = r.location_path();
    let size = data.len().div_ceil(pieces);
    for (i, chunk) in data.chunks(size).enumerate() {
        let from = i * size;
        let r = s
            .req("PATCH", &loc)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                &format!("{from}-{}", from + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send();
        assert_eq!(r.status, 202, "PATCH {i}: {}", r.text());
        loc = r.location_path();
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = s.req("PUT", &format!("{loc}{sep}digest={d}")).send();
    assert_eq!(r.status, 201, "PUT: {}", r.text());
    d
}

/// Follows a redirect to the store with curl (a real client) and returns the body.
fn fetch(url: &str) -> Vec<u8> {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "curl {url}");
    out.stdout
}

fn multipart_uploads(c: &Cluster, prefix: &str) -> usize {
    let v = s3api(
        c,
        &[
            "list-multipart-uploads",
            "--bucket",
            c.var("GARAGE_BUCKET"),
            "--prefix",
            &format!("{prefix}/"),
        ],
    );
    v["Uploads"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_bad_bucket_endpoint_or_key_is_named_at_start_and_the_secret_is_masked() {
    if lacks_tools("s3_store", &["garage", "aws"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let dir = TempDir::new("s3-start");
    let good = config(c, "start", "", "");
    let secret = c.var("AWS_SECRET_ACCESS_KEY");
    let cases = [
        (
            good.replace(
                &format!("bucket: {}", c.var("GARAGE_BUCKET")),
                "bucket: nosuchbucket",
            ),
            "storage.s3.bucket",
        ),
        (
            good.replace(c.var("GARAGE_ENDPOINT"), "http://127.0.0.1:1"),
            "storage.s3.regionendpoint",
        ),
        (
            good.replace(secret, "not-the-secret"),
            "storage.s3.secretkey",
        ),
        (
            good.replace(
                &format!("    accesskey: {}\n", c.var("AWS_ACCESS_KEY_ID")),
                "",
            ),
            "storage.s3.accesskey",
        ),
    ];
    for (yaml, key) in cases {
        let (ok, text) = run(&dir.0, &yaml, &["serve"]);
        assert!(!ok, "started with a bad {key}:\n{text}");
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.contains(key),
            "{key} not named in the last line: {text}"
        );
    }
    let (ok, text) = run(&dir.0, &good, &["check-config"]);
    assert!(ok, "{text}");
    assert!(!text.contains(secret), "the secret is shown:\n{text}");
    assert!(
        text.contains("secretkey: '********'") || text.contains("secretkey: \"********\""),
        "{text}"
    );
    assert!(text.contains("credentials: from config"), "{text}");
}

#[test]
fn blobs_redirect_to_the_store_or_stream_and_large_ones_commit_by_multipart_copy() {
    if lacks_tools("s3_store", &["garage", "aws", "curl"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let dir = TempDir::new("s3-blobs");
    // Small chunks and a low copy threshold: a 12 MiB blob takes three parts
    // and is committed with three UploadPartCopy ranges.
    let low = "    chunksize: 5242880\n    multipartcopychunksize: 5242880\n    multipartcopythresholdsize: 5242880\n";
    let s = Server::start_config(&dir.0, &config(c, "blobs", low, ""), &[]);
    let big = random_bytes(12 * MIB + 17, time_seed());
    let d = push_chunked(&s, "big/blob", &big, 3);
    let r = s.req("GET", &format!("/v2/big/blob/blobs/{d}")).send();
    assert_eq!(r.status, 307, "a blob GET redirects to the store");
    let url = r.header("location").unwrap().to_string();
    assert!(url.starts_with(c.var("GARAGE_ENDPOINT")), "{url}");
    assert!(url.contains("X-Amz-Signature="), "presigned: {url}");
    assert_eq!(sha256(&fetch(&url)), d, "the store serves the blob's bytes");
    assert_eq!(
        multipart_uploads(c, "blobs"),
        0,
        "completed uploads leave none"
    );
    drop(s);

    let dir2 = TempDir::new("s3-stream");
    let stream = "  redirect:\n    disable: true\n";
    let s = Server::start_config(&dir2.0, &config(c, "blobs", stream, ""), &[]);
    let r = s.req("GET", &format!("/v2/big/blob/blobs/{d}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), d, "streamed through the registry");
}

#[test]
fn purging_aborts_abandoned_multipart_uploads_and_read_only_mode_refuses_writes() {
    if lacks_tools("s3_store", &["garage", "aws"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let dir = TempDir::new("s3-purge");
    let purge = "    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n";
    let storage = format!("    chunksize: 5242880\n  maintenance:\n{purge}");
    let s = Server::start_config(&dir.0, &config(c, "purge", &storage, ""), &[]);
    let image = push_image(&s, "kept/app", "v1", "kept");
    let r = s.req("POST", "/v2/left/behind/blobs/uploads/").send();
    let loc = r.location_path();
    let r = s
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .body(random_bytes(6 * MIB, 7))
        .send();
    assert_eq!(r.status, 202);
    // Purging runs every second and removes uploads older than a second.
    assert!(
        wait_for(20, || multipart_uploads(c, "purge") == 0),
        "the abandoned upload's parts were aborted"
    );
    let r = s.req("GET", &loc).send();
    assert_eq!(r.status, 404, "the upload is gone: {}", r.text());
    drop(s);

    let dir2 = TempDir::new("s3-ro");
    let ro = "  maintenance:\n    readonly:\n      enabled: true\n";
    let s = Server::start_config(&dir2.0, &config(c, "purge", ro, ""), &[]);
    assert_eq!(get_manifest(&s, "kept/app", "v1").status, 200, "pulls work");
    assert_eq!(sha256(&get_manifest(&s, "kept/app", "v1").body), image);
    for (m, path) in [
        ("POST", "/v2/kept/app/blobs/uploads/"),
        ("PUT", "/v2/kept/app/manifests/v2"),
        ("DELETE", &format!("/v2/kept/app/manifests/{image}")),
    ] {
        let r = s.req(m, path).send();
        assert_eq!(r.status, 405, "{m} {path}");
        assert_eq!(r.code(), "UNSUPPORTED", "{m} {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert_eq!(probe(s.addr, "/healthz"), Some(200));
}

#[test]
fn one_garage_node_down_the_registry_serves_and_two_down_health_says_so() {
    if lacks_tools("s3_store", &["garage"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let dir = TempDir::new("s3-down");
    let s = Server::start_config(&dir.0, &config(c, "down", "", ""), &[]);
    let before = push_image(&s, "team/app", "before", "before");
    g.node("kill", 3);
    let during = push_image(&s, "team/app", "during", "during");
    let big = random_bytes(3 * MIB, 3);
    let d = push_chunked(&s, "team/app", &big, 2);
    for (tag, digest) in [("before", &before), ("during", &during)] {
        let r = get_manifest(&s, "team/app", tag);
        assert_eq!(r.status, 200, "{tag} with a node down");
        assert_eq!(&sha256(&r.body), digest);
    }
    let r = s.req("GET", &format!("/v2/team/app/blobs/{d}")).send();
    let body = match r.status {
        307 => fetch(r.header("location").unwrap()),
        _ => r.body.clone(),
    };
    assert_eq!(sha256(&body), d);
    assert_eq!(probe(s.addr, "/healthz"), Some(200));
    g.node("kill", 2);
    assert!(
        wait_for(60, || probe(s.addr, "/healthz") == Some(503)),
        "health reports the store unusable without a quorum"
    );
    g.node("restart", 2);
    g.node("restart", 3);
    assert!(
        wait_for(60, || probe(s.addr, "/healthz") == Some(200)),
        "health recovers with the store"
    );
    assert_eq!(get_manifest(&s, "team/app", "during").status, 200);
}

/// One image a pusher had acknowledged: its tag, manifest digest and blobs.
struct Acked {
    tag: String,
    manifest: String,
    blobs: Vec<(String, usize)>,
}

/// Pushes images (a chunked multi-part layer, a small layer, a config) to
/// `addr` until the server goes away; returns those whose manifest was
/// acknowledged. Any failed request ends the run: the server was killed.
fn push_until_killed(addr: std::net::SocketAddr, round: u64, seed: u64) -> Vec<Acked> {
    let mut acked = vec![];
    let mut rng = Rng::new(seed ^ round);
    for i in 0.. {
        let repo = format!("crash/r{}", i % 3);
        let tag = format!("t{round}-{i}");
        let len = 5 * MIB + rng.below(3 * MIB as u64) as usize;
        let big = rng.bytes(len);
        let small = rng.bytes(1000 + i);
        let config = format!(r#"{{"os":"linux","round":{round},"i":{i}}}"#).into_bytes();
        let mut blobs = vec![];
        for (data, pieces) in [(&big, 3), (&small, 1), (&config, 1)] {
            match try_push(addr, &repo, data, pieces) {
                Some(d) => blobs.push((d, data.len())),
                None => return acked,
            }
        }
        let refs: Vec<(&str, usize)> = blobs[..2].iter().map(|(d, n)| (d.as_str(), *n)).collect();
        let mt = "application/vnd.oci.image.manifest.v1+json";
        let m = image_manifest(mt, (&blobs[2].0, blobs[2].1), &refs);
        let r = req_to(addr, "PUT", &format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", mt)
            .body(m.clone())
            .try_send();
        match r {
            Ok(r) if r.status == 201 => acked.push(Acked {
                tag: format!("{repo}:{tag}"),
                manifest: sha256(m.as_bytes()),
                blobs,
            }),
            _ => return acked,
        }
    }
    acked
}

/// A chunked upload; `None` once any request fails.
fn try_push(addr: std::net::SocketAddr, repo: &str, data: &[u8], pieces: usize) -> Option<String> {
    let r = req_to(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"))
        .try_send()
        .ok()?;
    if r.status != 202 {
        return None;
    }
    let mut loc = r.location_path();
    for chunk in data.chunks(data.len().div_ceil(pieces)) {
        let r = req_to(addr, "PATCH", &loc)
            .header("Content-Type", "application/octet-stream")
            .body(chunk.to_vec())
            .try_send()
            .ok()?;
        if r.status != 202 {
            return None;
        }
        loc = r.location_path();
    }
    let d = sha256(data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = req_to(addr, "PUT", &format!("{loc}{sep}digest={d}"))
        .try_send()
        .ok()?;
    (r.status == 201).then_some(d)
}

/// Every acknowledged image resolves by tag and digest, and each blob reads
/// back whole; every listed tag resolves.
fn all_intact(s: &Server, acked: &[Acked]) {
    for a in acked {
        let (repo, tag) = a.tag.split_once(':').unwrap();
        for r in [tag, a.manifest.as_str()] {
            let m = get_manifest(s, repo, r);
            assert_eq!(m.status, 200, "{}: {r} lost", a.tag);
            assert_eq!(sha256(&m.body), a.manifest, "{}", a.tag);
        }
        for (d, n) in &a.blobs {
            let r = s.req("GET", &format!("/v2/{repo}/blobs/{d}")).send();
            assert_eq!(r.status, 200, "{}: blob {d} lost", a.tag);
            assert_eq!(
                (sha256(&r.body), r.body.len()),
                (d.clone(), *n),
                "{}",
                a.tag
            );
        }
    }
    for repo in ["crash/r0", "crash/r1", "crash/r2"] {
        let r = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
        if r.status == 404 {
            continue;
        }
        for t in r.json()["tags"].as_array().cloned().unwrap_or_default() {
            let t = t.as_str().unwrap();
            assert_eq!(
                get_manifest(s, repo, t).status,
                200,
                "{repo}:{t} listed, not served"
            );
        }
    }
}

#[test]
fn sigkill_during_pushes_loses_nothing_acknowledged_and_shows_nothing_partial() {
    if lacks_tools("s3_store", &["garage"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let dir = TempDir::new("s3-crash");
    let seed = time_seed();
    eprintln!("TEST_SEED={seed}");
    let mut rng = Rng::new(seed);
    let stream = "    chunksize: 5242880\n  redirect:\n    disable: true\n";
    let yaml = config(c, "crash", stream, "");
    let mut acked: Vec<Acked> = vec![];
    for round in 0..6 {
        let mut s = Server::start_config(&dir.0, &yaml, &[]);
        all_intact(&s, &acked);
        let addr = s.addr;
        let pusher = std::thread::spawn(move || push_until_killed(addr, round, seed));
        std::thread::sleep(std::time::Duration::from_millis(1500 + rng.below(5000)));
        s.signal_and_wait("KILL");
        acked.extend(pusher.join().unwrap());
    }
    eprintln!("{} images acknowledged across 6 kills", acked.len());
    let s = Server::start_config(&dir.0, &yaml, &[]);
    all_intact(&s, &acked);
    let o = common::store::storage_cmd(&s, &["fsck"]);
    let out = common::store::stdout(&o);
    assert!(
        !out.contains("missing") && !out.contains("corrupt") && !out.contains("does not match"),
        "fsck after the kills:\n{out}"
    );
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged: the test proves nothing"
    );
}
