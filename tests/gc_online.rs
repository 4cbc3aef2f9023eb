//! Garbage collection inside and beside a serving daemon: the daemon's own
//! scheduled collection, and collectors (the command, or the daemon
//! running its schedule) SIGKILLed mid-collection again and again while
//! images sharing layers with deleted ones are pushed. Nothing acknowledged
//! may be lost, and a following collection and fsck find everything sound.

mod common;
use common::images::{pulls_completely, push_sharing};
use common::store::*;
use common::*;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn schedule(interval: &str, grace: &str) -> String {
    format!(
        "privateregistry:\n  gc:\n    enabled: true\n    interval: {interval}\n    grace: {grace}\n    deleteuntagged: true\n"
    )
}

fn fsck_clean(s: &Server) {
    let o = storage_cmd(s, &["fsck"]);
    assert_eq!(o.status.code(), Some(0), "fsck:\n{}", stdout(&o));
}

#[test]
fn scheduled_collection_removes_what_nothing_references() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: backdates blob files and links on disk");
        return;
    }
    let mut s = Server::start_with(&schedule("1s", "1h"));
    let kept = push_image(&s, "team/app", "1", "kept");
    let untagged = push_image(&s, "team/app", "2", "untagged");
    let r = s.req("DELETE", "/v2/team/app/manifests/2").send();
    assert_eq!(r.status, 202);
    let old = push_blob(&s, "team/app", b"unreferenced for hours");
    let fresh = push_blob(&s, "team/app", b"unreferenced, just pushed");
    // Older than the grace period: the orphan, and the untagged image with
    // its blobs (its revision link included).
    let m = get_manifest(&s, "team/app", &untagged).json();
    let untagged_blobs = [
        m["config"]["digest"].as_str().unwrap().to_string(),
        m["layers"][0]["digest"].as_str().unwrap().to_string(),
        untagged.clone(),
        old.clone(),
    ];
    for d in &untagged_blobs {
        age_file(&blob_path(&s.root, d));
    }
    let hex = untagged.trim_start_matches("sha256:");
    age_file(&s.root.join(format!(
        "docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{hex}/link"
    )));

    // A run logs what it removed once it has removed it all.
    let removed_blob = format!("garbage collection: deleted blob {old}");
    let removed_manifest = format!("garbage collection: deleted manifest team/app@{untagged}");
    assert!(
        wait_for(30, || {
            let log = s.log_text();
            log.contains(&removed_blob) && log.contains(&removed_manifest)
        }),
        "no scheduled collection removed them; log:\n{}",
        s.log_text()
    );
    assert!(
        s.log_text()
            .contains("garbage collection scheduled every 1s")
    );
    for d in &untagged_blobs {
        assert!(!stored(&s, d), "{d} still stored");
    }
    assert!(stored(&s, &fresh), "removed within the grace period");
    assert_eq!(get_manifest(&s, "team/app", &untagged).status, 404);
    assert_eq!(sha256(&get_manifest(&s, "team/app", "1").body), kept);
    assert!(s.signal_and_wait("TERM").success(), "{}", s.log_text());
}

/// Pushes images whose layers come from a small pool until `until`: each
/// new one is pulled, and unless it is one to keep, deleted before the
/// next push reuses its layers. Every fifth acknowledged one, and the
/// last, are kept and added to `kept`.
fn churn(
    s: &Server,
    round: u64,
    until: Instant,
    pool: &[Vec<u8>],
    kept: &mut Vec<(String, String)>,
) {
    let mut live: Option<(String, String)> = None;
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        if let Some((tag, d)) = live.take() {
            pulls_completely(s, "busy", &tag, &d);
            let r = s.req("DELETE", &format!("/v2/busy/manifests/{d}")).send();
            assert_eq!(r.status, 202, "{}", r.text());
        }
        let tag = format!("r{round}-{i}");
        if let Some(d) = push_sharing(s, "busy", &tag, round * 1000 + i, pool) {
            if i.is_multiple_of(5) {
                kept.push((tag, d));
            } else {
                live = Some((tag, d));
            }
        }
    }
    // The last one, acknowledged moments before a kill, must survive it too.
    kept.extend(live);
}

fn every_kept_image_pulls(s: &Server, kept: &[(String, String)]) {
    for (tag, d) in kept {
        pulls_completely(s, "busy", tag, d);
    }
}

#[test]
fn collectors_killed_mid_collection_lose_nothing() {
    let seed = time_seed();
    eprintln!("TEST_SEED={seed}");
    let pool: Vec<Vec<u8>> = (0..4)
        .map(|i| random_bytes(30_000 + i * 11, seed ^ i as u64))
        .collect();
    let dir = TempDir::new("gc-kill");
    let root = dir.0.join("data");
    let mut kept = vec![];

    // The command, killed at random moments while pushes and deletes go on.
    let s = Server::start_on(&root, "", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (config, stop) = (s.config.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let (mut killed, mut finished, mut put_back) = (0, 0, 0);
            while !stop.load(Ordering::SeqCst) {
                let child = Command::new(BIN)
                    .args([
                        "garbage-collect",
                        "--delete-untagged",
                        "--grace",
                        "1s",
                        "--config",
                    ])
                    .arg(&config)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let (was_killed, out) = kill_after(child, Duration::from_millis(rng.below(60)));
                if was_killed {
                    killed += 1;
                } else {
                    finished += 1;
                }
                // What a killed run left aside, the next one puts back.
                put_back += String::from_utf8_lossy(&out.stdout)
                    .matches("put back")
                    .count();
            }
            (killed, finished, put_back)
        })
    };
    churn(
        &s,
        0,
        Instant::now() + Duration::from_secs(8),
        &pool,
        &mut kept,
    );
    stop.store(true, Ordering::SeqCst);
    let (killed, finished, put_back) = killer.join().unwrap();
    eprintln!(
        "command: {killed} collections killed, {finished} finished, {put_back} put back what a killed one set aside; {} kept",
        kept.len()
    );
    assert!(killed > 0, "no collection was killed");
    every_kept_image_pulls(&s, &kept);
    drop(s);

    // The daemon collecting on a short schedule, SIGKILLed, restarted.
    let mut interrupted = 0;
    for round in 1..=5 {
        let mut s = Server::start_on(&root, &schedule("50ms", "1s"), &[]);
        every_kept_image_pulls(&s, &kept);
        let mut rng = Rng::new(seed ^ round);
        let until = Instant::now() + Duration::from_millis(500 + rng.below(1500));
        churn(&s, round, until, &pool, &mut kept);
        s.signal_and_wait("KILL");
        let log = s.log_text();
        let started = log.matches("garbage collection: starting").count();
        let ended = log.matches("garbage collection: finished").count()
            + log.matches("garbage collection failed").count();
        interrupted += started - ended;
    }
    eprintln!(
        "daemon: {interrupted} of 5 kills came mid-collection; {} kept",
        kept.len()
    );

    // A following collection and fsck find everything sound. In a bucket a
    // killed collector's marker counts for 10 s (src/storage/condemn.rs):
    // only then may a collection take it for a dead one's and remove it.
    if common::s3::on_s3() {
        std::thread::sleep(Duration::from_secs(11));
    }
    let s = Server::start_on(&root, "", &[]);
    every_kept_image_pulls(&s, &kept);
    let o = storage_cmd(
        &s,
        &["garbage-collect", "--delete-untagged", "--grace", "1s"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    every_kept_image_pulls(&s, &kept);
    fsck_clean(&s);
    let a = audit_store(&root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
    assert!(
        kept.len() > 5,
        "too few images kept to mean anything: {}",
        kept.len()
    );
}

/// SIGTERM while a scheduled collection runs: the daemon stops cleanly,
/// letting the run finish within the drain timeout or abandoning it, and
/// what an abandoned run set aside is put back by the next collection.
#[test]
fn shutdown_during_a_scheduled_collection_is_clean() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: plants unreferenced blobs in the data directory on disk");
        return;
    }
    let dir = TempDir::new("gc-term");
    let root = dir.0.join("data");
    // Many unreferenced blobs, old enough to go: a run that takes a while.
    let mut orphans = vec![];
    for i in 0..1500u32 {
        let data = format!("orphan {i}");
        let d = sha256(data.as_bytes());
        let p = blob_path(&root, &d);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        age_file(&p);
        orphans.push(d);
    }
    let mut s = Server::start_on(
        &root,
        &schedule("1s", "1h"),
        &[("REGISTRY_HTTP_DRAINTIMEOUT", "10ms")],
    );
    let kept = push_image(&s, "team/app", "1", "kept");
    assert!(
        wait_for(30, || s.log_text().contains("garbage collection: starting")),
        "{}",
        s.log_text()
    );
    let status = s.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}\n{}", s.log_text());
    let log = s.log_text();
    let abandoned = log.contains("garbage collection interrupted by shutdown");
    assert!(
        abandoned || log.contains("garbage collection: finished"),
        "{log}"
    );
    eprintln!(
        "the run was {}",
        if abandoned { "abandoned" } else { "finished" }
    );

    let s = Server::start_on(&root, "", &[]);
    let o = storage_cmd(&s, &["garbage-collect"]);
    assert!(o.status.success());
    assert!(orphans.iter().all(|d| !stored(&s, d)), "{}", stdout(&o));
    assert_eq!(sha256(&get_manifest(&s, "team/app", "1").body), kept);
    fsck_clean(&s);
}
