//! Moves and touches, which a bucket can only do by copying on the server:
//! one `CopyObject` up to `multipartcopythresholdsize`, above it a multipart
//! upload of `UploadPartCopy` ranges, `multipartcopymaxconcurrency` at once
//! (a single copy is limited to 5 GiB and slow for large objects on AWS).

use super::S3Driver;
use super::appendable::{Found, parts_of};
use super::client::{error, other};
use crate::storage::driver::DriverError;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::time::SystemTime;

const MIN_PART: u64 = 5 << 20;

/// `CopySource` is `bucket/key`, percent-encoded.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in format!("{bucket}/{key}").bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Driver {
    /// Moves an object (an upload being appended to is completed first) or
    /// every object under a directory. Onto a directory holding something
    /// it fails, as the trait asks, without changing anything.
    pub(super) async fn move_any(&self, from: &str, to: &str) -> Result<(), DriverError> {
        match self.head(from).await {
            Ok((info, false)) => {
                self.copy(from, to, info.size).await?;
                self.delete_keys(&[from.to_string()]).await
            }
            Ok((_, true)) => self.move_appended(from, to).await,
            Err(DriverError::NotFound(_)) => self.move_directory(from, to).await,
            Err(e) => Err(e),
        }
    }

    async fn move_appended(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let Found::State(state) = self.load(from).await? else {
            return Err(DriverError::NotFound(from.to_string()));
        };
        if state.current.parts.is_empty() {
            // Small: written straight into place.
            self.put_plain(to, state.current.tail.clone()).await?;
            // An upload whose parts an undone append dropped still exists.
            if state.upload_id.is_some() {
                self.abort_uploads(from).await?;
            }
            return self.delete_keys(&[from.to_string()]).await;
        }
        let size = self.seal(from, state).await?;
        let sealed = parts_of(from);
        self.copy(&sealed, to, size).await?;
        self.delete_keys(&[from.to_string(), sealed]).await
    }

    async fn move_directory(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let keys = self.keys_under(from).await?;
        if keys.is_empty() {
            return Err(DriverError::NotFound(from.to_string()));
        }
        if !self.keys_under(to).await?.is_empty() {
            return Err(DriverError::Io {
                path: to.to_string(),
                source: std::io::Error::from(std::io::ErrorKind::DirectoryNotEmpty),
            });
        }
        for k in &keys {
            let rest = &k[from.len()..];
            let (info, _) = self.head(k).await?;
            self.copy(k, &format!("{to}{rest}"), info.size).await?;
        }
        self.delete_keys(&keys).await
    }

    /// Server-side copy of a whole object.
    pub(super) async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), DriverError> {
        // Parts below 5 MiB are not S3 (and Garage refuses tiny copy sources).
        if size > self.copy_threshold.max(MIN_PART) {
            return self.multipart_copy(from, to, size).await;
        }
        // The copy is written anew: it asks for the class and encryption
        // every write asks for (a copy does not keep KMS encryption).
        let o = self.write_options();
        let req = self
            .client
            .copy_object()
            .bucket(&*self.bucket)
            .key(self.key(to))
            .copy_source(copy_source(&self.bucket, &self.key(from)))
            .set_storage_class(o.class)
            .set_server_side_encryption(o.sse)
            .set_ssekms_key_id(o.kms_key);
        req.send().await.map_err(|e| error("CopyObject", from, e))?;
        Ok(())
    }

    async fn multipart_copy(&self, from: &str, to: &str, size: u64) -> Result<(), DriverError> {
        let upload_id = self.create_upload(to).await?;
        match self.copy_parts(from, to, size, &upload_id).await {
            Ok(parts) => {
                let done = CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build();
                self.client
                    .complete_multipart_upload()
                    .bucket(&*self.bucket)
                    .key(self.key(to))
                    .upload_id(&upload_id)
                    .multipart_upload(done)
                    .send()
                    .await
                    .map_err(|e| error("CompleteMultipartUpload", to, e))?;
                Ok(())
            }
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&*self.bucket)
                    .key(self.key(to))
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn copy_parts(
        &self,
        from: &str,
        to: &str,
        size: u64,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, DriverError> {
        let chunk = self.copy_chunk_size;
        let ranges: Vec<(i32, u64, u64)> = (0..size.div_ceil(chunk))
            .map(|i| (i as i32 + 1, i * chunk, ((i + 1) * chunk).min(size) - 1))
            .collect();
        let source = copy_source(&self.bucket, &self.key(from));
        let mut parts = Vec::with_capacity(ranges.len());
        let mut tasks = tokio::task::JoinSet::new();
        let mut queued = ranges.into_iter();
        loop {
            while tasks.len() < self.copy_concurrency {
                let Some((n, first, last)) = queued.next() else {
                    break;
                };
                let req = self
                    .client
                    .upload_part_copy()
                    .bucket(&*self.bucket)
                    .key(self.key(to))
                    .upload_id(upload_id)
                    .part_number(n)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={first}-{last}"));
                let to = to.to_string();
                tasks.spawn(async move {
                    let out = req
                        .send()
                        .await
                        .map_err(|e| error("UploadPartCopy", &to, e))?;
                    let etag = out
                        .copy_part_result()
                        .and_then(|r| r.e_tag())
                        .ok_or_else(|| other(&to, "UploadPartCopy: no ETag"))?;
                    Ok::<_, DriverError>(
                        CompletedPart::builder().part_number(n).e_tag(etag).build(),
                    )
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            parts.push(done.map_err(|e| other(to, e.to_string()))??);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// Records a reference to an existing object: a small mark object of
    /// its own (`<rootdirectory>/private-registry/touched/<path>`, outside
    /// distribution's tree), since changing the object's own time would copy
    /// it, gigabytes for a large blob. The mark is written first and the
    /// object checked after, so a touch that succeeds was visible before
    /// anything that could remove the object next looks.
    pub(super) async fn refresh(&self, path: &str) -> Result<(), DriverError> {
        self.put_plain(&mark(path), bytes::Bytes::new()).await?;
        self.head(path).await.map(drop)
    }

    /// The later of an object's own time and its last touch.
    pub(super) async fn referenced(&self, path: &str) -> Result<SystemTime, DriverError> {
        let marked = mark(path);
        let (own, touched) = tokio::join!(self.head(path), self.head(&marked));
        let time = |r: Result<(crate::storage::driver::FileInfo, bool), DriverError>| match r {
            Ok((info, _)) => Ok(Some(info.modified)),
            Err(DriverError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        match (time(own)?, time(touched)?) {
            (None, None) => Err(DriverError::NotFound(path.to_string())),
            (a, b) => Ok(a.max(b).expect("one is known") + STAMP_RESOLUTION),
        }
    }
}

/// S3 time stamps are HTTP dates, whole seconds: a write may have come up to
/// a second after the time shown. Garbage collection must assume the latest,
/// or a one-second grace period would be none at all (`tests/gc` lost a
/// layer touched 0.9 s before a collection's cutoff and shown 1.9 s before).
const STAMP_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the touches of `path` are recorded.
pub(super) fn mark(path: &str) -> String {
    format!("{MARKS}/{path}")
}

/// Outside distribution's `docker/registry/v2`, so its tools never see marks.
pub(super) const MARKS: &str = "private-registry/touched";

#[cfg(test)]
mod tests {
    #[test]
    fn copy_sources_are_percent_encoded() {
        assert_eq!(
            super::copy_source("b", "r/docker/registry/v2/repositories/a b/_layers:x"),
            "b/r/docker/registry/v2/repositories/a%20b/_layers%3Ax"
        );
    }
}
