//! Whole repositories: what one holds, and removing it.
//!
//! A repository's own content is three directories in its directory:
//! `_manifests` (tags, revisions, our referrers index), `_layers` and
//! `_uploads`. Repositories nested in its name (`a/b` for `a`) live beside
//! them and are never touched. Removal moves the three aside into
//! `_trash/<random>/`, `_manifests` first: that one rename takes every tag
//! and manifest out of sight at once. The blobs stay for garbage collection,
//! which removes those no other repository references.

use super::{Registry, Result, StorageError, error::optional, paths, tags::random_id};
use crate::digest::Digest;
use crate::names::{RepoName, Tag};

/// What a repository holds (and what removing it removes).
pub struct Contents {
    /// Each tag with the manifest it names (`None`: its link is unreadable).
    pub tags: Vec<(Tag, Option<Digest>)>,
    pub manifests: Vec<Digest>,
    pub uploads: usize,
}

impl Registry {
    /// Whether `repo` is a repository rather than a directory that only
    /// holds nested ones (or nothing): as the catalog decides.
    pub async fn is_repository(&self, repo: &RepoName) -> Result<bool> {
        let children = self.list(paths::repo(repo)).await?;
        Ok(children.iter().any(|c| c == "_manifests" || c == "_layers"))
    }

    /// What `repo` holds; `NameUnknown` if it is not a repository.
    pub async fn repository_contents(&self, repo: &RepoName) -> Result<Contents> {
        if !self.is_repository(repo).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        let mut tags = vec![];
        for t in self.tags(repo).await? {
            let target = self.read_link(paths::tag_current(repo, &t)).await.ok();
            tags.push((t, target.flatten()));
        }
        let mut manifests: Vec<Digest> = self
            .revisions(repo)
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect();
        manifests.sort();
        let uploads = self.list(paths::uploads(repo)).await?.len();
        Ok(Contents {
            tags,
            manifests,
            uploads,
        })
    }

    /// Removes `repo` (its tags, manifests, blob links and uploads) and
    /// returns what it held. Blobs stay for garbage collection.
    pub async fn delete_repository(&self, repo: &RepoName) -> Result<Contents> {
        let contents = self.repository_contents(repo).await?;
        self.seen.forget(Some(repo.as_str()), None);
        if !self.driver.atomic_directory_moves() {
            self.delete_repository_keys(repo).await?;
            return Ok(contents);
        }
        self.sweep_repository_trash().await?;
        let trash = format!("{}/{}", paths::repository_trash(), random_id());
        for part in paths::REPOSITORY_PARTS {
            let from = format!("{}/{part}", paths::repo(repo));
            optional(self.driver.move_to(from, format!("{trash}/{part}")).await)?;
        }
        self.remove(trash).await?;
        // The directory itself, and parents left empty, unless something
        // (a nested repository, a push meanwhile) lives there.
        let mut dir = paths::repo(repo);
        while dir != paths::repositories() && self.driver.remove_empty_dir(dir.clone()).await? {
            dir.truncate(dir.rfind('/').unwrap_or(0));
        }
        Ok(contents)
    }

    /// Removal without directory moves (a bucket): the tags first, so pulls
    /// by tag fail at once and the catalog, which lists repositories with
    /// `_manifests` or `_layers`, drops the name only when both are gone.
    /// Interrupted, it leaves a repository partly removed, never a tag that
    /// names a removed manifest; deleting again finishes it.
    async fn delete_repository_keys(&self, repo: &RepoName) -> Result<()> {
        let base = paths::repo(repo);
        self.remove(format!("{base}/_manifests/tags")).await?;
        for part in paths::REPOSITORY_PARTS {
            self.remove(format!("{base}/{part}")).await?;
        }
        Ok(())
    }

    /// Removes what interrupted repository deletes left in `_trash/`:
    /// already out of sight, so removing it again is always safe.
    /// Returns the entries removed.
    pub async fn sweep_repository_trash(&self) -> Result<Vec<String>> {
        let mut removed = vec![];
        for id in self.list(paths::repository_trash()).await? {
            let entry = format!("{}/{id}", paths::repository_trash());
            if self.remove(entry.clone()).await? {
                removed.push(entry);
            }
        }
        Ok(removed)
    }
}
