//! What garbage collection needs from storage: an inventory (repositories,
//! revisions, tags, stored blobs, with modification times) and removals that
//! re-check a blob's modification time immediately before deleting it. The
//! policy (what to keep, the grace period) lives in `crate::gc`.

use super::driver::DriverError;
use super::{Registry, Result, StorageError, error::optional, paths};
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
            if let Some(modified) = optional(self.driver.last_referenced(link).await)? {
                out.push(Revision { digest, modified });
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
        let mut out = vec![];
        for dir in self.blob_store_dirs().await? {
            out.extend(self.stored_blobs_in(&dir).await?);
        }
        Ok(out)
    }

    /// The blob store's `<algorithm>/<prefix>` directories, so a caller can
    /// walk it one directory (a 256th of it) at a time.
    pub async fn blob_store_dirs(&self) -> Result<Vec<String>> {
        let dir = format!("{}/blobs", paths::ROOT);
        let mut out = vec![];
        for alg in self.list(dir.clone()).await? {
            for prefix in self.list(format!("{dir}/{alg}")).await? {
                out.push(format!("{dir}/{alg}/{prefix}"));
            }
        }
        Ok(out)
    }

    /// The digests with bytes in one of [`Self::blob_store_dirs`].
    pub async fn stored_blobs_in(&self, dir: &str) -> Result<Vec<Digest>> {
        let Some(alg) = dir.rsplit('/').nth(1) else {
            return Ok(vec![]);
        };
        let mut out = vec![];
        for hex in self.list(dir.to_string()).await? {
            if let Ok(d) = format!("{alg}:{hex}").parse::<Digest>()
                && paths::blob_data(&d) == format!("{dir}/{hex}/data")
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// When a blob was last written or referenced; `None` if it is not stored.
    pub async fn blob_modified(&self, d: &Digest) -> Result<Option<SystemTime>> {
        optional(self.driver.last_referenced(paths::blob_data(d)).await)
    }

    /// Removes a blob's bytes if they were last modified before `cutoff`.
    /// The blob's directory is first moved aside in one rename and its time
    /// read again there: a request that touched it before the rename shows up
    /// (and the blob is put back); one after the rename finds it gone and
    /// fails as unknown. Returns whether it removed the bytes; a blob already
    /// gone (another collection) is not an error.
    pub async fn delete_blob_if_older(&self, d: &Digest, cutoff: SystemTime) -> Result<bool> {
        match self.blob_modified(d).await? {
            Some(m) if m < cutoff => {}
            _ => return Ok(false),
        }
        if !self.driver.atomic_directory_moves() {
            return self.condemn_blob_if_older(d, cutoff).await;
        }
        let aside = paths::quarantine_entry(d, &super::tags::random_id());
        let moved = self.driver.move_to(paths::blob_dir(d), aside.clone()).await;
        if optional(moved)?.is_none() {
            return Ok(false);
        }
        let modified = optional(self.driver.stat(format!("{aside}/data")).await)?;
        match modified {
            // Put back meanwhile by another collection's recovery.
            None => Ok(false),
            Some(i) if i.modified >= cutoff => {
                self.put_back(&aside, d).await?;
                Ok(false)
            }
            Some(_) => self.remove(aside).await,
        }
    }

    /// Moves a blob set aside back into place. If it is already back (pushed
    /// again, or put back by another collection) the copy aside goes.
    async fn put_back(&self, aside: &str, d: &Digest) -> Result<()> {
        match self
            .driver
            .move_to(aside.to_string(), paths::blob_dir(d))
            .await
        {
            Ok(()) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => {
                if self.stored_blob_size(d).await?.is_some() {
                    self.remove(aside.to_string()).await?;
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// Puts back every blob a collection set aside and did not finish with
    /// (it was killed in between); a collection decides about it afresh.
    /// Returns how many it put back.
    pub async fn recover_quarantine(&self) -> Result<usize> {
        if !self.driver.atomic_directory_moves() {
            return self.clear_stale_condemnations().await;
        }
        let mut n = 0;
        for name in self.list(paths::quarantine()).await? {
            let mut parts = name.splitn(3, '-');
            let (Some(alg), Some(hex)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(d) = format!("{alg}:{hex}").parse::<Digest>() else {
                continue;
            };
            let aside = format!("{}/{name}", paths::quarantine());
            if paths::quarantine_entry(&d, parts.next().unwrap_or("")) == aside {
                self.put_back(&aside, &d).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// When a revision's link was last written or touched; `None` if absent.
    pub async fn revision_modified(
        &self,
        repo: &RepoName,
        d: &Digest,
    ) -> Result<Option<SystemTime>> {
        let link = paths::revision_link(repo, d);
        optional(self.driver.last_referenced(link).await)
    }

    /// Touches a revision's link, as a reference to it does; false if absent.
    pub async fn refresh_revision(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        let link = paths::revision_link(repo, d);
        Ok(optional(self.driver.touch(link).await)?.is_some())
    }

    /// Moves a revision aside in one rename and returns when its link was
    /// last touched, read there: a request that touched it before the move
    /// shows up; one after it finds the revision gone. `None` if it was
    /// already gone. The caller then puts it back or discards it.
    pub async fn set_revision_aside(
        &self,
        repo: &RepoName,
        d: &Digest,
    ) -> Result<Option<(String, Option<SystemTime>)>> {
        let aside = paths::revision_quarantine_entry(repo, d, &super::tags::random_id());
        if !self.driver.atomic_directory_moves() {
            return self.copy_revision_aside(repo, d, aside).await;
        }
        if !self.move_revision(repo, d, &aside).await? {
            return Ok(None);
        }
        let info = optional(self.driver.stat(format!("{aside}/link")).await)?;
        Ok(Some((aside, info.map(|i| i.modified))))
    }

    /// Moves a revision to `aside` (see [`Self::revision_places`]); false if
    /// it was gone.
    async fn move_revision(&self, repo: &RepoName, d: &Digest, aside: &str) -> Result<bool> {
        let (home, away) = self.revision_places(repo, d, aside);
        let moved = self.driver.move_to(home, away).await;
        Ok(optional(moved)?.is_some())
    }

    /// Where a revision is moved from and to when set aside. Where a
    /// directory move is a copy and a delete, only its link moves: the
    /// directory's keys would be found by listing, and a bucket may list as
    /// before a write or delete of a moment ago (Garage did, in the driver
    /// suite), which would leave a revision aside that should be back.
    fn revision_places(&self, repo: &RepoName, d: &Digest, aside: &str) -> (String, String) {
        if self.driver.atomic_directory_moves() {
            (paths::revision_dir(repo, d), aside.to_string())
        } else {
            (paths::revision_link(repo, d), format!("{aside}/link"))
        }
    }

    /// [`Self::set_revision_aside`] where a move is a copy and a delete: the
    /// copy's time is new, so the last reference is read at the revision's
    /// own path, before the move and after it (a touch keeps its mark
    /// there). A touch before the delete shows; one after finds the link gone.
    async fn copy_revision_aside(
        &self,
        repo: &RepoName,
        d: &Digest,
        aside: String,
    ) -> Result<Option<(String, Option<SystemTime>)>> {
        let link = paths::revision_link(repo, d);
        let before = optional(self.driver.last_referenced(link.clone()).await)?;
        if !self.move_revision(repo, d, &aside).await? {
            return Ok(None);
        }
        let after = optional(self.driver.last_referenced(link).await)?;
        Ok(Some((aside, before.max(after))))
    }

    /// Moves a revision set aside back; if it is back already, the copy aside goes.
    pub async fn put_revision_back(&self, repo: &RepoName, d: &Digest, aside: &str) -> Result<()> {
        let (home, away) = self.revision_places(repo, d, aside);
        match self.driver.move_to(away, home).await {
            Ok(()) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => {
                if self.revision_modified(repo, d).await?.is_some() {
                    self.remove(aside.to_string()).await?;
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// Deletes a revision set aside, with its entry in our referrers index.
    /// Returns false if it was no longer there (put back by another collection).
    pub async fn discard_revision(
        &self,
        repo: &RepoName,
        d: &Digest,
        aside: String,
        subject: Option<&Digest>,
    ) -> Result<bool> {
        self.seen.forget(Some(repo.as_str()), Some(d));
        if !self.remove(aside).await? {
            return Ok(false);
        }
        if let Some(s) = subject {
            self.remove_link_unless_rewritten(paths::referrer_link(repo, s, d))
                .await?;
        }
        Ok(true)
    }

    /// Revisions of `repo` another collection has set aside right now.
    pub async fn revisions_aside(&self, repo: &RepoName) -> Result<Vec<(Digest, String)>> {
        let dir = paths::revision_quarantine(repo);
        let mut out = vec![];
        for name in self.list(dir.clone()).await? {
            let mut parts = name.splitn(3, '-');
            let (Some(alg), Some(hex), Some(id)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Ok(d) = format!("{alg}:{hex}").parse::<Digest>()
                && paths::revision_quarantine_entry(repo, &d, id) == format!("{dir}/{name}")
            {
                out.push((d, format!("{dir}/{name}")));
            }
        }
        Ok(out)
    }

    /// Removes a link the daemon may be writing again at this moment (it
    /// touched what the link names first, so that is back and the link
    /// stays): a directory that gained a file during the removal is left.
    /// Returns whether the link was removed.
    async fn remove_link_unless_rewritten(&self, link: String) -> Result<bool> {
        match self.remove_link(link).await {
            Err(StorageError::Driver(DriverError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::DirectoryNotEmpty =>
            {
                Ok(false)
            }
            r => r,
        }
    }

    /// Whether a blob's bytes are gone for good: not stored, and not set
    /// aside by a collection (which may yet put them back). Checked in that
    /// order, so a blob put back in between is seen as stored by whoever
    /// then re-checks (see [`Self::unlink_unless_back`]).
    pub async fn blob_gone(&self, d: &Digest) -> Result<bool> {
        Ok(self.stored_blob_size(d).await?.is_none() && !self.blob_aside(d).await?)
    }

    /// Whether a collection has `d` set aside right now.
    pub async fn blob_aside(&self, d: &Digest) -> Result<bool> {
        let prefix = format!("{}-{}-", d.algorithm().name(), d.hex());
        let names = self.list(paths::quarantine()).await?;
        Ok(names.iter().any(|n| n.starts_with(&prefix)))
    }

    /// Removes a link naming `d`, whose bytes are gone. If the bytes are
    /// back by then (pushed again meanwhile, which links after storing), the
    /// link is written again. Returns whether it was removed for good.
    pub async fn unlink_unless_back(&self, link: String, d: &Digest) -> Result<bool> {
        self.seen.forget(None, Some(d));
        if !self.driver.atomic_directory_moves() {
            return self.unlink_if_still_gone(link, d).await;
        }
        if !self.remove_link_unless_rewritten(link.clone()).await? {
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

    /// Every link of `repo` that names a blob without being what keeps it:
    /// `_layers`, the tags' history (`index/`) and our referrers index,
    /// each with the digest it names.
    pub async fn blob_links(&self, repo: &RepoName) -> Result<Vec<(String, Digest)>> {
        let mut out: Vec<(String, Digest)> = self
            .layer_links(repo)
            .await?
            .into_iter()
            .map(|d| (paths::layer_link(repo, &d), d))
            .collect();
        for name in self.list(paths::tags(repo)).await? {
            let Some(t) = Tag::parse(&name) else { continue };
            let index = format!("{}/index", paths::tag(repo, &t));
            for d in self.list_digests(&index).await? {
                out.push((paths::tag_index(repo, &t, &d), d));
            }
        }
        let referrers = format!("{}/_manifests/_referrers", paths::repo(repo));
        for subject in self.list_digests(&referrers).await? {
            let dir = paths::referrers(repo, &subject);
            for r in self.list_digests(&dir).await? {
                out.push((paths::referrer_link(repo, &subject, &r), r));
            }
        }
        Ok(out)
    }
}
