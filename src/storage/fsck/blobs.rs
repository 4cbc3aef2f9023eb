//! Blobs re-hashed as they stream from storage, so memory stays flat
//! however large a layer is; corrupt ones moved aside under `--repair`.

use super::super::{Registry, Result, error::optional, paths, tags::random_id};
use super::Check;
use crate::digest::Digest;
use tokio::io::AsyncReadExt;

impl Registry {
    /// The digest of the stored bytes of `d` and their length; `None` if
    /// the blob is gone (collected meanwhile).
    async fn hash_blob(&self, d: &Digest) -> Result<Option<(Digest, u64)>> {
        let Some(mut r) = optional(self.driver.reader(paths::blob_data(d), 0).await)? else {
            return Ok(None);
        };
        let mut h = d.algorithm().hasher();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = r
                .read(&mut buf)
                .await
                .map_err(|e| super::super::driver::DriverError::io(&paths::blob_data(d), e))?;
            if n == 0 {
                return Ok(Some((h.finish(), size)));
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
    }

    /// Moves a blob's directory out of the blob store (one rename) into
    /// `_corrupt/`; returns where, or `None` if it was gone.
    async fn set_corrupt_aside(&self, d: &Digest) -> Result<Option<String>> {
        let to = paths::corrupt_entry(d, &random_id());
        let moved = self.driver.move_to(paths::blob_dir(d), to.clone()).await;
        Ok(optional(moved)?.map(|()| to))
    }
}

impl Check<'_> {
    pub(super) async fn blobs(&mut self) -> Result<()> {
        for d in self.reg.stored_blobs().await? {
            let Some((actual, size)) = self.reg.hash_blob(&d).await? else {
                continue;
            };
            self.report.blobs += 1;
            if actual == d {
                self.intact.insert(d);
                continue;
            }
            let repaired = if self.repair {
                self.reg
                    .set_corrupt_aside(&d)
                    .await?
                    .map(|to| format!("moved aside to {to}"))
            } else {
                None
            };
            let problem = format!("corrupt blob: its {size} bytes hash to {actual}");
            self.problem(paths::blob_data(&d), Some(&d), problem, repaired);
            self.corrupt.insert(d);
        }
        Ok(())
    }
}
