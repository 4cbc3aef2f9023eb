//! `private-registry garbage-collect` against real servers and the real
//! binary: what it keeps (tagged images, multi-arch children, referrers,
//! anything touched within the grace period) and what it removes.

mod common;
use common::images::{pulls_completely, push_sharing};
use common::store::{blob_path, stored};
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Runs a collection on the server's configuration and returns its output.
fn gc(s: &Server, args: &[&str]) -> String {
    if args.windows(2).any(|a| a == ["--grace", "0s"]) {
        common::s3::settle_times();
    }
    run_ok(
        Command::new(BIN)
            .arg("garbage-collect")
            .arg("--config")
            .arg(&s.config)
            .args(args),
    )
}

fn layer_link(s: &Server, repo: &str, d: &str) -> PathBuf {
    s.root
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_layers/sha256")
        .join(d.trim_start_matches("sha256:"))
        .join("link")
}

/// Pretends a blob was last written two hours ago.
fn age(s: &Server, d: &str) {
    run_ok(
        Command::new("touch")
            .args(["-m", "-d", "2 hours ago"])
            .arg(blob_path(&s.root, d)),
    );
}

fn mtime(s: &Server, d: &str) -> SystemTime {
    std::fs::metadata(blob_path(&s.root, d))
        .unwrap()
        .modified()
        .unwrap()
}

fn put_manifest(s: &Server, repo: &str, reference: &str, media_type: &str, body: &str) -> String {
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_string())
        .send();
    assert_eq!(r.status, 201, "put manifest {reference}: {}", r.text());
    sha256(body.as_bytes())
}

/// An image manifest with its own config and layer; returns (manifest body, config, layer).
fn image(s: &Server, repo: &str, seed: &str, subject: Option<&str>) -> (String, String, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer-{seed}");
    let c = push_blob(s, repo, config.as_bytes());
    let l = push_blob(s, repo, layer.as_bytes());
    let mut m = image_manifest(OCI_MANIFEST, (&c, config.len()), &[(&l, layer.len())]);
    if let Some(subj) = subject {
        m.pop();
        m.push_str(&format!(
            r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subj}","size":1}}}}"#
        ));
    }
    (m, c, l)
}

/// Whether `repo` serves blob `d`, whole: a kept blob, checked through the
/// API (on any store; `stored` looks at the data directory on disk).
fn readable(s: &Server, repo: &str, d: &str) -> bool {
    let r = s.req("GET", &format!("/v2/{repo}/blobs/{d}")).send();
    r.status == 200 && sha256(&r.body) == d
}

fn manifest_status(s: &Server, repo: &str, reference: &str) -> u16 {
    get_manifest(s, repo, reference).status
}

#[test]
fn single_arch_dry_run_then_collect() {
    let s = Server::start();
    let kept = push_image(&s, "team/app", "1", "one");
    let gone = push_image(&s, "team/app", "2", "two");
    let gone_bytes = get_manifest(&s, "team/app", "2").json();
    let gone_layer = gone_bytes["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let gone_config = gone_bytes["config"]["digest"].as_str().unwrap().to_string();
    let r = s
        .req("DELETE", &format!("/v2/team/app/manifests/{gone}"))
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    let orphan = push_blob(&s, "team/app", b"never referenced");

    let before = walk_files(&s.root);
    let out = gc(&s, &["--dry-run", "--grace", "0s"]);
    assert_eq!(
        walk_files(&s.root),
        before,
        "--dry-run changed files:\n{out}"
    );
    for d in [&gone, &gone_layer, &gone_config, &orphan] {
        assert!(
            out.contains(&format!("would delete blob {d}")),
            "{d} not listed:\n{out}"
        );
        assert!(readable(&s, "team/app", d) || d == &gone, "{d}");
    }
    assert!(
        out.contains("3 blobs marked, 4 blobs eligible for deletion"),
        "{out}"
    );

    let out = gc(&s, &["--grace", "0s"]);
    assert!(
        out.contains("3 blobs marked, 4 blobs eligible for deletion"),
        "{out}"
    );
    for d in [&gone, &gone_layer, &gone_config, &orphan] {
        assert!(
            out.contains(&format!("deleted blob {d}")),
            "{d} not listed:\n{out}"
        );
        assert!(!stored(&s, d), "{d} still stored");
        assert!(!layer_link(&s, "team/app", d).exists(), "link to {d} left");
        // On a bucket the daemon answers blob HEADs from what it saw in
        // the last second (distribution's descriptor cache): the collector
        // is another process, so the 404 may take that long.
        let head = || {
            s.req("HEAD", &format!("/v2/team/app/blobs/{d}"))
                .send()
                .status
        };
        assert!(wait_for(3, || head() == 404), "{d} still reported present");
    }
    let m = get_manifest(&s, "team/app", "1");
    assert_eq!(m.status, 200);
    assert_eq!(sha256(&m.body), kept);
    for key in ["config", "layers"] {
        let v = &m.json()[key];
        let d = if key == "config" {
            &v["digest"]
        } else {
            &v[0]["digest"]
        };
        let r = s
            .req(
                "GET",
                &format!("/v2/team/app/blobs/{}", d.as_str().unwrap()),
            )
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(sha256(&r.body), d.as_str().unwrap());
    }
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
    // Nothing left to collect.
    assert!(gc(&s, &["--grace", "0s"]).contains("3 blobs marked, 0 blobs eligible"));
}

#[test]
fn delete_untagged_keeps_multi_arch_children() {
    let s = Server::start();
    let repo = "multi";
    let (amd, amd_c, amd_l) = image(&s, repo, "amd64", None);
    let (arm, arm_c, arm_l) = image(&s, repo, "arm64", None);
    let amd_d = put_manifest(&s, repo, &sha256(amd.as_bytes()), OCI_MANIFEST, &amd);
    let arm_d = put_manifest(&s, repo, &sha256(arm.as_bytes()), OCI_MANIFEST, &arm);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd_d}","size":{},"platform":{{"os":"linux","architecture":"amd64"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm_d}","size":{},"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#,
        amd.len(),
        arm.len()
    );
    let index_d = put_manifest(&s, repo, "latest", OCI_INDEX, &index);
    let (lone, lone_c, lone_l) = image(&s, repo, "untagged", None);
    let lone_d = put_manifest(&s, repo, &sha256(lone.as_bytes()), OCI_MANIFEST, &lone);

    let out = gc(&s, &["--delete-untagged", "--grace", "0s"]);
    assert!(
        out.contains(&format!("deleted manifest {repo}@{lone_d}")),
        "{out}"
    );
    assert!(
        !out.contains(&amd_d) && !out.contains(&arm_d),
        "a child went:\n{out}"
    );
    assert!(
        out.contains("7 blobs marked, 3 blobs eligible for deletion"),
        "{out}"
    );
    for d in [&index_d, &amd_d, &arm_d] {
        assert_eq!(manifest_status(&s, repo, d), 200, "{d}");
    }
    for d in [&amd_c, &amd_l, &arm_c, &arm_l] {
        assert!(readable(&s, repo, d), "{d}");
    }
    assert_eq!(manifest_status(&s, repo, &lone_d), 404);
    for d in [&lone_d, &lone_c, &lone_l] {
        assert!(!stored(&s, d), "{d} of the untagged manifest still stored");
    }
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

#[test]
fn untagged_graphs_stay_without_the_flag_and_go_with_it() {
    let s = Server::start();
    let repo = "graphs";
    // A multi-arch index whose tag was deleted, with its two children.
    let (amd, amd_c, amd_l) = image(&s, repo, "g-amd64", None);
    let (arm, arm_c, arm_l) = image(&s, repo, "g-arm64", None);
    let amd_d = put_manifest(&s, repo, &sha256(amd.as_bytes()), OCI_MANIFEST, &amd);
    let arm_d = put_manifest(&s, repo, &sha256(arm.as_bytes()), OCI_MANIFEST, &arm);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd_d}","size":{}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm_d}","size":{}}}]}}"#,
        amd.len(),
        arm.len()
    );
    let index_d = put_manifest(&s, repo, "multi", OCI_INDEX, &index);
    // A single-arch image whose tag was deleted.
    let (single, single_c, single_l) = image(&s, repo, "g-single", None);
    put_manifest(&s, repo, "single", OCI_MANIFEST, &single);
    let single_d = sha256(single.as_bytes());
    for tag in ["multi", "single"] {
        let r = s
            .req("DELETE", &format!("/v2/{repo}/manifests/{tag}"))
            .send();
        assert_eq!(r.status, 202);
    }
    // An untagged image with a referrer.
    let (subj, subj_c, _) = image(&s, repo, "g-subject", None);
    let subj_d = put_manifest(&s, repo, &sha256(subj.as_bytes()), OCI_MANIFEST, &subj);
    let (sig, sig_c, _) = image(&s, repo, "g-sig", Some(&subj_d));
    let sig_d = put_manifest(&s, repo, &sha256(sig.as_bytes()), OCI_MANIFEST, &sig);
    let manifests = [&index_d, &amd_d, &arm_d, &single_d, &subj_d, &sig_d];
    let blobs = [
        &amd_c, &amd_l, &arm_c, &arm_l, &single_c, &single_l, &subj_c, &sig_c,
    ];

    let out = gc(&s, &["--grace", "0s"]);
    assert!(out.contains("0 blobs eligible for deletion"), "{out}");
    for d in manifests {
        assert_eq!(
            manifest_status(&s, repo, d),
            200,
            "{d} went without --delete-untagged"
        );
    }
    for d in blobs {
        assert!(readable(&s, repo, d), "{d}");
    }

    let out = gc(&s, &["--delete-untagged", "--grace", "0s"]);
    for d in manifests {
        assert!(
            out.contains(&format!("deleted manifest {repo}@{d}")),
            "{d}:\n{out}"
        );
        assert_eq!(manifest_status(&s, repo, d), 404, "{d}");
        assert!(!stored(&s, d), "{d}");
    }
    for d in blobs {
        assert!(!stored(&s, d), "{d} of an untagged graph still stored");
    }
    let r = s
        .req("GET", &format!("/v2/{repo}/referrers/{subj_d}"))
        .send();
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

#[test]
fn referrers_stay_with_their_subject() {
    let s = Server::start();
    let repo = "signed";
    let app = push_image(&s, repo, "1.0", "app");
    let (sig, sig_c, sig_l) = image(&s, repo, "signature", Some(&app));
    let sig_d = put_manifest(&s, repo, &sha256(sig.as_bytes()), OCI_MANIFEST, &sig);
    // An untagged image with its own signature: both go.
    let (old, _, _) = image(&s, repo, "old", None);
    let old_d = put_manifest(&s, repo, &sha256(old.as_bytes()), OCI_MANIFEST, &old);
    let (old_sig, old_sig_c, _) = image(&s, repo, "old-signature", Some(&old_d));
    let old_sig_d = put_manifest(
        &s,
        repo,
        &sha256(old_sig.as_bytes()),
        OCI_MANIFEST,
        &old_sig,
    );

    let out = gc(&s, &["--delete-untagged", "--grace", "0s"]);
    for d in [&old_d, &old_sig_d] {
        assert!(
            out.contains(&format!("deleted manifest {repo}@{d}")),
            "{d}:\n{out}"
        );
    }
    assert!(
        !out.contains(&sig_d),
        "the kept image's signature went:\n{out}"
    );
    assert_eq!(manifest_status(&s, repo, &sig_d), 200);
    for d in [&sig_c, &sig_l] {
        assert!(readable(&s, repo, d), "{d}");
    }
    assert!(!stored(&s, &old_sig_c));
    let r = s.req("GET", &format!("/v2/{repo}/referrers/{app}")).send();
    assert_eq!(r.status, 200);
    let listed: Vec<String> = r.json()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, vec![sig_d.clone()]);
    // Without --delete-untagged, untagged manifests and their blobs stay.
    let (keep, keep_c, _) = image(&s, repo, "kept-untagged", None);
    let keep_d = put_manifest(&s, repo, &sha256(keep.as_bytes()), OCI_MANIFEST, &keep);
    gc(&s, &["--grace", "0s"]);
    assert_eq!(manifest_status(&s, repo, &keep_d), 200);
    assert!(readable(&s, repo, &keep_c));
}

#[test]
fn grace_period_keeps_what_is_new_or_just_referenced() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: backdates blob files on disk");
        return;
    }
    let s = Server::start();
    // Pushed just now (as if during a collection): kept by the default 1 h grace.
    let fresh = push_blob(&s, "a", b"pushed during a collection");
    // Unreferenced for two hours: goes.
    let stale = push_blob(&s, "a", b"stale");
    age(&s, &stale);
    // Unreferenced for two hours, then mounted into another repository.
    let mounted = push_blob(&s, "a", b"mounted later");
    age(&s, &mounted);
    let r = s
        .req(
            "POST",
            &format!("/v2/b/blobs/uploads/?mount={mounted}&from=a"),
        )
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    // Unreferenced for two hours, then confirmed by a push's HEAD.
    let headed = push_blob(&s, "a", b"confirmed by HEAD");
    age(&s, &headed);
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{headed}"))
            .send()
            .status,
        200
    );
    // Unreferenced for two hours, then uploaded again (already present).
    let again = push_blob(&s, "a", b"uploaded again");
    age(&s, &again);
    push_blob(&s, "c", b"uploaded again");
    let recent = SystemTime::now() - Duration::from_secs(600);
    for d in [&mounted, &headed, &again] {
        assert!(
            mtime(&s, d) > recent,
            "{d}: referencing it did not refresh its time"
        );
    }

    let out = gc(&s, &[]);
    assert!(
        out.contains("0 blobs marked, 1 blob eligible for deletion"),
        "{out}"
    );
    assert!(out.contains(&format!("deleted blob {stale}")), "{out}");
    assert!(!stored(&s, &stale));
    for d in [&fresh, &mounted, &headed, &again] {
        assert!(stored(&s, d), "{d} removed within the grace period:\n{out}");
    }
    assert_eq!(
        s.req("HEAD", &format!("/v2/b/blobs/{mounted}"))
            .send()
            .status,
        200
    );
}

/// The digests on lines containing `marker`, each the last `sha256:` word.
fn digests_after(out: &str, marker: &str) -> std::collections::BTreeSet<String> {
    out.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| {
            l.split_whitespace()
                .rev()
                .find(|w| w.starts_with("sha256:"))
        })
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != ':')
                .to_string()
        })
        .collect()
}

#[test]
fn marks_what_distribution_marks() {
    if lacks_tools("marks_what_distribution_marks", &["docker-registry"]) {
        return;
    }
    let s = Server::start();
    push_image(&s, "team/app", "1", "one");
    let gone = push_image(&s, "team/app", "2", "two");
    assert_eq!(
        s.req("DELETE", &format!("/v2/team/app/manifests/{gone}"))
            .send()
            .status,
        202
    );
    push_blob(&s, "team/app", b"orphan");
    let (amd, _, _) = image(&s, "multi", "amd64", None);
    let amd_d = put_manifest(&s, "multi", &sha256(amd.as_bytes()), OCI_MANIFEST, &amd);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd_d}","size":{}}}]}}"#,
        amd.len()
    );
    put_manifest(&s, "multi", "latest", OCI_INDEX, &index);
    let app = get_manifest(&s, "team/app", "1");
    let (sig, _, _) = image(&s, "team/app", "sig", Some(&sha256(&app.body)));
    put_manifest(&s, "team/app", &sha256(sig.as_bytes()), OCI_MANIFEST, &sig);

    let theirs = distribution_gc(&s.root, true);
    let ours = gc(&s, &["--dry-run", "--grace", "0s"]);
    // "N blobs marked, M blobs ..." in both (distribution adds "and K manifests").
    let summary = |out: &str| -> Option<(u64, u64)> {
        let l = out.lines().find(|l| l.contains("blobs marked, "))?;
        let l = &l[l.find(|c: char| c.is_ascii_digit())?..];
        let (marked, rest) = l.split_once(" blobs marked, ")?;
        let eligible = rest.split_whitespace().next()?;
        Some((marked.parse().ok()?, eligible.parse().ok()?))
    };
    assert_eq!(summary(&ours), Some((10, 4)), "{ours}");
    assert_eq!(
        summary(&ours),
        summary(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert_eq!(
        digests_after(&ours, "would delete blob"),
        digests_after(&theirs, "eligible for deletion:"),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert_eq!(digests_after(&ours, "would delete blob").len(), 4, "{ours}");
}

#[test]
fn blobs_a_killed_collection_set_aside_are_put_back_and_judged_again() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: sets blobs aside by renaming their directories on disk");
        return;
    }
    let s = Server::start();
    let m = push_image(&s, "team/app", "1", "one");
    let layer = get_manifest(&s, "team/app", "1").json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let orphan = push_blob(&s, "team/app", b"orphan");
    // As a collection leaves them when killed between moving aside and deciding.
    let aside = s.root.join("docker/registry/v2/_quarantine");
    std::fs::create_dir_all(&aside).unwrap();
    for d in [&layer, &orphan] {
        let hex = d.trim_start_matches("sha256:");
        let dir = blob_path(&s.root, d).parent().unwrap().to_path_buf();
        std::fs::rename(&dir, aside.join(format!("sha256-{hex}-0123456789abcdef"))).unwrap();
    }
    assert_eq!(
        s.req("GET", &format!("/v2/team/app/blobs/{layer}"))
            .send()
            .status,
        404
    );

    let before = walk_files(&s.root);
    gc(&s, &["--dry-run", "--grace", "0s"]);
    assert_eq!(walk_files(&s.root), before, "--dry-run changed files");

    let out = gc(&s, &["--grace", "0s"]);
    assert!(out.contains("put back 2 blobs"), "{out}");
    assert!(out.contains(&format!("deleted blob {orphan}")), "{out}");
    assert!(!out.contains(&layer), "{out}");
    let r = s.req("GET", &format!("/v2/team/app/blobs/{layer}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), layer);
    assert_eq!(sha256(&get_manifest(&s, "team/app", &m).body), m);
    assert!(!stored(&s, &orphan));
    assert_eq!(std::fs::read_dir(&aside).unwrap().count(), 0, "left aside");
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty() && a.strays.is_empty(), "{a:#?}");
}

/// Runs `garbage-collect --delete-untagged` back to back until `stop`;
/// returns the runs and how many output lines started with `counted`.
fn collect_until(
    s: &Server,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    counted: &'static str,
) -> std::thread::JoinHandle<(usize, usize)> {
    let (config, stop) = (s.config.clone(), stop.clone());
    std::thread::spawn(move || {
        let (mut runs, mut deleted) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let out = run_ok(
                Command::new(BIN)
                    .arg("garbage-collect")
                    .arg("--config")
                    .arg(&config)
                    .args(["--delete-untagged", "--grace", "1s"]),
            );
            deleted += out.matches(counted).count();
            runs += 1;
        }
        (runs, deleted)
    })
}

/// What a [`churn`] did.
struct Churn {
    acknowledged: usize,
    refused: usize,
    runs: usize,
    deleted: usize,
    /// The last acknowledged (tag, digest), still tagged.
    live: Option<(String, String)>,
}

/// For 8 s and 15 rounds at least, while collections run back to back (output lines starting with
/// `counted` are counted), calls `round(i, previous)`: the round checks and
/// deletes `previous`, the (tag, digest) acknowledged last, then pushes the
/// next and returns its (tag, digest), or `None` when the push was refused.
fn churn(
    s: &Server,
    counted: &'static str,
    mut round: impl FnMut(usize, Option<(String, String)>) -> Option<(String, String)>,
) -> Churn {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = collect_until(s, &stop, counted);
    let mut live = None;
    let (mut acknowledged, mut refused) = (0, 0);
    // At least 8 s and at least 15 rounds (a bucket is slower than a disk),
    // within a minute: the checks below count rounds, not seconds.
    let start = std::time::Instant::now();
    let (until, cap) = (
        start + Duration::from_secs(8),
        start + Duration::from_secs(60),
    );
    let mut i = 0;
    while std::time::Instant::now() < until || (i < 15 && std::time::Instant::now() < cap) {
        i += 1;
        live = round(i, live.take());
        match live {
            Some(_) => acknowledged += 1,
            None => refused += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (runs, deleted) = collector.join().unwrap();
    Churn {
        acknowledged,
        refused,
        runs,
        deleted,
        live,
    }
}

#[test]
fn pushes_and_deletes_while_collections_run() {
    let s = Server::start();
    let seed = time_seed();
    eprintln!("TEST_SEED={seed}");
    let pool: Vec<Vec<u8>> = (0..3)
        .map(|i| random_bytes(20_000 + i * 7, seed ^ i as u64))
        .collect();
    let repo = "busy";
    let c = churn(&s, "deleted blob", |i, previous| {
        // The previous image, pulled after collections ran, then deleted: its
        // layers are unreferenced until the next push reuses them (HEAD, skip
        // the upload, put the manifest) while collections keep running.
        if let Some((tag, d)) = previous {
            std::thread::sleep(Duration::from_millis(100));
            pulls_completely(&s, repo, &tag, &d);
            let r = s.req("DELETE", &format!("/v2/{repo}/manifests/{d}")).send();
            assert_eq!(r.status, 202, "{}", r.text());
        }
        let tag = format!("v{i}");
        push_sharing(&s, repo, &tag, seed.wrapping_add(i as u64), &pool).map(|d| (tag, d))
    });
    eprintln!(
        "{} pushes acknowledged, {} refused, {} collections deleted {} blobs",
        c.acknowledged, c.refused, c.runs, c.deleted
    );
    assert!(c.acknowledged > 10 && c.runs > 2 && c.deleted > 0);
    if let Some((tag, d)) = &c.live {
        pulls_completely(&s, repo, tag, d);
        // And once more after a final collection with no grace at all.
        gc(&s, &["--delete-untagged", "--grace", "0s"]);
        pulls_completely(&s, repo, tag, d);
    }
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

#[test]
fn manifests_a_killed_collection_set_aside_are_put_back_and_judged_again() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: sets revisions aside by renaming their directories on disk");
        return;
    }
    let s = Server::start();
    let repo = "multi";
    let (amd, amd_c, amd_l) = image(&s, repo, "amd64", None);
    let amd_d = put_manifest(&s, repo, &sha256(amd.as_bytes()), OCI_MANIFEST, &amd);
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd_d}","size":{}}}]}}"#,
        amd.len()
    );
    put_manifest(&s, repo, "latest", OCI_INDEX, &index);
    let (lone, lone_c, _) = image(&s, repo, "untagged", None);
    let lone_d = put_manifest(&s, repo, &sha256(lone.as_bytes()), OCI_MANIFEST, &lone);
    // As a collection leaves them when killed between moving aside and deciding.
    let manifests = s
        .root
        .join(format!("docker/registry/v2/repositories/{repo}/_manifests"));
    let aside = manifests.join("_quarantine");
    std::fs::create_dir_all(&aside).unwrap();
    for d in [&amd_d, &lone_d] {
        let hex = d.trim_start_matches("sha256:");
        std::fs::rename(
            manifests.join("revisions/sha256").join(hex),
            aside.join(format!("sha256-{hex}-0123456789abcdef")),
        )
        .unwrap();
    }
    assert_eq!(manifest_status(&s, repo, &amd_d), 404);

    let before = walk_files(&s.root);
    let out = gc(&s, &["--dry-run", "--delete-untagged", "--grace", "0s"]);
    assert_eq!(walk_files(&s.root), before, "--dry-run changed files");
    // While aside (another collection may put them back), they and their blobs are kept.
    assert!(!out.contains(&amd_d) && !out.contains(&lone_d), "{out}");

    let out = gc(&s, &["--delete-untagged", "--grace", "0s"]);
    assert!(out.contains("put back 2 "), "{out}");
    assert!(
        out.contains(&format!("deleted manifest {repo}@{lone_d}")),
        "{out}"
    );
    assert!(!out.contains(&amd_d), "{out}");
    assert_eq!(manifest_status(&s, repo, &amd_d), 200);
    for d in [&amd_c, &amd_l] {
        assert!(stored(&s, d), "{d}");
    }
    assert_eq!(manifest_status(&s, repo, &lone_d), 404);
    assert!(!stored(&s, &lone_c));
    assert_eq!(std::fs::read_dir(&aside).unwrap().count(), 0, "left aside");
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty() && a.strays.is_empty(), "{a:#?}");
}

/// Pushes an index tagged `tag` over untagged children from `children`
/// (each pushed, with its blobs, only if the registry no longer has it),
/// as a multi-arch push does. `None` if the registry refused the index.
fn push_index(s: &Server, repo: &str, tag: &str, children: &[String]) -> Option<String> {
    let mut entries = vec![];
    for body in children {
        let d = sha256(body.as_bytes());
        if manifest_status(s, repo, &d) != 200 {
            let m: serde_json::Value = serde_json::from_str(body).unwrap();
            let seed = m["annotations"]["seed"].as_str().unwrap();
            push_blob(s, repo, format!("config-{seed}").as_bytes());
            push_blob(s, repo, format!("layer-{seed}").as_bytes());
            let r = s
                .req("PUT", &format!("/v2/{repo}/manifests/{d}"))
                .header("Content-Type", OCI_MANIFEST)
                .body(body.clone())
                .send();
            if r.status == 400 && r.code() == "MANIFEST_BLOB_UNKNOWN" {
                return None;
            }
            assert_eq!(r.status, 201, "child: {}", r.text());
        }
        entries.push(format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{}}}"#,
            body.len()
        ));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","annotations":{{"tag":"{tag}"}},"manifests":[{}]}}"#,
        entries.join(",")
    );
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_INDEX)
        .body(index.clone())
        .send();
    match r.status {
        201 => Some(sha256(index.as_bytes())),
        400 if r.code() == "MANIFEST_BLOB_UNKNOWN" => None,
        _ => panic!("index {tag}: {} {}", r.status, r.text()),
    }
}

#[test]
fn multi_arch_pushes_reuse_untagged_children_while_collections_run() {
    let s = Server::start();
    let repo = "fleet";
    let children: Vec<String> = ["amd64", "arm64", "s390x"]
        .iter()
        .map(|seed| {
            let (c, l) = (format!("config-{seed}"), format!("layer-{seed}"));
            let mut m = image_manifest(
                OCI_MANIFEST,
                (&sha256(c.as_bytes()), c.len()),
                &[(&sha256(l.as_bytes()), l.len())],
            );
            m.pop();
            m.push_str(&format!(r#","annotations":{{"seed":"{seed}"}}}}"#));
            m
        })
        .collect();
    let c = churn(&s, "deleted manifest", |i, previous| {
        // The previous index, pulled whole after collections ran, then
        // deleted: its children are untagged until the next index reuses them.
        if let Some((tag, d)) = previous {
            // Sometimes let the children grow older than the grace period
            // while the tag keeps them.
            let wait = if i.is_multiple_of(8) { 1200 } else { 20 };
            std::thread::sleep(Duration::from_millis(wait));
            let m = get_manifest(&s, repo, &tag);
            assert_eq!(m.status, 200, "{tag}");
            assert_eq!(sha256(&m.body), d);
            for child in m.json()["manifests"].as_array().unwrap() {
                let cd = child["digest"].as_str().unwrap();
                pulls_completely(&s, repo, cd, cd);
            }
            let r = s.req("DELETE", &format!("/v2/{repo}/manifests/{d}")).send();
            assert_eq!(r.status, 202, "{}", r.text());
            // Sometimes wait long enough for the children to be collected.
            if i % 8 == 4 {
                std::thread::sleep(Duration::from_millis(1200));
            }
        }
        let tag = format!("v{i}");
        let picks = [children[i % 3].clone(), children[(i + 1) % 3].clone()];
        push_index(&s, repo, &tag, &picks).map(|d| (tag, d))
    });
    eprintln!(
        "{} indexes acknowledged, {} refused, {} collections deleted {} manifests",
        c.acknowledged, c.refused, c.runs, c.deleted
    );
    assert!(c.acknowledged > 5 && c.runs > 2 && c.deleted > 0);
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

/// `t` as the collector prints it, by date(1) rather than our own code.
fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    run_ok(Command::new("date").args(["-u", &format!("-d@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"]))
        .trim()
        .to_string()
}

#[test]
fn says_how_many_blobs_the_grace_period_holds_back_and_until_when() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: backdates blob files on disk");
        return;
    }
    let s = Server::start();
    let old = push_blob(&s, "a", b"old and unreferenced");
    age(&s, &old);
    let young = push_blob(&s, "a", b"young");
    let younger = push_blob(&s, "a", b"younger");
    run_ok(
        Command::new("touch")
            .args(["-m", "-d", "30 minutes ago"])
            .arg(blob_path(&s.root, &young)),
    );
    let hour = Duration::from_secs(3600);
    let out = gc(&s, &["--dry-run"]);
    assert!(
        out.contains("0 blobs marked, 1 blob eligible for deletion"),
        "{out}"
    );
    let until = utc(mtime(&s, &younger) + hour);
    let held = format!(
        "2 blobs unreferenced but younger than the grace period (1h): kept, the last eligible at {until}"
    );
    assert!(out.contains(&held), "{out}");
    let out = gc(&s, &["--dry-run", "--grace", "20m"]);
    let until = utc(mtime(&s, &younger) + Duration::from_secs(1200));
    let held = format!(
        "1 blob unreferenced but younger than the grace period (20m): kept, eligible at {until}"
    );
    assert!(out.contains(&held), "{out}");
    let out = gc(&s, &["--dry-run", "--grace", "0s"]);
    assert!(!out.contains("grace period"), "{out}");
}
