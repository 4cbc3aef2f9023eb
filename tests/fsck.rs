//! `private-registry fsck [--repair]` on data directories damaged by hand
//! the way disks and crashes damage them.

mod common;
use common::store::*;
use common::*;
use std::path::{Path, PathBuf};

fn fsck(s: &Server, repair: bool) -> (i32, String) {
    let mut args = vec!["fsck"];
    if repair {
        args.push("--repair");
    }
    let o = storage_cmd(s, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    let code = o.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 1, "fsck failed to run ({code}): {err}");
    (code, stdout(&o))
}

/// The lines of `out` naming `needle`.
fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

fn layer_and_config(s: &Server, repo: &str, tag: &str) -> (String, String) {
    let m = get_manifest(s, repo, tag).json();
    (
        m["layers"][0]["digest"].as_str().unwrap().to_string(),
        m["config"]["digest"].as_str().unwrap().to_string(),
    )
}

fn repo_dir(s: &Server, repo: &str) -> PathBuf {
    s.root.join("docker/registry/v2/repositories").join(repo)
}

fn link(dir: &Path, d: &str) -> PathBuf {
    dir.join("sha256")
        .join(d.trim_start_matches("sha256:"))
        .join("link")
}

/// Runs fsck without --repair: it must exit 1 and leave every file as it was.
fn finds_problems_changing_nothing(s: &Server) -> String {
    let before = snapshot(&s.root);
    let (code, out) = fsck(s, false);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        snapshot(&s.root),
        before,
        "fsck without --repair changed files"
    );
    out
}

/// Every file with its content, to show a check changed nothing.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walk_files(root)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn flipped_truncated_and_dangling_are_found_then_repaired() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: corrupts blob files and links on disk");
        return;
    }
    let s = Server::start();
    push_image(&s, "a", "1", "one");
    push_image(&s, "b", "1", "two");
    let c = push_image(&s, "c", "1", "three");
    push_blob(&s, "a", b"unreferenced, and fine");
    let (code, out) = fsck(&s, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": 0 problems"), "{out}");

    // A flipped byte in a's layer, b's config cut short, a link in a to a
    // blob never stored, and c's manifest revision gone from under its tag.
    let (a_layer, _) = layer_and_config(&s, "a", "1");
    let (_, b_config) = layer_and_config(&s, "b", "1");
    let flipped = blob_path(&s.root, &a_layer);
    let mut bytes = std::fs::read(&flipped).unwrap();
    bytes[2] ^= 0x20;
    std::fs::write(&flipped, &bytes).unwrap();
    let truncated = blob_path(&s.root, &b_config);
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let truncated_bytes = std::fs::read(&truncated).unwrap();
    let ghost = sha256(b"never stored");
    let ghost_link = link(&repo_dir(&s, "a").join("_layers"), &ghost);
    std::fs::create_dir_all(ghost_link.parent().unwrap()).unwrap();
    std::fs::write(&ghost_link, &ghost).unwrap();
    let c_revision = link(&repo_dir(&s, "c").join("_manifests/revisions"), &c);
    std::fs::remove_dir_all(c_revision.parent().unwrap()).unwrap();

    let out = finds_problems_changing_nothing(&s);
    for (d, path, what) in [
        (&a_layer, flipped.clone(), "corrupt blob"),
        (&b_config, truncated.clone(), "corrupt blob"),
        (&ghost, ghost_link.clone(), "dangling link"),
    ] {
        let l = lines_with(&out, &format!("{} {d}: {what}", path.display()));
        assert_eq!(l.len(), 1, "{what} {d} not reported once:\n{out}");
    }
    let tag = repo_dir(&s, "c").join("_manifests/tags/1/current/link");
    assert_eq!(
        lines_with(
            &out,
            &format!("{} {c}: tag names a manifest", tag.display())
        )
        .len(),
        1,
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "manifest references blob {a_layer}, whose bytes are corrupt"
        )),
        "{out}"
    );

    let (code, out) = fsck(&s, true);
    assert_eq!(code, 1, "{out}");
    assert!(!blob_path(&s.root, &a_layer).exists() && !truncated.exists());
    // Moved aside with their bytes as found, never deleted.
    let corrupt = s.root.join("docker/registry/v2/_corrupt");
    let kept: Vec<Vec<u8>> = walk_files(&corrupt)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&bytes) && kept.contains(&truncated_bytes));
    assert!(!ghost_link.exists(), "dangling link left");
    assert!(!link(&repo_dir(&s, "a").join("_layers"), &a_layer).exists());
    assert_eq!(
        s.req("GET", &format!("/v2/a/blobs/{a_layer}"))
            .send()
            .status,
        404
    );
    let tags = s.req("GET", "/v2/c/tags/list").send().json();
    assert_eq!(tags["tags"], serde_json::json!([]), "dangling tag left");
    // What is left to say is what only a push can mend: the images whose
    // bytes were corrupt lack a blob. Pushing them again makes it whole.
    let (code, out) = fsck(&s, false);
    assert_eq!(code, 1, "{out}");
    assert_eq!(lines_with(&out, "problem: ").len(), 2, "{out}");
    assert_eq!(lines_with(&out, "which is not stored").len(), 2, "{out}");
    push_image(&s, "a", "1", "one");
    push_image(&s, "b", "1", "two");
    let (code, out) = fsck(&s, false);
    assert_eq!(code, 0, "{out}");
    let a = audit_store(&s.root);
    assert!(a.problems.is_empty(), "{:#?}", a.problems);
}

#[test]
fn leftovers_of_interrupted_operations_are_reported_then_swept() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: plants leftovers in the data directory on disk");
        return;
    }
    let s = Server::start();
    let m = push_image(&s, "team/app", "1", "one");
    let (layer, _) = layer_and_config(&s, "team/app", "1");
    let v2 = s.root.join("docker/registry/v2");
    // A collection killed with the layer set aside.
    let aside = v2.join("_quarantine");
    std::fs::create_dir_all(&aside).unwrap();
    let hex = layer.trim_start_matches("sha256:");
    std::fs::rename(
        blob_path(&s.root, &layer).parent().unwrap(),
        aside.join(format!("sha256-{hex}-0123456789abcdef")),
    )
    .unwrap();
    // A repository delete killed after its move.
    let trash = v2.join("_trash/00112233aabbccdd/_manifests/tags/x/current");
    std::fs::create_dir_all(&trash).unwrap();
    std::fs::write(trash.join("link"), &m).unwrap();
    // A tag creation killed before its rename, and temporary files of
    // writes killed before theirs: one old, one that may be in progress.
    let staging = repo_dir(&s, "team/app").join("_manifests/_staging/feedfacefeedface");
    std::fs::create_dir_all(&staging).unwrap();
    let old_tmp = link(&repo_dir(&s, "team/app").join("_layers"), &layer)
        .with_file_name(".link.tmp-0011223344556677");
    std::fs::write(&old_tmp, "partial").unwrap();
    age_file(&old_tmp);
    age_file(&staging);
    let young_tmp = blob_path(&s.root, &m).with_file_name(".data.tmp-8899aabbccddeeff");
    std::fs::write(&young_tmp, "in progress").unwrap();

    let out = finds_problems_changing_nothing(&s);
    for (path, what) in [
        (
            aside.display().to_string(),
            "interrupted garbage collection",
        ),
        (
            v2.join("_trash/00112233aabbccdd").display().to_string(),
            "interrupted repository delete",
        ),
        (staging.display().to_string(), "interrupted tag operation"),
        (old_tmp.display().to_string(), "temporary file"),
    ] {
        assert_eq!(
            lines_with(&out, what)
                .iter()
                .filter(|l| l.contains(&path))
                .count(),
            1,
            "{what}:\n{out}"
        );
    }
    assert!(
        !out.contains(".data.tmp-"),
        "a young temporary file reported:\n{out}"
    );

    let (code, out) = fsck(&s, true);
    assert_eq!(code, 1, "{out}");
    assert_eq!(lines_with(&out, "(repaired: ").len(), 4, "{out}");
    assert!(
        young_tmp.exists(),
        "a write that may be in progress lost its file"
    );
    for p in [v2.join("_trash/00112233aabbccdd"), staging, old_tmp] {
        assert!(!p.exists(), "{} left", p.display());
    }
    let r = s.req("GET", &format!("/v2/team/app/blobs/{layer}")).send();
    assert_eq!(r.status, 200, "the layer was not put back");
    assert_eq!(sha256(&r.body), layer);
    let (code, out) = fsck(&s, false);
    assert_eq!(code, 0, "{out}");
}

/// Writes an upload directory as a finishing PUT leaves it after moving its
/// data into the blob store: `startedat` and the `verified` record naming
/// `digest` of `size` bytes, no `data`. Aged past the grace period if `old`.
fn completed_upload(
    s: &Server,
    repo: &str,
    id: &str,
    digest: &str,
    size: usize,
    old: bool,
) -> PathBuf {
    let dir = repo_dir(s, repo).join("_uploads").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("startedat"), "2026-01-01T00:00:00Z").unwrap();
    std::fs::write(dir.join("verified"), format!("{digest} {size}\n")).unwrap();
    if old {
        age_file(&dir);
    }
    dir
}

#[test]
fn uploads_a_crash_left_completed_are_linked_or_removed() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: plants half-completed uploads in the data directory on disk");
        return;
    }
    let s = Server::start();
    let (a, b) = (
        b"completed, never linked".to_vec(),
        b"completed and linked".to_vec(),
    );
    let a_digest = push_blob(&s, "other", &a);
    let b_digest = push_blob(&s, "team/app", &b);
    let ghost = sha256(b"collected since");
    let unlinked = completed_upload(
        &s,
        "team/app",
        "0a1b2c3d-0000-4000-8000-00000000000a",
        &a_digest,
        a.len(),
        true,
    );
    let linked = completed_upload(
        &s,
        "team/app",
        "0a1b2c3d-0000-4000-8000-00000000000b",
        &b_digest,
        b.len(),
        true,
    );
    let gone = completed_upload(
        &s,
        "team/app",
        "0a1b2c3d-0000-4000-8000-00000000000c",
        &ghost,
        15,
        true,
    );
    let young = completed_upload(
        &s,
        "team/new",
        "0a1b2c3d-0000-4000-8000-00000000000d",
        &a_digest,
        a.len(),
        false,
    );
    // An upload whose removal was cut short, and one still being written.
    let empty = repo_dir(&s, "team/app").join("_uploads/0a1b2c3d-0000-4000-8000-00000000000e");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("startedat"), "2026-01-01T00:00:00Z").unwrap();
    age_file(&empty);
    let r = s.req("POST", "/v2/team/app/blobs/uploads/").send();
    let r = s
        .req("PATCH", &r.location_path())
        .body(b"half".to_vec())
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    let in_progress = repo_dir(&s, "team/app")
        .join("_uploads")
        .join(r.header("Docker-Upload-UUID").unwrap());
    age_file(&in_progress);
    assert_eq!(
        s.req("GET", &format!("/v2/team/app/blobs/{a_digest}"))
            .send()
            .status,
        404
    );

    let out = finds_problems_changing_nothing(&s);
    for (dir, what) in [
        (&unlinked, "completed upload never linked"),
        (&linked, "completed upload left behind"),
        (&gone, "completed upload whose blob is no longer stored"),
        (&empty, "upload without data"),
    ] {
        let l = lines_with(&out, &format!("{} ", dir.display()));
        assert_eq!(l.len(), 1, "{what}:\n{out}");
        assert!(l[0].contains(what), "{what}:\n{out}");
    }
    assert_eq!(lines_with(&out, "problem: ").len(), 4, "{out}");

    let (code, out) = fsck(&s, true);
    assert_eq!(code, 1, "{out}");
    assert_eq!(lines_with(&out, "(repaired: ").len(), 4, "{out}");
    for dir in [&unlinked, &linked, &gone, &empty] {
        assert!(!dir.exists(), "{} left", dir.display());
    }
    assert!(young.exists() && in_progress.exists());
    let r = s
        .req("GET", &format!("/v2/team/app/blobs/{a_digest}"))
        .send();
    assert_eq!(r.status, 200, "the completed upload's blob was not linked");
    assert!(r.body == a);
    let (code, out) = fsck(&s, false);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_damaged_manifest_names_the_tags_that_point_at_it() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: overwrites and removes blob files on disk");
        return;
    }
    let s = Server::start();
    let m = push_image(&s, "team/app", "1.0", "one");
    push_image(&s, "team/app", "latest", "one");
    push_image(&s, "team/app", "2.0", "two");
    let (layer, _) = layer_and_config(&s, "team/app", "1.0");
    std::fs::write(blob_path(&s.root, &layer), b"not the layer").unwrap();
    // A manifest whose own bytes are gone, tagged too.
    let gone = push_image(&s, "team/other", "x", "three");
    std::fs::remove_dir_all(blob_path(&s.root, &gone).parent().unwrap()).unwrap();

    let out = finds_problems_changing_nothing(&s);
    let l = lines_with(&out, &format!("manifest references blob {layer}"));
    assert_eq!(l.len(), 1, "{out}");
    assert!(l[0].contains(&format!(" {m}: ")), "{out}");
    assert!(l[0].ends_with(" (tags: 1.0, latest)"), "{out}");
    let l = lines_with(&out, &format!("{gone}: dangling link"));
    assert!(l[0].ends_with(" (tags: x)"), "{out}");
    assert!(out.ends_with(": 6 problems, 0 repaired\n"), "{out}");
}
