//! Looking at and tampering with a data directory directly, as a disk
//! fault or an operator would, and running the storage commands on it.

use super::{BIN, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn blob_path(root: &Path, d: &str) -> PathBuf {
    let hex = d.trim_start_matches("sha256:");
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

pub fn stored(s: &Server, d: &str) -> bool {
    blob_path(&s.root, d).is_file()
}

/// Sets a file's modification time to two hours ago (older than the
/// default grace period).
pub fn age_file(p: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(p)
        .or_else(|_| std::fs::File::open(p))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .set_modified(old)
        .unwrap();
}

/// Runs `private-registry ARGS --config <server's config>` without a
/// terminal and returns its output, whatever its status.
pub fn storage_cmd(s: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&s.config)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
