//! Shared by the web UI tests: a server with two users under access rules
//! (`alice` may do everything, `bob` may only pull `team/*`), and readers
//! for what the pages contain.

use super::{Server, TempDir, basic_auth, write_htpasswd};

pub const ALICE: (&str, &str) = ("alice", "alice-pw");
pub const BOB: (&str, &str) = ("bob", "bob-pw");
pub const REALM: &str = "ui-test";

/// Starts the server; `extra` goes under `privateregistry:` (indented two spaces).
pub fn start(extra: &str, env: &[(&str, &str)]) -> (Server, TempDir) {
    let dir = TempDir::new("ui");
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[ALICE, BOB]);
    let yaml = format!(
        "auth:\n  htpasswd:\n    realm: {REALM}\n    path: {}\nprivateregistry:\n  auth:\n    cachettl: 1h\n  access:\n    rules:\n      - {{repositories: ['*'], users: [alice], allow: [pull, push, delete]}}\n      - {{repositories: ['team/*'], users: [bob], allow: [pull]}}\n{extra}",
        htpasswd.display()
    );
    let s = Server::start_on(&dir.0.join("data"), &yaml, env);
    (s, dir)
}

pub fn auth(user: (&str, &str)) -> String {
    basic_auth(user.0, user.1)
}

/// The value of the first `attr="…"` after `marker` in `html`.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let rest = &html[html.find(marker)?..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].replace("&amp;", "&"))
}

/// The CSRF token in a confirmation page's form.
pub fn form_token(html: &str) -> String {
    attr_after(html, "name=\"token\"", "value").expect("a token in the confirmation form")
}

/// The `href` of the link to the next page, if there is one.
pub fn next_link(html: &str) -> Option<String> {
    attr_after(html, "rel=\"next\"", "href")
}

/// Pushes an artifact (a signature, say) whose `subject` is the manifest
/// `subject` of `subject_size` bytes; returns its digest.
pub fn push_referrer(
    s: &Server,
    repo: &str,
    (subject, subject_size): (&str, usize),
    artifact_type: &str,
    annotations: serde_json::Value,
) -> String {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let empty = super::push_blob(s, repo, b"{}");
    let payload = format!("{artifact_type} for {subject}");
    let blob = super::push_blob(s, repo, payload.as_bytes());
    let referrer = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
        "layers": [{ "mediaType": "application/octet-stream", "digest": blob, "size": payload.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size },
        "annotations": annotations,
    })
    .to_string();
    let digest = super::sha256(referrer.as_bytes());
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{digest}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(referrer)
        .send();
    assert_eq!(r.status, 201, "push referrer: {}", r.text());
    digest
}
