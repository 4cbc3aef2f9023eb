//! Blob uploads: bytes are appended to `_uploads/<id>/data`, hashed as they
//! stream, made durable before each acknowledgement, and moved into the blob
//! store only once the digest the client claims has been verified.
//!
//! The running hash lives in memory between requests; when it is missing
//! (after a restart, or on another node) it is rebuilt by re-reading the data
//! file, so an upload survives a restart without a hash-state format of our own.
//!
//! Completing an upload takes several durable steps (the data moves into the
//! blob store, the repository's link is written, the upload is removed), and
//! the process may die between any two. So before the data moves, what it was
//! verified to be (digest and size) is recorded durably in the upload's own
//! directory (`verified`, which distribution ignores and purges with the
//! upload). A PUT retried after a crash that finds the data gone finds the
//! record and the blob, and completes as the first PUT would have. Only that
//! record, never the digest a client names, lets a retry link a blob whose
//! bytes it no longer has: otherwise any client could link any other
//! repository's blob into its own by naming its digest.

use super::{ByteStream, Registry, Result, StorageError, error::optional, paths};
use crate::crashpoint;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::names::RepoName;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

/// Bytes gathered before each write: large enough that per-write overhead vanishes,
/// small enough that memory stays flat per upload.
const CHUNK: usize = 1 << 20;
/// Batches queued for the hashing thread: bounds the memory an upload holds
/// when hashing is slower than the network.
const HASH_QUEUE: usize = 2;

/// Running hashes of uploads in progress, keyed by repository and upload id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Progress>>>>>,
}

/// The sha256 state of the first `size` bytes of an upload.
struct Progress {
    hasher: Running,
    size: u64,
    /// Whether the upload's own files and directory are known to be durable:
    /// [`Registry::start_upload`] only stages them, and the first request that
    /// acknowledges bytes makes them durable.
    persisted: bool,
}

/// A hash state, possibly still catching up on its hashing thread. A PATCH is
/// answered once its bytes are durable, not once they are hashed: waiting for
/// the last queued batches took about 2 ms of each 16 MiB PATCH. The upload's
/// next request, or its completion, waits instead (by then it is done).
enum Running {
    Done(Hasher),
    Finishing(tokio::task::JoinHandle<Option<Hasher>>),
}

impl Running {
    async fn get(self) -> Result<Hasher> {
        match self {
            Running::Done(h) => Ok(h),
            Running::Finishing(task) => task.await.ok().flatten().ok_or_else(stopped),
        }
    }

    /// The same, from a blocking thread.
    fn wait(self, rt: &tokio::runtime::Handle) -> Option<Hasher> {
        match self {
            Running::Done(h) => Some(h),
            Running::Finishing(task) => rt.block_on(task).ok().flatten(),
        }
    }
}

fn stopped() -> StorageError {
    StorageError::Body(std::io::Error::other("hashing stopped"))
}

impl Sessions {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<Option<Progress>>> {
        let mut map = self.map.lock().expect("sessions lock");
        map.entry(key.to_string()).or_default().clone()
    }

    fn forget(&self, key: &str) {
        self.map.lock().expect("sessions lock").remove(key);
    }
}

/// What a finishing PUT verified an upload's data to be, recorded before the
/// data leaves the upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Verified {
    pub(super) digest: Digest,
    pub(super) size: u64,
}

impl Verified {
    fn encode(&self) -> Bytes {
        Bytes::from(format!("{} {}\n", self.digest, self.size))
    }

    /// `None` for anything [`Self::encode`] did not write: a record that
    /// cannot be read proves nothing.
    fn decode(bytes: &[u8]) -> Option<Verified> {
        let (digest, size) = std::str::from_utf8(bytes).ok()?.trim().split_once(' ')?;
        Some(Verified {
            digest: digest.parse().ok()?,
            size: size.parse().ok()?,
        })
    }
}

/// Where an upload stands on disk.
pub(super) enum Stage {
    /// Its data file holds this many bytes, not (or no longer) verified.
    Open(u64),
    /// A finishing PUT verified the data and recorded so, and died before
    /// the data left the upload (or, the blob being stored already, before
    /// linking it).
    Verified(Verified),
    /// Verified, recorded and moved into the blob store, which holds it:
    /// only the link, or the upload's removal, may be missing.
    Completed(Verified),
    /// No data, and no record of a blob that is stored: nothing to resume.
    /// The record, if there is one, names a blob gone since.
    Lost(Option<Verified>),
}

impl Stage {
    /// The bytes the client has had acknowledged.
    fn size(&self, id: &str) -> Result<u64> {
        match self {
            Stage::Open(size) => Ok(*size),
            Stage::Verified(v) | Stage::Completed(v) => Ok(v.size),
            Stage::Lost(_) => Err(StorageError::UploadUnknown(id.to_string())),
        }
    }
}

/// Upload ids are ours (UUIDs) or distribution's (UUIDs too); anything else
/// is unknown rather than a path.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("system random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::digest::to_hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Registry {
    /// Starts an upload and returns its id. Nothing is acknowledged yet, so
    /// nothing is synced: a crash may lose the new upload, and the client's
    /// next request then gets `BLOB_UPLOAD_UNKNOWN` and starts again.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<String> {
        let id = new_id();
        let now = crate::timefmt::rfc3339(std::time::SystemTime::now());
        let scope = paths::upload(repo, &id);
        self.driver
            .stage(
                paths::upload_started(repo, &id),
                Bytes::from(now),
                scope.clone(),
            )
            .await?;
        // A bucket has no directories to stage: the data object appears
        // with the first bytes, and until then the start time stands for it.
        if self.driver.atomic_directory_moves() {
            self.driver
                .stage(paths::upload_data(repo, &id), Bytes::new(), scope)
                .await?;
        }
        Ok(id)
    }

    /// Bytes received so far (all of them, for an upload a crash interrupted
    /// while completing).
    pub async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        self.upload_stage(repo, id).await?.size(id)
    }

    /// Where an upload stands. A finishing PUT records before it moves the
    /// data, so data gone beside a record means the record's blob is the
    /// upload's, if it is stored.
    pub(super) async fn upload_stage(&self, repo: &RepoName, id: &str) -> Result<Stage> {
        if !valid_id(id) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        let (data, record) = tokio::join!(
            self.driver.stat(paths::upload_data(repo, id)),
            self.read_verified(repo, id)
        );
        let (data, record) = (optional(data)?, record?);
        Ok(match (data, record) {
            (Some(info), Some(v)) if v.size == info.size => Stage::Verified(v),
            (Some(info), _) => Stage::Open(info.size),
            (None, Some(v)) if self.stored_blob_size(&v.digest).await? == Some(v.size) => {
                Stage::Completed(v)
            }
            (None, None) if self.started_without_data(repo, id).await? => Stage::Open(0),
            (None, record) => Stage::Lost(record),
        })
    }

    /// An upload on a bucket before its first bytes: only its start time.
    async fn started_without_data(&self, repo: &RepoName, id: &str) -> Result<bool> {
        if self.driver.atomic_directory_moves() {
            return Ok(false);
        }
        self.exists(paths::upload_started(repo, id)).await
    }

    async fn read_verified(&self, repo: &RepoName, id: &str) -> Result<Option<Verified>> {
        let path = paths::upload_verified(repo, id);
        let bytes = optional(self.driver.get_content(path).await)?;
        Ok(bytes.and_then(|b| Verified::decode(&b)))
    }

    /// Appends a chunk. `start` is the offset the client says it begins at;
    /// anything but the current size is out of order. Returns the new size.
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let key = format!("{repo}/{id}");
        let session = self.uploads.get(&key);
        let mut progress = session.lock().await;
        let size = match self.upload_stage(repo, id).await? {
            Stage::Open(size) | Stage::Verified(Verified { size, .. }) => size,
            // Its bytes are in the blob store: nothing can be added.
            Stage::Completed(v) => return Err(StorageError::RangeInvalid { size: v.size }),
            Stage::Lost(_) => return Err(StorageError::UploadUnknown(id.to_string())),
        };
        if start.is_some_and(|s| s != size) {
            return Err(StorageError::RangeInvalid { size });
        }
        self.forget_final_append(repo, id).await?;
        let p = self.resume_hash(repo, id, progress.take(), size).await?;
        let mut p = self.write_stream(repo, id, p, body, || {}).await?;
        if !p.persisted && p.size > 0 {
            // The data is durable; so must be its name and start time.
            let started = paths::upload_started(repo, id);
            self.driver
                .persist(vec![started], paths::upload(repo, id))
                .await?;
            p.persisted = true;
        }
        let size = p.size;
        *progress = Some(p);
        Ok(size)
    }

    /// Completes an upload: appends any final bytes, verifies `expected`, and
    /// moves the data into the blob store. On a digest mismatch the upload is
    /// discarded and nothing is stored. A retry after a crash completes what
    /// the first attempt recorded.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        self.finish(repo, id, expected, body, true).await
    }

    /// `record`: whether to record the verified digest before storing it,
    /// which only an upload a client can retry by its id needs.
    async fn finish(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        body: Option<ByteStream>,
        record: bool,
    ) -> Result<u64> {
        let key = format!("{repo}/{id}");
        let session = self.uploads.get(&key);
        let mut progress = session.lock().await;
        let stage = self.upload_stage(repo, id).await?;
        let body = match (&stage, body) {
            (Stage::Open(0), Some(b)) if !self.driver.atomic_directory_moves() => {
                match whole_if_small(b).await? {
                    Ok(bytes) => return self.finish_small(repo, id, &key, expected, bytes).await,
                    Err(stream) => Some(stream),
                }
            }
            (_, body) => body,
        };
        let (v, durable) = match stage {
            Stage::Verified(v) if &v.digest == expected => {
                skip_body(body).await?;
                (v, true)
            }
            Stage::Open(size) | Stage::Verified(Verified { size, .. }) => {
                let retry = record && body.is_some();
                let size = if retry {
                    self.cut_interrupted_append(repo, id, size).await?
                } else {
                    size
                };
                let p = self.resume_hash(repo, id, progress.take(), size).await?;
                if retry {
                    self.mark_final_append(repo, id, size).await?;
                }
                self.verify(repo, id, p, expected, body).await?
            }
            Stage::Completed(v) => return self.relink(repo, id, &key, v, expected, body).await,
            Stage::Lost(_) => return Err(StorageError::UploadUnknown(id.to_string())),
        };
        if &v.digest != expected {
            return self.mismatch(repo, id, &key, expected, &v.digest).await;
        }
        crashpoint::here("finish-upload:verified");
        if record {
            self.record_verified(repo, id, &v, durable).await?;
            crashpoint::here("finish-upload:recorded");
        }
        self.store(repo, id, expected).await?;
        self.link_layer(repo, expected).await?;
        crashpoint::here("finish-upload:linked");
        self.cancel_upload_locked(repo, id, &key).await?;
        crashpoint::here("finish-upload:discarded");
        Ok(v.size)
    }

    /// Completes an empty upload on a bucket from a small final body (how
    /// Docker pushes a small blob: POST, then PUT with the bytes): verified
    /// in memory and written into place in one request, with no upload data
    /// or record. A crash at any point leaves the upload empty, and the
    /// retried PUT does it again, finding the blob stored if it got that far.
    async fn finish_small(
        &self,
        repo: &RepoName,
        id: &str,
        key: &str,
        expected: &Digest,
        bytes: Bytes,
    ) -> Result<u64> {
        self.check_limit(0, std::slice::from_ref(&bytes))?;
        let mut h = expected.algorithm().hasher();
        h.update(&bytes);
        let actual = h.finish();
        if &actual != expected {
            return self.mismatch(repo, id, key, expected, &actual).await;
        }
        let size = bytes.len() as u64;
        let stored =
            self.stored_blob_size(expected).await?.is_some() && self.refresh_blob(expected).await?;
        if !stored {
            self.driver
                .put_content(paths::blob_data(expected), bytes)
                .await?;
        }
        self.link_layer(repo, expected).await?;
        self.cancel_upload_locked(repo, id, key).await?;
        Ok(size)
    }

    /// Appends the final bytes and hashes the data with `expected`'s
    /// algorithm. Also says whether the upload's directory is known to be
    /// durable.
    async fn verify(
        &self,
        repo: &RepoName,
        id: &str,
        p: Progress,
        expected: &Digest,
        body: Option<ByteStream>,
    ) -> Result<(Verified, bool)> {
        let alg = expected.algorithm();
        let mut p = p;
        if let Some(body) = body {
            let (q, whole) = already_whole(p, expected).await?;
            if whole {
                skip_body(Some(body)).await?;
                let v = Verified {
                    digest: expected.clone(),
                    size: q.size,
                };
                return Ok((v, q.persisted));
            }
            let mid = || crashpoint::here("finish-upload:appending");
            p = self.write_stream(repo, id, q, body, mid).await?;
            crashpoint::here("finish-upload:appended");
        }
        let (size, persisted) = (p.size, p.persisted);
        let digest = match alg {
            Algorithm::Sha256 => p.hasher.get().await?.finish(),
            other => self
                .hash_file(repo, id, other, size)
                .await?
                .hasher
                .get()
                .await?
                .finish(),
        };
        Ok((Verified { digest, size }, persisted))
    }

    /// Notes where a PUT's final chunk starts before appending it. If the
    /// append is cut short (the process dies, the client goes away), the
    /// bytes past that offset were never acknowledged, and the client's
    /// retry sends the whole chunk again: [`Self::cut_interrupted_append`]
    /// drops them first. Staged, not synced: what it guards against, bytes
    /// left in the file by a killed process, survives only in the page
    /// cache too.
    async fn mark_final_append(&self, repo: &RepoName, id: &str, from: u64) -> Result<()> {
        let path = paths::upload_final_append(repo, id);
        let text = Bytes::from(from.to_string());
        Ok(self
            .driver
            .stage(path, text, paths::upload(repo, id))
            .await?)
    }

    /// The acknowledged size of an upload a PUT's final chunk was being
    /// appended to, its unacknowledged tail cut off.
    async fn cut_interrupted_append(&self, repo: &RepoName, id: &str, size: u64) -> Result<u64> {
        let path = paths::upload_final_append(repo, id);
        let Some(text) = optional(self.driver.get_content(path).await)? else {
            return Ok(size);
        };
        match std::str::from_utf8(&text).ok().and_then(|t| t.parse().ok()) {
            Some(from) if from < size => {
                log::info!(
                    "upload {id}: dropping {} bytes of an interrupted final chunk",
                    size - from
                );
                self.driver
                    .truncate(paths::upload_data(repo, id), from)
                    .await?;
                Ok(from)
            }
            _ => Ok(size),
        }
    }

    /// A PATCH acknowledges what it appends, so an earlier PUT's mark no
    /// longer says where acknowledged bytes end.
    async fn forget_final_append(&self, repo: &RepoName, id: &str) -> Result<()> {
        let path = paths::upload_final_append(repo, id);
        if optional(self.driver.stat(path.clone()).await)?.is_some() {
            self.driver.discard(path).await?;
        }
        Ok(())
    }

    /// Discards the upload (as distribution does) and says why.
    async fn mismatch(
        &self,
        repo: &RepoName,
        id: &str,
        key: &str,
        expected: &Digest,
        actual: &Digest,
    ) -> Result<u64> {
        self.cancel_upload_locked(repo, id, key).await?;
        Err(StorageError::DigestInvalid {
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }

    /// Makes `v` durable before the data moves: from then on a crash cannot
    /// lose the upload. A directory an acknowledged PATCH made durable needs
    /// only the record synced into it; one that is only staged is made
    /// durable with it.
    async fn record_verified(
        &self,
        repo: &RepoName,
        id: &str,
        v: &Verified,
        dir_durable: bool,
    ) -> Result<()> {
        let path = paths::upload_verified(repo, id);
        if dir_durable {
            return Ok(self.driver.put_content(path, v.encode()).await?);
        }
        let scope = paths::upload(repo, id);
        self.driver
            .stage(path.clone(), v.encode(), scope.clone())
            .await?;
        Ok(self.driver.persist(vec![path], scope).await?)
    }

    /// Puts verified data into the blob store: the existing blob is
    /// refreshed, or the data moves into place freshly touched (a rename
    /// keeps the mtime of the upload's last write, which may be older than a
    /// collection's grace period).
    async fn store(&self, repo: &RepoName, id: &str, d: &Digest) -> Result<()> {
        if self.refresh_blob(d).await? {
            crashpoint::here("finish-upload:refreshed");
            return Ok(());
        }
        let data = paths::upload_data(repo, id);
        self.driver.touch(data.clone()).await?;
        self.driver.move_to(data, paths::blob_data(d)).await?;
        crashpoint::here("finish-upload:moved");
        Ok(())
    }

    /// Completes an upload whose data a finishing PUT recorded and moved into
    /// the blob store before the process died: links the blob and removes
    /// the upload, as that PUT would have. Final bytes sent again with the
    /// retry were part of what was verified, so they are read and dropped.
    async fn relink(
        &self,
        repo: &RepoName,
        id: &str,
        key: &str,
        v: Verified,
        expected: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        skip_body(body).await?;
        if &v.digest != expected {
            return self.mismatch(repo, id, key, expected, &v.digest).await;
        }
        // Touched before linking, as any new reference is; collected meanwhile
        // (the upload's bytes are gone with it), the upload is as good as lost.
        if !self.refresh_blob(expected).await? {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        self.link_layer(repo, expected).await?;
        self.cancel_upload_locked(repo, id, key).await?;
        Ok(v.size)
    }

    /// Abandons an upload and removes its data.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let key = format!("{repo}/{id}");
        let session = self.uploads.get(&key);
        let _guard = session.lock().await;
        self.upload_size(repo, id).await?;
        self.cancel_upload_locked(repo, id, &key).await
    }

    /// Removes an upload whatever state it is in (data missing after a crash
    /// included), waiting for a request that is appending to it.
    pub async fn discard_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        if !valid_id(id) {
            return Ok(());
        }
        let key = format!("{repo}/{id}");
        let session = self.uploads.get(&key);
        let _guard = session.lock().await;
        self.cancel_upload_locked(repo, id, &key).await
    }

    async fn cancel_upload_locked(&self, repo: &RepoName, id: &str, key: &str) -> Result<()> {
        self.uploads.forget(key);
        match self.driver.discard(paths::upload(repo, id)).await {
            Ok(()) | Err(super::driver::DriverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a whole blob from one request body.
    pub async fn put_blob(
        &self,
        repo: &RepoName,
        expected: &Digest,
        body: ByteStream,
    ) -> Result<u64> {
        let id = self.start_upload(repo).await?;
        // Nobody can retry this upload by its id: no record is needed.
        let result = self.finish(repo, &id, expected, Some(body), false).await;
        if result.is_err() {
            let _ = self.remove(paths::upload(repo, &id)).await;
            self.uploads.forget(&format!("{repo}/{id}"));
        }
        result
    }

    async fn resume_hash(
        &self,
        repo: &RepoName,
        id: &str,
        p: Option<Progress>,
        size: u64,
    ) -> Result<Progress> {
        match p {
            Some(p) if p.size == size => Ok(p),
            // Nothing to read (on a bucket, no data object yet either).
            _ if size == 0 => Ok(Progress {
                hasher: Running::Done(Algorithm::Sha256.hasher()),
                size,
                persisted: false,
            }),
            _ => {
                let path = paths::upload_data(repo, id);
                if let Some((at, saved)) = self.driver.checkpoint(path).await?
                    && at == size
                    && let Some(hasher) = crate::digest::Hasher::restore(&saved)
                {
                    return Ok(Progress {
                        hasher: Running::Done(hasher),
                        size,
                        persisted: true,
                    });
                }
                self.hash_file(repo, id, Algorithm::Sha256, size).await
            }
        }
    }

    /// Re-hashes the first `size` bytes of an upload's data.
    async fn hash_file(
        &self,
        repo: &RepoName,
        id: &str,
        alg: Algorithm,
        size: u64,
    ) -> Result<Progress> {
        let mut reader = self
            .driver
            .reader(paths::upload_data(repo, id), 0)
            .await?
            .take(size);
        let mut hasher = alg.hasher();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).await.map_err(StorageError::Body)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Progress {
            hasher: Running::Done(hasher),
            size,
            persisted: false,
        })
    }

    /// Refuses a batch that would take the upload past
    /// `privateregistry.limits.maxuploadbytes`, before any of it is written.
    fn check_limit(&self, size: u64, batch: &[Bytes]) -> Result<()> {
        let adding: u64 = batch.iter().map(|b| b.len() as u64).sum();
        match self.upload_limit {
            Some(limit) if size + adding > limit => Err(StorageError::UploadTooLarge { limit }),
            _ => Ok(()),
        }
    }

    /// Streams `body` onto the end of the upload, hashing as it goes, and makes
    /// it durable. On error the running hash is dropped, to be rebuilt from disk.
    ///
    /// Three things overlap (perf showed them serialised before): receiving
    /// the next batch, writing the current one, and hashing on a blocking
    /// thread fed through a bounded channel. Request body chunks are passed
    /// along without copying; the driver copies them once into its buffer.
    /// `written` runs after each batch is written (a crash test's hook).
    async fn write_stream(
        &self,
        repo: &RepoName,
        id: &str,
        p: Progress,
        mut body: ByteStream,
        written: impl Fn(),
    ) -> Result<Progress> {
        let mut writer = self
            .driver
            .writer(paths::upload_data(repo, id), true)
            .await?;
        let mut batch = next_batch(&mut body).await;
        if let Ok(chunks) = &batch
            && chunks.iter().map(Bytes::len).sum::<usize>() < CHUNK
        {
            // The whole body is here and small: no thread for hashing.
            self.check_limit(writer.size(), chunks)?;
            let mut hasher = p.hasher.get().await?;
            chunks.iter().for_each(|c| hasher.update(c));
            writer.write(batch?).await?;
            let size = writer.size();
            checkpoint(writer.as_mut(), &hasher);
            writer.commit().await?;
            return Ok(Progress {
                hasher: Running::Done(hasher),
                size,
                persisted: p.persisted,
            });
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
        // The previous request's hash may still be finishing: this thread
        // waits for it while the first batches are received and written.
        let (previous, rt) = (p.hasher, tokio::runtime::Handle::current());
        let hashing = tokio::task::spawn_blocking(move || {
            let mut hasher = previous.wait(&rt)?;
            while let Some(batch) = rx.blocking_recv() {
                batch.iter().for_each(|b| hasher.update(b));
            }
            Some(hasher)
        });
        let written = loop {
            let chunks = match batch {
                Ok(c) if c.is_empty() => break Ok(()),
                Ok(c) => c,
                Err(e) => break Err(e),
            };
            if let Err(e) = self.check_limit(writer.size(), &chunks) {
                break Err(e);
            }
            if tx.send(chunks.clone()).await.is_err() {
                break Err(stopped());
            }
            let (w, next) = tokio::join!(writer.write(chunks), next_batch(&mut body));
            if let Err(e) = w {
                break Err(e.into());
            }
            written();
            batch = next;
        };
        drop(tx);
        written?;
        let size = writer.size();
        let mut hasher = Running::Finishing(hashing);
        if writer.wants_checkpoint() {
            // The bytes cannot be read back to rebuild the hash: it is stored
            // with the commit, so it must be complete first.
            let done = hasher.get().await?;
            checkpoint(writer.as_mut(), &done);
            hasher = Running::Done(done);
        }
        writer.commit().await?;
        Ok(Progress {
            hasher,
            size,
            persisted: p.persisted,
        })
    }
}

/// Stores the running hash with the writer's next commit, where the writer
/// asks for it (its bytes cannot be read back until the upload completes).
fn checkpoint(writer: &mut dyn crate::storage::driver::FileWriter, hasher: &Hasher) {
    if writer.wants_checkpoint()
        && let Some(saved) = hasher.save()
    {
        writer.set_checkpoint(Bytes::from(saved));
    }
}

/// Whether an upload's data alone is already `expected`: then a PUT's body
/// is its final chunk sent again by a retry after a crash, which the first
/// attempt appended (and must not be appended twice). Only the running
/// sha256 tells without re-reading the data; an empty upload is never a retry.
/// It waits for the previous request's hashing, over by the time a client
/// has its answer and sends the PUT.
async fn already_whole(p: Progress, expected: &Digest) -> Result<(Progress, bool)> {
    if p.size == 0 || expected.algorithm() != Algorithm::Sha256 {
        return Ok((p, false));
    }
    let hasher = p.hasher.get().await?;
    let whole = &hasher.clone().finish() == expected;
    let p = Progress {
        hasher: Running::Done(hasher),
        size: p.size,
        persisted: p.persisted,
    };
    Ok((p, whole))
}

/// The whole body if it is smaller than one batch ([`CHUNK`]); otherwise
/// the body again, the part already read in front.
async fn whole_if_small(mut body: ByteStream) -> Result<std::result::Result<Bytes, ByteStream>> {
    let batch = next_batch(&mut body).await?;
    let len: usize = batch.iter().map(Bytes::len).sum();
    if len >= CHUNK {
        return Ok(Err(Box::pin(Prepended {
            head: batch.into(),
            rest: body,
        })));
    }
    let mut whole = bytes::BytesMut::with_capacity(len);
    batch.iter().for_each(|b| whole.extend_from_slice(b));
    Ok(Ok(whole.freeze()))
}

/// Chunks already read, then the rest of the body.
struct Prepended {
    head: std::collections::VecDeque<Bytes>,
    rest: ByteStream,
}

impl futures_core::Stream for Prepended {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.head.pop_front() {
            Some(b) => std::task::Poll::Ready(Some(Ok(b))),
            None => self.rest.as_mut().poll_next(cx),
        }
    }
}

/// Reads a request body to its end, dropping it, so the connection can
/// carry the next request.
async fn skip_body(body: Option<ByteStream>) -> Result<()> {
    let Some(mut body) = body else {
        return Ok(());
    };
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        chunk.map_err(StorageError::Body)?;
    }
    Ok(())
}

/// Request body chunks adding up to at least [`CHUNK`] bytes (fewer at the
/// end of the body; none once it is over).
async fn next_batch(body: &mut ByteStream) -> Result<Vec<Bytes>> {
    let mut out = vec![];
    let mut len = 0;
    while len < CHUNK {
        match poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            Some(chunk) => {
                let chunk = chunk.map_err(StorageError::Body)?;
                len += chunk.len();
                out.push(chunk);
            }
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Verified;

    #[test]
    fn a_record_reads_back_and_nothing_else_passes_for_one() {
        let hex = "a".repeat(64);
        let v = Verified {
            digest: format!("sha256:{hex}").parse().unwrap(),
            size: 42,
        };
        assert_eq!(Verified::decode(&v.encode()), Some(v));
        for bad in [
            String::new(),
            "42".to_string(),
            format!("sha256:{hex}"),
            format!("sha256:{hex} -1"),
            format!("sha256:{hex} 1 2"),
            format!("sha256:{} 1", &hex[1..]),
        ] {
            assert_eq!(Verified::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
