//! Filesystem driver: objects are files under a root directory, laid out
//! exactly as distribution's filesystem driver lays them out so either program
//! can serve the other's data. Blocking file I/O runs on tokio's blocking pool.

mod aligned;
mod append;
mod listings;
mod pagecost;
mod prefetch;
mod uncached;

use super::{
    BoxReader, ChunkStream, DriverError, DriverFuture, FileInfo, FileWriter, StorageDriver,
};
use append::Appender;
use bytes::Bytes;
use listings::Listings;
use prefetch::Prefetch;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct FilesystemDriver {
    root: Arc<PathBuf>,
    listings: Arc<Listings>,
}

impl FilesystemDriver {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemDriver {
            root: Arc::new(root.into()),
            listings: Arc::default(),
        }
    }

    fn full(&self, path: &str) -> PathBuf {
        debug_assert!(!path.split('/').any(|c| c == ".." || c == "."), "{path}");
        self.root.join(path)
    }
}

/// Runs blocking filesystem work off the async threads, mapping errors to the
/// driver path that caused them.
async fn blocking<T: Send + 'static>(
    path: String,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, DriverError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| DriverError::io(&path, e)),
        Err(e) => Err(DriverError::io(&path, io::Error::other(e))),
    }
}

/// Runs a metadata operation (stat, open, utimens, reading a link) right on
/// the async thread, as nginx does its opens and stats: these take a few
/// microseconds, while a hop to the blocking pool cost about 40 µs of CPU in
/// context switches here (perf of manifest GETs at 64 connections: half the
/// time in `finish_task_switch` and futexes). Data transfer and every sync
/// stay on the blocking pool.
fn inline<T: Send + 'static>(
    path: String,
    f: impl FnOnce() -> io::Result<T>,
) -> DriverFuture<'static, T> {
    let r = f().map_err(|e| DriverError::io(&path, e));
    Box::pin(std::future::ready(r))
}

/// Objects up to this size are read inline (links, typical manifests).
const INLINE_READ_MAX: u64 = 64 << 10;

/// Creates `dir` and any missing parents, returning the directories that
/// gained an entry: the caller syncs them after its own operation.
///
/// Why deferred: on a journalling filesystem each sync is a journal commit,
/// and small pushes were bound by their count. Synced after the operation,
/// the first sync commits the directories together with it and the others
/// find nothing left to commit. (Without a journal, as on the benchmark
/// machine's ext4, every sync writes and flushes on its own: only fewer
/// syncs help there, see [`StorageDriver::stage`].) Durability is unchanged:
/// nothing is acknowledged before every one of them has returned.
fn create_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    if dir.is_dir() {
        return Ok(vec![]);
    }
    let mut gained = match dir.parent() {
        Some(parent) => create_dirs(parent)?,
        None => vec![],
    };
    match fs::create_dir(dir) {
        Ok(()) => gained.extend(dir.parent().map(Path::to_path_buf)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(gained)
}

/// Syncs directories [`create_dirs`] reported, deepest first.
fn sync_dirs(dirs: &[PathBuf]) -> io::Result<()> {
    dirs.iter()
        .rev()
        .try_for_each(|d| File::open(d)?.sync_all())
}

/// Syncs the directory holding `path`. One that is gone was removed after
/// the change, once empty (`remove_empty_dir`) or with a tree above it, and
/// took the change with it: nothing is left to sync, and the change is not
/// reported as failed. Why: a delete whose directory a repository delete
/// removed in between answered `NotFound` for an object it had removed, and
/// callers read that as "was not there" (found by the driver suite).
fn sync_parent(path: &Path) -> io::Result<()> {
    let Some(p) = path.parent() else {
        return Ok(());
    };
    match File::open(p) {
        Ok(dir) => dir.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// Files at least this large are closed after a discard answers, not during it.
const FREE_LATER: u64 = 16 << 20;

/// Removes a file or a directory tree, returning its large files (at the top
/// level) still open. Why: ext4 frees an unlinked file's blocks when its last
/// descriptor closes, and for 1 GiB that took 150 ms, spent before answering
/// a push of a blob the registry already held (its upload copy is discarded).
/// Closing them afterwards moves that off the request; the names are gone at
/// once, and after a crash in between ext4 frees the orphans at mount.
fn remove_any(path: &Path) -> io::Result<Vec<File>> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        let held = open_if_large(path, &meta);
        fs::remove_file(path)?;
        return Ok(held.into_iter().collect());
    }
    let mut held = vec![];
    for entry in fs::read_dir(path)?.flatten() {
        if let Ok(meta) = entry.metadata() {
            held.extend(open_if_large(&entry.path(), &meta));
        }
    }
    fs::remove_dir_all(path)?;
    Ok(held)
}

fn open_if_large(path: &Path, meta: &fs::Metadata) -> Option<File> {
    let large = meta.is_file() && meta.len() >= FREE_LATER;
    large.then(|| File::open(path).ok()).flatten()
}

fn temp_name(target: &Path) -> PathBuf {
    let mut rnd = [0u8; 8];
    let _ = getrandom::fill(&mut rnd);
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("obj");
    target.with_file_name(format!(".{name}.tmp-{}", crate::digest::to_hex(&rnd)))
}

/// Writes `content` at `target` through a temporary file and a rename. With
/// a `scope` ([`StorageDriver::stage`]) nothing inside it is synced, only
/// directories created above it.
fn write_atomic(target: &Path, content: &[u8], scope: Option<&Path>) -> io::Result<()> {
    // A garbage collection may remove the directory between its creation and
    // the write (a link it is unlinking while a push links the same thing
    // again): then it is created again. Each lost race means the remover ran
    // in between, so a busy remover can win a few in a row (CI saw four); the
    // bound only stops a root that keeps vanishing.
    let mut tries = 0;
    loop {
        match write_atomic_once(target, content, scope) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 64 => {
                tries += 1;
                std::thread::yield_now();
            }
            r => return r,
        }
    }
}

fn write_atomic_once(target: &Path, content: &[u8], scope: Option<&Path>) -> io::Result<()> {
    let dirs = create_dirs(target.parent().expect("object paths have a parent"))?;
    let tmp = temp_name(target);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(content)?;
        let Some(scope) = scope else {
            f.sync_all()?;
            fs::rename(&tmp, target)?;
            sync_parent(target)?;
            return sync_dirs(&dirs);
        };
        fs::rename(&tmp, target)?;
        // Syncing `scope`'s parent would only make `scope` itself durable.
        let above = |d: &&PathBuf| !d.starts_with(scope) && Some(d.as_path()) != scope.parent();
        sync_dirs(&dirs.iter().filter(above).cloned().collect::<Vec<_>>())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl StorageDriver for FilesystemDriver {
    fn get_content(&self, path: String) -> DriverFuture<'_, Bytes> {
        use std::io::Read;
        let full = self.full(&path);
        let opened = (|| {
            let mut f = File::open(full)?;
            let len = f.metadata()?.len();
            if len > INLINE_READ_MAX {
                return Ok(Err(f));
            }
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)?;
            Ok(Ok(Bytes::from(buf)))
        })();
        match opened {
            Ok(Ok(b)) => Box::pin(std::future::ready(Ok(b))),
            Ok(Err(mut f)) => Box::pin(blocking(path, move || {
                let mut buf = vec![];
                f.read_to_end(&mut buf)?;
                Ok(Bytes::from(buf))
            })),
            Err(e) => inline(path, || Err(e)),
        }
    }

    fn put_content(&self, path: String, content: Bytes) -> DriverFuture<'_, ()> {
        let full = self.full(&path);
        Box::pin(blocking(path, move || write_atomic(&full, &content, None)))
    }

    /// Why: a push's POST made five of a 4 KiB push's twelve syncs, for an
    /// upload that holds nothing yet. On ext4 without a journal (the
    /// benchmark machine) each sync writes and flushes on its own; alternating
    /// runs of 2000 pushes from 16 clients went from 1,340-1,500 to
    /// 1,420-1,920 per second.
    fn stage(&self, path: String, content: Bytes, scope: String) -> DriverFuture<'_, ()> {
        let (full, scope) = (self.full(&path), self.full(&scope));
        Box::pin(blocking(path, move || {
            write_atomic(&full, &content, Some(&scope))
        }))
    }

    fn persist(&self, paths: Vec<String>, scope: String) -> DriverFuture<'_, ()> {
        let full: Vec<PathBuf> = paths.iter().map(|p| self.full(p)).collect();
        let dir = self.full(&scope);
        Box::pin(blocking(scope, move || {
            full.iter().try_for_each(|f| File::open(f)?.sync_all())?;
            File::open(&dir)?.sync_all()?;
            sync_parent(&dir)
        }))
    }

    fn reader(&self, path: String, offset: u64) -> DriverFuture<'_, BoxReader> {
        let full = self.full(&path);
        Box::pin(async move {
            let file = blocking(path, move || {
                let mut f = File::open(full)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(f)
            })
            .await?;
            let file = tokio::fs::File::from_std(file);
            Ok(Box::pin(file) as BoxReader)
        })
    }

    fn chunks(&self, path: String, offset: u64, len: u64) -> DriverFuture<'_, ChunkStream> {
        let full = self.full(&path);
        inline(path, || {
            let mut f = File::open(full)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(Box::pin(Prefetch::new(f, offset, len)) as ChunkStream)
        })
    }

    fn writer(&self, path: String, append: bool) -> DriverFuture<'_, Box<dyn FileWriter>> {
        let full = self.full(&path);
        Box::pin(async move {
            let p = path.clone();
            let (file, new_dirs) = blocking(path, move || {
                let parent = full.parent().expect("object paths have a parent");
                let mut dirs = create_dirs(parent)?;
                if !full.exists() {
                    dirs.push(parent.to_path_buf());
                }
                Ok((Appender::open(&full, append)?, dirs))
            })
            .await?;
            Ok(Box::new(FsWriter {
                path: p,
                size: file.size(),
                state: WriterState::Idle(file),
                new_dirs,
            }) as Box<dyn FileWriter>)
        })
    }

    fn stat(&self, path: String) -> DriverFuture<'_, FileInfo> {
        let full = self.full(&path);
        inline(path, || {
            let m = fs::metadata(full)?;
            Ok(FileInfo {
                size: m.len(),
                modified: m.modified()?,
            })
        })
    }

    fn list(&self, path: String) -> DriverFuture<'_, Vec<String>> {
        let full = self.full(&path);
        let listings = self.listings.clone();
        Box::pin(blocking(path, move || listings.list(&full, list_dir)))
    }

    fn list_many(&self, paths: Vec<String>) -> DriverFuture<'_, Vec<Vec<String>>> {
        let full: Vec<PathBuf> = paths.iter().map(|p| self.full(p)).collect();
        let first = paths.first().cloned().unwrap_or_default();
        let listings = self.listings.clone();
        Box::pin(blocking(first, move || {
            full.iter()
                .map(|d| match listings.list(d, list_dir) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(vec![]),
                    r => r,
                })
                .collect()
        }))
    }

    fn move_to(&self, from: String, to: String) -> DriverFuture<'_, ()> {
        let (src, dst) = (self.full(&from), self.full(&to));
        Box::pin(blocking(from, move || {
            let dirs = create_dirs(dst.parent().expect("object paths have a parent"))?;
            fs::rename(&src, &dst)?;
            sync_parent(&dst)?;
            sync_dirs(&dirs)
        }))
    }

    fn delete(&self, path: String) -> DriverFuture<'_, ()> {
        let full = self.full(&path);
        Box::pin(blocking(path, move || {
            drop(remove_any(&full)?);
            // A directory emptied by this removal may be gone already (a
            // collector's `remove_empty_dir`): nothing is left to sync then.
            match sync_parent(&full) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }))
    }

    fn discard(&self, path: String) -> DriverFuture<'_, ()> {
        let full = self.full(&path);
        Box::pin(async move {
            let held = blocking(path, move || remove_any(&full)).await?;
            if !held.is_empty() {
                tokio::task::spawn_blocking(move || drop(held));
            }
            Ok(())
        })
    }

    fn truncate(&self, path: String, len: u64) -> DriverFuture<'_, ()> {
        let full = self.full(&path);
        Box::pin(blocking(path, move || {
            let file = File::options().write(true).open(&full)?;
            file.set_len(len)?;
            file.sync_data()
        }))
    }

    fn touch(&self, path: String) -> DriverFuture<'_, ()> {
        let full = self.full(&path);
        inline(path, || {
            use nix::sys::stat::{UtimensatFlags, utimensat};
            use nix::sys::time::TimeSpec;
            // UTIME_NOW: the kernel's clock, the same one that stamps writes.
            utimensat(
                nix::fcntl::AT_FDCWD,
                &full,
                &TimeSpec::UTIME_OMIT,
                &TimeSpec::UTIME_NOW,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(io::Error::from)
        })
    }

    fn remove_empty_dir(&self, path: String) -> DriverFuture<'_, bool> {
        let full = self.full(&path);
        Box::pin(blocking(path, move || match fs::remove_dir(&full) {
            Ok(()) => sync_parent(&full).map(|()| true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }))
    }
}

/// An upload's data file being appended to. Small writes each take one
/// blocking-pool hop; from the first large one on, a blocking thread of its
/// own writes batches from a bounded queue, so receiving the next batch never
/// waits for the disk (perf of a 1 GiB push: with write and receive in
/// lockstep the hashing thread sat idle half the time).
struct FsWriter {
    path: String,
    size: u64,
    state: WriterState,
    /// Directories that gained entries when the file was opened, synced on commit.
    new_dirs: Vec<PathBuf>,
}

enum WriterState {
    Idle(Appender),
    Queued {
        tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
        task: tokio::task::JoinHandle<io::Result<Appender>>,
    },
    Failed,
}

/// Batches of at least this many bytes switch a writer to its own thread.
const QUEUE_FROM: usize = 1 << 20;
/// Batches queued for the writing thread.
const WRITE_QUEUE: usize = 2;

impl FsWriter {
    /// Waits for the writing thread to drain its queue and hands back the file.
    async fn drain(&mut self) -> Result<Appender, DriverError> {
        match std::mem::replace(&mut self.state, WriterState::Failed) {
            WriterState::Idle(f) => Ok(f),
            WriterState::Queued { tx, task } => {
                drop(tx);
                match task.await {
                    Ok(r) => r.map_err(|e| DriverError::io(&self.path, e)),
                    Err(e) => Err(DriverError::io(&self.path, io::Error::other(e))),
                }
            }
            WriterState::Failed => Err(DriverError::io(
                &self.path,
                io::Error::other("an earlier write failed"),
            )),
        }
    }
}

impl FileWriter for FsWriter {
    fn write(&mut self, chunks: Vec<Bytes>) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            let len: usize = chunks.iter().map(Bytes::len).sum();
            match std::mem::replace(&mut self.state, WriterState::Failed) {
                WriterState::Idle(mut file) if len < QUEUE_FROM => {
                    let file = blocking(self.path.clone(), move || {
                        file.write_batch(&chunks)?;
                        Ok(file)
                    })
                    .await?;
                    self.state = WriterState::Idle(file);
                }
                WriterState::Idle(mut file) => {
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
                    let task = tokio::task::spawn_blocking(move || {
                        while let Some(chunks) = rx.blocking_recv() {
                            file.write_batch(&chunks)?;
                        }
                        Ok(file)
                    });
                    tx.send(chunks).await.ok();
                    self.state = WriterState::Queued { tx, task };
                }
                WriterState::Queued { tx, task } => {
                    let stopped = tx.send(chunks).await.is_err();
                    self.state = WriterState::Queued { tx, task };
                    if stopped {
                        // The thread stopped on an error: report it.
                        self.drain().await?;
                        return Err(DriverError::io(
                            &self.path,
                            io::Error::other("the writing thread stopped"),
                        ));
                    }
                }
                WriterState::Failed => {
                    return Err(DriverError::io(
                        &self.path,
                        io::Error::other("an earlier write failed"),
                    ));
                }
            }
            self.size += len as u64;
            Ok(())
        })
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn commit(mut self: Box<Self>) -> DriverFuture<'static, ()> {
        Box::pin(async move {
            let file = self.drain().await?;
            let new_dirs = std::mem::take(&mut self.new_dirs);
            blocking(self.path.clone(), move || {
                file.finish()?;
                sync_dirs(&new_dirs)
            })
            .await
        })
    }
}

#[cfg(test)]
super::testsuite::driver_suite!(suite, tests::Scratch::new());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::testsuite::Fixture;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A driver on a directory of its own under `target/`, on the disk where
    /// `O_DIRECT` works (in a tmpfs `/tmp` only the buffered fallback would
    /// run), removed when dropped.
    pub(super) struct Scratch {
        root: PathBuf,
        driver: Arc<FilesystemDriver>,
    }

    impl Scratch {
        pub(super) fn new() -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root = std::env::current_dir()
                .unwrap()
                .join(format!("target/driver-suite-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            let driver = Arc::new(FilesystemDriver::new(&root));
            Scratch { root, driver }
        }
    }

    impl Fixture for Scratch {
        fn driver(&self) -> Arc<dyn StorageDriver> {
            self.driver.clone()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    /// Staged objects are readable at once and whole; persisting names what
    /// it syncs, so a missing one is an error rather than a silent success.
    #[tokio::test]
    async fn staged_objects_read_back_and_persist() {
        let root = std::env::temp_dir().join(format!("pr-stage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let d = FilesystemDriver::new(&root);
        let scope = "r/_uploads/u".to_string();
        for (name, body) in [("startedat", "t0"), ("data", "")] {
            let path = format!("{scope}/{name}");
            d.stage(path.clone(), Bytes::from(body), scope.clone())
                .await
                .unwrap();
            assert_eq!(d.get_content(path).await.unwrap(), body);
        }
        let names = |p: &str| fs::read_dir(root.join(p)).unwrap().count();
        assert_eq!(names(&scope), 2, "no temporary file is left behind");
        let started = format!("{scope}/startedat");
        d.persist(vec![started], scope.clone()).await.unwrap();
        let missing = format!("{scope}/nothing");
        assert!(d.persist(vec![missing], scope).await.is_err());
        let _ = fs::remove_dir_all(&root);
    }

    /// A discard's large files leave the namespace at once and stay open
    /// (unlinked) only for the closing that follows.
    #[test]
    fn removal_holds_large_files_unlinked() {
        use std::os::unix::fs::MetadataExt;
        let root = std::env::temp_dir().join(format!("pr-remove-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("up/hashstates")).unwrap();
        File::create(root.join("up/data"))
            .unwrap()
            .set_len(FREE_LATER)
            .unwrap();
        fs::write(root.join("up/startedat"), "x").unwrap();
        fs::write(root.join("up/hashstates/0"), "x").unwrap();
        let held = remove_any(&root.join("up")).unwrap();
        assert!(!root.join("up").exists());
        assert_eq!(held.len(), 1, "only the large file is held");
        let meta = held[0].metadata().unwrap();
        assert_eq!((meta.len(), meta.nlink()), (FREE_LATER, 0));
        fs::write(root.join("small"), "x").unwrap();
        assert!(remove_any(&root.join("small")).unwrap().is_empty());
        assert!(!root.join("small").exists());
        let _ = fs::remove_dir_all(&root);
    }
}
