//! S3 driver: objects in a bucket under `<rootdirectory>/`, keyed exactly as
//! distribution's S3 driver keys them, so either program serves the other's
//! bucket. Built on the AWS SDK (signing, retries with back-off, timeouts,
//! pooled connections); tested against Garage.
//!
//! A bucket has no directories and no rename: a "directory" is a key
//! prefix, listed with a delimiter; a move is a server-side copy and a
//! delete, so moving a whole directory is not atomic here. The layers above
//! ask [`StorageDriver::atomic_directory_moves`] and do without it.

mod appendable;
pub mod client;
mod copy;
#[cfg(test)]
mod fixture;
mod recent;

use super::{BoxReader, DriverError, DriverFuture, FileInfo, FileWriter, StorageDriver};
use appendable::{Found, MARK, SIZE, Writer};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
pub use client::Settings;
use client::{error, other};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a redirect to the store stays valid (distribution: 20 minutes).
const PRESIGN_TTL: Duration = Duration::from_secs(20 * 60);
/// Listings run at once by `list_many`.
const LIST_CONCURRENCY: usize = 16;

/// See [`S3Driver::write_options`].
struct WriteOptions {
    class: Option<aws_sdk_s3::types::StorageClass>,
    sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
    kms_key: Option<String>,
}

#[derive(Clone)]
pub struct S3Driver {
    client: Client,
    bucket: Arc<str>,
    prefix: Arc<str>,
    chunk_size: u64,
    copy_chunk_size: u64,
    copy_concurrency: usize,
    copy_threshold: u64,
    storage_class: Option<Arc<str>>,
    encrypt: bool,
    kms_key: Option<Arc<str>>,
    recent: Arc<recent::RecentDeletes>,
}

impl S3Driver {
    pub fn new(s: &Settings) -> S3Driver {
        S3Driver {
            client: client::build(s),
            bucket: s.bucket.as_str().into(),
            prefix: s.prefix.as_str().into(),
            chunk_size: s.chunk_size,
            copy_chunk_size: s.copy_chunk_size,
            copy_concurrency: s.copy_concurrency.max(1),
            copy_threshold: s.copy_threshold,
            storage_class: s.storage_class.as_deref().map(Into::into),
            encrypt: s.encrypt,
            kms_key: s.kms_key.as_deref().map(Into::into),
            recent: Arc::default(),
        }
    }

    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }

    /// The driver path of a key under the prefix.
    fn path_of<'a>(&self, key: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&*self.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(key)
        }
    }

    /// What every object write asks of the store: `storageclass`, and
    /// `encrypt` (with `keyid`, KMS) as server-side encryption.
    fn write_options(&self) -> WriteOptions {
        use aws_sdk_s3::types::ServerSideEncryption as Sse;
        let (sse, kms_key) = match (self.encrypt, &self.kms_key) {
            (false, _) => (None, None),
            (true, None) => (Some(Sse::Aes256), None),
            (true, Some(k)) => (Some(Sse::AwsKms), Some(k.to_string())),
        };
        WriteOptions {
            class: self.storage_class.as_deref().map(Into::into),
            sse,
            kms_key,
        }
    }

    async fn put_plain(&self, path: &str, content: Bytes) -> Result<(), DriverError> {
        let o = self.write_options();
        self.client
            .put_object()
            .bucket(&*self.bucket)
            .key(self.key(path))
            .body(ByteStream::from(content))
            .set_storage_class(o.class)
            .set_server_side_encryption(o.sse)
            .set_ssekms_key_id(o.kms_key)
            .send()
            .await
            .map_err(|e| error("PutObject", path, e))?;
        Ok(())
    }

    /// HEAD: size (the logical size of an object being appended to), time,
    /// and whether it is such a state object.
    async fn head(&self, path: &str) -> Result<(FileInfo, bool), DriverError> {
        let out = self
            .client
            .head_object()
            .bucket(&*self.bucket)
            .key(self.key(path))
            .send()
            .await
            .map_err(|e| error("HeadObject", path, e))?;
        let meta = out.metadata();
        let appendable = meta.is_some_and(|m| m.contains_key(MARK));
        let size = match meta.and_then(|m| m.get(SIZE)) {
            Some(s) if appendable => s.parse().map_err(|_| other(path, "bad size mark"))?,
            _ => out.content_length().unwrap_or(0) as u64,
        };
        let modified = out
            .last_modified()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok((FileInfo { size, modified }, appendable))
    }

    /// Every key under `dir/`, as driver paths, in key order.
    async fn keys_under(&self, dir: &str) -> Result<Vec<String>, DriverError> {
        self.list_keys(format!("{}/", self.key(dir)), dir).await
    }

    /// Every key that starts with `path` (itself, `path/…`, but also
    /// `path2`: the caller filters), as driver paths.
    async fn keys_starting(&self, path: &str) -> Result<Vec<String>, DriverError> {
        self.list_keys(self.key(path), path).await
    }

    async fn list_keys(&self, prefix: String, dir: &str) -> Result<Vec<String>, DriverError> {
        let mut out = vec![];
        self.each_page(&prefix, None, dir, |page| {
            let keys = page.contents().iter().filter_map(|o| o.key());
            out.extend(keys.map(|k| self.path_of(k).to_string()));
        })
        .await?;
        self.drop_deleted(out).await
    }

    /// Lists `prefix` (grouped by `delimiter`, if any), every page to `each`.
    async fn each_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        dir: &str,
        mut each: impl FnMut(&aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output),
    ) -> Result<(), DriverError> {
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&*self.bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_string))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| error("ListObjectsV2", dir, e))?;
            each(&page);
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// Deletes `paths` in batches of 1,000, and remembers them for a while
    /// ([`recent`]).
    async fn delete_keys(&self, paths: &[String]) -> Result<(), DriverError> {
        for batch in paths.chunks(1000) {
            let objects = batch
                .iter()
                .map(|p| ObjectIdentifier::builder().key(self.key(p)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| other(&batch[0], e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| other(&batch[0], e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&*self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| error("DeleteObjects", &batch[0], e))?;
            if let Some(e) = out.errors().first() {
                let key = e.key().unwrap_or_default();
                return Err(other(
                    self.path_of(key),
                    format!("DeleteObjects: {}", e.message().unwrap_or("failed")),
                ));
            }
        }
        self.recent.deleted(paths);
        Ok(())
    }

    /// Aborts multipart uploads at `path` or under it: an upload removed
    /// before it completed leaves no invisible parts in the bucket.
    async fn abort_uploads(&self, path: &str) -> Result<(), DriverError> {
        let key = self.key(path);
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&*self.bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(|e| error("ListMultipartUploads", path, e))?;
        for u in out.uploads() {
            let (Some(k), Some(id)) = (u.key(), u.upload_id()) else {
                continue;
            };
            let parts = format!("{key}{}", appendable::PARTS_SUFFIX);
            if k != key && k != parts && !k.starts_with(&format!("{key}/")) {
                continue;
            }
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&*self.bucket)
                .key(k)
                .upload_id(id)
                .send()
                .await;
            match aborted.map_err(|e| error("AbortMultipartUpload", path, e)) {
                Ok(_) | Err(DriverError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn list_dir(&self, path: &str) -> Result<Vec<String>, DriverError> {
        let prefix = format!("{}/", self.key(path));
        let (mut dirs, mut files) = (vec![], vec![]);
        self.each_page(&prefix, Some("/"), path, |page| {
            let listed = page.common_prefixes().iter().filter_map(|p| p.prefix());
            dirs.extend(listed.map(|k| self.path_of(k).to_string()));
            let listed = page.contents().iter().filter_map(|o| o.key());
            files.extend(listed.map(|k| self.path_of(k).to_string()));
        })
        .await?;
        let mut names = vec![];
        let base = self.path_of(&prefix).len();
        for d in dirs {
            if self.still_holds(&d).await? {
                names.push(d[base..].trim_end_matches('/').to_string());
            }
        }
        for f in self.drop_deleted(files).await? {
            names.push(f[base..].to_string());
        }
        names.retain(|n| !n.is_empty());
        if names.is_empty() {
            return Err(DriverError::NotFound(path.to_string()));
        }
        Ok(names)
    }

    /// Removes an object, everything under it as a directory, and the parts
    /// of an upload at it: one listing of the keys that start with `path`
    /// (the object, `path/…`, `path.parts`), an abort only where a parts
    /// key shows an upload was started, one batch delete. Touch marks stay
    /// (a few bytes each): a stale one only makes an object pushed again
    /// look referenced a little sooner, which keeps it, never loses it.
    async fn remove(&self, path: &str) -> Result<(), DriverError> {
        let parts = appendable::parts_of(path);
        let dir = format!("{path}/");
        let keys: Vec<String> = self
            .keys_starting(path)
            .await?
            .into_iter()
            .filter(|k| k == path || k == &parts || k.starts_with(&dir))
            .collect();
        if keys.is_empty() {
            return Err(DriverError::NotFound(path.to_string()));
        }
        if keys.iter().any(|k| k.ends_with(appendable::PARTS_SUFFIX)) {
            self.abort_uploads(path).await?;
        }
        self.delete_keys(&keys).await
    }
}

impl StorageDriver for S3Driver {
    fn get_content(&self, path: String) -> DriverFuture<'_, Bytes> {
        Box::pin(async move {
            let out = self
                .client
                .get_object()
                .bucket(&*self.bucket)
                .key(self.key(&path))
                .send()
                .await
                .map_err(|e| error("GetObject", &path, e))?;
            if out.metadata().is_some_and(|m| m.contains_key(MARK)) {
                return self.in_progress_content(&path).await;
            }
            let body = out.body.collect().await;
            Ok(body
                .map_err(|e| other(&path, format!("GetObject: {e}")))?
                .into_bytes())
        })
    }

    fn put_content(&self, path: String, content: Bytes) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.put_plain(&path, content).await })
    }

    fn reader(&self, path: String, offset: u64) -> DriverFuture<'_, BoxReader> {
        Box::pin(async move {
            let (info, appendable) = self.head(&path).await?;
            if appendable {
                let bytes = self.in_progress_content(&path).await?;
                let start = (offset as usize).min(bytes.len());
                let r = std::io::Cursor::new(bytes.slice(start..));
                return Ok(Box::pin(r) as BoxReader);
            }
            if offset >= info.size {
                return Ok(Box::pin(tokio::io::empty()) as BoxReader);
            }
            let out = self
                .client
                .get_object()
                .bucket(&*self.bucket)
                .key(self.key(&path))
                .range(format!("bytes={offset}-"))
                .send()
                .await
                .map_err(|e| error("GetObject", &path, e))?;
            Ok(Box::pin(out.body.into_async_read()) as BoxReader)
        })
    }

    fn writer(&self, path: String, append: bool) -> DriverFuture<'_, Box<dyn FileWriter>> {
        Box::pin(async move {
            let state = if append {
                match self.load(&path).await? {
                    Found::Absent => Default::default(),
                    Found::State(s) => s,
                    Found::Plain => {
                        return Err(other(&path, "complete object: cannot append to it"));
                    }
                }
            } else {
                Default::default()
            };
            Ok(Box::new(Writer::new(self.clone(), path, state)) as Box<dyn FileWriter>)
        })
    }

    fn stat(&self, path: String) -> DriverFuture<'_, FileInfo> {
        Box::pin(async move { Ok(self.head(&path).await?.0) })
    }

    fn list(&self, path: String) -> DriverFuture<'_, Vec<String>> {
        Box::pin(async move { self.list_dir(&path).await })
    }

    fn list_many(&self, paths: Vec<String>) -> DriverFuture<'_, Vec<Vec<String>>> {
        Box::pin(async move {
            let mut out = vec![vec![]; paths.len()];
            let mut tasks = tokio::task::JoinSet::new();
            let mut queued = paths.into_iter().enumerate();
            loop {
                while tasks.len() < LIST_CONCURRENCY {
                    let Some((i, p)) = queued.next() else { break };
                    let d = self.clone();
                    tasks.spawn(async move { (i, d.list_dir(&p).await) });
                }
                let Some(done) = tasks.join_next().await else {
                    return Ok(out);
                };
                let (i, listed) = done.map_err(|e| other("", e.to_string()))?;
                match listed {
                    Ok(names) => out[i] = names,
                    Err(DriverError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn list_prefixes(
        &self,
        dir: String,
        delimiter: &'static str,
    ) -> DriverFuture<'_, Option<Vec<String>>> {
        Box::pin(async move {
            let prefix = format!("{}/", self.key(&dir));
            let mut listed = vec![];
            self.each_page(&prefix, Some(delimiter), &dir, |page| {
                let prefixes = page.common_prefixes().iter().filter_map(|p| p.prefix());
                listed.extend(prefixes.map(|p| self.path_of(p).to_string()));
            })
            .await?;
            let base = self.path_of(&prefix).len();
            let mut names = vec![];
            for p in listed {
                if let Some(name) = p[base..].strip_suffix(delimiter)
                    && self.still_holds(&p).await?
                {
                    names.push(name.to_string());
                }
            }
            Ok(Some(names))
        })
    }

    fn move_to(&self, from: String, to: String) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.move_any(&from, &to).await })
    }

    fn delete(&self, path: String) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.remove(&path).await })
    }

    fn truncate(&self, path: String, len: u64) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.cut_back(&path, len).await })
    }

    fn touch(&self, path: String) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.refresh(&path).await })
    }

    fn changed(&self, path: String) -> DriverFuture<'_, SystemTime> {
        Box::pin(async move {
            if let Ok((info, _)) = self.head(&path).await {
                return Ok(info.modified);
            }
            let prefix = format!("{}/", self.key(&path));
            let mut newest = None;
            self.each_page(&prefix, None, &path, |page| {
                let times = page.contents().iter().filter_map(|o| o.last_modified());
                let times = times.filter_map(|t| SystemTime::try_from(*t).ok());
                newest = newest.max(times.max());
            })
            .await?;
            newest.ok_or_else(|| DriverError::NotFound(path.clone()))
        })
    }

    fn note_reference(&self, path: String) -> DriverFuture<'_, ()> {
        Box::pin(async move { self.put_plain(&copy::mark(&path), Bytes::new()).await })
    }

    fn last_referenced(&self, path: String) -> DriverFuture<'_, SystemTime> {
        Box::pin(async move { self.referenced(&path).await })
    }

    fn remove_empty_dir(&self, _path: String) -> DriverFuture<'_, bool> {
        Box::pin(std::future::ready(Ok(false)))
    }

    fn checkpoint(&self, path: String) -> DriverFuture<'_, Option<(u64, Bytes)>> {
        Box::pin(async move {
            match self.load(&path).await? {
                Found::State(s) => Ok(s.current.checkpoint().map(|c| (s.current.size(), c))),
                _ => Ok(None),
            }
        })
    }

    fn atomic_directory_moves(&self) -> bool {
        false
    }

    fn redirect_url(&self, path: String) -> DriverFuture<'_, Option<String>> {
        Box::pin(async move {
            let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(PRESIGN_TTL)
                .map_err(|e| other(&path, e.to_string()))?;
            let req = self
                .client
                .get_object()
                .bucket(&*self.bucket)
                .key(self.key(&path))
                .presigned(config)
                .await
                .map_err(|e| error("presign GetObject", &path, e))?;
            Ok(Some(req.uri().to_string()))
        })
    }

    fn check(&self) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let r = self.client.head_bucket().bucket(&*self.bucket).send().await;
            r.map(drop)
                .map_err(|e| client::explain_check(&self.bucket, e))
        })
    }
}

impl S3Driver {
    /// The bytes of an object still being appended to, while it has no parts.
    async fn in_progress_content(&self, path: &str) -> Result<Bytes, DriverError> {
        let s = self.state(path).await?;
        if s.current.parts.is_empty() {
            Ok(s.current.tail)
        } else {
            Err(other(
                path,
                "being uploaded in parts: readable once it is complete",
            ))
        }
    }
}

#[cfg(test)]
super::testsuite::driver_suite!(
    suite,
    match fixture::Bucket::from_env() {
        Some(bucket) => bucket,
        None => return,
    }
);
