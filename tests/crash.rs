//! Crash safety: the real server is SIGKILLed in the middle of blob uploads
//! (monolithic, chunked, completing), manifest pushes and tag deletes,
//! restarted on the same data directory, and what it then serves (and what
//! lies on disk) must be either the old state or the new one, never something
//! in between. Loops are bounded; kill delays come from a seeded PRNG whose
//! seed is printed, and no assertion depends on wall-clock time. Completing
//! an upload is also interrupted at each of its steps in turn, not by
//! chance: the server kills itself at a named crash point
//! (`PRIVATE_REGISTRY_CRASH_AT`, src/crashpoint.rs).

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: usize = 1 << 20;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The `data` files of a repository's uploads in progress, with their sizes.
fn upload_files(root: &Path, repo: &str) -> Vec<(PathBuf, u64)> {
    let dir = root
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads");
    walk_files(&dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "data"))
        .map(|p| {
            let n = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, n)
        })
        .collect()
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// Opens a connection and sends a request head plus the first `send` bytes of
/// `body` (whose full length the head announces). The connection stays open,
/// so the server is still mid-request, until the stream is dropped.
fn start_partial(s: &Server, head: &str, body: &[u8], send: usize) -> TcpStream {
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    t.write_all(head.as_bytes()).unwrap();
    for piece in body[..send].chunks(MIB) {
        t.write_all(piece).unwrap();
    }
    t.flush().unwrap();
    t
}

/// Sends `raw`, SIGKILLs the server `delay_us` later, checks the store is
/// sound, and returns a server restarted on the same root.
fn kill_during_request(
    mut s: Server,
    root: &Path,
    raw: &str,
    delay_us: u64,
    iteration: u64,
) -> Server {
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.write_all(raw.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_micros(delay_us));
    assert_killed(s.signal_and_wait("KILL"));
    drop(t);
    assert_store_sound(root, &format!("in iteration {iteration}"), false);
    Server::start_on(root, "", &[])
}

fn assert_killed(status: std::process::ExitStatus) {
    assert_eq!(
        status.signal(),
        Some(9),
        "server should have died of SIGKILL, got {status:?}"
    );
}

/// Fails the test on any hard store violation, printing stray files for
/// information (if `show_strays`).
fn assert_store_sound(root: &Path, when: &str, show_strays: bool) -> StoreAudit {
    let a = audit_store(root);
    assert!(
        a.problems.is_empty(),
        "store violations {when}: {:#?}",
        a.problems
    );
    if !a.strays.is_empty() && show_strays {
        eprintln!(
            "{when}: stray files left on disk (not visible to clients): {:#?}",
            a.strays
        );
    }
    a
}

fn get_blob(s: &Server, repo: &str, digest: &str) -> Resp {
    s.req("GET", &format!("/v2/{repo}/blobs/{digest}")).send()
}

#[test]
fn sigkill_mid_monolithic_upload_leaves_no_blob_and_push_then_succeeds() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: times the kill by the upload's data file on disk");
        return;
    }
    let dir = TempDir::new("crash-mono");
    let root = dir.0.join("data");
    let repo = "team/app";
    let data = random_bytes(200 * MIB, 0xC0FFEE);
    let digest = sha256(&data);

    let mut s = Server::start_on(&root, "", &[]);
    // Something committed before the crash, which must survive it untouched.
    let before = push_image(&s, repo, "before", "crash-mono");

    let head = format!(
        "POST /v2/{repo}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        data.len()
    );
    let conn = start_partial(&s, &head, &data, 96 * MIB);
    // Wait until the server has really written a good part of it to disk.
    let written = wait_for(60, || {
        upload_files(&root, repo)
            .iter()
            .any(|(_, n)| *n >= 64 * MIB as u64)
    });
    assert!(
        written,
        "server never wrote 64 MiB of the upload: {:?}",
        upload_files(&root, repo)
    );
    assert_killed(s.signal_and_wait("KILL"));
    drop(conn);

    // The on-disk state right after the crash: the blob is not in the store.
    assert!(
        !blob_path(&root, &digest).exists(),
        "a partly uploaded blob was moved into the blob store"
    );
    let audit = assert_store_sound(&root, "after SIGKILL mid-upload", true);
    assert!(!audit.blobs.contains(&digest));

    let s = Server::start_on(&root, "", &[]);
    let r = s.req("HEAD", &format!("/v2/{repo}/blobs/{digest}")).send();
    assert_eq!(
        r.status, 404,
        "blob visible after a crash mid-upload: {:?}",
        r.headers
    );
    let r = get_blob(&s, repo, &digest);
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "BLOB_UNKNOWN");
    // What was committed before is intact.
    let r = get_manifest(&s, repo, "before");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(before.as_str()));
    assert_eq!(sha256(&r.body), before);

    // The same push now succeeds and reads back identical.
    let r = s
        .req(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .body(data.clone())
        .send();
    assert_eq!(r.status, 201, "re-push after crash: {}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    let r = s.req("HEAD", &format!("/v2/{repo}/blobs/{digest}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    let r = get_blob(&s, repo, &digest);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(
        r.body == data,
        "blob read back differs from what was pushed"
    );
    let audit = assert_store_sound(&root, "after the re-push", true);
    assert!(audit.blobs.contains(&digest));
}

#[test]
fn sigkill_mid_chunked_upload_resumes_from_durable_range() {
    if common::s3::on_s3() {
        eprintln!("skipped on S3: times the kill by the upload's data file on disk");
        return;
    }
    let dir = TempDir::new("crash-chunk");
    let root = dir.0.join("data");
    let repo = "team/resume";
    let total = 40 * MIB + 12345;
    let data = random_bytes(total, 0xBADC0DE);
    let digest = sha256(&data);

    let mut s = Server::start_on(&root, "", &[]);
    let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.location_path();
    let id = r
        .header("Docker-Upload-UUID")
        .expect("Docker-Upload-UUID")
        .to_string();

    // First chunk, acknowledged.
    let first = 3 * MIB + 77;
    let r = s
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &format!("0-{}", first - 1))
        .body(data[..first].to_vec())
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some(format!("0-{}", first - 1).as_str()));

    // Crash between chunks: the acknowledged chunk must be there after restart.
    assert_killed(s.signal_and_wait("KILL"));
    let mut s = Server::start_on(&root, "", &[]);
    let r = s.req("GET", &loc).send();
    assert_eq!(r.status, 204, "upload status after restart: {}", r.text());
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", first - 1).as_str()),
        "acknowledged bytes lost"
    );
    assert_eq!(r.header("Docker-Upload-UUID"), Some(id.as_str()));

    // Second chunk, killed mid-stream (the client never gets an answer).
    let rest = total - first;
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Range: {first}-{}\r\nContent-Length: {rest}\r\n\r\n",
        s.addr,
        total - 1
    );
    let send = 20 * MIB;
    let conn = start_partial(&s, &head, &data[first..], send);
    let progressed = wait_for(60, || {
        upload_files(&root, repo)
            .iter()
            .any(|(_, n)| *n >= (first + 8 * MIB) as u64)
    });
    assert!(
        progressed,
        "server never wrote the second chunk: {:?}",
        upload_files(&root, repo)
    );
    assert_killed(s.signal_and_wait("KILL"));
    drop(conn);
    assert_store_sound(&root, "after SIGKILL mid-PATCH", true);

    let s = Server::start_on(&root, "", &[]);
    let r = s.req("HEAD", &format!("/v2/{repo}/blobs/{digest}")).send();
    assert_eq!(r.status, 404, "an unfinished upload is visible as a blob");
    let r = s.req("GET", &loc).send();
    assert_eq!(
        r.status,
        204,
        "upload status after the second crash: {}",
        r.text()
    );
    let range = r.header("Range").expect("Range header").to_string();
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    let have = end + 1;
    assert!(
        have >= first,
        "Range {range} lost acknowledged bytes (had {first})"
    );
    assert!(
        have <= first + send,
        "Range {range} claims more than was ever sent ({})",
        first + send
    );
    eprintln!(
        "durable after crash: {have} of {total} bytes ({} of the interrupted chunk)",
        have - first
    );

    // Resume from what the server says it has, then complete.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &format!("{have}-{}", total - 1))
        .body(data[have..].to_vec())
        .send();
    assert_eq!(r.status, 202, "resuming PATCH: {}", r.text());
    assert_eq!(r.header("Range"), Some(format!("0-{}", total - 1).as_str()));
    let put = format!(
        "{}{}digest={digest}",
        r.location_path(),
        if r.location_path().contains('?') {
            "&"
        } else {
            "?"
        }
    );
    let r = s.req("PUT", &put).send();
    assert_eq!(r.status, 201, "completing the resumed upload: {}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    let r = get_blob(&s, repo, &digest);
    assert_eq!(r.status, 200);
    assert!(r.body == data, "resumed blob differs from the data sent");
    let audit = assert_store_sound(&root, "after completing the resumed upload", true);
    assert!(audit.blobs.contains(&digest));
    assert!(
        upload_files(&root, repo).is_empty(),
        "the completed upload's data was left behind"
    );
}

/// Kills the server at random moments while it completes uploads (`PUT ?digest=`):
/// afterwards the blob is either fully there, or absent with the upload whole
/// and resumable; never gone with its acknowledged bytes.
#[test]
fn sigkill_while_completing_upload_is_all_or_nothing() {
    let dir = TempDir::new("crash-finish");
    let root = dir.0.join("data");
    let repo = "team/finish";
    let seed = time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let mut s = Server::start_on(&root, "", &[]);
    let (mut visible, mut resumed) = (0, 0);
    for i in 0..10u64 {
        let data = random_bytes(8 * MIB + i as usize, seed ^ i);
        let digest = sha256(&data);
        let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
        assert_eq!(r.status, 202);
        let loc = r.location_path();
        let r = s.req("PATCH", &loc).body(data.clone()).send();
        assert_eq!(r.status, 202, "{}", r.text());
        let put = format!(
            "{}{}digest={digest}",
            r.location_path(),
            if r.location_path().contains('?') {
                "&"
            } else {
                "?"
            }
        );
        let raw = format!(
            "PUT {put} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            s.addr
        );
        s = kill_during_request(s, &root, &raw, rng.below(6000), i);
        let b = get_blob(&s, repo, &digest);
        if b.status == 200 {
            visible += 1;
            assert!(
                b.body == data,
                "iteration {i}: blob visible after crash but its content differs"
            );
            continue;
        }
        assert_eq!(b.status, 404, "iteration {i}: {}", b.text());
        // Not linked: the upload must still be there, all its acknowledged
        // bytes counted, and completing it must work.
        resumed += 1;
        let st = s.req("GET", &loc).send();
        assert_eq!(
            st.status,
            204,
            "iteration {i} (seed {seed}): acknowledged upload lost: {}",
            st.text()
        );
        assert_eq!(
            st.header("Range"),
            Some(format!("0-{}", data.len() - 1).as_str()),
            "iteration {i}"
        );
        let r = s.req("PUT", &put).send();
        assert_eq!(
            r.status,
            201,
            "iteration {i}: completing after restart: {}",
            r.text()
        );
        let b = get_blob(&s, repo, &digest);
        assert_eq!(b.status, 200);
        assert!(b.body == data);
    }
    eprintln!(
        "blob linked before the kill in {visible} iterations; upload completed after it in {resumed}"
    );
    assert_store_sound(&root, "at the end", true);
}

/// Repeatedly kills the server at a random small delay into a manifest PUT.
/// After each restart the tag (and the digest) either resolve to the complete,
/// correct manifest or are unknown; never a partial or corrupt manifest.
#[test]
fn sigkill_during_manifest_put_never_exposes_a_partial_manifest() {
    let dir = TempDir::new("crash-manifest");
    let root = dir.0.join("data");
    let repo = "team/race";
    let seed = time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    const ITERATIONS: u64 = 40;

    let mut s = Server::start_on(&root, "", &[]);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = random_bytes(64 * 1024, 7);
    let c = push_blob(&s, repo, &config);
    let l = push_blob(&s, repo, &layer);

    let mut outcomes = (0, 0);
    let mut pushed: Vec<(String, Vec<u8>)> = vec![];
    let mut disagreements: Vec<String> = vec![];
    for i in 0..ITERATIONS {
        // A large manifest (big annotation) so the server spends a while on it.
        let pad = "x".repeat(256 * 1024 + rng.below(1 << 20) as usize);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":{}}}],"annotations":{{"iteration":"{i}","pad":"{pad}"}}}}"#,
            config.len(),
            layer.len()
        )
        .into_bytes();
        let digest = sha256(&manifest);
        let tag = format!("t{i}");
        let head = format!(
            "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n",
            s.addr,
            manifest.len()
        );
        // Every fourth iteration the body is cut short; otherwise it is sent whole.
        let send = if i % 4 == 3 {
            manifest.len() / 2
        } else {
            manifest.len()
        };
        let conn = start_partial(&s, &head, &manifest, send);
        std::thread::sleep(Duration::from_micros(rng.below(12_000)));
        assert_killed(s.signal_and_wait("KILL"));
        drop(conn);
        assert_store_sound(&root, &format!("in iteration {i}"), false);

        s = Server::start_on(&root, "", &[]);
        let by_tag = get_manifest(&s, repo, &tag);
        let by_digest = get_manifest(&s, repo, &digest);
        match by_tag.status {
            200 => {
                outcomes.0 += 1;
                assert!(
                    by_tag.body == manifest,
                    "iteration {i}: tag resolves to a different/partial manifest ({} bytes, want {})",
                    by_tag.body.len(),
                    manifest.len()
                );
                assert_eq!(
                    by_tag.header("Docker-Content-Digest"),
                    Some(digest.as_str())
                );
                assert_eq!(by_tag.header("Content-Type"), Some(OCI_MANIFEST));
                assert_eq!(
                    by_digest.status, 200,
                    "iteration {i}: tag resolves but its digest does not"
                );
            }
            404 => {
                outcomes.1 += 1;
                assert_eq!(by_tag.code(), "MANIFEST_UNKNOWN", "iteration {i}");
            }
            other => panic!(
                "iteration {i}: GET by tag after crash answered {other}: {}",
                by_tag.text()
            ),
        }
        match by_digest.status {
            200 => assert!(
                by_digest.body == manifest,
                "iteration {i}: digest resolves to different bytes"
            ),
            404 => {}
            other => panic!(
                "iteration {i}: GET by digest after crash answered {other}: {}",
                by_digest.text()
            ),
        }
        // The tag list must agree with what the tag resolves to.
        let tags = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
        assert_eq!(tags.status, 200, "{}", tags.text());
        let listed: Vec<String> = tags.json()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        if listed.contains(&tag) != (by_tag.status == 200) {
            // Recorded and asserted at the end, so the other checks keep running.
            disagreements.push(format!(
                "iteration {i}: tags/list {listed:?} but GET manifests/{tag} = {}",
                by_tag.status
            ));
        }
        // Earlier pushes are all still intact.
        for (t, m) in &pushed {
            let r = get_manifest(&s, repo, t);
            assert_eq!(r.status, 200, "iteration {i}: earlier tag {t} lost");
            assert!(&r.body == m, "iteration {i}: earlier tag {t} changed");
        }

        // Now the push succeeds.
        let r = s
            .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send();
        assert_eq!(
            r.status,
            201,
            "iteration {i}: push after restart: {}",
            r.text()
        );
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
        let r = get_manifest(&s, repo, &tag);
        assert_eq!(r.status, 200);
        assert!(r.body == manifest);
        pushed.push((tag, manifest));
    }
    eprintln!(
        "manifest committed before the kill in {} of {ITERATIONS} iterations, absent in {}",
        outcomes.0, outcomes.1
    );
    let tags = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
    let mut want: Vec<String> = (0..ITERATIONS).map(|i| format!("t{i}")).collect();
    want.sort();
    let got: Vec<String> = tags.json()["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_store_sound(&root, "at the end", true);
    assert!(
        disagreements.is_empty(),
        "after a crash mid-push, tags/list named a tag that does not resolve (seed {seed}):\n{}",
        disagreements.join("\n")
    );
}

/// Kills the server at random moments during `DELETE /manifests/<tag>`: after
/// a restart the tag is either still whole or gone, and the tag list agrees.
#[test]
fn sigkill_during_tag_delete_is_all_or_nothing() {
    let dir = TempDir::new("crash-delete");
    let root = dir.0.join("data");
    let repo = "team/del";
    let seed = time_seed();
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    const ITERATIONS: u64 = 30;

    let mut s = Server::start_on(&root, "", &[]);
    let keep = push_image(&s, repo, "keep", "keep");
    let mut residues = vec![];
    let mut disagreements = vec![];
    let (mut deleted, mut kept) = (0, 0);
    for i in 0..ITERATIONS {
        let tag = format!("d{i}");
        let digest = push_image(&s, repo, &tag, &format!("del-{i}"));
        let raw = format!(
            "DELETE /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            s.addr
        );
        s = kill_during_request(s, &root, &raw, rng.below(1200), i);
        let r = get_manifest(&s, repo, &tag);
        match r.status {
            200 => {
                kept += 1;
                assert_eq!(
                    r.header("Docker-Content-Digest"),
                    Some(digest.as_str()),
                    "iteration {i}"
                );
                assert_eq!(
                    sha256(&r.body),
                    digest,
                    "iteration {i}: tag resolves to different bytes"
                );
            }
            404 => deleted += 1,
            other => panic!("iteration {i}: GET by tag answered {other}: {}", r.text()),
        }
        let listed = tags_list(&s, repo);
        if listed.contains(&tag) != (r.status == 200) {
            disagreements.push(format!(
                "iteration {i}: tags/list {listed:?} but GET manifests/{tag} = {}",
                r.status
            ));
        }
        assert!(
            listed.iter().all(|t| !t.starts_with('.')),
            "iteration {i}: a hidden entry is listed as a tag: {listed:?}"
        );
        // Our hidden mid-delete directories, which distribution 2.8 would
        // list as tags (on disk; at the end distribution itself lists the
        // tags, on any store).
        let tags_dir = root
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags");
        if !common::s3::on_s3() {
            for e in std::fs::read_dir(&tags_dir).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') && !residues.contains(&n) {
                    residues.push(n);
                }
            }
        }
        let r = get_manifest(&s, repo, "keep");
        assert_eq!(r.status, 200, "iteration {i}: an unrelated tag was lost");
        assert_eq!(sha256(&r.body), keep);
        // Deleting (again) now completes.
        if r.status == 200 && listed.contains(&tag) {
            let r = s
                .req("DELETE", &format!("/v2/{repo}/manifests/{tag}"))
                .send();
            assert_eq!(
                r.status,
                202,
                "iteration {i}: delete after restart: {}",
                r.text()
            );
        }
    }
    eprintln!(
        "tag deleted before the kill in {deleted} of {ITERATIONS} iterations, kept in {kept}"
    );
    assert_eq!(tags_list(&s, repo), ["keep"]);
    assert!(
        disagreements.is_empty(),
        "tags/list disagrees with tag resolution (seed {seed}):\n{}",
        disagreements.join("\n")
    );
    // The data directory is shared with distribution, whose tags/list names
    // every entry of `_manifests/tags/`, hidden or not: a leftover
    // `.deleted-*` directory shows up there as a tag (with the deleted
    // manifest behind it), and nothing ever removes it.
    assert!(
        residues.is_empty(),
        "a crash mid-delete left hidden tag directories in _manifests/tags/ that are never cleaned up and that distribution 2.8 lists as tags (seed {seed}): {residues:?}"
    );
    drop(s);
    if lacks_tools(
        "sigkill_during_tag_delete_is_all_or_nothing",
        &["docker-registry"],
    ) {
        return;
    }
    let dist = common::distribution::Distribution::start(&root);
    let r = req_to(dist.addr, "GET", &format!("/v2/{repo}/tags/list")).send();
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["keep"]),
        "distribution 2.8 lists what the killed deletes left as tags (seed {seed})"
    );
    dist.stop();
}

fn tags_list(s: &Server, repo: &str) -> Vec<String> {
    let r = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v: Vec<String> = r.json()["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Every crash point on the finishing PUT's path (see src/crashpoint.rs),
/// with whether the blob must be stored already (by another repository)
/// for the PUT to reach it, and the PUTs that do: without a final chunk
/// (`false`), with one (`true`).
const FINISH_POINTS: [(&str, bool, &[bool]); 8] = [
    ("finish-upload:appending", false, &[true]),
    ("finish-upload:appended", false, &[true]),
    ("finish-upload:verified", false, &[false, true]),
    ("finish-upload:recorded", false, &[false, true]),
    ("finish-upload:refreshed", true, &[false, true]),
    ("finish-upload:moved", false, &[false, true]),
    ("finish-upload:linked", false, &[false, true]),
    ("finish-upload:discarded", false, &[false, true]),
];

/// What `fsck` must report after a crash at a point: a line naming the
/// upload, or nothing (the upload still holds its data, or is gone with its
/// blob linked).
fn expected_leftover(point: &str) -> Option<&'static str> {
    match point {
        "finish-upload:moved" => Some("never linked"),
        "finish-upload:linked" => Some("left behind"),
        _ => None,
    }
}

/// The names passed to `crashpoint::here` in the sources that start with `prefix`.
fn crash_points_in_source(prefix: &str) -> std::collections::BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let call = "crashpoint::here(\"";
    let mut found = std::collections::BTreeSet::new();
    for f in walk_files(&src) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, _) in text.match_indices(call) {
            let rest = &text[i + call.len()..];
            let name = &rest[..rest.find('"').unwrap()];
            if name.starts_with(prefix) {
                found.insert(name.to_string());
            }
        }
    }
    found
}

/// An upload whose bytes the server has acknowledged (two PATCHes, 202),
/// but for the final chunk its completing PUT carries, if any.
struct Acknowledged {
    repo: &'static str,
    /// The upload's URL path, for its status.
    status: String,
    /// The completing PUT's path, `?digest=` included.
    put: String,
    /// The completing PUT's body.
    final_chunk: Vec<u8>,
    data: Vec<u8>,
    digest: String,
}

fn acknowledged_upload(
    s: &Server,
    repo: &'static str,
    data: Vec<u8>,
    final_chunk: bool,
) -> Acknowledged {
    let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let status = r.location_path();
    let mut next = status.clone();
    let patched = if final_chunk {
        data.len() * 2 / 3
    } else {
        data.len()
    };
    let half = patched / 2;
    for (from, to) in [(0, half), (half, patched)] {
        let r = s
            .req("PATCH", &next)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &format!("{from}-{}", to - 1))
            .body(data[from..to].to_vec())
            .send();
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("Range"), Some(format!("0-{}", to - 1).as_str()));
        next = r.location_path();
    }
    let digest = sha256(&data);
    let sep = if next.contains('?') { '&' } else { '?' };
    Acknowledged {
        repo,
        status,
        put: format!("{next}{sep}digest={digest}"),
        final_chunk: data[patched..].to_vec(),
        data,
        digest,
    }
}

/// Waits for a server that is to kill itself and reaps it; `None` if it is
/// still alive after ten seconds.
fn wait_for_own_death(s: &mut Server) -> Option<std::process::ExitStatus> {
    let stat = format!("/proc/{}/stat", s.pid());
    // Field 3, after the command name in parentheses, is the state.
    let zombie = || {
        std::fs::read_to_string(&stat).map_or(true, |t| {
            t.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    };
    // SIGCONT changes nothing for a dead process: the status is its own.
    wait_for(10, zombie).then(|| s.signal_and_wait("CONT"))
}

/// Runs `fsck` (with `--repair` if asked) on a data directory no server
/// uses, counting leftovers however young (`--grace 0s`).
fn fsck_at(root: &Path, repair: bool) -> (i32, String) {
    let config = root.with_extension("yml");
    std::fs::write(&config, config_yaml(root, "")).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["fsck", "--grace", "0s", "--config"]).arg(&config);
    if repair {
        cmd.arg("--repair");
    }
    let o = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let code = o.status.code().unwrap_or(-1);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(code == 0 || code == 1, "fsck failed to run ({code}): {err}");
    (code, out)
}

/// On a restarted server: the upload reports every acknowledged byte and
/// the retried PUT completes it as a first one would, or the upload is gone
/// and its blob is linked already. Either way the blob reads back whole.
/// The last byte offset an upload's `Range: 0-<end>` reports.
fn range_end(r: &Resp) -> Option<usize> {
    r.header("Range")?.strip_prefix("0-")?.parse().ok()
}

fn assert_retry_completes(s: &Server, up: &Acknowledged, when: &str) {
    let blob = format!("/v2/{}/blobs/{}", up.repo, up.digest);
    let st = s.req("GET", &up.status).send();
    if st.status == 404 {
        let b = s.req("GET", &blob).send();
        assert_eq!(
            b.status, 200,
            "{when}: the acknowledged upload is gone and its blob is not linked"
        );
        let r = s.req("PUT", &up.put).body(up.final_chunk.clone()).send();
        assert_eq!(r.status, 404, "{when}: retried PUT: {}", r.text());
        assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN", "{when}");
    } else {
        assert_eq!(st.status, 204, "{when}: upload status: {}", st.text());
        // Everything acknowledged, and of the final chunk whatever the
        // killed PUT had appended (none, part or all of it).
        let received = range_end(&st).map(|end| end + 1);
        let acked = up.data.len() - up.final_chunk.len();
        assert!(
            received.is_some_and(|n| (acked..=up.data.len()).contains(&n)),
            "{when}: upload status Range {:?}, acknowledged {acked}",
            st.header("Range")
        );
        let r = s.req("PUT", &up.put).body(up.final_chunk.clone()).send();
        assert_eq!(r.status, 201, "{when}: retried PUT: {}", r.text());
        assert_eq!(r.location_path(), blob, "{when}");
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(up.digest.as_str()),
            "{when}"
        );
    }
    let b = s.req("GET", &blob).send();
    assert_eq!(b.status, 200, "{when}: {}", b.text());
    assert!(
        b.body == up.data,
        "{when}: the blob reads back different bytes"
    );
    let uploads = s.root.join("docker/registry/v2/repositories").join(up.repo);
    let left = walk_files(&uploads.join("_uploads"));
    assert!(left.is_empty(), "{when}: upload files left: {left:?}");
    assert_store_sound(&s.root, when, false);
}

/// `fsck` on a copy of the crashed data directory reports what the crash
/// left (and only that), `--repair` mends it, a second run is clean, and a
/// server on the mended copy serves the blob or completes the upload.
fn assert_fsck_mends(copy: &Path, point: &str, up: &Acknowledged) {
    let problems = assert_fsck_reports(copy, point, up);
    let (code, out) = fsck_at(copy, true);
    assert_eq!(
        code,
        i32::from(problems > 0),
        "{point}: fsck --repair:\n{out}"
    );
    assert_eq!(
        out.matches("(repaired: ").count(),
        problems,
        "{point}: not all repaired:\n{out}"
    );
    let (code, out) = fsck_at(copy, false);
    assert_eq!(code, 0, "{point}: fsck after --repair:\n{out}");
    let s = Server::start_on(copy, "", &[]);
    assert_retry_completes(&s, up, &format!("{point}, after fsck --repair"));
}

/// `fsck` on the store `root` a crash at `point` left reports what the
/// crash left, and only that. Returns how many problems it reported.
fn assert_fsck_reports(root: &Path, point: &str, up: &Acknowledged) -> usize {
    let (code, out) = fsck_at(root, false);
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("problem:")).collect();
    match expected_leftover(point) {
        None => assert_eq!(code, 0, "{point}: fsck found problems:\n{out}"),
        Some(what) => {
            assert_eq!(code, 1, "{point}: fsck reported nothing:\n{out}");
            assert_eq!(problems.len(), 1, "{point}: one problem expected:\n{out}");
            let l = problems[0];
            assert!(
                l.contains(what) && l.contains(&up.digest) && l.contains("/_uploads/"),
                "{point}: expected the upload reported as {what:?}:\n{out}"
            );
        }
    }
    problems.len()
}

/// Runs `check`, turning a panic into its message.
fn attempt(check: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Kills the server at `point` on the way through a PUT completing an
/// acknowledged upload, then checks a retry on the original and `fsck` on
/// a copy (both, even if the first fails). Returns what went wrong.
fn crash_at(point: &str, blob_stored: bool, final_chunk: bool, seed: u64) -> Vec<String> {
    let point_and_put = format!(
        "{point} ({})",
        if final_chunk {
            "PUT with a final chunk"
        } else {
            "PUT without a body"
        }
    );
    let dir = TempDir::new("crash-point");
    let root = dir.0.join("data");
    let data = random_bytes(3 * MIB + seed as usize % 4096, seed);
    let mut up = None;
    let crashed = attempt(|| {
        if blob_stored {
            let mut s = Server::start_on(&root, "", &[]);
            push_blob(&s, "team/other", &data);
            s.signal_and_wait("TERM");
        }
        let mut s = Server::start_on(&root, "", &[("PRIVATE_REGISTRY_CRASH_AT", point)]);
        let u = up.insert(acknowledged_upload(&s, "team/finish", data, final_chunk));
        let r = s.req("PUT", &u.put).body(u.final_chunk.clone()).try_send();
        assert!(
            r.is_err(),
            "the PUT was answered ({:?}): the crash point is not on its path",
            r.map(|r| r.status)
        );
        let status = wait_for_own_death(&mut s)
            .unwrap_or_else(|| panic!("the server is still alive after the PUT"));
        assert_killed(status);
        s.expect_log(&format!("crash point {point}:"));
        assert_store_sound(&root, point, false);
        if common::s3::on_s3() {
            return;
        }
        let copy = dir.0.join("fsck-copy");
        run_ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&root)
                .arg(&copy),
        );
    });
    if let Err(e) = crashed {
        return vec![format!("{point_and_put}: {e}")];
    }
    let up = up.expect("uploaded");
    // A bucket prefix cannot be copied aside here: on S3, fsck reads the
    // crashed store itself, before the retry, and does not repair.
    let reported = if common::s3::on_s3() {
        attempt(|| {
            assert_fsck_reports(&root, point, &up);
        })
    } else {
        Ok(())
    };
    let retried = attempt(|| {
        let s = Server::start_on(&root, "", &[]);
        assert_retry_completes(&s, &up, &format!("{point}, retried"));
    });
    let checked = if common::s3::on_s3() {
        reported
    } else {
        attempt(|| assert_fsck_mends(&dir.0.join("fsck-copy"), point, &up))
    };
    [retried, checked]
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{point_and_put}: {e}")))
        .collect()
}

/// The server is killed at every step of the PUT that completes an upload
/// whose bytes were acknowledged, a PUT without a body and one carrying the
/// final chunk (which the retry sends again): afterwards the retried PUT
/// succeeds (or the blob is linked already), and `fsck` reports and mends
/// what is left.
/// Every point is tried even when one fails, so one run shows them all.
#[test]
fn sigkill_at_every_step_of_completing_an_upload_loses_nothing() {
    let listed: std::collections::BTreeSet<String> =
        FINISH_POINTS.iter().map(|(p, ..)| p.to_string()).collect();
    let in_code = crash_points_in_source("finish-upload:");
    let mut failed = vec![];
    if in_code != listed {
        failed.push(format!(
            "FINISH_POINTS {listed:?} must name exactly the crash points in the sources, {in_code:?}"
        ));
    }
    for (i, (point, stored, puts)) in FINISH_POINTS.iter().enumerate() {
        for &final_chunk in *puts {
            let seed = 0xF1A1 + 2 * i as u64 + u64::from(final_chunk);
            failed.extend(crash_at(point, *stored, final_chunk, seed));
        }
    }
    assert!(
        failed.is_empty(),
        "crash points that lost or left something:\n{}",
        failed.join("\n")
    );
}

/// A PUT killed while appending its final chunk leaves bytes in the upload
/// nobody acknowledged; the client, not knowing, sends the whole chunk
/// again, and the upload completes with the right bytes. The kill comes
/// once a batch is handed to the writer, which may not have written it yet:
/// the body pauses after its first batch so the writer can, and the kill is
/// repeated (ten times at most) until bytes are left over.
#[test]
fn a_put_killed_mid_final_chunk_is_retried_whole() {
    let point = "finish-upload:appending";
    for attempt in 0..10u64 {
        let dir = TempDir::new("crash-mid-chunk");
        let root = dir.0.join("data");
        let mut s = Server::start_on(&root, "", &[("PRIVATE_REGISTRY_CRASH_AT", point)]);
        let data = random_bytes(6 * MIB + 123, 0xA99E + attempt);
        let up = acknowledged_upload(&s, "team/finish", data, true);
        // One batch (1 MiB) and a bit, then a pause: the daemon dies once
        // the second batch arrives, the first written by then.
        let pause = Duration::from_millis(300 + 200 * attempt);
        let sent = s
            .req("PUT", &up.put)
            .body(up.final_chunk.clone())
            .try_send_paused(MIB + 4096, pause);
        assert!(
            sent.is_err(),
            "the PUT was answered: {:?}",
            sent.map(|r| r.status)
        );
        assert_killed(wait_for_own_death(&mut s).expect("killed at the crash point"));

        let s = Server::start_on(&root, "", &[]);
        let acked = up.data.len() - up.final_chunk.len();
        let st = s.req("GET", &up.status).send();
        let left_over = range_end(&st).is_some_and(|end| end + 1 > acked);
        assert_retry_completes(&s, &up, &format!("{point}, attempt {attempt}"));
        if left_over {
            s.expect_log("bytes of an interrupted final chunk");
            return;
        }
    }
    if common::s3::on_s3() {
        // Only what a commit recorded counts there (s3/appendable.rs): a
        // killed append leaves nothing behind, and each retry completed.
        eprintln!("on S3: no kill left unacknowledged bytes behind, as expected");
        return;
    }
    panic!("no kill left unacknowledged bytes behind, so nothing was tested");
}

/// A PUT retried after a crash links only the digest the upload itself
/// recorded: claiming another one (a blob of another repository, which
/// would otherwise be linked without the client ever having its bytes) is
/// refused.
#[test]
fn a_retried_put_cannot_claim_a_digest_its_upload_did_not_produce() {
    let dir = TempDir::new("crash-claim");
    let root = dir.0.join("data");
    let secret = random_bytes(64 * 1024, 0x5EC2E7);
    let mut s = Server::start_on(&root, "", &[]);
    let secret = push_blob(&s, "team/secret", &secret);
    s.signal_and_wait("TERM");

    let point = "finish-upload:moved";
    let mut s = Server::start_on(&root, "", &[("PRIVATE_REGISTRY_CRASH_AT", point)]);
    let up = acknowledged_upload(&s, "team/finish", random_bytes(MIB, 0xC1A1), false);
    assert!(s.req("PUT", &up.put).try_send().is_err());
    assert_killed(wait_for_own_death(&mut s).expect("killed at the crash point"));

    let s = Server::start_on(&root, "", &[]);
    let claim = up.put.replace(&up.digest, &secret);
    let r = s.req("PUT", &claim).send();
    assert_eq!(r.status, 400, "PUT claiming another digest: {}", r.text());
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = s
        .req("GET", &format!("/v2/team/finish/blobs/{secret}"))
        .send();
    assert_eq!(r.status, 404, "another repository's blob was linked");
}
