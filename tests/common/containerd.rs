//! A private containerd (Debian's containerd package): its own root, state
//! and socket in a scratch directory, the CRI plugin off, driven with `ctr`.
//! Needs root, as `ctr images pull` unpacks into a snapshotter (`native`,
//! which works wherever plain directories do).

use super::{ProcGuard, TempDir, wait_for};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct Containerd {
    proc: ProcGuard,
    pub socket: PathBuf,
    dir: TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = TempDir::new("ctd");
        let p = |n: &str| dir.0.join(n);
        let socket = p("c.sock");
        assert!(
            socket.as_os_str().len() < 100,
            "socket path too long: {}",
            socket.display()
        );
        std::fs::write(
            p("config.toml"),
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}.ttrpc\"\n",
                p("root").display(),
                p("state").display(),
                socket.display(),
                socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(p("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(p("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run containerd ({e}): install Debian's containerd"));
        let mut c = Containerd {
            proc: ProcGuard(Some(child)),
            socket,
            dir,
        };
        let up = wait_for(60, || {
            c.proc.exited().is_some() || c.ctr(&["version"]).status.success()
        });
        assert!(
            up && c.proc.exited().is_none(),
            "containerd did not come up; its log:\n{}",
            c.log()
        );
        c
    }

    /// Runs `ctr` against this containerd.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr ({e})"))
    }

    /// Like [`Containerd::ctr`], for a command that must succeed; its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.0.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A scratch directory beside containerd's, for hosts.toml and the like.
    pub fn work(&self, name: &str) -> PathBuf {
        let d = self.dir.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.proc.signal_and_wait("TERM");
        // The native snapshotter's directories are plain; nothing stays mounted.
    }
}
