//! Blob and upload endpoints against a real server: every upload flavour,
//! ranges, mounts, and their error paths.

mod common;
use common::*;

#[test]
fn base_endpoint_and_common_headers() {
    let s = Server::start();
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let r = s.req("GET", "/v2/nothing/here").send();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert!(!r.code().is_empty());
}

#[test]
fn monolithic_push_get_head_range() {
    let s = Server::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&s, "team/app", &data);
    let r = s.req("GET", &format!("/v2/team/app/blobs/{d}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    let r = s.req("HEAD", &format!("/v2/team/app/blobs/{d}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("100000"));
    assert!(r.body.is_empty());
    let r = s
        .req("GET", &format!("/v2/team/app/blobs/{d}"))
        .header("Range", "bytes=10-19")
        .send();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(r.header("Content-Range"), Some("bytes 10-19/100000"));
    let r = s
        .req("GET", &format!("/v2/team/app/blobs/{d}"))
        .header("Range", "bytes=200000-")
        .send();
    assert_eq!(r.status, 416);
}

/// An object store serves blob GETs itself: the registry answers with a
/// temporary redirect to a presigned URL of the store (HEADs it answers
/// itself). The filesystem never redirects.
#[test]
fn blob_gets_redirect_to_the_store_that_serves_them() {
    let s = Server::start_with_env("", &[s3::REDIRECTS]);
    let data = b"served by the store".to_vec();
    let d = push_blob(&s, "team/app", &data);
    let path = format!("/v2/team/app/blobs/{d}");
    let r = s.req("GET", &path).send();
    if s3::on_s3() {
        assert_eq!(r.status, 307, "{}", r.text());
        assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
        let to = r.header("Location").unwrap();
        assert!(to.contains("X-Amz-Signature="), "not presigned: {to}");
    } else {
        assert_eq!(r.status, 200);
    }
    let r = s.get_following(&path);
    assert_eq!((r.status, &r.body), (200, &data));
    let r = s.req("HEAD", &path).send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    let absent = format!("/v2/team/app/blobs/{}", sha256(b"absent"));
    assert_eq!(s.req("GET", &absent).send().status, 404);
}

#[test]
fn blob_errors() {
    let s = Server::start();
    let d = push_blob(&s, "a", b"x");
    // Stored, but not linked into another repository.
    let r = s.req("GET", &format!("/v2/b/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    let r = s.req("GET", "/v2/a/blobs/sha256:nothex").send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = s.req("GET", "/v2/Bad/blobs/sha256:00").send();
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
    let r = s.req("GET", "/v2/a/../../etc/blobs/sha256:00").send();
    assert_eq!(r.status, 400);
    let r = s.req("PUT", &format!("/v2/a/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
}

#[test]
fn monolithic_digest_mismatch_stores_nothing() {
    let s = Server::start();
    let wrong = sha256(b"something else");
    let r = s
        .req("POST", &format!("/v2/a/blobs/uploads/?digest={wrong}"))
        .body(b"data".to_vec())
        .send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = s
        .req("HEAD", &format!("/v2/a/blobs/{}", sha256(b"data")))
        .send();
    assert_eq!(r.status, 404);
    assert_eq!(stored_blobs(&s), 0);
    if common::s3::on_s3() {
        eprintln!("skipped on S3: reads the upload directories on disk");
        return;
    }
    let uploads = s.root.join("docker/registry/v2/repositories/a/_uploads");
    assert!(
        walk(&uploads).is_empty(),
        "upload left behind: {:?}",
        walk(&uploads)
    );
}

/// How many blobs the store holds, as `fsck` counts them.
fn stored_blobs(s: &Server) -> usize {
    let o = common::store::storage_cmd(s, &["fsck"]);
    let out = common::store::stdout(&o);
    let n = out
        .lines()
        .find_map(|l| l.strip_prefix("checked ")?.split(' ').next()?.parse().ok());
    n.unwrap_or_else(|| panic!("no count in fsck's output: {out}{o:?}"))
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn chunked_upload_with_status_and_put() {
    let s = Server::start();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = s.req("POST", "/v2/team/app/blobs/uploads/").send();
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-0"));
    assert!(r.header("Docker-Upload-UUID").is_some());
    let mut loc = r.location_path();
    let mut offset = 0;
    for chunk in data.chunks(100_000) {
        let end = offset + chunk.len() - 1;
        let r = s
            .req("PATCH", &loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &format!("{offset}-{end}"))
            .body(chunk.to_vec())
            .send();
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("Range"), Some(format!("0-{end}").as_str()));
        loc = r.location_path();
        offset += chunk.len();
    }
    let r = s.req("GET", &loc).send();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Range"), Some("0-299999"));
    let d = sha256(&data);
    let r = s.req("PUT", &format!("{loc}?digest={d}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(r.location_path(), format!("/v2/team/app/blobs/{d}"));
    assert_eq!(
        s.req("GET", &format!("/v2/team/app/blobs/{d}")).send().body,
        data
    );
    // The upload is gone once completed.
    assert_eq!(s.req("GET", &loc).send().code(), "BLOB_UPLOAD_UNKNOWN");
}

/// Chunks of several MiB take the pipelined path, whose hash of a chunk's
/// tail may still be running when the next request arrives; small chunks
/// and a final PUT body follow it, and a wrong digest must still be caught.
#[test]
fn large_chunks_hash_across_requests() {
    let s = Server::start();
    let mut rng = Rng::new(7);
    let sizes = [3 << 20, 5 << 20, 1000, 4 << 20];
    for wrong in [false, true] {
        let mut all = vec![];
        let mut loc = s
            .req("POST", "/v2/big/blobs/uploads/")
            .send()
            .location_path();
        for n in sizes {
            let chunk = rng.bytes(n);
            let end = all.len() + n - 1;
            let r = s
                .req("PATCH", &loc)
                .header("Content-Range", &format!("{}-{end}", all.len()))
                .body(chunk.clone())
                .send();
            assert_eq!(r.status, 202, "{}", r.text());
            loc = r.location_path();
            all.extend_from_slice(&chunk);
        }
        let last = rng.bytes(2 << 20);
        all.extend_from_slice(&last);
        let claimed = if wrong {
            sha256(b"other")
        } else {
            sha256(&all)
        };
        let r = s
            .req("PUT", &format!("{loc}?digest={claimed}"))
            .body(last)
            .send();
        if wrong {
            assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
            let path = format!("/v2/big/blobs/{}", sha256(&all));
            assert_eq!(s.req("HEAD", &path).send().status, 404);
        } else {
            assert_eq!(r.status, 201, "{}", r.text());
            let got = s
                .req("GET", &format!("/v2/big/blobs/{claimed}"))
                .send()
                .body;
            assert!(got == all, "the stored blob differs from what was pushed");
        }
    }
}

#[test]
fn out_of_order_patch_is_416_with_current_range() {
    let s = Server::start();
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-4")
        .body(b"hello".to_vec())
        .send();
    assert_eq!(r.status, 202);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "10-14")
        .body(b"world".to_vec())
        .send();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range"), Some("0-4"));
    assert_eq!(r.code(), "RANGE_INVALID");
    // Nothing was appended by the refused chunk.
    let r = s.req("GET", &loc).send();
    assert_eq!(r.header("Range"), Some("0-4"));
}

#[test]
fn patch_with_chunked_transfer_encoding_and_final_put_body() {
    let s = Server::start();
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    let first = vec![b'x'; 5000];
    let r = s
        .req("PATCH", &loc)
        .header("Transfer-Encoding", "chunked")
        .body(first.clone())
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some("0-4999"));
    let mut all = first;
    all.extend_from_slice(b"tail");
    let d = sha256(&all);
    let r = s
        .req("PUT", &format!("{}?digest={d}", r.location_path()))
        .body(b"tail".to_vec())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.req("GET", &format!("/v2/a/blobs/{d}")).send().body, all);
}

#[test]
fn put_with_wrong_digest_discards_upload() {
    let s = Server::start();
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    s.req("PATCH", &loc).body(b"abc".to_vec()).send();
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256(b"abd")))
        .send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{}", sha256(b"abc")))
            .send()
            .status,
        404
    );
    let r = s.req("PUT", &loc).send();
    assert_eq!(r.status, 400, "a PUT without digest is refused");
}

#[test]
fn cancel_and_unknown_uploads() {
    let s = Server::start();
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    assert_eq!(s.req("DELETE", &loc).send().status, 204);
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = s
        .req("PATCH", "/v2/a/blobs/uploads/not-an-upload")
        .body(b"x".to_vec())
        .send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    let r = s
        .req("PATCH", "/v2/a/blobs/uploads/..%2f..%2fx")
        .body(b"x".to_vec())
        .send();
    assert_eq!(r.status, 404);
}

#[test]
fn cross_repository_mount() {
    let s = Server::start();
    let d = push_blob(&s, "src/repo", b"shared layer");
    let r = s
        .req(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo"),
        )
        .send();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(
        s.req("GET", &format!("/v2/dst/blobs/{d}")).send().body,
        b"shared layer"
    );
    // Absent source: falls back to a regular upload session.
    let missing = sha256(b"nope");
    let r = s
        .req(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={missing}&from=src/repo"),
        )
        .send();
    assert_eq!(r.status, 202);
    assert!(r.header("Docker-Upload-UUID").is_some());
    // Blobs are stored once.
    assert_eq!(stored_blobs(&s), 1);
}

#[test]
fn blob_delete_unlinks_only_that_repository() {
    let s = Server::start();
    let d = push_blob(&s, "a", b"shared");
    push_blob(&s, "b", b"shared");
    assert_eq!(
        s.req("DELETE", &format!("/v2/a/blobs/{d}")).send().status,
        202
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/a/blobs/{d}")).send().status,
        404
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/b/blobs/{d}")).send().status,
        200
    );
    let r = s.req("DELETE", &format!("/v2/a/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn deletes_refused_when_disabled_by_environment_override() {
    let dir = TempDir::new("nodel");
    let off = Server::start_on(
        &dir.0.join("data"),
        "",
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "false")],
    );
    let d = push_blob(&off, "a", b"x");
    let r = off.req("DELETE", &format!("/v2/a/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
}

#[test]
fn upload_survives_restart() {
    let dir = TempDir::new("resume");
    let root = dir.0.join("data");
    let mut s = Server::start_on(&root, "", &[]);
    let loc = s.req("POST", "/v2/a/blobs/uploads/").send().location_path();
    s.req("PATCH", &loc).body(vec![1u8; 70_000]).send();
    assert!(s.signal_and_wait("TERM").success());
    let s = Server::start_on(&root, "", &[]);
    let r = s.req("GET", &loc).send();
    assert_eq!(r.header("Range"), Some("0-69999"));
    let mut all = vec![1u8; 70_000];
    all.extend_from_slice(&[2u8; 1000]);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "70000-70999")
        .body(vec![2u8; 1000])
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s
        .req("PUT", &format!("{loc}?digest={}", sha256(&all)))
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn large_blob_streams_without_growing_memory() {
    let s = Server::start();
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let d = push_blob(&s, "big", &data);
    let rss = rss_kib(s.pid());
    // The S3 driver holds up to two chunks of an upload (10 MiB each by
    // default) before they go out as a part (s3/appendable.rs).
    let budget = if common::s3::on_s3() { 68 } else { 48 };
    assert!(
        rss < budget * 1024,
        "resident memory {rss} KiB after a 64 MiB push"
    );
    let r = s.req("GET", &format!("/v2/big/blobs/{d}")).send();
    assert!(r.body == data);
    // A range that starts and ends inside the storage layer's chunks and
    // the pieces each chunk is sent in.
    let (from, to) = (1_000_003usize, 5_300_001usize);
    let r = s
        .req("GET", &format!("/v2/big/blobs/{d}"))
        .header("Range", &format!("bytes={from}-{to}"))
        .send();
    assert_eq!(r.status, 206);
    assert!(r.body == data[from..=to], "the range's bytes differ");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn sha512_digests_are_accepted() {
    use sha2::Digest;
    let s = Server::start();
    let data = b"sha512 content".to_vec();
    let hex: String = sha2::Sha512::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let d = format!("sha512:{hex}");
    let r = s
        .req("POST", &format!("/v2/a/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.req("GET", &format!("/v2/a/blobs/{d}")).send().body, data);
    let wrong = format!("sha512:{}", "0".repeat(128));
    let r = s
        .req("POST", &format!("/v2/a/blobs/uploads/?digest={wrong}"))
        .body(data)
        .send();
    assert_eq!(r.code(), "DIGEST_INVALID");
}
