//! OCI 1.1 referrers: manifests whose `subject` names another manifest,
//! found through our `_manifests/_referrers` index written on push.

use super::{Registry, Result, paths};
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::names::RepoName;
use std::collections::BTreeMap;

/// One entry of a referrers response.
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Registry {
    /// Manifests in `repo` that refer to `subject`, optionally only those of
    /// one artifact type, in digest order.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let mut out = vec![];
        let mut digests = self.list_digests(&paths::referrers(repo, subject)).await?;
        digests.sort();
        for d in digests {
            // A revision deleted since the index was written is no longer a referrer.
            let Ok(m) = self
                .get_manifest(repo, &super::manifests::Reference::Digest(d.clone()))
                .await
            else {
                continue;
            };
            let Ok(parsed) = Manifest::parse(&m.bytes, None) else {
                continue;
            };
            if artifact_type.is_some_and(|t| parsed.artifact_type.as_deref() != Some(t)) {
                continue;
            }
            out.push(Referrer {
                digest: d,
                media_type: m.media_type,
                size: m.bytes.len() as u64,
                artifact_type: parsed.artifact_type,
                annotations: parsed.annotations,
            });
        }
        Ok(out)
    }
}
