//! What garbage collection needs from storage: an inventory (repositories,
//! revisions, tags, stored blobs, with modification times) and removals that
//! re-check a blob's modification time immediately before deleting it. The
//! policy (what to keep, the grace period) lives in `crate::gc`.

use super::{Registry, Result, error::optional, paths};
use crate::digest::Digest;
use crate::names::{RepoName, Tag};
use bytes::Bytes;
use std::time::SystemTime;

/// One manifest revision of a repository and when its link was last written or touched.
pub struct Revision {
    pub digest: Digest,
    pub modified: SystemTime,
}

impl Registry {
    /// Every repository, in catalog order.
    pub async fn all_repositories(&self) -> Result<Vec<RepoName>> {
        let names = self.catalog(usize::MAX, None, &|_| true).await?;
        Ok(names.iter().filter_map(|n| RepoName::parse(n)).collect())
    }

    /// The manifest revisions linked in `repo`.
    pub async fn revisions(&self, repo: &RepoName) -> Result<Vec<Revision>> {
        let dir = format!("{}/_manifests/revisions", paths::repo(repo));
        let mut out = vec![];
        for digest in self.list_digests(&dir).await? {
            let link = paths::revision_link(repo, &digest);
            if let Some(info) = optional(self.driver.stat(link).await)? {
                out.push(Revision {
                    digest,
                    modified: info.modified,
                });
            }
        }
        Ok(out)
    }

    /// The digests the tags of `repo` currently name.
    pub async fn tag_targets(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        let mut out = vec![];
        for name in self.list(paths::tags(repo)).await? {
            let Some(t) = Tag::parse(&name) else { continue };
            if let Some(d) = self.read_link(paths::tag_current(repo, &t)).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// A stored blob's whole content (for manifests), if stored.
    pub async fn blob_content(&self, d: &Digest) -> Result<Option<Bytes>> {
        optional(self.driver.get_content(paths::blob_data(d)).await)
    }

    /// Every digest with bytes in the blob store.
    pub async fn stored_blobs(&self) -> Result<Vec<Digest>> {
        let dir = format!("{}/blobs", paths::ROOT);
        let mut out = vec![];
        for alg in self.list(dir.clone()).await? {
            for prefix in self.list(format!("{dir}/{alg}")).await? {
                for hex in self.list(format!("{dir}/{alg}/{prefix}")).await? {
                    if let Ok(d) = format!("{alg}:{hex}").parse::<Digest>()
                        && paths::blob_data(&d) == format!("{dir}/{alg}/{prefix}/{hex}/data")
                    {
                        out.push(d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// When a blob was last written or referenced; `None` if it is not stored.
    pub async fn blob_modified(&self, d: &Digest) -> Result<Option<SystemTime>> {
        Ok(optional(self.driver.stat(paths::blob_data(d)).await)?.map(|i| i.modified))
    }

    /// Removes a blob's bytes if they were last modified before `cutoff`,
    /// looking at the time again just before. Returns whether it removed
    /// them; a blob already gone (another collection) is not an error.
    pub async fn delete_blob_if_older(&self, d: &Digest, cutoff: SystemTime) -> Result<bool> {
        match self.blob_modified(d).await? {
            Some(m) if m < cutoff => {}
            _ => return Ok(false),
        }
        let data = paths::blob_data(d);
        let dir = data.strip_suffix("/data").expect("blob paths end in /data");
        self.remove(dir.to_string()).await
    }

    /// Removes a manifest revision from `repo` if its link was last written
    /// or touched before `cutoff` (looked at again just before), together
    /// with its entry in our referrers index. Returns whether it removed it.
    pub async fn delete_revision_if_older(
        &self,
        repo: &RepoName,
        d: &Digest,
        subject: Option<&Digest>,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let link = paths::revision_link(repo, d);
        match optional(self.driver.stat(link.clone()).await)? {
            Some(i) if i.modified < cutoff => {}
            _ => return Ok(false),
        }
        let removed = self.remove_link(link).await?;
        if let Some(s) = subject {
            self.remove_link(paths::referrer_link(repo, s, d)).await?;
        }
        Ok(removed)
    }

    /// Removes `repo`'s `_layers` link to a blob whose bytes are gone. If the
    /// bytes are back by then (pushed again meanwhile, which links after
    /// storing), the link is written again. Returns whether a link was removed for good.
    pub async fn unlink_swept_blob(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        let link = paths::layer_link(repo, d);
        if !self.remove_link(link.clone()).await? {
            return Ok(false);
        }
        if self.stored_blob_size(d).await?.is_some() {
            self.write_link(link, d).await?;
            return Ok(false);
        }
        Ok(true)
    }
}

impl Registry {
    /// The blobs `repo` links in `_layers`.
    pub async fn layer_links(&self, repo: &RepoName) -> Result<Vec<Digest>> {
        self.list_digests(&format!("{}/_layers", paths::repo(repo)))
            .await
    }
}
