//! What the pull-through cache keeps beside the content itself: when each
//! cached tag was last checked with its upstream, and when each cached
//! repository was last pulled (for expiry and the size cap). Records live
//! in the store, so every node sharing it agrees.

use super::error::optional;
use super::manifests::{PutOutcome, Reference};
use super::{Registry, Result, paths};
use crate::names::{RepoName, Tag};
use bytes::Bytes;
use std::time::SystemTime;

impl Registry {
    /// Stores a manifest fetched from an upstream, without its blobs (they
    /// are fetched when pulled), and points `r` at it if it is a tag. The
    /// digest is checked as for a push.
    pub async fn put_cached_manifest(
        &self,
        repo: &RepoName,
        r: &Reference,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<PutOutcome> {
        self.store_manifest(repo, r, bytes, content_type, false)
            .await
    }

    /// When the tag was last confirmed with the upstream, if ever.
    pub async fn tag_checked(&self, repo: &RepoName, t: &Tag) -> Result<Option<SystemTime>> {
        let path = paths::mirror_tag_checked(repo, t);
        Ok(optional(self.driver.stat(path).await)?.map(|i| i.modified))
    }

    pub async fn note_tag_checked(&self, repo: &RepoName, t: &Tag) -> Result<()> {
        let path = paths::mirror_tag_checked(repo, t);
        Ok(self.driver.put_content(path, Bytes::new()).await?)
    }

    pub async fn note_pulled(&self, repo: &RepoName) -> Result<()> {
        let path = paths::mirror_pulled(repo);
        Ok(self.driver.put_content(path, Bytes::new()).await?)
    }

    /// Whether a pull-through cache keeps `repo` (and fetches its blobs lazily).
    pub async fn is_cached(&self, repo: &RepoName) -> Result<bool> {
        self.exists(paths::mirror_pulled(repo)).await
    }

    /// Every cached repository with when it was last pulled.
    pub async fn cached_repositories(&self) -> Result<Vec<(RepoName, SystemTime)>> {
        let mut out = vec![];
        let mut dirs = vec![String::new()];
        let root = paths::mirror_records();
        while let Some(dir) = dirs.pop() {
            for entry in self.list(format!("{root}{dir}")).await? {
                match entry.as_str() {
                    paths::MIRROR_PULLED => {
                        let name = dir.trim_start_matches('/');
                        let Some(repo) = RepoName::parse(name) else {
                            continue;
                        };
                        let path = paths::mirror_pulled(&repo);
                        if let Some(info) = optional(self.driver.stat(path).await)? {
                            out.push((repo, info.modified));
                        }
                    }
                    e if e.starts_with('_') => {}
                    e => dirs.push(format!("{dir}/{e}")),
                }
            }
        }
        Ok(out)
    }

    /// Drops a cached repository and its records; garbage collection then
    /// reclaims the blobs nothing else references. The records go first: a
    /// fetch meanwhile writes its record after storing (`crate::mirror`),
    /// so what it stores is never left without one.
    pub async fn evict_cached(&self, repo: &RepoName) -> Result<()> {
        self.remove(format!("{}/{repo}", paths::mirror_records()))
            .await?;
        if self.is_repository(repo).await? {
            self.delete_repository(repo).await?;
        }
        Ok(())
    }
}

impl Registry {
    /// Links a blob already stored (for another repository) into `repo`,
    /// touching it first as a push's mount does, so a collection running
    /// now keeps it. Its size, or `None` if it is not stored.
    pub async fn link_stored_blob(
        &self,
        repo: &RepoName,
        d: &crate::digest::Digest,
    ) -> Result<Option<u64>> {
        if !self.refresh_blob(d).await? {
            return Ok(None);
        }
        let Some(size) = self.stored_blob_size(d).await? else {
            return Ok(None);
        };
        self.link_layer(repo, d).await?;
        Ok(Some(size))
    }

    /// Whether a blob's bytes are stored, for whichever repository.
    pub async fn blob_stored(&self, d: &crate::digest::Digest) -> Result<bool> {
        Ok(self.stored_blob_size(d).await?.is_some())
    }

    /// Whether a manifest stored in `repo` references `d` as a config or
    /// layer: in a cache, proof that its upstream repository had the blob.
    pub async fn manifests_reference(
        &self,
        repo: &RepoName,
        d: &crate::digest::Digest,
    ) -> Result<bool> {
        for r in self.revisions(repo).await? {
            let bytes = self.blob_content(&r.digest).await?.unwrap_or_default();
            if super::refs::references(&bytes).is_some_and(|refs| refs.blobs.contains(d)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Bytes of the blobs linked into a cached repository (a blob shared
    /// with others counts in each).
    pub async fn cached_size(&self, repo: &RepoName) -> Result<u64> {
        let layers = format!("{}/_layers", paths::repo(repo));
        let mut total = 0;
        for d in self.list_digests(&layers).await? {
            total += self.stored_blob_size(&d).await?.unwrap_or(0);
        }
        Ok(total)
    }
}
