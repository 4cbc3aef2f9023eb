//! The OCI distribution spec's own conformance suite (v1.1.1, the shared
//! tool at `../shared/tools/oci-conformance/run`, or `OCI_CONFORMANCE_RUN`),
//! run against a registry URL by the tests that need it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tool() -> PathBuf {
    let path = std::env::var_os("OCI_CONFORMANCE_RUN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/oci-conformance/run"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the OCI conformance suite is not at {} (set OCI_CONFORMANCE_RUN)",
        path.display()
    );
    path
}

/// Runs the suite; panics with its report unless every spec ran passed.
pub fn conform(url: &str, login: Option<(&str, &str)>, env: &[(&str, &Path)]) {
    let mut cmd = Command::new(tool());
    cmd.arg(url);
    if let Some((user, password)) = login {
        cmd.args([user, password]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains(" 0 Failed"),
        "conformance on {url}:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
}
