//! Tags: `_manifests/tags/<tag>/current/link` names the manifest; the
//! `index/` beside it records every digest the tag has pointed at, as
//! distribution keeps it.

use super::{Registry, Result, StorageError, error, paths};
use crate::digest::Digest;
use crate::names::{RepoName, Tag};
use std::time::SystemTime;

pub(super) fn random_id() -> String {
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).expect("system random source");
    crate::digest::to_hex(&rnd)
}

impl Registry {
    /// Points `t` at `d`. An existing tag is repointed by replacing its
    /// current link atomically. A new tag is assembled in a staging directory
    /// and renamed into `tags/` whole, so a crash never leaves a tag that is
    /// listed but does not resolve.
    ///
    /// A store without atomic directory moves (a bucket, where a tag is
    /// only its keys) needs no staging: the current link is one key, and the
    /// tag exists once it is written; the history entry follows.
    pub async fn tag(&self, repo: &RepoName, t: &Tag, d: &Digest) -> Result<()> {
        if self.driver.atomic_directory_moves() && !self.exists(paths::tag_current(repo, t)).await?
        {
            let staging = paths::staging(repo, &random_id());
            self.write_link(
                format!("{staging}/index/{}/{}/link", d.algorithm().name(), d.hex()),
                d,
            )
            .await?;
            self.write_link(format!("{staging}/current/link"), d)
                .await?;
            let moved = self
                .driver
                .move_to(staging.clone(), paths::tag(repo, t))
                .await;
            if moved.is_ok() {
                return Ok(());
            }
            // Another push created the tag meanwhile (or left an empty one): repoint it instead.
            self.remove(staging).await?;
        }
        self.write_link(paths::tag_current(repo, t), d).await?;
        self.write_link(paths::tag_index(repo, t, d), d).await
    }

    /// All tags of a repository, sorted. Fails with `NameUnknown` if the
    /// repository does not exist.
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<Tag>> {
        if !self.is_repository(repo).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        let mut tags: Vec<Tag> = self
            .list(paths::tags(repo))
            .await?
            .iter()
            .filter_map(|n| Tag::parse(n))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// When `t` was last pushed, `None` if it is not a tag. Distribution's
    /// layout records no push time, but every push of a tag rewrites its
    /// current link (even to the same digest), so the link's modification
    /// time is the last push.
    pub async fn tag_pushed(&self, repo: &RepoName, t: &Tag) -> Result<Option<SystemTime>> {
        let info = error::optional(self.driver.stat(paths::tag_current(repo, t)).await)?;
        Ok(info.map(|i| i.modified))
    }

    /// Removes a tag, leaving the manifest it named in place.
    pub async fn delete_tag(&self, repo: &RepoName, t: &Tag) -> Result<()> {
        if !self.exists(paths::tag_current(repo, t)).await? {
            return Err(StorageError::ManifestUnknown(t.to_string()));
        }
        self.untag(repo, t).await
    }

    /// Moves the tag directory out of `tags/` with one atomic rename, then
    /// removes it, so a crash never leaves a half-deleted tag listed.
    ///
    /// In a bucket the history goes first and the current link last: until
    /// then the tag still resolves, and its removal takes the tag's last key.
    pub(super) async fn untag(&self, repo: &RepoName, t: &Tag) -> Result<()> {
        if !self.driver.atomic_directory_moves() {
            self.remove(format!("{}/index", paths::tag(repo, t)))
                .await?;
            self.remove_link(paths::tag_current(repo, t)).await?;
            return Ok(());
        }
        let trash = paths::trash(repo, &random_id());
        self.driver
            .move_to(paths::tag(repo, t), trash.clone())
            .await?;
        self.remove(trash).await?;
        Ok(())
    }
}
