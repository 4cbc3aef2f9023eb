//! Manifests: stored as blobs, made visible by a revision link, named by tags.
//! The exact bytes a client pushed are the bytes served.

use super::{Registry, Result, StorageError, paths};
use crate::digest::{Algorithm, Digest};
use crate::manifest::{Manifest, stored_media_type};
use crate::names::{RepoName, Tag};
use bytes::Bytes;

/// How a client names a manifest.
#[derive(Clone, Debug)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Option<Reference> {
        if s.contains(':') {
            s.parse().ok().map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

pub struct PutOutcome {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

impl Registry {
    /// The digest a reference names in this repository.
    pub async fn resolve(&self, repo: &RepoName, r: &Reference) -> Result<Digest> {
        let unknown = || StorageError::ManifestUnknown(r.to_string());
        let d = match r {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => self
                .read_link(paths::tag_current(repo, t))
                .await?
                .ok_or_else(unknown)?,
        };
        if !self.exists(paths::revision_link(repo, &d)).await? {
            return Err(unknown());
        }
        Ok(d)
    }

    /// The manifest `r` names. Its bytes, content-addressed, may come from
    /// memory; the tag and the revision link, which change, are always read.
    pub async fn get_manifest(&self, repo: &RepoName, r: &Reference) -> Result<StoredManifest> {
        let digest = self.resolve(repo, r).await?;
        let bytes = match self.manifests.get(&digest) {
            Some(b) => b,
            None => {
                let path = paths::blob_data(&digest);
                let Some(b) = super::error::optional(self.driver.get_content(path).await)? else {
                    return Err(StorageError::ManifestUnknown(r.to_string()));
                };
                self.remember_manifest(&digest, &b);
                b
            }
        };
        Ok(StoredManifest {
            media_type: stored_media_type(&bytes),
            digest,
            bytes,
        })
    }

    /// Keeps manifest bytes read from storage, if they are what their digest
    /// says (a corrupt file is served as it is, but never kept).
    fn remember_manifest(&self, d: &Digest, bytes: &Bytes) {
        let mut h = d.algorithm().hasher();
        h.update(bytes);
        if &h.finish() == d {
            self.manifests.put(d, bytes);
        }
    }

    /// Validates and stores a manifest, then points the tag (if any) at it.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        r: &Reference,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<PutOutcome> {
        self.store_manifest(repo, r, bytes, content_type, true)
            .await
    }

    /// `check`: whether everything the manifest references must be in the
    /// repository already, as for a push. A cached manifest is stored
    /// before its blobs, which are fetched when first pulled.
    pub(super) async fn store_manifest(
        &self,
        repo: &RepoName,
        r: &Reference,
        bytes: Bytes,
        content_type: Option<&str>,
        check: bool,
    ) -> Result<PutOutcome> {
        let digest = match r {
            Reference::Digest(d) if d.algorithm() != Algorithm::Sha256 => {
                let mut h = d.algorithm().hasher();
                h.update(&bytes);
                h.finish()
            }
            _ => Digest::sha256_of(&bytes),
        };
        if let Reference::Digest(expected) = r
            && expected != &digest
        {
            return Err(StorageError::DigestInvalid {
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let m = Manifest::parse(&bytes, content_type)
            .map_err(|e| StorageError::ManifestInvalid(e.0))?;
        if check {
            self.check_references(repo, &m).await?;
        }
        if !self.refresh_blob(&digest).await? {
            self.driver
                .put_content(paths::blob_data(&digest), bytes)
                .await?;
        }
        self.write_link(paths::revision_link(repo, &digest), &digest)
            .await?;
        if let Some(subject) = &m.subject {
            self.write_link(paths::referrer_link(repo, subject, &digest), &digest)
                .await?;
        }
        if let Reference::Tag(t) = r {
            self.tag(repo, t, &digest).await?;
        }
        Ok(PutOutcome {
            digest,
            subject: m.subject,
        })
    }

    /// Checks that everything `m` references is in the repository, touching
    /// each referenced blob and child revision link first: a garbage
    /// collection keeps what was touched after it started, and one that
    /// removed it first makes the touch fail here (see `crate::gc`).
    async fn check_references(&self, repo: &RepoName, m: &Manifest) -> Result<()> {
        for b in &m.blobs {
            if !self.refresh_blob(b).await? {
                return Err(StorageError::ManifestBlobUnknown(b.clone()));
            }
            // Fresh, not from the HEAD cache: a link another process
            // removed a moment ago must not let a manifest name the blob.
            match self.blob_size_fresh(repo, b).await {
                Err(StorageError::BlobUnknown(d)) => {
                    return Err(StorageError::ManifestBlobUnknown(d));
                }
                r => r.map(drop)?,
            }
        }
        for c in &m.children {
            let link = paths::revision_link(repo, c);
            let touched = super::error::optional(self.driver.touch(link).await)?.is_some();
            if !touched || !self.refresh_blob(c).await? {
                return Err(StorageError::ManifestBlobUnknown(c.clone()));
            }
        }
        Ok(())
    }

    /// Deletes a manifest revision and every tag pointing at it. The blob
    /// bytes stay until garbage collection finds nothing referencing them.
    pub async fn delete_manifest(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        self.seen.forget(Some(repo.as_str()), Some(d));
        let stored = self
            .get_manifest(repo, &Reference::Digest(d.clone()))
            .await?;
        for t in self.tags(repo).await? {
            if self.read_link(paths::tag_current(repo, &t)).await?.as_ref() == Some(d) {
                self.untag(repo, &t).await?;
            }
        }
        if let Ok(m) = Manifest::parse(&stored.bytes, None)
            && let Some(subject) = m.subject
        {
            let link = paths::referrer_link(repo, &subject, d);
            self.remove_link(link).await?;
        }
        let link = paths::revision_link(repo, d);
        self.remove_link(link).await?;
        Ok(())
    }
}
