//! Blobs: content stored once under its digest, made visible to a repository
//! by a link in that repository's `_layers`.

use super::{ByteStream, Registry, Result, StorageError, driver::BoxReader, paths};
use crate::digest::Digest;
use crate::names::RepoName;

impl Registry {
    /// Size of a blob the repository may read: linked as a layer, or a manifest
    /// revision (distribution serves manifests through the blob endpoint too).
    /// The link and the bytes are looked up at once: on a bucket each is a
    /// round trip.
    pub async fn blob_size(&self, repo: &RepoName, d: &Digest) -> Result<u64> {
        let cached = self.blob_cache && !self.driver.atomic_directory_moves();
        if cached && let Some(size) = self.seen.link(repo.as_str(), d) {
            return Ok(size);
        }
        let size = self.look_up_blob(repo, d).await?;
        if cached {
            self.seen.saw_link(repo.as_str(), d, size);
        }
        Ok(size)
    }

    /// [`Self::blob_size`] read from the store, never from what was seen.
    pub(super) async fn blob_size_fresh(&self, repo: &RepoName, d: &Digest) -> Result<u64> {
        self.look_up_blob(repo, d).await
    }

    async fn look_up_blob(&self, repo: &RepoName, d: &Digest) -> Result<u64> {
        let (layer, size) = tokio::join!(
            self.exists(paths::layer_link(repo, d)),
            self.stored_blob_size(d)
        );
        let linked = layer? || self.exists(paths::revision_link(repo, d)).await?;
        match size? {
            Some(size) if linked => Ok(size),
            _ => Err(StorageError::BlobUnknown(d.clone())),
        }
    }

    /// Size of the blob's bytes if stored at all, regardless of repository.
    pub(super) async fn stored_blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        Ok(super::error::optional(self.driver.stat(paths::blob_data(d)).await)?.map(|i| i.size))
    }

    /// Opens a blob for streaming from `offset`; the caller has checked access with [`Self::blob_size`].
    #[allow(dead_code)] // for readers inside the process (the web UI branch reads configs with it)
    pub async fn open_blob(&self, d: &Digest, offset: u64) -> Result<BoxReader> {
        match self.driver.reader(paths::blob_data(d), offset).await {
            Err(super::driver::DriverError::NotFound(_)) => {
                Err(StorageError::BlobUnknown(d.clone()))
            }
            r => Ok(r?),
        }
    }

    /// Streams `len` bytes of a blob from `offset`, for serving it; the
    /// caller has checked access with [`Self::blob_size`].
    pub async fn blob_chunks(&self, d: &Digest, offset: u64, len: u64) -> Result<ByteStream> {
        match self.driver.chunks(paths::blob_data(d), offset, len).await {
            Err(super::driver::DriverError::NotFound(_)) => {
                Err(StorageError::BlobUnknown(d.clone()))
            }
            r => Ok(r?),
        }
    }

    /// Marks a stored blob as just referenced (its mtime becomes now), so a
    /// garbage collection running meanwhile keeps it; see `crate::gc`. Called
    /// before any link to it is written. Returns false if the blob is gone.
    /// Notes that a client was told the blob exists (a `HEAD`), for garbage
    /// collection's grace period: only a hint, since the manifest that links
    /// it refreshes it properly ([`Self::refresh_blob`]); so on a bucket it
    /// is the touch alone, at most one at a time and ten a second per blob
    /// (a collector then keeps the blob), not waited for.
    pub async fn note_blob_seen(&self, d: &Digest) -> Result<bool> {
        if self.driver.atomic_directory_moves() {
            return self.refresh_blob(d).await;
        }
        let Some(guard) = self.seen.start_touch(d) else {
            return Ok(true);
        };
        // Not awaited: the answer does not wait on a write to the store.
        let (driver, data) = (self.driver.clone(), paths::blob_data(d));
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = driver.note_reference(data).await {
                log::debug!("HEAD: cannot record the reference: {e}");
            }
        });
        Ok(true)
    }

    pub async fn refresh_blob(&self, d: &Digest) -> Result<bool> {
        if !self.driver.atomic_directory_moves() {
            return self.refresh_condemnable(d).await;
        }
        Ok(super::error::optional(self.driver.touch(paths::blob_data(d)).await)?.is_some())
    }

    /// On a bucket it first waits out collectors deciding about `d`'s
    /// links ([`Registry::unlink_if_still_gone`]), so a blob pushed again
    /// while one removes its old link is linked after that removal.
    pub(super) async fn link_layer(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        if !self.driver.atomic_directory_moves() {
            self.await_condemnations(d).await?;
        }
        self.write_link(paths::layer_link(repo, d), d).await
    }

    /// Links a blob readable in `from` into `repo` without copying it.
    /// Returns the size, or `None` if `from` has no such blob.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        d: &Digest,
    ) -> Result<Option<u64>> {
        match self.blob_size(from, d).await {
            Ok(size) => {
                if !self.refresh_blob(d).await? {
                    return Ok(None);
                }
                self.link_layer(repo, d).await?;
                Ok(Some(size))
            }
            Err(StorageError::BlobUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unlinks a blob from a repository; its bytes stay for garbage collection.
    pub async fn unlink_blob(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        self.seen.forget(Some(repo.as_str()), Some(d));
        if !self.remove_link(paths::layer_link(repo, d)).await? {
            return Err(StorageError::BlobUnknown(d.clone()));
        }
        Ok(())
    }
}
