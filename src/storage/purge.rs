//! Upload purging (`storage.maintenance.uploadpurging`, distribution's
//! semantics): uploads started longer ago than the configured age are
//! abandoned, so clients that vanish mid-push do not fill the disk.

use super::{Registry, Result, paths};
use crate::names::RepoName;
use std::time::SystemTime;

/// An upload found to be stale.
pub struct Stale {
    pub repo: String,
    pub id: String,
}

impl Registry {
    /// Removes every upload started before `cutoff` (or only lists them with
    /// `dry_run`). An upload without a readable start time counts as stale:
    /// ours write it first, so only a crash leaves one without.
    pub async fn purge_uploads(&self, cutoff: SystemTime, dry_run: bool) -> Result<Vec<Stale>> {
        let mut stale = vec![];
        for name in self.names_with_uploads().await? {
            let Some(repo) = RepoName::parse(&name) else {
                continue;
            };
            for id in self.list(paths::uploads(&repo)).await? {
                if self.started(&repo, &id).await.is_some_and(|t| t >= cutoff) {
                    continue;
                }
                if !dry_run {
                    self.discard_upload(&repo, &id).await?;
                }
                stale.push(Stale {
                    repo: name.clone(),
                    id,
                });
            }
        }
        Ok(stale)
    }

    /// Every repository directory holding `_uploads`: a push that never got
    /// as far as a layer or manifest leaves a repository the catalog does not
    /// list, and its uploads must go too.
    pub(super) async fn names_with_uploads(&self) -> Result<Vec<String>> {
        let mut found = vec![];
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = match prefix.as_str() {
                "" => paths::repositories(),
                p => format!("{}/{p}", paths::repositories()),
            };
            for child in self.list(dir).await? {
                if child == "_uploads" && !prefix.is_empty() {
                    found.push(prefix.clone());
                } else if !child.starts_with(['_', '.']) {
                    stack.push(if prefix.is_empty() {
                        child
                    } else {
                        format!("{prefix}/{child}")
                    });
                }
            }
        }
        Ok(found)
    }

    async fn started(&self, repo: &RepoName, id: &str) -> Option<SystemTime> {
        let bytes = self
            .driver
            .get_content(paths::upload_started(repo, id))
            .await
            .ok()?;
        crate::timefmt::parse_rfc3339(std::str::from_utf8(&bytes).ok()?.trim())
    }
}
