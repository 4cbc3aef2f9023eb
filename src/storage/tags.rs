//! Tags: `_manifests/tags/<tag>/current/link` names the manifest; the
//! `index/` beside it records every digest the tag has pointed at, as
//! distribution keeps it.

use super::{Registry, Result, StorageError, paths};
use crate::digest::Digest;
use crate::names::{RepoName, Tag};

impl Registry {
    /// Points `t` at `d`. The current link is the commit point; the index
    /// entry after it is bookkeeping distribution reads.
    pub async fn tag(&self, repo: &RepoName, t: &Tag, d: &Digest) -> Result<()> {
        self.write_link(paths::tag_current(repo, t), d).await?;
        self.write_link(paths::tag_index(repo, t, d), d).await
    }

    /// All tags of a repository, sorted. Fails with `NameUnknown` if the
    /// repository does not exist.
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<Tag>> {
        if !self.exists(paths::repo(repo)).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        // Entries that are not valid tag names are ours mid-delete (hidden names).
        let mut tags: Vec<Tag> = self
            .list(paths::tags(repo))
            .await?
            .iter()
            .filter_map(|n| Tag::parse(n))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Removes a tag, leaving the manifest it named in place.
    pub async fn delete_tag(&self, repo: &RepoName, t: &Tag) -> Result<()> {
        if !self.exists(paths::tag_current(repo, t)).await? {
            return Err(StorageError::ManifestUnknown(t.to_string()));
        }
        self.untag(repo, t).await
    }

    /// Hides the tag directory with one atomic rename, then removes it, so a
    /// crash never leaves a half-deleted tag listed.
    pub(super) async fn untag(&self, repo: &RepoName, t: &Tag) -> Result<()> {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).expect("system random source");
        let hidden = format!(
            "{}/.deleted-{}",
            paths::tags(repo),
            crate::digest::to_hex(&rnd)
        );
        self.driver
            .move_to(paths::tag(repo, t), hidden.clone())
            .await?;
        self.remove(hidden).await?;
        Ok(())
    }
}
