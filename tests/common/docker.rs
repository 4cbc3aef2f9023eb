//! A private Docker engine for end-to-end tests: its own `dockerd` (vfs
//! storage, no networking set-up, private data/exec roots and socket) and a
//! client whose configuration (logins included) lives in a scratch directory,
//! so nothing is read from or left in root's `~/.docker`.
//!
//! Needs root and Debian's docker.io package. Tests hold [`ONE_DOCKERD`] so
//! only one engine runs at a time: two vfs engines on two cores starve each
//! other's start-up.

use super::{ProcGuard, Server, TempDir, random_bytes, run_ok, wait_for};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

pub static ONE_DOCKERD: Mutex<()> = Mutex::new(());

pub fn dockerd_bin() -> String {
    std::env::var("DOCKERD_BIN").unwrap_or_else(|_| "dockerd".to_string())
}

/// The client from the same package as the daemon, if it is there: another
/// client on PATH may be years newer than the engine it talks to.
pub fn docker_bin() -> String {
    std::env::var("DOCKER_BIN").unwrap_or_else(|_| {
        if Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker".to_string()
        } else {
            "docker".to_string()
        }
    })
}

/// A private Docker engine, stopped (and its containerd with it) when dropped.
/// A dockerd that sets up no networking and keeps everything under `dir`:
/// data and exec roots, `daemon.json`, pid file and the API socket `s`.
pub fn private_dockerd_args<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    let p = |n: &str| dir.join(n);
    cmd.args([
        "--storage-driver=vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ])
    .arg("--data-root")
    .arg(p("d"))
    .arg("--exec-root")
    .arg(p("e"))
    .arg("--config-file")
    .arg(p("daemon.json"))
    .arg("--pidfile")
    .arg(p("p"))
    .arg("-H")
    .arg(format!("unix://{}", p("s").display()))
}

pub struct Dockerd {
    proc: ProcGuard,
    host: String,
    dir: TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        // An empty daemon config, so /etc/docker/daemon.json cannot interfere.
        Self::start_with_config("{}")
    }

    /// Starts an engine whose `daemon.json` is `daemon_json` (such as
    /// `registry-mirrors`).
    pub fn start_with_config(daemon_json: &str) -> Dockerd {
        let dir = TempDir::new("dk");
        let p = |n: &str| dir.0.join(n);
        let sock = p("s");
        assert!(
            sock.as_os_str().len() < 100,
            "socket path too long: {}",
            sock.display()
        );
        std::fs::create_dir_all(p("cfg")).unwrap();
        std::fs::write(p("daemon.json"), daemon_json).unwrap();
        let log = std::fs::File::create(p("dockerd.log")).unwrap();
        let mut cmd = Command::new(dockerd_bin());
        let child = private_dockerd_args(&mut cmd, &dir.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): these tests need Debian's docker.io package and root",
                    dockerd_bin()
                )
            });
        let mut d = Dockerd {
            proc: ProcGuard(Some(child)),
            host: format!("unix://{}", sock.display()),
            dir,
        };
        let mut last = String::new();
        let up = wait_for(90, || {
            if d.proc.exited().is_some() {
                return true;
            }
            let o = d.try_docker(&["info", "--format", "{{.ServerVersion}}"]);
            last = String::from_utf8_lossy(&o.stderr).into_owned();
            o.status.success()
        });
        if let Some(st) = d.proc.exited() {
            panic!(
                "dockerd exited during start-up ({st:?}); it needs root and a kernel that lets it run. Its log:\n{}",
                d.log()
            );
        }
        assert!(
            up,
            "dockerd did not answer `docker info` within 90 s (last error: {last}); its log:\n{}",
            d.log()
        );
        d
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.0.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("[core]") && !l.contains("loading plugin"))
            .collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The client's configuration directory (`DOCKER_CONFIG`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.0.join("cfg")
    }

    /// The client's `config.json`, or `null` before anything wrote it.
    pub fn client_config(&self) -> serde_json::Value {
        match std::fs::read_to_string(self.config_dir().join("config.json")) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(_) => serde_json::Value::Null,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_bin());
        c.env("DOCKER_CONFIG", self.config_dir())
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn try_docker(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", docker_bin()))
    }

    /// Runs a docker command with `input` on its standard input.
    pub fn try_docker_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", docker_bin()));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a docker command that must succeed; returns its stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        let o = self.try_docker(args);
        self.ok(args, o)
    }

    /// Like [`Dockerd::docker`], with `input` on standard input.
    pub fn docker_stdin(&self, args: &[&str], input: &str) -> String {
        let o = self.try_docker_stdin(args, input);
        self.ok(args, o)
    }

    fn ok(&self, args: &[&str], o: Output) -> String {
        if !o.status.success() {
            panic!(
                "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndockerd log:\n{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
                self.log()
            );
        }
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a docker command that must fail; returns its stderr.
    pub fn docker_fails(&self, args: &[&str]) -> String {
        let o = self.try_docker(args);
        assert!(
            !o.status.success(),
            "docker {args:?} succeeded but should not have:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn inspect(&self, image: &str) -> serde_json::Value {
        let out = self.docker(&["image", "inspect", image]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A clean stop also stops the containerd dockerd started.
        if let Some(c) = self.proc.0.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let stopped = wait_for(30, || matches!(c.try_wait(), Ok(Some(_))));
            if !stopped {
                let _ = c.kill();
            }
            let _ = c.wait();
            self.proc.0 = None;
        }
        let pidfile = self.dir.0.join("e/containerd/containerd.pid");
        let pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        // Only if dockerd left it running (it stops it on a clean exit).
        if let Some(pid) = pid.filter(|p| Path::new(&format!("/proc/{p}")).exists()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A root filesystem tarball for `docker import`: a few small files and a
/// 5 MiB random one, which is returned too.
pub fn rootfs_tar(work: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let root = work.join(format!("rootfs-{seed}"));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("opt/app")).unwrap();
    std::fs::write(root.join("etc/os-release"), "NAME=e2e\n").unwrap();
    std::fs::write(root.join("opt/app/README"), format!("image {seed}\n")).unwrap();
    let big = random_bytes(5 << 20, seed);
    std::fs::write(root.join("opt/app/big.bin"), &big).unwrap();
    let tar = work.join(format!("rootfs-{seed}.tar"));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    (tar, big)
}

/// The sorted tags of `repo`, which must answer 200.
pub fn tags_of(s: &Server, repo: &str) -> Vec<String> {
    let r = s.req("GET", &format!("/v2/{repo}/tags/list")).send();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut t = strings(&r.json()["tags"]);
    t.sort();
    t
}

/// The strings of a JSON array (none for anything else).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The manifest digest `docker push` reports ("<tag>: digest: sha256:... size: N").
pub fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{out}"))
        .to_string()
}

impl Dockerd {
    /// Adds a layer holding `bytes` at `/opt/extra.bin` on top of `base`
    /// without running anything (create, copy in, commit with `commit_args`
    /// such as `--change` before the container); returns the new image id.
    pub fn add_layer(&self, base: &str, work: &Path, bytes: &[u8], commit_args: &[&str]) -> String {
        let ctr = self
            .docker(&["create", base, "/nonexistent"])
            .trim()
            .to_string();
        let extra = work.join("extra.bin");
        std::fs::write(&extra, bytes).unwrap();
        self.docker(&[
            "cp",
            extra.to_str().unwrap(),
            &format!("{ctr}:/opt/extra.bin"),
        ]);
        let mut args = vec!["commit"];
        args.extend_from_slice(commit_args);
        args.push(&ctr);
        let image = self.docker(&args).trim().to_string();
        self.docker(&["rm", &ctr]);
        image
    }
}

/// A directory holding `ca.crt`, the form skopeo's and podman's
/// `--cert-dir` and Docker's `certs.d` take a CA in.
pub fn cert_dir(at: &Path, ca: &Path) -> PathBuf {
    std::fs::create_dir_all(at).unwrap();
    std::fs::copy(ca, at.join("ca.crt")).unwrap();
    at.to_path_buf()
}

const HOSTS: &str = "/etc/hosts";
/// Ends every line we add, with our pid after it, so a later run can tell
/// lines left by a killed run from anyone else's.
const HOSTS_MARK: &str = "# private-registry e2e_tls, pid ";

/// A line in /etc/hosts mapping a name to `::1` (Docker skips certificate
/// checks for registries on 127.0.0.0/8, so its tests use a name; needs root), taken out again when
/// dropped, panics included.
pub struct HostsEntry {
    line: String,
}

impl HostsEntry {
    pub fn add(name: &str) -> HostsEntry {
        let line = format!("::1 {name} {HOSTS_MARK}{}", std::process::id());
        edit_hosts(|lines| {
            lines.retain(|l| !left_by_dead_run(l));
            lines.push(line.clone());
        });
        HostsEntry { line }
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        edit_hosts(|lines| lines.retain(|l| *l != self.line));
    }
}

/// A line of ours whose process is gone: SIGKILL skips destructors.
fn left_by_dead_run(line: &str) -> bool {
    line.split_once(HOSTS_MARK)
        .and_then(|(_, pid)| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Rewrites /etc/hosts through a file renamed over it, so that no resolver
/// ever reads half of it; its other lines and its mode stay as they were.
fn edit_hosts(f: impl FnOnce(&mut Vec<String>)) {
    // Tests of one binary run on threads: one edit at a time.
    static ONE_EDIT: Mutex<()> = Mutex::new(());
    let _one = ONE_EDIT.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(HOSTS).unwrap_or_else(|e| panic!("read {HOSTS}: {e}"));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    f(&mut lines);
    let mut new = lines.join("\n");
    new.push('\n');
    let perms = std::fs::metadata(HOSTS).unwrap().permissions();
    let tmp = PathBuf::from(format!("/etc/.hosts.e2e-tls-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)
        .unwrap_or_else(|e| panic!("create {} ({e}): this test needs root", tmp.display()));
    file.write_all(new.as_bytes()).unwrap();
    file.set_permissions(perms).unwrap();
    file.sync_all().unwrap();
    match std::fs::rename(&tmp, HOSTS) {
        Ok(()) => {}
        // Inside a container /etc/hosts is a bind mount, which cannot be
        // replaced, only rewritten in place.
        Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
            let _ = std::fs::remove_file(&tmp);
            std::fs::write(HOSTS, new).unwrap();
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            panic!("replace {HOSTS}: {e}");
        }
    }
}

/// The CA installed where the engine looks for a registry's CA,
/// `/etc/docker/certs.d/HOST:PORT/ca.crt`, removed again when dropped
/// along with any parent directory this made.
pub struct DockerCa {
    dir: PathBuf,
    made_parents: Vec<PathBuf>,
}

impl DockerCa {
    pub fn install(host_port: &str, ca: &Path) -> DockerCa {
        let certs_d = Path::new("/etc/docker/certs.d");
        let made_parents = [certs_d, Path::new("/etc/docker")]
            .into_iter()
            .filter(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        let guard = DockerCa {
            dir: certs_d.join(host_port),
            made_parents,
        };
        cert_dir(&guard.dir, ca);
        guard
    }
}

impl Drop for DockerCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        for d in &self.made_parents {
            let _ = std::fs::remove_dir(d);
        }
    }
}
