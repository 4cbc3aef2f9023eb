//! The storage driver: a small key/value-with-directories interface, the same
//! seam distribution has between its registry logic and its backends. Paths are
//! relative, `/`-separated and built only from validated names and digests.
//! Two implementations: the filesystem and S3-compatible object stores.

pub mod filesystem;
pub mod s3;
#[cfg(test)]
pub mod testsuite;

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;
use tokio::io::AsyncRead;

pub type DriverFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;
pub type BoxReader = Pin<Box<dyn AsyncRead + Send>>;
pub type ChunkStream = Pin<Box<dyn futures_core::Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

impl DriverError {
    pub fn io(path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            DriverError::NotFound(path.to_string())
        } else {
            DriverError::Io {
                path: path.to_string(),
                source,
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct FileInfo {
    pub size: u64,
    /// Last modification (or [`StorageDriver::touch`]); garbage collection
    /// compares it with its grace period.
    pub modified: SystemTime,
}

/// The operations the registry needs from a store; `testsuite` holds the
/// properties every implementation must pass.
///
/// A path that names nothing is [`DriverError::NotFound`] to every method
/// that reads, lists, moves, deletes, discards or touches it (`list_many`
/// and `remove_empty_dir` say otherwise): the layers above tell "absent"
/// from failure by it (removing a link answers whether it was there).
/// Writes create the directories they need.
pub trait StorageDriver: Send + Sync + 'static {
    /// Reads a whole small object (links, manifests, markers).
    fn get_content(&self, path: String) -> DriverFuture<'_, Bytes>;
    /// Replaces an object atomically and durably: readers see the old bytes or
    /// the new ones, never a prefix, and the new ones survive a crash once this returns.
    fn put_content(&self, path: String, content: Bytes) -> DriverFuture<'_, ()>;
    /// Writes an object atomically but not yet durably, for scratch state
    /// that holds nothing acknowledged (a new upload, before its first
    /// bytes). Nothing inside the directory `scope`, which contains `path`,
    /// nor `scope`'s own name, need survive a crash until [`Self::persist`];
    /// directories this creates above `scope` are made durable, so later
    /// durable writes beside it do not stand on volatile ones.
    fn stage(&self, path: String, content: Bytes, scope: String) -> DriverFuture<'_, ()> {
        let _ = scope;
        self.put_content(path, content)
    }
    /// Makes staged objects (`paths`) and their directory `scope` durable.
    fn persist(&self, paths: Vec<String>, scope: String) -> DriverFuture<'_, ()> {
        let _ = (paths, scope);
        Box::pin(std::future::ready(Ok(())))
    }
    /// Streams an object from `offset`.
    fn reader(&self, path: String, offset: u64) -> DriverFuture<'_, BoxReader>;
    /// Streams `len` bytes of an object from `offset` as large chunks, for
    /// serving it: a driver can read ahead while the previous chunk is sent.
    fn chunks(&self, path: String, offset: u64, len: u64) -> DriverFuture<'_, ChunkStream> {
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let r = self.reader(path, offset).await?.take(len);
            Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(r, 1 << 20)) as ChunkStream)
        })
    }
    /// Opens an object for appending (`append`) or truncates it.
    fn writer(&self, path: String, append: bool) -> DriverFuture<'_, Box<dyn FileWriter>>;
    fn stat(&self, path: String) -> DriverFuture<'_, FileInfo>;
    /// Names of the direct children of a directory, unsorted.
    fn list(&self, path: String) -> DriverFuture<'_, Vec<String>>;
    /// Lists several directories, an absent one as empty: one call for a
    /// batch of siblings, so a catalog page is not one round trip per directory.
    fn list_many(&self, paths: Vec<String>) -> DriverFuture<'_, Vec<Vec<String>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(paths.len());
            for p in paths {
                match self.list(p).await {
                    Ok(l) => out.push(l),
                    Err(DriverError::NotFound(_)) => out.push(vec![]),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }
    /// The distinct names under `dir` up to the first `delimiter` in the
    /// rest of their keys, in one listing of the store, or `None` where the
    /// store cannot (a filesystem). With `/_`, the repositories under
    /// `repositories/`, nested ones included, without a walk.
    fn list_prefixes(
        &self,
        dir: String,
        delimiter: &'static str,
    ) -> DriverFuture<'_, Option<Vec<String>>> {
        let _ = (dir, delimiter);
        Box::pin(std::future::ready(Ok(None)))
    }
    /// Moves an object into place atomically and durably, replacing any existing one.
    /// A whole directory moves the same way, in one step, onto a name that
    /// holds nothing (a tag assembled aside, a blob's directory set aside by
    /// garbage collection, a repository's parts into the trash); onto a
    /// directory that holds something it fails and changes nothing, which is
    /// how a tag another push created meanwhile is noticed.
    fn move_to(&self, from: String, to: String) -> DriverFuture<'_, ()>;
    /// Removes an object or a whole directory tree.
    fn delete(&self, path: String) -> DriverFuture<'_, ()>;
    /// Removes scratch data (an upload that is finished or abandoned) without
    /// waiting for the removal to be durable: after a crash it may be back,
    /// and upload purging removes it then.
    fn discard(&self, path: String) -> DriverFuture<'_, ()> {
        self.delete(path)
    }
    /// Cuts an object back to its first `len` bytes, durably: bytes an
    /// append added that nobody acknowledged (it was interrupted).
    fn truncate(&self, path: String, len: u64) -> DriverFuture<'_, ()>;
    /// Sets an existing object's modification time to now, creating nothing:
    /// `NotFound` if it is absent. Referencing a blob touches it first, which
    /// is how a garbage collection running meanwhile learns to keep it.
    fn touch(&self, path: String) -> DriverFuture<'_, ()>;
    /// Removes a directory only if it is empty, so a name that gains
    /// content meanwhile (a push into a repository) is never lost. Returns
    /// whether it removed one: false for an absent one too, and stores
    /// without directories always answer false.
    fn remove_empty_dir(&self, path: String) -> DriverFuture<'_, bool>;
    /// When anything in a directory (or an object) last changed, for
    /// judging leftovers by age: a directory's own time on disk, the newest
    /// of its keys in a bucket, where directories have no time of their own.
    fn changed(&self, path: String) -> DriverFuture<'_, SystemTime> {
        Box::pin(async move { Ok(self.stat(path).await?.modified) })
    }
    /// [`Self::touch`] for a caller that checks the object exists afterwards
    /// anyway: a store that keeps touches apart from objects records the
    /// touch alone, one round trip instead of two. Absent, it may leave a
    /// touch behind (harmless: see `s3`), or say `NotFound`.
    fn note_reference(&self, path: String) -> DriverFuture<'_, ()> {
        self.touch(path)
    }
    /// When an object was last written or touched: [`FileInfo::modified`],
    /// unless the driver keeps touches apart from the object (a bucket,
    /// where changing an object's time means copying it). A store that
    /// keeps them apart still answers for an object removed since, from its
    /// last touch, and says `NotFound` only when it knows neither.
    fn last_referenced(&self, path: String) -> DriverFuture<'_, SystemTime> {
        Box::pin(async move { Ok(self.stat(path).await?.modified) })
    }
    /// The checkpoint the last commit of an object written in pieces stored
    /// with it ([`FileWriter::set_checkpoint`]), and the size it belongs to.
    fn checkpoint(&self, path: String) -> DriverFuture<'_, Option<(u64, Bytes)>> {
        let _ = path;
        Box::pin(std::future::ready(Ok(None)))
    }
    /// Whether [`Self::move_to`] moves a directory in one atomic step. An
    /// object store copies key by key; the layers above then write in an
    /// order that needs no such move.
    fn atomic_directory_moves(&self) -> bool {
        true
    }
    /// A short-lived URL a client can fetch the object from directly, for
    /// stores that serve reads themselves (distribution's blob redirect).
    fn redirect_url(&self, path: String) -> DriverFuture<'_, Option<String>> {
        let _ = path;
        Box::pin(std::future::ready(Ok(None)))
    }
    /// A cheap check that the store answers and the configured place in it
    /// exists (a bucket), beyond what a write and read back shows.
    fn check(&self) -> DriverFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The driver `backend` names. Fails with one line saying what is wrong.
pub fn open(backend: &crate::config::Backend) -> Result<std::sync::Arc<dyn StorageDriver>, String> {
    use crate::config::Backend;
    Ok(match backend {
        Backend::Filesystem(root) => std::sync::Arc::new(filesystem::FilesystemDriver::new(root)),
        Backend::S3(c) => std::sync::Arc::new(s3::S3Driver::new(&s3::Settings::from_config(c)?)),
    })
}

/// An object being written in pieces, such as an upload in progress.
pub trait FileWriter: Send {
    /// Appends the chunks, in order.
    fn write(&mut self, chunks: Vec<Bytes>) -> DriverFuture<'_, ()>;
    /// Bytes in the object, including what was there before an append.
    fn size(&self) -> u64;
    /// Whether the object cannot be read back before it is complete, so the
    /// writer's caller must store what it derives from the bytes (a running
    /// hash) with each commit.
    fn wants_checkpoint(&self) -> bool {
        false
    }
    /// State to store with the next commit, read back by
    /// [`StorageDriver::checkpoint`].
    fn set_checkpoint(&mut self, state: Bytes) {
        let _ = state;
    }
    /// Makes everything written so far durable.
    fn commit(self: Box<Self>) -> DriverFuture<'static, ()>;
}
