//! A real HAProxy or nginx (Debian's) in front of registry nodes, run in the
//! foreground from a config file a test wrote, so its log is ours to read and
//! it dies with the test.

use super::{ProcGuard, TempDir, wait_for};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Haproxy,
    Nginx,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Haproxy => "haproxy",
            Kind::Nginx => "nginx",
        }
    }
}

/// A running proxy. `dir` holds its config, pid file, logs and temp files.
pub struct Front {
    pub kind: Kind,
    pub dir: PathBuf,
    /// Where it listens, as the test said.
    pub addrs: Vec<SocketAddr>,
    proc: ProcGuard,
    _tmp: TempDir,
}

impl Front {
    /// Starts `kind` with `config` (the whole file) and waits until every
    /// address in `listens` accepts connections. The config is checked first
    /// (`haproxy -c`, `nginx -t`), so a bad one fails with the proxy's words.
    pub fn start(kind: Kind, config: &str, listens: &[SocketAddr]) -> Front {
        let tmp = TempDir::new(kind.binary());
        let dir = tmp.0.clone();
        let file = dir.join(format!("{}.conf", kind.binary()));
        std::fs::write(&file, config).unwrap();
        let check = Command::new(kind.binary())
            .args(args(kind, &file, &dir, true))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {} ({e}); tests/run installs it", kind.binary())
            });
        assert!(
            check.status.success(),
            "{} refuses the config:\n{}{}\n--- config ---\n{config}",
            kind.binary(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(kind.binary())
            .args(args(kind, &file, &dir, false))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut proc = ProcGuard(Some(child));
        let up = wait_for(15, || {
            proc.exited().is_some()
                || listens
                    .iter()
                    .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(300)).is_ok())
        });
        let f = Front {
            kind,
            dir,
            addrs: listens.to_vec(),
            proc,
            _tmp: tmp,
        };
        assert!(
            up && f.running(),
            "{} did not come up on {listens:?}:\n{}",
            kind.binary(),
            f.log_text()
        );
        f
    }

    pub fn running(&self) -> bool {
        self.proc.0.is_some()
            && Command::new("kill")
                .args(["-0", &self.proc.pid().to_string()])
                .status()
                .is_ok_and(|s| s.success())
    }

    /// What the proxy printed (HAProxy's log when its config logs to stderr).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn stop(mut self) {
        self.proc.signal_and_wait("TERM");
    }
}

fn args(kind: Kind, file: &Path, dir: &Path, check: bool) -> Vec<String> {
    let file = file.display().to_string();
    match kind {
        // -db: foreground, no daemon mode; -W not needed for one process.
        Kind::Haproxy if check => vec!["-c".into(), "-q".into(), "-f".into(), file],
        Kind::Haproxy => vec!["-db".into(), "-f".into(), file],
        // -p: the prefix for relative paths (pid, temp dirs, logs); -e: the
        // error log before the config's own is opened (nginx 1.19.5+).
        Kind::Nginx => {
            let prefix = format!("{}/", dir.display());
            let mut a = vec![
                "-p".into(),
                prefix,
                "-e".into(),
                "stderr".into(),
                "-c".into(),
                file,
                "-g".into(),
                format!("daemon off; pid {}/nginx.pid;", dir.display()),
            ];
            if check {
                a.push("-t".into());
            }
            a
        }
    }
}
