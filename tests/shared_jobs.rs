//! Several nodes on one bucket (a three-node Garage cluster of the test's
//! own): upload purging, scheduled garbage collection and the full usage
//! scan run once per registry and interval, not once per node; what one
//! node purged is gone for all; a push through one node shows in another's
//! usage figures, which that node loads from the scan another published.

mod common;

use common::s3::{Garage, get_object, keys};
use common::*;
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Every job's interval, in seconds.
const EVERY: u64 = 3;

fn config(c: &common::s3::Cluster, prefix: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: debug\nstorage:\n{}  delete:\n    enabled: true\n  redirect:\n    disable: true\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 2s\n      interval: {EVERY}s\n      dryrun: false\nhttp:\n  addr: 127.0.0.1:0\nprivateregistry:\n  usagerescan: {EVERY}s\n  gc:\n    enabled: true\n    interval: {EVERY}s\n    grace: 1h\n",
        c.storage_yaml_at(prefix)
    )
}

/// Lines of all nodes' logs containing `needle`, per node.
fn runs(nodes: &[Server], needle: &str) -> Vec<usize> {
    nodes
        .iter()
        .map(|s| s.log_text().matches(needle).count())
        .collect()
}

/// The end of a node's log, for failure messages.
fn tail(s: &Server) -> String {
    let text = s.log_text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" access: ")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn nodes_on_one_bucket_take_turns_and_share_what_they_see() {
    if lacks_tools("shared_jobs", &["garage", "aws"]) {
        return;
    }
    let g = Garage::start();
    let c = &g.cluster;
    let prefix = "shared";
    let dirs: Vec<TempDir> = (0..NODES)
        .map(|i| TempDir::new(&format!("node{i}")))
        .collect();
    let started = Instant::now();
    let nodes: Vec<Server> = dirs
        .iter()
        .map(|d| Server::start_config(&d.0, &config(c, prefix), &[]))
        .collect();

    // An upload started through one node is purged by one node only, and
    // is gone through every node.
    let r = nodes[0].req("POST", "/v2/team/app/blobs/uploads/").send();
    assert_eq!(r.status, 202, "{}", r.text());
    let upload = r.location_path();
    let id = upload.rsplit('/').next().unwrap().to_string();
    let purged = wait_for(60, || {
        nodes
            .iter()
            .all(|s| s.req("GET", &upload).send().status == 404)
    });
    assert!(purged, "the upload was not purged within a minute");
    let purgers: Vec<usize> = runs(&nodes, &format!("purged upload {id}"));
    assert_eq!(purgers.iter().sum::<usize>(), 1, "purged by {purgers:?}");

    // A push through one node shows in another's figures.
    push_image(&nodes[1], "team/pushed", "1.0", "shared-jobs");
    let mine = wait_for(30, || {
        let u = nodes[1].req("GET", "/v2/_ext/usage/team/pushed").send();
        u.status == 200 && u.json()["referencedBytes"].as_u64() > Some(0)
    });
    assert!(
        mine,
        "the pushing node does not count its own push:\n{}",
        tail(&nodes[1])
    );
    let want = nodes[1]
        .req("GET", "/v2/_ext/usage/team/pushed")
        .send()
        .json()["referencedBytes"]
        .clone();
    for other in [&nodes[0], &nodes[2]] {
        let seen = wait_for(30, || {
            let u = other.req("GET", "/v2/_ext/usage/team/pushed").send();
            u.status == 200 && u.json()["referencedBytes"] == want
        });
        assert!(seen, "a node did not see the push's figures within 30 s");
    }

    // Let every job come round several times, then count the runs.
    std::thread::sleep(Duration::from_secs(4 * EVERY));
    let elapsed = started.elapsed().as_secs();
    // One schedule for the registry runs a job at most once per interval,
    // plus the first; one per node would run it about NODES times as often.
    let most = (elapsed / EVERY + 2) as usize;
    for (job, needle, skipped) in [
        (
            "upload purging",
            "upload(s) older than",
            "upload purging: node ",
        ),
        (
            "garbage collection",
            "garbage collection: starting",
            "garbage collection: node ",
        ),
        (
            "usage scan",
            "storage usage: full scan took",
            "storage usage: node ",
        ),
    ] {
        let per_node = runs(&nodes, needle);
        let total: usize = per_node.iter().sum();
        let skips: usize = runs(&nodes, skipped).iter().sum();
        assert!(
            (2..=most).contains(&total),
            "{job}: {per_node:?} runs in {elapsed} s (at most {most} for one schedule)"
        );
        assert!(skips > 0, "{job}: no node ever left a turn to another");
    }

    // The records: one per job naming a node, and the published scan.
    let root = format!("{prefix}/private-registry");
    let stored = keys(c, &root);
    for job in ["upload-purging", "garbage-collection", "usage-scan"] {
        let key = format!("{root}/schedule/{job}");
        assert!(stored.contains(&key), "no {key} in {stored:?}");
        let claim: serde_json::Value = serde_json::from_slice(&get_object(c, &key)).unwrap();
        assert!(claim["node"].as_str().is_some(), "{claim}");
    }
    assert!(
        stored.contains(&format!("{root}/usage/inventory")),
        "{stored:?}"
    );
}
