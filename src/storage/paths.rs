//! Where everything lives, in distribution's filesystem layout. Every path the
//! registry touches is spelled here and nowhere else.

use crate::digest::Digest;
use crate::names::{RepoName, Tag};

pub const ROOT: &str = "docker/registry/v2";

/// Our own records, beside distribution's tree (`docker/`), where neither
/// it nor its tools look: `touched/` (the S3 driver's reference marks),
/// `schedule/` (turns at periodic jobs), `usage/` (the published usage scan).
pub const OWN: &str = "private-registry";

/// The record of who last took a turn at periodic job `job`.
pub fn schedule(job: &str) -> String {
    format!("{OWN}/schedule/{job}")
}

/// The latest full usage scan, for nodes that did not make it.
pub fn usage_inventory() -> String {
    format!("{OWN}/usage/inventory")
}

/// The pull-through cache's records of cached repositories.
pub fn mirror_records() -> String {
    format!("{OWN}/mirror")
}

/// When a cached tag was last checked with its upstream.
pub fn mirror_tag_checked(name: &RepoName, t: &Tag) -> String {
    format!("{OWN}/mirror/{name}/_tags/{t}")
}

/// When a cached repository was last pulled from.
pub fn mirror_pulled(name: &RepoName) -> String {
    format!("{OWN}/mirror/{name}/{MIRROR_PULLED}")
}

/// The file naming a repository in [`mirror_records`]: a repository name
/// component cannot start with `_`, so it cannot be one.
pub const MIRROR_PULLED: &str = "_pulled";

pub fn repositories() -> String {
    format!("{ROOT}/repositories")
}

pub fn repo(name: &RepoName) -> String {
    format!("{ROOT}/repositories/{name}")
}

pub fn blob_data(d: &Digest) -> String {
    format!(
        "{ROOT}/blobs/{}/{}/{}/data",
        d.algorithm().name(),
        &d.hex()[..2],
        d.hex()
    )
}

pub fn layer_link(name: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_layers/{}/{}/link",
        repo(name),
        d.algorithm().name(),
        d.hex()
    )
}

pub fn revision_link(name: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_manifests/revisions/{}/{}/link",
        repo(name),
        d.algorithm().name(),
        d.hex()
    )
}

pub fn tags(name: &RepoName) -> String {
    format!("{}/_manifests/tags", repo(name))
}

pub fn tag(name: &RepoName, tag: &Tag) -> String {
    format!("{}/{tag}", tags(name))
}

pub fn tag_current(name: &RepoName, t: &Tag) -> String {
    format!("{}/current/link", tag(name, t))
}

pub fn tag_index(name: &RepoName, t: &Tag, d: &Digest) -> String {
    format!(
        "{}/index/{}/{}/link",
        tag(name, t),
        d.algorithm().name(),
        d.hex()
    )
}

/// Where a new tag is assembled before one rename makes it visible, and where
/// a deleted tag goes before it is removed. Both sit under `_`-prefixed names
/// that distribution never reads; leftovers after a crash are invisible.
pub fn staging(name: &RepoName, id: &str) -> String {
    format!("{}/_manifests/_staging/{id}", repo(name))
}

pub fn trash(name: &RepoName, id: &str) -> String {
    format!("{}/_manifests/_trash/{id}", repo(name))
}

/// Our referrers index: `_manifests/_referrers/<subject>/<referrer>/link`.
/// Distribution skips `_`-prefixed entries, so the directory is invisible to it.
pub fn referrers(name: &RepoName, subject: &Digest) -> String {
    format!(
        "{}/_manifests/_referrers/{}/{}",
        repo(name),
        subject.algorithm().name(),
        subject.hex()
    )
}

pub fn referrer_link(name: &RepoName, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}/{}/{}/link",
        referrers(name, subject),
        referrer.algorithm().name(),
        referrer.hex()
    )
}

pub fn uploads(name: &RepoName) -> String {
    format!("{}/_uploads", repo(name))
}

/// Where garbage collection moves a blob's directory aside, in one rename,
/// before deciding to delete it. Outside `blobs/` and `repositories/`, so
/// neither we nor distribution ever serve or enumerate it. Entry names are
/// `<algorithm>-<hex>-<random>`, enough to put a blob back.
pub fn quarantine() -> String {
    format!("{ROOT}/_quarantine")
}

pub fn quarantine_entry(d: &Digest, id: &str) -> String {
    format!("{}/{}-{}-{id}", quarantine(), d.algorithm().name(), d.hex())
}

/// Where garbage collection moves a manifest revision's directory aside
/// before deciding to delete it; distribution reads only `revisions/` and
/// `tags/` under `_manifests`. Entry names are `<algorithm>-<hex>-<random>`.
pub fn revision_quarantine(name: &RepoName) -> String {
    format!("{}/_manifests/_quarantine", repo(name))
}

pub fn revision_quarantine_entry(name: &RepoName, d: &Digest, id: &str) -> String {
    format!(
        "{}/{}-{}-{id}",
        revision_quarantine(name),
        d.algorithm().name(),
        d.hex()
    )
}

/// Where `repository delete` moves a repository's `_manifests`, `_layers`
/// and `_uploads` before removing them: `_trash/<random>/`. Outside
/// `repositories/`, so neither we nor distribution list or serve it; a
/// leftover after a crash is removed by the next delete or `fsck --repair`.
pub fn repository_trash() -> String {
    format!("{ROOT}/_trash")
}

/// The parts of a repository directory that belong to it and not to the
/// repositories nested in it (`a/b` lives in `a/`'s directory).
pub const REPOSITORY_PARTS: [&str; 3] = ["_manifests", "_layers", "_uploads"];

/// Where `fsck --repair` moves a blob whose bytes do not match its digest:
/// `_corrupt/<algorithm>-<hex>-<random>/data`, outside `blobs/` and apart
/// from `_quarantine` (whose entries collections put back). Never deleted
/// by the registry.
pub fn corrupt_entry(d: &Digest, id: &str) -> String {
    format!("{ROOT}/_corrupt/{}-{}-{id}", d.algorithm().name(), d.hex())
}

/// A revision's directory, removed whole with its link.
pub fn revision_dir(name: &RepoName, d: &Digest) -> String {
    let link = revision_link(name, d);
    link.strip_suffix("/link")
        .expect("link paths end in /link")
        .to_string()
}

/// The directory holding a blob's `data`, removed whole with it.
pub fn blob_dir(d: &Digest) -> String {
    let data = blob_data(d);
    data.strip_suffix("/data")
        .expect("blob paths end in /data")
        .to_string()
}

pub fn upload(name: &RepoName, id: &str) -> String {
    format!("{}/_uploads/{id}", repo(name))
}

pub fn upload_data(name: &RepoName, id: &str) -> String {
    format!("{}/data", upload(name, id))
}

pub fn upload_started(name: &RepoName, id: &str) -> String {
    format!("{}/startedat", upload(name, id))
}

/// The record of a finishing PUT that verified the upload's data; see
/// `storage::uploads`. Distribution ignores it, and purges it with the upload.
pub fn upload_verified(name: &RepoName, id: &str) -> String {
    format!("{}/verified", upload(name, id))
}

/// Where a PUT's final chunk started to be appended; see `storage::uploads`.
pub fn upload_final_append(name: &RepoName, id: &str) -> String {
    format!("{}/finalappend", upload(name, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_distribution_layout() {
        let n = RepoName::parse("team/app").unwrap();
        let d: Digest = format!("sha256:ab{}", "0".repeat(62)).parse().unwrap();
        assert_eq!(
            blob_data(&d),
            format!(
                "docker/registry/v2/blobs/sha256/ab/ab{}/data",
                "0".repeat(62)
            )
        );
        assert_eq!(
            tag_current(&n, &Tag::parse("1.0").unwrap()),
            "docker/registry/v2/repositories/team/app/_manifests/tags/1.0/current/link"
        );
        assert!(layer_link(&n, &d).ends_with(&format!("_layers/sha256/{}/link", d.hex())));
    }
}
