//! Uploads a crash left half-completed (see `storage::uploads`): verified,
//! recorded and moved into the blob store, then not linked into their
//! repository, or linked and not removed. An upload still holding its data
//! is its client's to resume (or upload purging's to remove), not a problem.

use super::super::{
    Result, StorageError, error::optional, paths, uploads::Stage, uploads::Verified,
};
use super::Check;
use crate::names::RepoName;

impl Check<'_> {
    pub(super) async fn uploads(&mut self) -> Result<()> {
        for name in self.reg.names_with_uploads().await? {
            let Some(repo) = RepoName::parse(&name) else {
                continue;
            };
            for id in self.reg.list(paths::uploads(&repo)).await? {
                self.upload(&repo, &id).await?;
            }
        }
        Ok(())
    }

    /// Uploads changed within the grace period (the directory's time moves
    /// when its data leaves) may be a PUT in progress: left alone.
    async fn upload(&mut self, repo: &RepoName, id: &str) -> Result<()> {
        let dir = paths::upload(repo, id);
        let changed = optional(self.reg.driver.changed(dir.clone()).await)?;
        if changed.is_none_or(|t| t >= self.cutoff) {
            return Ok(());
        }
        let stage = match self.reg.upload_stage(repo, id).await {
            // Not an id an upload can have: not ours to judge.
            Err(StorageError::UploadUnknown(_)) => return Ok(()),
            r => r?,
        };
        match stage {
            Stage::Open(_) | Stage::Verified(_) => Ok(()),
            Stage::Completed(v) => self.completed_upload(repo, id, dir, v).await,
            Stage::Lost(v) => {
                let problem = match &v {
                    Some(_) => "completed upload whose blob is no longer stored: nothing to link",
                    None => {
                        "upload without data (an interrupted start or removal): nothing to resume"
                    }
                };
                let fixed = self.remove_upload(repo, id).await?;
                self.problem(dir, v.as_ref().map(|v| &v.digest), problem.into(), fixed);
                Ok(())
            }
        }
    }

    /// The upload's own record says its data is this stored blob: the
    /// repository gets the link the interrupted PUT was about to write (the
    /// blob touched first, as any new reference does), then the upload goes.
    async fn completed_upload(
        &mut self,
        repo: &RepoName,
        id: &str,
        dir: String,
        v: Verified,
    ) -> Result<()> {
        let d = &v.digest;
        if self.reg.exists(paths::layer_link(repo, d)).await? {
            let fixed = self.remove_upload(repo, id).await?;
            let problem =
                "completed upload left behind: its blob is linked, the upload was not removed";
            self.problem(dir, Some(d), problem.into(), fixed);
            return Ok(());
        }
        let fixed = if self.repair && self.blob_ok(d).await? && self.reg.refresh_blob(d).await? {
            self.reg.link_layer(repo, d).await?;
            self.reg.discard_upload(repo, id).await?;
            Some("blob linked into the repository, upload removed".to_string())
        } else {
            None
        };
        let problem = "completed upload never linked: the upload's data became this blob, but the repository has no link to it";
        self.problem(dir, Some(d), problem.into(), fixed);
        Ok(())
    }

    async fn remove_upload(&self, repo: &RepoName, id: &str) -> Result<Option<String>> {
        if !self.repair {
            return Ok(None);
        }
        self.reg.discard_upload(repo, id).await?;
        Ok(Some("upload removed".to_string()))
    }
}
