//! Change detection for files the daemon re-reads while running (the
//! htpasswd file, certificates). Polling metadata needs no inotify and
//! follows symlinks, so certbot's swap of `live/` links is seen too.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// How often watched files are checked.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// What identifies a file's version: a rename or rewrite changes one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

/// A set of files and the stamps they had when last accepted.
#[derive(Debug)]
pub struct Watched {
    paths: Vec<PathBuf>,
    seen: Vec<Option<Stamp>>,
}

impl Watched {
    /// Starts watching; the current state counts as seen.
    pub fn new(paths: Vec<PathBuf>) -> Watched {
        let seen = stamps(&paths);
        Watched { paths, seen }
    }

    /// True when any file differs from the state last marked as seen.
    pub fn changed(&self) -> bool {
        stamps(&self.paths) != self.seen
    }

    /// The files' state now. Taken before reading them, and recorded with
    /// [`Watched::mark_seen`] after, so a change landing in between is not
    /// marked as seen without having been read.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(stamps(&self.paths))
    }

    /// Records a snapshot as seen (after a successful reload).
    pub fn mark_seen(&mut self, s: Snapshot) {
        self.seen = s.0;
    }
}

pub struct Snapshot(Vec<Option<Stamp>>);

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            })
        })
        .collect()
}
