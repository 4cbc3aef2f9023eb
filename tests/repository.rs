//! `private-registry repository list|delete` against a serving registry:
//! what a delete removes, what it must leave (nested repositories, blobs
//! other repositories use), and when it refuses.

mod common;
use common::store::*;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn blobs_of(s: &Server, repo: &str, tag: &str) -> Vec<String> {
    let m = get_manifest(s, repo, tag).json();
    vec![
        m["config"]["digest"].as_str().unwrap().to_string(),
        m["layers"][0]["digest"].as_str().unwrap().to_string(),
    ]
}

/// The manifest and every blob of `tag` read back with their digests.
fn pulls(s: &Server, repo: &str, tag: &str, digest: &str) {
    let m = get_manifest(s, repo, tag);
    assert_eq!(m.status, 200, "{repo}:{tag}");
    assert_eq!(sha256(&m.body), digest);
    for d in blobs_of(s, repo, tag) {
        let r = s.req("GET", &format!("/v2/{repo}/blobs/{d}")).send();
        assert_eq!(r.status, 200, "{repo}: {d}");
        assert_eq!(sha256(&r.body), d);
    }
}

/// What a change to the store would show: its files (on the filesystem),
/// the repositories, and what `fsck` counts (on any store).
fn snapshot(s: &Server) -> (Vec<std::path::PathBuf>, String, String) {
    let list = stdout(&storage_cmd(s, &["repository", "list", "--json"]));
    let fsck = stdout(&storage_cmd(s, &["fsck"]));
    let counts = fsck
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or_else(|| panic!("fsck: {fsck}"));
    (walk_files(&s.root), list, counts.to_string())
}

#[test]
fn delete_removes_one_repository_and_leaves_nested_and_shared() {
    let s = Server::start();
    let a1 = push_image(&s, "a", "1", "shared");
    let a2 = push_image(&s, "a", "2", "only-a");
    let nested = push_image(&s, "a/b", "1", "nested");
    // Same seed: same manifest, config and layer, stored once, used by both.
    let other = push_image(&s, "other", "1", "shared");
    assert_eq!(other, a1);
    let only_a = blobs_of(&s, "a", "2");
    let r = s.req("POST", "/v2/a/blobs/uploads/").send();
    assert_eq!(r.status, 202);
    let upload = r.location_path();

    let list = stdout(&storage_cmd(&s, &["repository", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines,
        [
            "a\t2 tags\t2 manifests",
            "a/b\t1 tag\t1 manifest",
            "other\t1 tag\t1 manifest"
        ],
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&storage_cmd(&s, &["repository", "list", "--json"]))).unwrap();
    assert_eq!(
        json[0],
        serde_json::json!({"name": "a", "tags": 2, "manifests": 2})
    );
    assert_eq!(json.as_array().unwrap().len(), 3);

    let before = snapshot(&s);
    let o = storage_cmd(&s, &["repository", "delete", "a", "--dry-run"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for line in [
        format!("would delete tag a:1 -> {a1}"),
        format!("would delete tag a:2 -> {a2}"),
        format!("would delete manifest a@{a1}"),
        format!("would delete manifest a@{a2}"),
    ] {
        assert!(out.contains(&line), "{line}:\n{out}");
    }
    assert_eq!(snapshot(&s), before, "--dry-run changed the store");
    // No terminal to ask on and no --yes: refused, nothing changed.
    let o = storage_cmd(&s, &["repository", "delete", "a"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --yes"));
    assert_eq!(snapshot(&s), before, "a refused delete changed the store");

    let o = storage_cmd(&s, &["repository", "delete", "a", "--yes"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains(&format!("deleted tag a:1 -> {a1}")), "{out}");
    assert!(out.contains(&format!("deleted manifest a@{a2}")), "{out}");
    let r = s.req("GET", "/v2/a/tags/list").send();
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    assert_eq!(get_manifest(&s, "a", &a1).status, 404);
    assert_eq!(s.req("GET", &upload).send().status, 404, "upload survived");
    let catalog = s.req("GET", "/v2/_catalog").send().json();
    assert_eq!(catalog["repositories"], serde_json::json!(["a/b", "other"]));
    pulls(&s, "a/b", "1", &nested);
    pulls(&s, "other", "1", &other);
    let v2 = s.root.join("docker/registry/v2");
    assert!(
        !v2.join("_trash").exists() || std::fs::read_dir(v2.join("_trash")).unwrap().count() == 0
    );

    // Collection reclaims what only `a` used, and nothing else.
    let out = stdout(&storage_cmd(&s, &["garbage-collect", "--grace", "0s"]));
    let mut gone: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("deleted blob "))
        .map(str::to_string)
        .collect();
    gone.sort();
    let mut want = vec![a2.clone(), only_a[0].clone(), only_a[1].clone()];
    want.sort();
    assert_eq!(gone, want, "{out}");
    // What `a` shared with `other`: its manifest, config and layer.
    pulls(&s, "other", "1", &other);
    let fsck = storage_cmd(&s, &["fsck"]);
    assert!(fsck.status.success(), "{}", stdout(&fsck));

    // With `a` gone, deleting `a/b` leaves no empty directories behind.
    assert!(
        storage_cmd(&s, &["repository", "delete", "a/b", "--yes"])
            .status
            .success()
    );
    assert!(!v2.join("repositories/a").exists());
    let o = storage_cmd(&s, &["repository", "delete", "a/b", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no repository a/b"));
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty() && a.strays.is_empty(), "{a:#?}");
}

#[test]
fn delete_asks_on_a_terminal() {
    if lacks_tools("delete_asks_on_a_terminal", &["script"]) {
        return;
    }
    let s = Server::start();
    let d = push_image(&s, "team/app", "1", "x");
    // `script` runs the command on a pseudo-terminal fed from our stdin.
    let ask = |answer: &str| {
        let cmd = format!(
            "{BIN} repository delete team/app --config {}",
            s.config.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = ask("yes");
    assert!(out.contains("Type its name to confirm"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(get_manifest(&s, "team/app", "1").status, 200);
    let (code, out) = ask("team/app");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("deleted manifest team/app@{d}")),
        "{out}"
    );
    assert_eq!(get_manifest(&s, "team/app", &d).status, 404);
}

/// A delete killed at any moment leaves the repository's tags and
/// manifests all there or all gone; running it again and `fsck --repair`
/// finish the job, and the neighbours never notice.
#[test]
fn delete_killed_at_random_moments_is_all_or_nothing() {
    let s = Server::start();
    let neighbour = push_image(&s, "a/neighbour", "1", "n");
    let mut rng = Rng::new(time_seed());
    let (mut intact, mut gone) = (0, 0);
    for round in 0..12 {
        let m = push_image(&s, "a", "t0", "doomed");
        let body = get_manifest(&s, "a", "t0").body;
        for i in 1..40 {
            let r = s
                .req("PUT", &format!("/v2/a/manifests/t{i}"))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(body.clone())
                .send();
            assert_eq!(r.status, 201);
        }
        let mut child = Command::new(BIN)
            .args(["repository", "delete", "a", "--yes", "--config"])
            .arg(&s.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        let _ = child.kill();
        child.wait().unwrap();
        let r = s.req("GET", "/v2/a/tags/list").send();
        let listed = match r.status {
            200 => r.json()["tags"].as_array().unwrap().len(),
            _ => 0,
        };
        match (listed, get_manifest(&s, "a", &m).status) {
            (40, 200) => intact += 1,
            (0, 404) => gone += 1,
            other => panic!("round {round}: half a repository visible: {other:?}"),
        }
        // Whatever the kill left, deleting again finishes it.
        let _ = storage_cmd(&s, &["repository", "delete", "a", "--yes"]);
        let r = s.req("GET", "/v2/a/tags/list").send();
        assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
        pulls(&s, "a/neighbour", "1", &neighbour);
    }
    eprintln!("killed deletes: {intact} left it whole, {gone} had removed it");
    let _ = storage_cmd(&s, &["fsck", "--repair"]);
    let o = storage_cmd(&s, &["fsck"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

/// The operator commands take `--dev` as `serve` does: the developer
/// configuration keeps its data in `./data`.
#[test]
fn operator_commands_take_dev_as_serve_does() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: --dev is the built-in configuration, on ./data on disk");
        return;
    }
    let dir = TempDir::new("dev");
    let s = Server::start_on(&dir.0.join("data"), "", &[]);
    push_image(&s, "team/app", "1.0", "dev");
    drop(s);
    let dev = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--dev")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = dev(&["repository", "list"]);
    assert_eq!(stdout(&o), "team/app\t1 tag\t1 manifest\n");
    let o = dev(&["du"]);
    assert!(
        o.status.success() && stdout(&o).contains("team/app"),
        "{o:?}"
    );
    let o = dev(&["fsck"]);
    assert!(o.status.success(), "{o:?}");
    let o = dev(&["garbage-collect", "--dry-run"]);
    assert!(stdout(&o).contains("3 blobs marked"), "{o:?}");
    let o = dev(&["htpasswd", "list"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the built-in developer configuration: no auth.htpasswd.path configured; pass --file PATH"),
        "{err}"
    );
    // One source of configuration at a time.
    let o = dev(&["du", "--config", "/etc/private-registry/config.yml"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
