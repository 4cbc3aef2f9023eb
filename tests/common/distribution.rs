//! CNCF distribution's registry (Debian's `docker-registry`, 2.8) serving
//! the same store as a test's server: its data directory, or on S3 the same
//! bucket prefix ([`super::storage_yaml`]).

use super::{ProcGuard, TempDir, free_port, probe, storage_yaml, wait_for};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// distribution signs upload state with `http.secret`; we set it so a test can
/// hand distribution the state of an upload our server began.
pub const SECRET: &str = "interop-test-secret";

pub fn registry_bin() -> String {
    std::env::var("DOCKER_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".to_string())
}

/// A running `docker-registry serve` (CNCF distribution 2.8) on a data directory.
pub struct Distribution {
    proc: ProcGuard,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Distribution {
    pub fn start(root: &Path) -> Distribution {
        Self::start_with(root, "")
    }

    /// [`Distribution::start`] with `extra` top-level YAML, such as an
    /// `auth:` section (a registry that then wants credentials: it is up
    /// once `/v2/` answers 200 or 401).
    pub fn start_with(root: &Path, extra: &str) -> Distribution {
        let dir = TempDir::new("dist");
        let log = dir.0.join("registry.log");
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.0.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n{}  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: {SECRET}\n{extra}",
                    storage_yaml(root)
                ),
            )
            .unwrap();
            let out = std::fs::File::create(&log).unwrap();
            let child = Command::new(registry_bin())
                .env_remove("AWS_CA_BUNDLE")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {} ({e}); install Debian's docker-registry package (CNCF distribution 2.8)",
                        registry_bin()
                    )
                });
            let mut proc = ProcGuard(Some(child));
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let up = wait_for(20, || {
                matches!(probe(addr, "/v2/"), Some(200 | 401)) || proc.exited().is_some()
            });
            if up && proc.exited().is_none() {
                return Distribution {
                    proc,
                    addr,
                    log,
                    _dir: dir,
                };
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if !text.contains("address already in use") {
                panic!("docker-registry did not come up on {addr}; log:\n{text}");
            }
        }
        panic!("docker-registry could not get a free port");
    }

    pub fn stop(mut self) {
        self.proc.signal_and_wait("TERM");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
