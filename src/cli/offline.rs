//! What the storage administration commands (`garbage-collect`, `fsck`,
//! `repository`) share: the configured storage and a runtime to drive it.
//! They run beside a serving daemon, through the same storage layer.

use super::source::ConfigArgs;
use crate::storage::Registry;
use std::future::Future;
use std::path::{Path, PathBuf};

pub struct Offline {
    pub registry: Registry,
    /// The storage root directory, to print full paths.
    pub root: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Offline {
    /// Loads the configuration `source` names and opens its storage; the error
    /// says which step failed.
    pub fn open(source: &ConfigArgs) -> Result<Offline, String> {
        let config = source.load_warning().map_err(|e| e.to_string())?;
        let root = config.root_directory();
        let backend = config.backend();
        if let crate::config::Backend::Filesystem(_) = backend {
            check_owner(&root)?;
        }
        let registry = Registry::new(crate::storage::driver::open(&backend)?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        Ok(Offline { registry, root, rt })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A storage path as the operator finds it on disk.
    pub fn full_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

/// Refuses root on a data directory another user owns (the package's
/// `private-registry`): directories and links root created there would
/// stay unwritable for the daemon, breaking later pushes.
fn check_owner(root: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(root) else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() || meta.uid() == 0 {
        return Ok(());
    }
    let owner = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    Err(format!(
        "{} belongs to user {owner}: run this as that user (sudo -u {owner} private-registry ...) so what it writes stays writable by the registry",
        root.display()
    ))
}
