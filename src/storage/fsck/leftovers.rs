//! What interrupted operations leave behind, none of it visible to clients:
//! blobs and revisions a killed collection set aside (put back, as the next
//! collection would), a killed repository delete's `_trash/`, a killed tag
//! operation's staging or trash directory, and temporary files of a write
//! that never got renamed into place.

use super::super::{Result, error::optional, paths};
use super::Check;
use crate::names::RepoName;

/// Directories whose files belong to something else's lifecycle: uploads
/// (purged by age), corrupt blobs kept for the operator.
const NOT_WALKED: [&str; 2] = ["_uploads", "_corrupt"];

impl Check<'_> {
    /// Reports (and with repair puts back) what a collection set aside and
    /// did not finish with. Putting back is the collection protocol's own
    /// recovery, safe beside a running collection.
    pub(super) async fn collection_leftovers(&mut self) -> Result<()> {
        let what = "set aside by an interrupted garbage collection";
        for name in self.reg.list(paths::quarantine()).await? {
            let fixed = self.repair.then(|| "put back".to_string());
            self.problem(
                format!("{}/{name}", paths::quarantine()),
                None,
                what.into(),
                fixed,
            );
        }
        if self.repair {
            self.reg.recover_quarantine().await?;
        }
        for repo in self.reg.all_repositories().await? {
            for (d, aside) in self.reg.revisions_aside(&repo).await? {
                let fixed = if self.repair {
                    self.reg.put_revision_back(&repo, &d, &aside).await?;
                    Some("put back".to_string())
                } else {
                    None
                };
                self.problem(aside, Some(&d), what.into(), fixed);
            }
        }
        Ok(())
    }

    /// A repository delete moves everything to `_trash/` before removing it.
    pub(super) async fn repository_trash(&mut self) -> Result<()> {
        let dir = paths::repository_trash();
        for id in self.reg.list(dir.clone()).await? {
            let path = format!("{dir}/{id}");
            let fixed = if self.repair && self.reg.remove(path.clone()).await? {
                Some("removed".to_string())
            } else {
                None
            };
            let what = "left by an interrupted repository delete".to_string();
            self.problem(path, None, what, fixed);
        }
        Ok(())
    }

    /// A tag is assembled in `_manifests/_staging/` and deleted through
    /// `_manifests/_trash/`; entries older than the grace period are leftovers.
    pub(super) async fn tag_leftovers(&mut self, repo: &RepoName) -> Result<()> {
        for dir in ["_staging", "_trash"] {
            let dir = format!("{}/_manifests/{dir}", paths::repo(repo));
            for id in self.reg.list(dir.clone()).await? {
                self.stale(
                    format!("{dir}/{id}"),
                    "left by an interrupted tag operation",
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Temporary files (`.<name>.tmp-<random>`) anywhere but in uploads.
    pub(super) async fn temporary_files(&mut self) -> Result<()> {
        let mut stack = vec![paths::ROOT.to_string()];
        while let Some(dir) = stack.pop() {
            // A file listed as a directory fails; only directories have
            // names other than these.
            let children = match self.reg.driver.list(dir.clone()).await {
                Ok(c) => c,
                Err(_) => continue,
            };
            for c in children {
                let path = format!("{dir}/{c}");
                if c.starts_with('.') && c.contains(".tmp-") {
                    self.stale(path, "temporary file of an interrupted write")
                        .await?;
                } else if !matches!(c.as_str(), "data" | "link" | "startedat")
                    && !NOT_WALKED.contains(&c.as_str())
                {
                    stack.push(path);
                }
            }
        }
        Ok(())
    }

    /// Reports `path` if it was last modified before the grace period;
    /// repair removes it.
    async fn stale(&mut self, path: String, what: &str) -> Result<()> {
        let changed = optional(self.reg.driver.changed(path.clone()).await)?;
        if changed.is_none_or(|t| t >= self.cutoff) {
            return Ok(());
        }
        let fixed = if self.repair && self.reg.remove(path.clone()).await? {
            Some("removed".to_string())
        } else {
            None
        };
        self.problem(path, None, what.to_string(), fixed);
        Ok(())
    }
}
