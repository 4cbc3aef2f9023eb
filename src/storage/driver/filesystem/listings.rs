//! Directory listings kept between requests and revalidated by one `stat`
//! of the directory on every use.
//!
//! Why: perf of a 5000-repository catalog walk showed ext4's htree readdir
//! (`ext4_htree_store_dirent`, `ext4fs_dirhash`, `filldir64`) and the name
//! allocations as most of each page, and after caching the big directories,
//! the open/getdents/close of each small repository directory on the page
//! (four system calls where a `stat` is one).
//!
//! Correctness: the directory's inode number, change time, modification
//! time and link count must all match the ones seen just before the cached
//! listing was read, so an entry added or removed by anyone (a push, a
//! `garbage-collect` or `repository delete` process, another node) is seen at
//! once. A listing is kept only if the directory had not changed for
//! [`QUIET`] when it was read: timestamps come from a coarse clock, and a
//! change in the same tick as the read could otherwise go unnoticed.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Most memory the listings take, estimated by [`cost`]; past it the cache
/// starts again empty. Counting names alone let 100,000 of them in small
/// directories (three per repository, for a usage scan) take over 20 MiB.
const BUDGET: usize = 8 << 20;
const QUIET: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    ino: u64,
    ctime: (i64, i64),
    mtime: (i64, i64),
    nlink: u64,
}

impl Version {
    fn of(m: &fs::Metadata) -> Version {
        Version {
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            nlink: m.nlink(),
        }
    }
}

/// A listing and the directory version it was read at.
struct Entry {
    version: Version,
    names: Vec<String>,
}

#[derive(Default)]
pub struct Listings {
    map: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    dirs: HashMap<PathBuf, Entry>,
    bytes: usize,
}

/// About what a listing takes in memory: its path, each name with its
/// `String`, and the map entry with its `Vec`.
fn cost(dir: &Path, names: &[String]) -> usize {
    let names: usize = names.iter().map(|n| n.len() + 40).sum();
    dir.as_os_str().len() + names + 160
}

impl Listings {
    /// The names in `dir`, from the cache if the directory is unchanged.
    pub fn list(
        &self,
        dir: &Path,
        read: impl FnOnce(&Path) -> io::Result<Vec<String>>,
    ) -> io::Result<Vec<String>> {
        let meta = fs::metadata(dir)?;
        let version = Version::of(&meta);
        if let Some(e) = self.map.lock().expect("listings lock").dirs.get(dir)
            && e.version == version
        {
            return Ok(e.names.clone());
        }
        let names = read(dir)?;
        let quiet = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > QUIET);
        let mut cache = self.map.lock().expect("listings lock");
        if let Some(old) = cache.dirs.remove(dir) {
            cache.bytes -= cost(dir, &old.names);
        }
        let size = cost(dir, &names);
        if quiet && size <= BUDGET {
            if cache.bytes + size > BUDGET {
                *cache = Cache::default();
            }
            cache.bytes += size;
            let names = names.clone();
            cache
                .dirs
                .insert(dir.to_path_buf(), Entry { version, names });
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once cached, an entry added or removed by someone else is seen at once.
    #[test]
    fn changes_behind_the_cache_are_seen() {
        const ENTRIES: usize = 600;
        let dir = std::env::temp_dir().join(format!("pr-listings-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..ENTRIES {
            fs::create_dir(dir.join(format!("r{i:05}"))).unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(10);
        fs::File::open(&dir).unwrap().set_modified(old).unwrap();
        let cache = Listings::default();
        let read = |d: &Path| -> io::Result<Vec<String>> {
            fs::read_dir(d)?
                .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
                .collect()
        };
        assert_eq!(cache.list(&dir, read).unwrap().len(), ENTRIES);
        // Served from the cache now: a reader that fails is not called.
        let fail = |_: &Path| -> io::Result<Vec<String>> { Err(io::Error::other("read")) };
        assert_eq!(cache.list(&dir, fail).unwrap().len(), ENTRIES);
        fs::create_dir(dir.join("new")).unwrap();
        assert_eq!(cache.list(&dir, read).unwrap().len(), ENTRIES + 1);
        fs::remove_dir(dir.join("r00000")).unwrap();
        fs::remove_dir(dir.join("new")).unwrap();
        assert_eq!(cache.list(&dir, read).unwrap().len(), ENTRIES - 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
