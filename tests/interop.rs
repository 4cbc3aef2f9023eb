//! Interoperability with CNCF distribution (Debian's `docker-registry`, 2.8)
//! on the same data directory, or the same bucket (run on Garage with
//! `PRIVATE_REGISTRY_TEST_S3`): what one writes, the other serves byte for
//! byte, lists identically, deletes and collects. On disk an upload begun on
//! one also completes on the other; in a bucket each keeps its multipart
//! bookkeeping of its own, so uploads do not cross over there.

mod common;

use common::distribution::*;
use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// A registry client over the harness's raw HTTP client, for either server.
// ---------------------------------------------------------------------------

/// Appends `digest=` to an upload `Location` (which may carry distribution's `_state`).
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// Single-POST upload (`POST ?digest=` with the body). A registry may instead
/// answer 202 and ignore the body, as distribution 2.8 does; the client then
/// falls back to a PUT of the whole body, as the OCI spec describes.
fn push_mono(addr: SocketAddr, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let mut r = req_to(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
    )
    .header("Content-Type", "application/octet-stream")
    .body(data.to_vec())
    .send();
    if r.status == 202 {
        r = req_to(addr, "PUT", &with_digest(&r.location_path(), &d))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send();
    }
    assert_eq!(
        r.status,
        201,
        "monolithic upload to {repo} on {addr}: {}",
        r.text()
    );
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    d
}

/// POST, then one PUT with the whole body (what Docker does for small blobs).
fn push_post_put(addr: SocketAddr, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = req_to(addr, "POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = req_to(addr, "PUT", &with_digest(&r.location_path(), &d))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send();
    assert_eq!(
        r.status,
        201,
        "POST+PUT upload to {repo} on {addr}: {}",
        r.text()
    );
    d
}

/// Starts an upload and PATCHes `chunks` of `data` in order; returns the
/// `Location` to continue at and the upload id.
fn begin_chunked(addr: SocketAddr, repo: &str, chunks: &[&[u8]]) -> (String, String) {
    let r = req_to(addr, "POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r
        .header("Docker-Upload-UUID")
        .expect("Docker-Upload-UUID")
        .to_string();
    let mut loc = r.location_path();
    let mut off = 0;
    for c in chunks {
        let r = req_to(addr, "PATCH", &loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &format!("{off}-{}", off + c.len() - 1))
            .body(c.to_vec())
            .send();
        assert_eq!(r.status, 202, "PATCH to {repo} on {addr}: {}", r.text());
        off += c.len();
        assert_eq!(r.header("Range"), Some(format!("0-{}", off - 1).as_str()));
        loc = r.location_path();
    }
    (loc, id)
}

fn push_chunked(addr: SocketAddr, repo: &str, data: &[u8], pieces: usize) -> String {
    let d = sha256(data);
    let size = data.len().div_ceil(pieces);
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    let (loc, _) = begin_chunked(addr, repo, &chunks);
    let r = req_to(addr, "PUT", &with_digest(&loc, &d)).send();
    assert_eq!(
        r.status,
        201,
        "completing chunked upload to {repo} on {addr}: {}",
        r.text()
    );
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    d
}

fn mount(addr: SocketAddr, repo: &str, from: &str, digest: &str) {
    let r = req_to(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
    )
    .send();
    assert_eq!(
        r.status,
        201,
        "mount {digest} from {from} into {repo} on {addr}: {}",
        r.text()
    );
}

fn put_manifest(
    addr: SocketAddr,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> String {
    let r = req_to(addr, "PUT", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(bytes.to_vec())
        .send();
    assert_eq!(
        r.status,
        201,
        "PUT manifest {repo}:{reference} on {addr}: {}",
        r.text()
    );
    let d = sha256(bytes);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    d
}

// ---------------------------------------------------------------------------
// The content pushed, and what every server must then serve.
// ---------------------------------------------------------------------------

struct PushedManifest {
    repo: String,
    digest: String,
    media_type: &'static str,
    bytes: Vec<u8>,
    tags: Vec<String>,
}

#[derive(Default)]
struct Fixture {
    manifests: Vec<PushedManifest>,
    /// (repo, digest) -> bytes
    blobs: BTreeMap<(String, String), Vec<u8>>,
}

impl Fixture {
    fn blob(&mut self, repo: &str, digest: String, data: &[u8]) -> String {
        assert_eq!(sha256(data), digest);
        self.blobs
            .insert((repo.to_string(), digest.clone()), data.to_vec());
        digest
    }

    fn manifest(
        &mut self,
        addr: SocketAddr,
        repo: &str,
        media_type: &'static str,
        bytes: Vec<u8>,
        tags: &[&str],
    ) -> String {
        let digest = if tags.is_empty() {
            put_manifest(addr, repo, &sha256(&bytes), media_type, &bytes)
        } else {
            let mut d = String::new();
            for t in tags {
                d = put_manifest(addr, repo, t, media_type, &bytes);
            }
            d
        };
        self.manifests.push(PushedManifest {
            repo: repo.to_string(),
            digest: digest.clone(),
            media_type,
            bytes,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        });
        digest
    }

    fn repos(&self) -> Vec<String> {
        let mut v: Vec<String> = self.manifests.iter().map(|m| m.repo.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    fn tags(&self, repo: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .manifests
            .iter()
            .filter(|m| m.repo == repo)
            .flat_map(|m| m.tags.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn config_json(arch: &str, seed: &str) -> Vec<u8> {
    format!(r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#).into_bytes()
}

fn descriptor(media_type: &str, digest: &str, size: usize, platform: Option<&str>) -> String {
    match platform {
        Some(arch) => format!(
            r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
        ),
        None => format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#),
    }
}

fn index_json(media_type: &str, children: &[(&str, &str, usize, &str)]) -> Vec<u8> {
    let entries: Vec<String> = children
        .iter()
        .map(|(mt, d, n, arch)| descriptor(mt, d, *n, Some(arch)))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// Pushes an image (config + layers uploaded in the various ways) and returns
/// its manifest's (digest, size). The image is (media type, architecture, seed).
fn push_image_to(
    fx: &mut Fixture,
    addr: SocketAddr,
    repo: &str,
    (media_type, arch, seed): (&'static str, &str, u64),
    layer_sizes: &[usize],
    tags: &[&str],
) -> (String, usize) {
    let config = config_json(arch, &format!("{repo}-{seed}"));
    let c = fx.blob(repo, push_post_put(addr, repo, &config), &config);
    let mut layers = vec![];
    for (i, &n) in layer_sizes.iter().enumerate() {
        let data = random_bytes(n, seed * 100 + i as u64);
        let d = match i % 3 {
            0 => push_mono(addr, repo, &data),
            1 => push_chunked(addr, repo, &data, 3),
            _ => push_post_put(addr, repo, &data),
        };
        layers.push((fx.blob(repo, d, &data), n));
    }
    let layer_refs: Vec<(&str, usize)> = layers.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let m = image_manifest(media_type, (&c, config.len()), &layer_refs).into_bytes();
    let len = m.len();
    (fx.manifest(addr, repo, media_type, m, tags), len)
}

/// Pushes the whole fixture: several repositories (nested names, one that
/// sorts between `team` and `team/...`), OCI and Docker image manifests, an
/// OCI index and a Docker manifest list each over two images, several tags,
/// monolithic, chunked and POST+PUT uploads, a cross-repository mount.
fn populate(addr: SocketAddr) -> Fixture {
    let mut fx = Fixture::default();
    // alpha: two OCI images, one with two tags.
    push_image_to(
        &mut fx,
        addr,
        "alpha",
        (OCI_MANIFEST, "amd64", 1),
        &[300 * 1024, 2 * MIB + 5],
        &["1.0", "latest"],
    );
    push_image_to(
        &mut fx,
        addr,
        "alpha",
        (OCI_MANIFEST, "amd64", 2),
        &[1, 70_000, 5000],
        &["2.0"],
    );

    // team/app: a Docker image, and an OCI index over two images pushed by digest.
    push_image_to(
        &mut fx,
        addr,
        "team/app",
        (DOCKER_MANIFEST, "amd64", 3),
        &[123_456],
        &["v1"],
    );
    let (amd, amd_n) = push_image_to(
        &mut fx,
        addr,
        "team/app",
        (OCI_MANIFEST, "amd64", 4),
        &[40_000],
        &[],
    );
    // The arm64 image shares a layer with alpha, mounted rather than uploaded.
    let shared = random_bytes(300 * 1024, 100);
    let shared_d = sha256(&shared);
    mount(addr, "team/app", "alpha", &shared_d);
    fx.blob("team/app", shared_d.clone(), &shared);
    let config = config_json("arm64", "team/app-arm");
    let c = fx.blob("team/app", push_mono(addr, "team/app", &config), &config);
    let m = image_manifest(
        OCI_MANIFEST,
        (&c, config.len()),
        &[(&shared_d, shared.len())],
    )
    .into_bytes();
    let arm_n = m.len();
    let arm = fx.manifest(addr, "team/app", OCI_MANIFEST, m, &[]);
    let idx = index_json(
        OCI_INDEX,
        &[
            (OCI_MANIFEST, &amd, amd_n, "amd64"),
            (OCI_MANIFEST, &arm, arm_n, "arm64"),
        ],
    );
    fx.manifest(addr, "team/app", OCI_INDEX, idx, &["multi", "multi-latest"]);

    // team/sub/deep-repo: a Docker manifest list; its images are tagged too.
    let (a, an) = push_image_to(
        &mut fx,
        addr,
        "team/sub/deep-repo",
        (DOCKER_MANIFEST, "amd64", 5),
        &[10_000, 20_000],
        &["amd64"],
    );
    let (b, bn) = push_image_to(
        &mut fx,
        addr,
        "team/sub/deep-repo",
        (DOCKER_MANIFEST, "arm64", 6),
        &[30_000],
        &["arm64"],
    );
    let list = index_json(
        DOCKER_LIST,
        &[
            (DOCKER_MANIFEST, &a, an, "amd64"),
            (DOCKER_MANIFEST, &b, bn, "arm64"),
        ],
    );
    fx.manifest(addr, "team/sub/deep-repo", DOCKER_LIST, list, &["list"]);

    // team-x sorts between "team" and "team/app" as a plain string, after both by path.
    push_image_to(
        &mut fx,
        addr,
        "team-x",
        (OCI_MANIFEST, "amd64", 7),
        &[4096],
        &["only"],
    );
    fx
}

/// Checks that the server on `addr` serves everything in `fx` exactly.
fn verify(addr: SocketAddr, fx: &Fixture, who: &str) {
    assert_eq!(probe(addr, "/v2/"), Some(200), "{who}: /v2/");
    for m in &fx.manifests {
        let mut refs = vec![m.digest.clone()];
        refs.extend(m.tags.iter().cloned());
        for r in refs {
            let path = format!("/v2/{}/manifests/{r}", m.repo);
            let g = req_to(addr, "GET", &path)
                .header("Accept", ACCEPT_ALL_MANIFESTS)
                .send();
            assert_eq!(g.status, 200, "{who}: GET {path}: {}", g.text());
            assert!(
                g.body == m.bytes,
                "{who}: GET {path}: body differs from what was pushed:\n{}",
                g.text()
            );
            assert_eq!(
                g.header("Content-Type"),
                Some(m.media_type),
                "{who}: GET {path}: Content-Type"
            );
            assert_eq!(
                g.header("Docker-Content-Digest"),
                Some(m.digest.as_str()),
                "{who}: GET {path}"
            );
            let h = req_to(addr, "HEAD", &path)
                .header("Accept", ACCEPT_ALL_MANIFESTS)
                .send();
            assert_eq!(h.status, 200, "{who}: HEAD {path}");
            assert_eq!(
                h.header("Content-Length"),
                Some(m.bytes.len().to_string().as_str()),
                "{who}: HEAD {path}"
            );
            assert_eq!(
                h.header("Content-Type"),
                Some(m.media_type),
                "{who}: HEAD {path}"
            );
            assert_eq!(
                h.header("Docker-Content-Digest"),
                Some(m.digest.as_str()),
                "{who}: HEAD {path}"
            );
        }
    }
    for ((repo, d), data) in &fx.blobs {
        let path = format!("/v2/{repo}/blobs/{d}");
        let g = req_to(addr, "GET", &path).send();
        assert_eq!(g.status, 200, "{who}: GET {path}: {}", g.text());
        assert_eq!(g.body.len(), data.len(), "{who}: GET {path}: length");
        assert!(&g.body == data, "{who}: GET {path}: bytes differ");
        let h = req_to(addr, "HEAD", &path).send();
        assert_eq!(h.status, 200, "{who}: HEAD {path}");
        assert_eq!(
            h.header("Content-Length"),
            Some(data.len().to_string().as_str()),
            "{who}: HEAD {path}"
        );
        assert_eq!(
            h.header("Docker-Content-Digest"),
            Some(d.as_str()),
            "{who}: HEAD {path}"
        );
    }
    let l = listings(addr);
    let mut repos = l.catalog.clone();
    repos.sort();
    assert_eq!(repos, fx.repos(), "{who}: catalog");
    for repo in fx.repos() {
        let mut tags = l.tags[&repo].clone();
        tags.sort();
        assert_eq!(tags, fx.tags(&repo), "{who}: tags of {repo}");
    }
}

/// The catalog in the order the server gives it, and every repository's tag
/// list, sorted: distribution 2.8 lists tags in directory order, unsorted.
#[derive(Debug, PartialEq, Eq)]
struct Listings {
    catalog: Vec<String>,
    tags: BTreeMap<String, Vec<String>>,
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn listings(addr: SocketAddr) -> Listings {
    let r = req_to(addr, "GET", "/v2/_catalog?n=1000").send();
    assert_eq!(r.status, 200, "catalog on {addr}: {}", r.text());
    let catalog = strings(&r.json()["repositories"]);
    let mut tags = BTreeMap::new();
    for repo in &catalog {
        let r = req_to(addr, "GET", &format!("/v2/{repo}/tags/list")).send();
        assert_eq!(r.status, 200, "tags of {repo} on {addr}: {}", r.text());
        assert_eq!(r.json()["name"].as_str(), Some(repo.as_str()));
        let mut t = strings(&r.json()["tags"]);
        t.sort();
        tags.insert(repo.clone(), t);
    }
    Listings { catalog, tags }
}

/// The catalog fetched `n` at a time, following each server's own `Link`
/// headers (at most 50 pages). Empty pages are dropped: distribution 2.8 may
/// link to an empty last page when the count is a multiple of `n`.
fn catalog_pages(addr: SocketAddr, n: usize) -> Vec<Vec<String>> {
    let mut pages = vec![];
    let mut path = format!("/v2/_catalog?n={n}");
    for _ in 0..50 {
        let r = req_to(addr, "GET", &path).send();
        assert_eq!(r.status, 200, "GET {path} on {addr}: {}", r.text());
        let page = strings(&r.json()["repositories"]);
        assert!(
            page.len() <= n,
            "GET {path} on {addr}: {} entries",
            page.len()
        );
        if !page.is_empty() {
            pages.push(page);
        }
        let Some(link) = r.header("Link") else {
            return pages;
        };
        let target = link
            .trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap();
        path = match target.find("/v2/") {
            Some(i) => target[i..].to_string(),
            None => panic!("odd Link header {link:?}"),
        };
    }
    panic!("more than 50 catalog pages on {addr}");
}

fn paged_catalogs(addr: SocketAddr) -> Vec<Vec<Vec<String>>> {
    (1..=3).map(|n| catalog_pages(addr, n)).collect()
}

// ---------------------------------------------------------------------------
// distribution's signed upload state, so it accepts an upload we began.
// ---------------------------------------------------------------------------

fn sha256_raw(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256_raw(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha256_raw(&[&ipad, msg]);
    sha256_raw(&[&opad, &inner])
}

/// Go's `base64.URLEncoding` (URL alphabet, with padding).
fn base64_url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `_state` query value distribution 2.8 expects on an upload URL.
fn distribution_state(repo: &str, id: &str, offset: usize, started_at: &str) -> String {
    let msg = format!(
        r#"{{"Name":"{repo}","UUID":"{id}","Offset":{offset},"StartedAt":"{started_at}"}}"#
    );
    let mut token = hmac_sha256(SECRET.as_bytes(), msg.as_bytes()).to_vec();
    token.extend_from_slice(msg.as_bytes());
    base64_url(&token).replace('=', "%3D")
}

fn upload_dir(root: &Path, repo: &str, id: &str) -> PathBuf {
    root.join("docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads")
        .join(id)
}

/// After completing a resumed upload on `addr`: push an image using the blob,
/// tagged `resumed`, and record it in the fixture.
fn use_resumed_blob(fx: &mut Fixture, addr: SocketAddr, repo: &str, blob: &[u8]) {
    let d = sha256(blob);
    fx.blob(repo, d.clone(), blob);
    let config = config_json("amd64", "resumed");
    let c = fx.blob(repo, push_mono(addr, repo, &config), &config);
    let m = image_manifest(OCI_MANIFEST, (&c, config.len()), &[(&d, blob.len())]).into_bytes();
    fx.manifest(addr, repo, OCI_MANIFEST, m, &["resumed"]);
}

// ---------------------------------------------------------------------------

#[test]
fn ours_then_distribution_on_the_same_root() {
    let dir = TempDir::new("interop-a");
    let root = dir.0.join("data");
    let mut ours = Server::start_on(&root, "", &[]);
    let mut fx = populate(ours.addr);
    verify(ours.addr, &fx, "ours (writer)");
    let ours_lists = listings(ours.addr);
    let ours_pages = paged_catalogs(ours.addr);

    // An upload begun on ours, to be finished by distribution (on disk).
    let repo = "team/app";
    let blob = random_bytes(5 * MIB + 3, 4242);
    let part = 2 * MIB + 1;
    let handoff = !common::s3::on_s3();
    let id = if handoff {
        begin_chunked(ours.addr, repo, &[&blob[..MIB], &blob[MIB..part]]).1
    } else {
        String::new()
    };
    let st = ours.signal_and_wait("TERM");
    assert!(
        st.success(),
        "ours did not exit cleanly on SIGTERM: {st:?}\n{}",
        ours.log_text()
    );

    let dist = Distribution::start(&root);
    verify(dist.addr, &fx, "distribution reading ours");
    assert_eq!(
        listings(dist.addr),
        ours_lists,
        "catalog/tag listings differ between ours and distribution"
    );
    assert_eq!(
        paged_catalogs(dist.addr),
        ours_pages,
        "paginated catalogs (n = 1, 2, 3) differ: left distribution, right ours"
    );

    if handoff {
        finish_on_distribution(&dist, &root, &mut fx, repo, &id, &blob, part);
    } else {
        let d = push_chunked(dist.addr, repo, &blob, 3);
        assert_eq!(d, sha256(&blob));
        use_resumed_blob(&mut fx, dist.addr, repo, &blob);
    }
    verify(dist.addr, &fx, "distribution after its own push");
    let dist_lists = listings(dist.addr);
    dist.stop();

    // And back to ours, which must read what distribution added.
    let mut ours = Server::start_on(&root, "", &[]);
    verify(ours.addr, &fx, "ours reading distribution's additions");
    assert_eq!(
        listings(ours.addr),
        dist_lists,
        "listings differ after distribution's additions"
    );
    if !common::s3::on_s3() {
        let a = audit_store(&root);
        assert!(a.problems.is_empty(), "{:#?}", a.problems);
    }

    // distribution's garbage collector walks the tree we wrote: it must keep
    // everything referenced and remove a blob nothing references.
    let orphan = random_bytes(10_000, 999);
    let orphan_d = push_mono(ours.addr, "alpha", &orphan);
    assert!(ours.signal_and_wait("TERM").success());
    let out = distribution_gc(&root, false);
    let ours = Server::start_on(&root, "", &[]);
    verify(ours.addr, &fx, "ours after distribution's garbage-collect");
    let r = ours
        .req("GET", &format!("/v2/alpha/blobs/{orphan_d}"))
        .send();
    assert_eq!(
        r.status, 404,
        "garbage-collect left an unreferenced blob in place; its output:\n{out}"
    );
}

/// Continues on distribution an upload our server began, through the
/// upload state distribution signs with `http.secret`.
fn finish_on_distribution(
    dist: &Distribution,
    root: &Path,
    fx: &mut Fixture,
    repo: &str,
    id: &str,
    blob: &[u8],
    part: usize,
) {
    let started = std::fs::read_to_string(upload_dir(root, repo, id).join("startedat"))
        .expect("our upload has a startedat file");
    let state = distribution_state(repo, id, part, started.trim());
    let r = req_to(
        dist.addr,
        "PATCH",
        &format!("/v2/{repo}/blobs/uploads/{id}?_state={state}"),
    )
    .header("Content-Type", "application/octet-stream")
    .header("Content-Range", &format!("{part}-{}", blob.len() - 1))
    .body(blob[part..].to_vec())
    .send();
    assert_eq!(
        r.status,
        202,
        "distribution resuming our upload: {}\n{}",
        r.text(),
        dist.log_text()
    );
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", blob.len() - 1).as_str())
    );
    let r = req_to(
        dist.addr,
        "PUT",
        &with_digest(&r.location_path(), &sha256(blob)),
    )
    .send();
    assert_eq!(
        r.status,
        201,
        "distribution completing our upload: {}\n{}",
        r.text(),
        dist.log_text()
    );
    use_resumed_blob(fx, dist.addr, repo, blob);
}

#[test]
fn distribution_then_ours_on_the_same_root() {
    let dir = TempDir::new("interop-b");
    let root = dir.0.join("data");
    let dist = Distribution::start(&root);
    let mut fx = populate(dist.addr);
    verify(dist.addr, &fx, "distribution (writer)");
    let dist_lists = listings(dist.addr);
    let dist_pages = paged_catalogs(dist.addr);

    // An upload begun on distribution, to be finished by ours (on disk).
    let repo = "alpha";
    let blob = random_bytes(4 * MIB + 999, 777);
    let part = 3 * MIB / 2;
    let handoff = !common::s3::on_s3();
    let id = if handoff {
        begin_chunked(dist.addr, repo, &[&blob[..MIB], &blob[MIB..part]]).1
    } else {
        String::new()
    };
    dist.stop();

    let mut ours = Server::start_on(&root, "", &[]);
    verify(ours.addr, &fx, "ours reading distribution");
    assert_eq!(
        listings(ours.addr),
        dist_lists,
        "catalog/tag listings differ between distribution and ours"
    );
    assert_eq!(
        paged_catalogs(ours.addr),
        dist_pages,
        "paginated catalogs (n = 1, 2, 3) differ: left ours, right distribution"
    );

    if handoff {
        finish_on_ours(&ours, &mut fx, repo, &id, &blob, part);
    } else {
        assert_eq!(push_chunked(ours.addr, repo, &blob, 3), sha256(&blob));
        use_resumed_blob(&mut fx, ours.addr, repo, &blob);
    }
    verify(ours.addr, &fx, "ours after its own push");
    let ours_lists = listings(ours.addr);
    let st = ours.signal_and_wait("TERM");
    assert!(st.success(), "ours did not exit cleanly on SIGTERM: {st:?}");

    let dist = Distribution::start(&root);
    verify(dist.addr, &fx, "distribution reading our additions");
    assert_eq!(
        listings(dist.addr),
        ours_lists,
        "listings differ after our additions"
    );
    // A delete through distribution (the image just pushed), seen by ours.
    let last = fx.manifests.last().expect("the resumed image");
    let (repo, digest, tag) = (last.repo.clone(), last.digest.clone(), last.tags[0].clone());
    let r = req_to(
        dist.addr,
        "DELETE",
        &format!("/v2/{repo}/manifests/{digest}"),
    )
    .send();
    assert_eq!(r.status, 202, "distribution deletes: {}", r.text());
    dist.stop();
    if !common::s3::on_s3() {
        let a = audit_store(&root);
        assert!(a.problems.is_empty(), "{:#?}", a.problems);
    }
    let ours = Server::start_on(&root, "", &[]);
    for r in [&tag, &digest] {
        let g = get_manifest(&ours, &repo, r);
        assert_eq!(
            g.status, 404,
            "ours still serves {r}, which distribution deleted"
        );
    }
}

/// Continues on our server an upload distribution began.
fn finish_on_ours(ours: &Server, fx: &mut Fixture, repo: &str, id: &str, blob: &[u8], part: usize) {
    let loc = format!("/v2/{repo}/blobs/uploads/{id}");
    let r = ours.req("GET", &loc).send();
    assert_eq!(
        r.status,
        204,
        "ours: status of distribution's upload: {}",
        r.text()
    );
    assert_eq!(r.header("Range"), Some(format!("0-{}", part - 1).as_str()));
    let r = ours
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &format!("{part}-{}", blob.len() - 1))
        .body(blob[part..].to_vec())
        .send();
    assert_eq!(
        r.status,
        202,
        "ours resuming distribution's upload: {}",
        r.text()
    );
    let r = ours
        .req("PUT", &with_digest(&r.location_path(), &sha256(blob)))
        .send();
    assert_eq!(
        r.status,
        201,
        "ours completing distribution's upload: {}",
        r.text()
    );
    use_resumed_blob(fx, ours.addr, repo, blob);
}

/// Flips a stored blob's first byte where it is stored, as a disk fault would.
fn flip_first_byte(root: &Path, digest: &str) {
    let path = common::store::blob_path(root, digest);
    match common::s3::cluster() {
        Some(c) => {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let key = format!("{}/{rel}", common::s3::Cluster::prefix(root));
            let mut bytes = common::s3::get_object(&c, &key);
            bytes[0] ^= 1;
            common::s3::put_object(&c, &key, &bytes);
        }
        None => {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// Our maintenance commands leave a tree distribution still serves: a
/// repository deleted, a collection, a corrupt blob moved aside by fsck
/// (our `_trash/`, `_quarantine/` and `_corrupt/` sit beside `blobs/` and
/// `repositories/`, where distribution never looks).
#[test]
fn distribution_serves_a_tree_after_our_maintenance() {
    use common::store::*;
    let dir = TempDir::new("interop-maint");
    let root = dir.0.join("data");
    let mut ours = Server::start_on(&root, "", &[]);
    let fx = populate(ours.addr);
    push_image(&ours, "doomed", "1", "doomed");
    push_image(&ours, "doomed/nested", "1", "nested");
    let victim = push_blob(&ours, "victims", b"bytes a disk will flip");
    flip_first_byte(&root, &victim);

    let o = storage_cmd(&ours, &["repository", "delete", "doomed", "--yes"]);
    assert!(o.status.success(), "{o:?}");
    let catalog = ours.req("GET", "/v2/_catalog").send().json();
    let names = catalog["repositories"].as_array().unwrap();
    assert!(names.iter().any(|n| n == "doomed/nested"), "{catalog}");
    assert!(!names.iter().any(|n| n == "doomed"), "{catalog}");
    let o = storage_cmd(&ours, &["fsck", "--repair"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("moved aside to"), "{}", stdout(&o));
    let o = storage_cmd(&ours, &["garbage-collect", "--grace", "0s"]);
    assert!(o.status.success(), "{o:?}");
    for repo in ["doomed/nested", "victims"] {
        let o = storage_cmd(&ours, &["repository", "delete", repo, "--yes"]);
        // In a bucket a repository is its keys: `victims` lost its only
        // link with its blob, and with it the repository (on disk, an empty
        // `_layers` directory keeps it listed).
        let gone = common::s3::on_s3()
            && repo == "victims"
            && String::from_utf8_lossy(&o.stderr).contains("no repository victims");
        assert!(o.status.success() || gone, "{o:?}");
    }
    let o = storage_cmd(&ours, &["garbage-collect", "--grace", "0s"]);
    assert!(o.status.success(), "{o:?}");
    let o = storage_cmd(&ours, &["fsck"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    verify(ours.addr, &fx, "ours after maintenance");
    let ours_lists = listings(ours.addr);
    assert!(ours.signal_and_wait("TERM").success());
    match common::s3::cluster() {
        Some(c) => {
            let corrupt = format!(
                "{}/docker/registry/v2/_corrupt/",
                common::s3::Cluster::prefix(&root)
            );
            assert!(
                !common::s3::keys(&c, &corrupt).is_empty(),
                "nothing under {corrupt}"
            );
        }
        None => {
            let v2 = root.join("docker/registry/v2");
            assert!(v2.join("_corrupt").is_dir() && v2.join("_trash").is_dir());
        }
    }

    let dist = Distribution::start(&root);
    verify(dist.addr, &fx, "distribution after our maintenance");
    assert_eq!(listings(dist.addr), ours_lists);
    dist.stop();
    // distribution's collector walks it too, and finds nothing to remove.
    let out = distribution_gc(&root, true);
    let summary = out
        .lines()
        .find(|l| l.contains(" blobs marked, "))
        .unwrap_or("");
    assert!(
        summary.ends_with(" blobs marked, 0 blobs and 0 manifests eligible for deletion"),
        "{out}"
    );
}
