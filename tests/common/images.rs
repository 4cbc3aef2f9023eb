//! Images pushed the way a client pushes them while garbage collection
//! runs, and read back whole.

use super::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes an image whose layers come from `pool`, the way a client does:
/// HEAD each blob and upload only what is missing. `None` if the registry
/// refused the manifest (a layer vanished between HEAD and put), which a
/// client retries; `Some(digest)` once acknowledged.
pub fn push_sharing(
    s: &Server,
    repo: &str,
    tag: &str,
    seed: u64,
    pool: &[Vec<u8>],
) -> Option<String> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let picks = [
        &pool[seed as usize % pool.len()],
        &pool[(seed as usize / 2 + 1) % pool.len()],
    ];
    let mut layers = vec![];
    for data in picks {
        let d = sha256(data);
        if s.req("HEAD", &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .status
            != 200
        {
            push_blob(s, repo, data);
        }
        layers.push((d, data.len()));
    }
    let c = push_blob(s, repo, config.as_bytes());
    let layer_refs: Vec<(&str, usize)> = layers.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let m = image_manifest(OCI_MANIFEST, (&c, config.len()), &layer_refs);
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send();
    match r.status {
        201 => Some(sha256(m.as_bytes())),
        400 if r.code() == "MANIFEST_BLOB_UNKNOWN" => None,
        _ => panic!("push {tag}: {} {}", r.status, r.text()),
    }
}

/// Every blob of the manifest `tag` names reads back with its digest.
pub fn pulls_completely(s: &Server, repo: &str, tag: &str, digest: &str) {
    let m = get_manifest(s, repo, tag);
    assert_eq!(m.status, 200, "{tag}: {}", m.text());
    assert_eq!(sha256(&m.body), digest, "{tag}");
    let v = m.json();
    let mut blobs = vec![v["config"]["digest"].as_str().unwrap().to_string()];
    for l in v["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for d in blobs {
        let r = s.req("GET", &format!("/v2/{repo}/blobs/{d}")).send();
        assert_eq!(r.status, 200, "{tag}: blob {d} lost");
        assert_eq!(sha256(&r.body), d, "{tag}: blob {d} corrupt");
    }
}
