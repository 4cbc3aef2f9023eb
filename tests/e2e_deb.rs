//! The Debian package end to end, on a real Debian 12 booted under systemd:
//! the .deb is built from the release binary the tests run with
//! (`packaging/build-deb --no-build`), a debootstrap'd root file system
//! (cached under the target directory) boots in `systemd-nspawn` with a
//! throw-away overlay and no network, and everything an operator does happens
//! in it: `apt install`, socket activation, certgen, users, real clients
//! (skopeo and Docker, run from the host inside the container's network
//! namespace and trusting only the CA certgen installed), reload, stop during
//! an upload, log rotation, upgrade, remove, purge and reinstall. Also lintian,
//! shellcheck, `systemd-analyze verify` and `systemd-analyze security`.
//!
//! Needs root, debootstrap, systemd-nspawn (systemd-container), lintian,
//! shellcheck, cargo-deb, dpkg-dev, skopeo and docker.io; `tests/run` installs
//! them. The first run builds the root file system (about a minute); later
//! runs reuse it.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOST: &str = "reg.e2e.test";
const USER: &str = "tester";
const PASSWORD: &str = "e2e-Password-1";
const LOCAL: &str = "http://127.0.0.1:5000";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(cmd: &str, o: &Output) -> String {
    format!(
        "{cmd}: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    )
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The .deb of the binary under test, built once per test run.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let bin = env!("CARGO_BIN_EXE_private-registry");
        assert!(
            bin.ends_with("/release/private-registry"),
            "the package is built from the release binary; run these tests with --release (tests/run does), not {bin}"
        );
        let o = Command::new(repo_root().join("packaging/build-deb"))
            .arg("--no-build")
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("cannot run packaging/build-deb");
        assert!(o.status.success(), "{}", describe("packaging/build-deb", &o));
        let path = PathBuf::from(text(&o.stdout).trim());
        assert!(
            path.is_file() && path.to_string_lossy().ends_with("_amd64.deb"),
            "build-deb printed {path:?}, not a .deb"
        );
        path
    })
}

/// The booted containers' root file system: built by tests/deb/make-rootfs,
/// cached under a name that changes whenever that script does.
fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let script = repo_root().join("tests/deb/make-rootfs");
        let key = sha256(&std::fs::read(&script).unwrap());
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-deb");
        let dir = cache.join(format!("rootfs-{}", &key[7..19]));
        if !dir.is_dir() {
            // Root file systems of earlier versions of the script: 250 MB each.
            if let Ok(entries) = std::fs::read_dir(&cache) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with("rootfs-") {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            std::fs::create_dir_all(&cache).unwrap();
            let started = Instant::now();
            let o = Command::new(&script)
                .arg(&dir)
                .stdin(Stdio::null())
                .output()
                .expect("cannot run tests/deb/make-rootfs");
            assert!(o.status.success(), "{}", describe("make-rootfs", &o));
            eprintln!(
                "e2e_deb: built {} in {:?}",
                dir.display(),
                started.elapsed()
            );
        }
        dir
    })
}

/// One booted Debian 12 with its own overlay over the cached root file
/// system, powered off and cleaned up when dropped.
struct Container {
    name: String,
    nspawn: Child,
    init: u32,
    cgroups: Vec<PathBuf>,
    console: PathBuf,
    _dir: TempDir,
}

/// A fresh cgroup beside this process's own in every hierarchy: nspawn
/// without systemd as PID 1 makes its payload/supervisor cgroups in the
/// cgroup it starts in, so parallel containers must not share one.
fn make_cgroups(name: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut made = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(n), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let mount = if n == "0" {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            Path::new("/sys/fs/cgroup").join(ctrl.trim_start_matches("name="))
        };
        if !mount.is_dir() {
            continue;
        }
        let parent = mount.join(path.trim_start_matches('/'));
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        if ctrl == "cpuset" {
            // A new cpuset accepts no task until it has CPUs and memory nodes.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(parent.join(f)).unwrap();
                std::fs::write(dir.join(f), v.trim()).unwrap();
            }
        }
        made.push(dir);
    }
    made
}

fn remove_cgroup(dir: &Path) {
    // Children (nspawn's payload/ and supervisor/) first.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent pid follows the parenthesised command name.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
            out.push(p);
        }
    }
    out
}

impl Container {
    fn boot() -> Container {
        let root = rootfs();
        let dir = TempDir::new("nspawn");
        let name = format!(
            "e2e-deb-{}-{}",
            std::process::id(),
            dir.0
                .file_name()
                .unwrap()
                .to_string_lossy()
                .rsplit('-')
                .next()
                .unwrap()
        );
        let cgroups = make_cgroups(&name);
        let console = dir.0.join("console.log");
        let log = std::fs::File::create(&console).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"for f in "$@"; do echo $$ >"$f"; done; exec systemd-nspawn --quiet -b -D "$ROOT" -M "$NAME" --volatile=overlay --private-network --register=no --keep-unit --console=pipe"#)
            .arg("sh")
            .args(cgroups.iter().map(|d| d.join("cgroup.procs")))
            .env("ROOT", root)
            .env("NAME", &name)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let nspawn = cmd.spawn().expect("cannot start systemd-nspawn");
        let mut c = Container {
            name,
            nspawn,
            init: 0,
            cgroups,
            console,
            _dir: dir,
        };
        let found = wait_for(30, || {
            if let Ok(Some(_)) = c.nspawn.try_wait() {
                return true;
            }
            // nspawn forks helpers too; the container's init is the child
            // that has become systemd.
            let init = children_of(c.nspawn.id()).into_iter().find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|s| s.trim() == "systemd")
            });
            match init {
                Some(p) => {
                    c.init = p;
                    true
                }
                None => false,
            }
        });
        assert!(
            found && c.init != 0,
            "systemd-nspawn did not start a container; its output:\n{}",
            c.console_log()
        );
        // systemd answers only once its bus is up; until then, ask again.
        let o = c.sh(
            "for i in $(seq 300); do s=$(timeout 60 systemctl is-system-running --wait 2>/dev/null); \
             case $s in running|degraded|maintenance|stopping) break;; esac; sleep 0.1; done; echo $s",
        );
        let state = text(&o.stdout);
        assert!(
            state.trim() == "running",
            "the container did not boot cleanly ({}); failed units:\n{}\nconsole:\n{}",
            describe("systemctl is-system-running", &o),
            text(&c.sh("systemctl --failed --no-pager").stdout),
            c.console_log()
        );
        // A minimal system, as debootstrap's minbase makes it: no procps, so
        // no /bin/kill, ps or pkill for the package to lean on by accident.
        let o = c.sh(
            "for f in /bin/kill /usr/bin/kill /bin/ps /usr/bin/ps /usr/bin/pkill; do \
             if [ -e $f ]; then echo $f; exit 1; fi; done; \
             ! dpkg-query -W -f='${Status}' procps 2>/dev/null | grep -q installed",
        );
        assert!(
            o.status.success(),
            "the root file system must be minbase without procps: {}",
            describe("looking for procps", &o)
        );
        c
    }

    fn console_log(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// This path of the container's file system, seen from the host.
    fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.init))
    }

    /// Runs a shell script inside, with a clean environment.
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a", "--"])
            .args([
                "env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                "DEBIAN_FRONTEND=noninteractive",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run nsenter")
    }

    /// Runs a script that must succeed; returns its stdout.
    fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "{}", describe(script, &o));
        text(&o.stdout)
    }

    /// Copies a host file into the container, readable by everyone (apt
    /// downloads as user _apt even from a local path).
    fn put(&self, from: &Path, to: &str) {
        std::fs::copy(from, self.path(to)).unwrap();
        self.ok(&format!("chmod 0644 {to}"));
    }

    /// A host command that runs in the container's network namespace, where
    /// HOST resolves to the container's ::1 (an IPv6 name, because Docker
    /// treats 127.0.0.0/8 as insecure and would not verify anything), after
    /// `setup` ran as root in a private mount namespace.
    fn host_cmd(&self, hosts: &Path, setup: &str, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.init.to_string(), "-n", "--"])
            .args(["unshare", "-m", "--propagation", "private", "--"])
            .args([
                "sh",
                "-c",
                r#"mount --bind "$0" /etc/hosts && eval "$E2E_SETUP" && exec "$@""#,
            ])
            .arg(hosts)
            .arg(program)
            .env("E2E_SETUP", if setup.is_empty() { ":" } else { setup })
            .stdin(Stdio::null());
        c
    }

    fn journal(&self) -> String {
        text(
            &self
                .sh("journalctl --no-pager -o short-monotonic -u 'private-registry*' | tail -n 80")
                .stdout,
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() && self.init != 0 {
            eprintln!(
                "--- journal of {} (private-registry units):\n{}",
                self.name,
                self.journal()
            );
        }
        if self.init != 0 {
            let _ = self.sh("systemctl poweroff --no-block");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.nspawn.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.nspawn.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
        for d in &self.cgroups {
            remove_cgroup(d);
        }
    }
}

/// A booted container with the package installed, and the output of apt.
fn installed() -> (Container, String) {
    let deb = deb();
    let c = Container::boot();
    c.put(deb, "/var/tmp/private-registry.deb");
    let out = c.ok("apt-get install -y /var/tmp/private-registry.deb 2>&1");
    (c, out)
}

// ---------------------------------------------------------------------------

#[test]
fn lintian_reports_no_errors_or_warnings() {
    let deb = deb();
    let o = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--no-tag-display-limit"])
        .arg(deb)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run lintian (apt install lintian)");
    let out = text(&o.stdout);
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(
        o.status.success() && bad.is_empty(),
        "lintian on {}:\n{}",
        deb.display(),
        describe("lintian", &o)
    );
}

/// The reverse-proxy examples are installed byte for byte as tests/proxy.rs
/// runs them.
#[test]
fn the_package_ships_the_reverse_proxy_examples() {
    let dir = TempDir::new("deb-examples");
    let o = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(&dir.0)
        .output()
        .expect("cannot run dpkg-deb");
    assert!(o.status.success(), "{}", describe("dpkg-deb -x", &o));
    let installed = dir.0.join("usr/share/doc/private-registry/examples");
    for name in ["haproxy.cfg", "nginx.conf", "behind-a-proxy.yml"] {
        let shipped = std::fs::read(installed.join(name))
            .unwrap_or_else(|e| panic!("{name} is not in the package's examples: {e}"));
        let source = std::fs::read(repo_root().join("packaging/examples").join(name)).unwrap();
        assert!(
            shipped == source,
            "{name} differs from packaging/examples/{name}"
        );
    }
}

#[test]
fn shell_scripts_pass_shellcheck() {
    let root = repo_root();
    let mut cmd = Command::new("shellcheck");
    cmd.current_dir(root).args([
        "packaging/private-registry-certgen",
        "packaging/private-registry-trust",
        "packaging/build-deb",
        "packaging/private-registry-network",
        "debian/postinst",
        "debian/prerm",
        "debian/postrm",
        "tests/deb/make-rootfs",
        "tests/run",
        "tests/total",
    ]);
    run_ok(&mut cmd);
    // Completion files have no #! line to say which shell reads them.
    run_ok(Command::new("shellcheck").current_dir(root).args([
        "--shell=bash",
        "packaging/completions/private-registry-certgen",
        "packaging/completions/private-registry-trust",
    ]));
}

#[test]
fn units_verify_silently_and_are_sandboxed() {
    let (c, _) = installed();
    // verify exits 0 even on unknown keys: any output at all is a finding.
    let o = c.sh("cd /lib/systemd/system && systemd-analyze verify private-registry.service private-registry.socket private-registry-network.socket private-registry-network-retry.service 2>&1");
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "{}",
        describe("systemd-analyze verify", &o)
    );

    let o = c.sh("systemd-analyze security --no-pager private-registry.service 2>&1");
    let out = text(&o.stdout);
    let exposure: f64 = out
        .lines()
        .find_map(|l| l.split("private-registry.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(
        exposure <= 2.0,
        "systemd-analyze security: exposure {exposure} > 2.0\n{out}"
    );
}

#[test]
fn certgen_is_idempotent_refuses_other_hosts_and_reports_errors() {
    let (c, _) = installed();
    let tls = "/etc/private-registry/tls";
    let fp = |file: &str| {
        c.ok(&format!(
            "openssl x509 -noout -fingerprint -sha256 -in {tls}/{file}"
        ))
    };

    c.ok(&format!(
        "private-registry-certgen {HOST} --ip 192.0.2.7 --ip 2001:db8::7"
    ));
    assert_eq!(
        c.ok(&format!(
            "stat -c '%U:%G %a' {tls} {tls}/ca.key {tls}/ca.crt {tls}/server.key {tls}/server.crt"
        )),
        "root:private-registry 750\nroot:root 600\nroot:root 644\nroot:private-registry 640\nroot:root 644\n"
    );
    let sans = c.ok(&format!(
        "openssl x509 -noout -ext subjectAltName -in {tls}/server.crt"
    ));
    for want in [
        format!("DNS:{HOST}"),
        "IP Address:192.0.2.7".into(),
        "IP Address:2001:DB8:0:0:0:0:0:7".into(),
    ] {
        assert!(sans.contains(&want), "{want} missing from {sans}");
    }
    c.ok(&format!(
        "openssl verify -CAfile {tls}/ca.crt {tls}/server.crt"
    ));
    let ca = c.ok(&format!("cat {tls}/ca.crt"));
    for store in ["docker", "containers"] {
        assert_eq!(c.ok(&format!("cat /etc/{store}/certs.d/{HOST}/ca.crt")), ca);
    }
    assert!(
        c.ok(&format!("cat {tls}/ca.crt {tls}/ca.key | wc -c"))
            .trim()
            != "0",
        "CA files are empty"
    );

    // Same request again: nothing changes.
    let (ca_fp, server_fp) = (fp("ca.crt"), fp("server.crt"));
    let out = c.ok(&format!(
        "private-registry-certgen {HOST} --ip 2001:db8::7 --ip 192.0.2.7"
    ));
    assert!(out.contains("nothing re-issued"), "{out}");
    assert_eq!(
        (fp("ca.crt"), fp("server.crt")),
        (ca_fp.clone(), server_fp.clone())
    );

    // Another host is refused without --force, and replaces it with.
    let o = c.sh("private-registry-certgen other.e2e.test");
    assert!(
        o.status.code() == Some(1) && text(&o.stderr).contains("--force"),
        "{}",
        describe("certgen for another host", &o)
    );
    assert_eq!(fp("server.crt"), server_fp);
    c.ok("private-registry-certgen other.e2e.test --force --port 5443");
    assert_ne!(fp("server.crt"), server_fp);
    assert_eq!(fp("ca.crt"), ca_fp, "the CA must be kept");
    c.ok("test -f /etc/docker/certs.d/other.e2e.test:5443/ca.crt");

    // A certificate close to expiry is renewed by a plain re-run.
    c.ok("private-registry-certgen other.e2e.test --port 5443 --force --days 5");
    let short = fp("server.crt");
    let out = c.ok("private-registry-certgen other.e2e.test --port 5443");
    assert!(out.contains("expires within 30 days"), "{out}");
    assert_ne!(fp("server.crt"), short);

    // --system-trust: curl on this machine trusts the CA without --cacert.
    c.ok("private-registry-certgen other.e2e.test --port 5443 --system-trust");
    c.ok("test -f /usr/local/share/ca-certificates/private-registry-other.e2e.test.crt");
    c.ok(&format!(
        "grep -q \"$(sed -n 2p {tls}/ca.crt)\" /etc/ssl/certs/ca-certificates.crt"
    ));

    // Clear errors, and nothing touched.
    for (args, code, says) in [
        ("", 2, "HOST is missing"),
        ("bad_name", 2, "neither a DNS name nor an IP address"),
        ("x.test --ip 300.1.1.1", 2, "not an IPv4 or IPv6 address"),
        ("x.test --ip 1::2::3", 2, "not an IPv4 or IPv6 address"),
        ("x.test --port 70000", 2, "not a port number"),
        ("x.test --days 0", 2, "not a number of days"),
        ("x.test --frobnicate", 2, "unknown option"),
    ] {
        let o = c.sh(&format!("private-registry-certgen {args}"));
        assert!(
            o.status.code() == Some(code) && text(&o.stderr).contains(says),
            "{}",
            describe(&format!("certgen {args}"), &o)
        );
    }
    let o = c.sh(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups private-registry-certgen x.test",
    );
    assert!(
        o.status.code() == Some(1) && text(&o.stderr).contains("must run as root"),
        "{}",
        describe("certgen as nobody", &o)
    );
    // The overlay is thrown away, so openssl can be taken away for a moment.
    let o = c.sh(
        "mv /usr/bin/openssl /usr/bin/openssl.away; private-registry-certgen x.test; s=$?; \
         mv /usr/bin/openssl.away /usr/bin/openssl; exit $s",
    );
    assert!(
        o.status.code() == Some(1) && text(&o.stderr).contains("openssl is not installed"),
        "{}",
        describe("certgen without openssl", &o)
    );

    // private-registry-trust, as on a client machine.
    let out = c.ok(&format!(
        "private-registry-trust --fingerprint '{}' Client.E2E.test:5000 {tls}/ca.crt",
        ca_fp.trim().split_once('=').unwrap().1
    ));
    assert!(out.contains("client.e2e.test:5000"), "{out}");
    for store in ["docker", "containers"] {
        assert_eq!(
            c.ok(&format!(
                "cat /etc/{store}/certs.d/client.e2e.test:5000/ca.crt"
            )),
            ca
        );
    }
    c.ok(&format!(
        "openssl x509 -in {tls}/ca.crt -outform DER -out /tmp/ca.der && private-registry-trust '[2001:db8::9]' /tmp/ca.der"
    ));
    assert_eq!(c.ok("cat '/etc/docker/certs.d/[2001:db8::9]/ca.crt'"), ca);
    for (args, says) in [
        (format!("x.test {tls}/server.crt"), "not a CA certificate"),
        (
            "x.test /etc/hostname".to_string(),
            "not an X.509 certificate",
        ),
        (
            format!("--fingerprint AA:BB x.test {tls}/ca.crt"),
            "not the expected",
        ),
    ] {
        let o = c.sh(&format!("private-registry-trust {args}"));
        assert!(
            o.status.code() == Some(1) && text(&o.stderr).contains(says),
            "{}",
            describe(&format!("trust {args}"), &o)
        );
    }
    c.ok("test ! -e /etc/docker/certs.d/x.test");
}

/// An OCI image layout with one small image, written on the host.
fn oci_layout(dir: &Path) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    let files = dir.join("rootfs");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("hello.txt"), b"hello from the package test\n").unwrap();
    std::fs::write(files.join("random.bin"), random_bytes(300_000, 5)).unwrap();
    let tar = oci::reproducible_tar(&files);
    let diff_id = sha256(&tar);
    let mut gz = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&tar).unwrap());
    let gz = gz.wait_with_output().unwrap();
    writer.join().unwrap();
    let (layer, layer_n) = put(&gz.stdout);
    let (config, config_n) = put(format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#).as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_n}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{layer_n}}}]}}"#
    );
    let (digest, n) = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{n},"annotations":{{"org.opencontainers.image.ref.name":"1.0"}}}}]}}"#
        ),
    )
    .unwrap();
    digest
}

/// The manifest digest an OCI layout's index.json gives for tag 1.0.
fn layout_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "1.0")
        .unwrap_or_else(|| panic!("no 1.0 in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The SHA-256 fingerprint of the certificate the TLS listener serves.
fn served_fingerprint(c: &Container) -> String {
    c.ok(&format!(
        "openssl s_client -connect '[::1]:443' -servername {HOST} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    ))
}

/// The same, or an empty string while nothing serves TLS on port 443.
fn try_served_fingerprint(c: &Container) -> String {
    text(&c.sh(&format!(
        "timeout 10 openssl s_client -connect '[::1]:443' -servername {HOST} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null"
    ))
    .stdout)
}

fn file_fingerprint(c: &Container, path: &str) -> String {
    c.ok(&format!(
        "openssl x509 -noout -fingerprint -sha256 -in {path}"
    ))
}

fn main_pid(c: &Container) -> String {
    c.ok("systemctl show -p MainPID --value private-registry.service")
        .trim()
        .to_string()
}

/// A header's value in `curl -D -` output, whatever the case of its name.
fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// `curl` on the plain local listener with the test user's credentials;
/// prints the status code after the body.
fn local_curl(args: &str) -> String {
    format!("curl -sS -u {USER}:{PASSWORD} -w '\\n%{{http_code}}' {args}")
}

#[test]
fn install_serve_push_pull_reload_stop_remove_purge_reinstall() {
    let (c, apt) = installed();
    assert!(
        apt.contains("private-registry-certgen"),
        "postinst says what to do next:\n{apt}"
    );

    // --- What the package set up.
    c.ok(
        "getent passwd private-registry | grep -q ':/var/lib/private-registry:/usr/sbin/nologin$'",
    );
    assert_eq!(
        c.ok("stat -c '%n %U:%G %a' /var/lib/private-registry /var/log/private-registry /etc/private-registry/htpasswd /etc/private-registry/tls"),
        "/var/lib/private-registry private-registry:private-registry 750\n\
         /var/log/private-registry private-registry:adm 2750\n\
         /etc/private-registry/htpasswd root:private-registry 640\n\
         /etc/private-registry/tls root:private-registry 750\n"
    );
    c.ok("test ! -s /etc/private-registry/htpasswd");
    assert_eq!(
        c.ok("systemctl is-enabled private-registry.socket private-registry-network.socket private-registry.service"),
        "enabled\nenabled\nenabled\n"
    );
    assert_eq!(
        c.ok("systemctl is-active private-registry.socket private-registry-network.socket; systemctl is-active private-registry.service || true"),
        "active\nactive\ninactive\n",
        "install starts the sockets only"
    );

    // --- The first connection starts the service, which reports READY and
    // its status, and says how to get the TLS listener going.
    let o = c.ok(&format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' --retry 5 --retry-connrefused {LOCAL}/v2/"
    ));
    assert!(
        o == "200" || o == "401",
        "GET /v2/ on the local listener: {o}"
    );
    // Type=notify: "active" only once the daemon sent READY=1, which may
    // come just after it answered that first request.
    assert!(
        wait_for(10, || c
            .ok("systemctl show -p ActiveState --value private-registry.service")
            .trim()
            == "active"),
        "no READY=1: {}",
        c.ok("systemctl show -p ActiveState -p SubState -p Result private-registry.service")
    );
    let status = c.ok("systemctl show -p StatusText --value private-registry.service");
    assert!(!status.trim().is_empty(), "no STATUS= from the daemon");
    let journal = c.journal();
    assert!(
        journal.contains("private-registry-certgen"),
        "the log should say to run private-registry-certgen:\n{journal}"
    );
    // Through syslog (journald also tags captured stderr with facility
    // daemon, so the transport is what tells them apart).
    let via_syslog = c.ok(
        "journalctl --no-pager -o verbose -u private-registry.service | grep -c '^ *_TRANSPORT=syslog$' || true",
    );
    assert!(
        via_syslog.trim().parse::<u32>().unwrap_or(0) > 0,
        "no messages through syslog (facility daemon):\n{journal}"
    );
    assert!(status.starts_with("serving"), "STATUS={status}");
    // The packaged debug listener: metrics and health on 127.0.0.1:5001,
    // and the health check on the local listener, without a login.
    let metrics = c.ok("curl -sS http://127.0.0.1:5001/metrics");
    assert!(
        metrics.contains("registry_http_requests_total{method=\"GET\",route=\"base\""),
        "{metrics}"
    );
    // The process series come from /proc/self alone, which the unit's
    // ProcSubset=pid leaves visible.
    assert!(
        metrics.contains("\nprocess_open_fds ")
            && metrics.contains("\nprocess_start_time_seconds "),
        "{metrics}"
    );
    assert_eq!(c.ok("curl -sS http://127.0.0.1:5001/debug/health"), "ok\n");
    assert_eq!(c.ok(&format!("curl -sS {LOCAL}/healthz")), "ok\n");

    // --- Out of the box: this host pushes over plain HTTP without a login,
    // and the network gets nothing at all until there is a certificate.
    let hello = c.ok(&format!(
        "echo hello >/var/tmp/hello && curl -sS -o /dev/null -w '%{{http_code}}' -X POST --data-binary @/var/tmp/hello \
         \"{LOCAL}/v2/local/hello/blobs/uploads/?digest=sha256:$(sha256sum /var/tmp/hello | cut -d' ' -f1)\""
    ));
    assert_eq!(hello, "201", "anonymous push on the local listener");
    let o = c.sh("curl -sS -k -o /dev/null -m 5 'https://[::1]/v2/'");
    assert!(
        !o.status.success(),
        "TLS must not serve without a certificate: {}",
        describe("curl", &o)
    );

    // --- A user, and a certificate for HOST.
    c.ok(&format!(
        "echo {PASSWORD} | private-registry htpasswd add --password-stdin {USER}"
    ));
    let out = c.ok(&format!("private-registry-certgen {HOST}"));
    assert!(out.contains("Reloaded private-registry.service"), "{out}");
    c.ok(&format!("echo '::1 {HOST}' >>/etc/hosts"));
    let https = |path: &str, extra: &str| {
        format!(
            "curl -sS -o /dev/null -w '%{{http_code}}' --retry 10 --retry-connrefused --retry-all-errors --cacert /etc/private-registry/tls/ca.crt {extra} https://{HOST}{path}"
        )
    };
    assert_eq!(c.ok(&https("/v2/", "")), "401", "no credentials");
    assert_eq!(
        c.ok(&https("/v2/", &format!("-u {USER}:{PASSWORD}"))),
        "200"
    );
    assert_eq!(
        c.ok(&https("/ca.crt", &format!("-u {USER}:{PASSWORD}"))),
        "200"
    );
    let served_ca = c.ok(&format!("curl -sS -u {USER}:{PASSWORD} --cacert /etc/private-registry/tls/ca.crt https://{HOST}/ca.crt"));
    assert_eq!(
        served_ca,
        c.ok("cat /etc/private-registry/tls/ca.crt"),
        "GET /ca.crt serves the CA"
    );
    let o = c.sh(&format!("curl -sS -o /dev/null https://{HOST}/v2/"));
    assert!(
        !o.status.success(),
        "without the CA, TLS must fail: {}",
        describe("curl", &o)
    );

    // --- A real client from the host, trusting only the CA certgen
    // installed for it: log in, push, pull back.
    let work = TempDir::new("deb-client");
    let hosts = work.0.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n::1 localhost {HOST}\n"),
    )
    .unwrap();
    let certs = c.path(&format!("/etc/containers/certs.d/{HOST}"));
    let auth = work.0.join("auth.json");
    let src = work.0.join("src");
    let digest = oci_layout(&src);
    // No credentials or trust from the host's own configuration.
    let isolated = |cmd: &mut Command| {
        cmd.env("HOME", &work.0)
            .env("REGISTRY_AUTH_FILE", work.0.join("none.json"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG");
    };
    let skopeo = |args: &[&str]| -> Output {
        let mut cmd = c.host_cmd(&hosts, "", "skopeo");
        isolated(&mut cmd);
        cmd.arg("--insecure-policy")
            .arg("--tmpdir")
            .arg(&work.0)
            .args(args)
            .output()
            .expect("cannot run skopeo")
    };
    let image = format!("docker://{HOST}/team/app:1.0");
    let o = skopeo(&[
        "copy",
        &format!("oci:{}:1.0", src.display()),
        &image,
        "--dest-cert-dir",
        certs.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "push without logging in must fail: {}",
        describe("skopeo copy", &o)
    );
    let o = skopeo(&[
        "copy",
        &format!("oci:{}:1.0", src.display()),
        &image,
        "--dest-creds",
        &format!("{USER}:{PASSWORD}"),
    ]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("certificate"),
        "a client that does not trust the CA must not connect: {}",
        describe("skopeo copy", &o)
    );
    let mut login = c.host_cmd(&hosts, "", "skopeo");
    isolated(&mut login);
    login
        .args(["login", "--authfile"])
        .arg(&auth)
        .arg("--cert-dir")
        .arg(&certs)
        .args(["--username", USER, "--password-stdin", HOST])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", describe("skopeo login", &o));
    let authfile = auth.to_str().unwrap();
    let certdir = certs.to_str().unwrap();
    let o = skopeo(&[
        "copy",
        "--dest-authfile",
        authfile,
        "--dest-cert-dir",
        certdir,
        &format!("oci:{}:1.0", src.display()),
        &image,
    ]);
    assert!(o.status.success(), "{}", describe("skopeo copy (push)", &o));
    let back = work.0.join("back");
    let o = skopeo(&[
        "copy",
        "--src-authfile",
        authfile,
        "--src-cert-dir",
        certdir,
        &image,
        &format!("oci:{}:1.0", back.display()),
    ]);
    assert!(o.status.success(), "{}", describe("skopeo copy (pull)", &o));
    assert_eq!(
        layout_digest(&back),
        digest,
        "pulled back the very manifest pushed"
    );
    let access = c.ok("cat /var/log/private-registry/access.log");
    assert!(
        access.contains("/v2/team/app/manifests/1.0"),
        "access log:\n{access}"
    );

    // --- Reload swaps the certificate without a restart.
    let pid = main_pid(&c);
    let before = served_fingerprint(&c);
    assert_eq!(
        before,
        file_fingerprint(&c, "/etc/private-registry/tls/server.crt")
    );
    c.ok(&format!("private-registry-certgen {HOST} --force"));
    c.ok("systemctl reload private-registry.service");
    let after = file_fingerprint(&c, "/etc/private-registry/tls/server.crt");
    assert_ne!(before, after, "certgen --force issues a new certificate");
    assert!(
        wait_for(10, || served_fingerprint(&c) == after),
        "the new certificate is not served after reload (still {})",
        served_fingerprint(&c)
    );
    assert_eq!(main_pid(&c), pid, "reload must not restart the daemon");
    assert_eq!(
        c.ok("systemctl is-active private-registry.service").trim(),
        "active"
    );

    // --- Log rotation: the daemon reopens its access log on SIGUSR1.
    c.ok("logrotate -f /etc/logrotate.d/private-registry");
    c.ok("test -s /var/log/private-registry/access.log.1");
    c.ok(&local_curl(&format!("-o /dev/null {LOCAL}/v2/_catalog")));
    assert!(
        wait_for(20, || c
            .sh("test -s /var/log/private-registry/access.log")
            .status
            .success()),
        "nothing logged to the new access.log after rotation"
    );
    assert_eq!(main_pid(&c), pid, "rotation must not restart the daemon");

    // --- Stop during an upload: what was acknowledged survives.
    c.ok("head -c 300000 /dev/urandom >/var/tmp/a && head -c 3300000 /dev/urandom >/var/tmp/b && cat /var/tmp/a /var/tmp/b >/var/tmp/ab");
    let start = c.ok(&local_curl(&format!(
        "-D - -o /dev/null -X POST {LOCAL}/v2/e2e/upload/blobs/uploads/"
    )));
    let location = |headers: &str| -> String {
        let l = header(headers, "location").unwrap_or_else(|| panic!("no Location in:\n{headers}"));
        if l.starts_with('/') {
            format!("{LOCAL}{l}")
        } else {
            l
        }
    };
    let upload = location(&start);
    let first = c.ok(&local_curl(&format!(
        "-D - -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 0-299999' --data-binary @/var/tmp/a '{upload}'"
    )));
    assert!(first.trim_end().ends_with("202"), "first chunk: {first}");
    let upload = location(&first);
    // The second chunk trickles in at 150 KiB/s (21 s) while the service
    // stops, so the drain lasts longer than the watchdog's 15 s probe period:
    // nothing the daemon does while draining may start it again.
    c.ok(&format!(
        "setsid sh -c \"{} >/var/tmp/patch.out 2>&1; echo done >/var/tmp/patch.done\" </dev/null >/dev/null 2>&1 &",
        local_curl(&format!(
            "--limit-rate 150k -o /dev/null -X PATCH -H 'Content-Type: application/octet-stream' -H 'Content-Range: 300000-3599999' --data-binary @/var/tmp/b '{upload}'"
        ))
        .replace('"', "\\\"")
    ));
    std::thread::sleep(Duration::from_secs(2));
    let stopping = Instant::now();
    c.ok("systemctl stop private-registry.service");
    eprintln!("e2e_deb: stop took {:?}", stopping.elapsed());
    assert!(
        wait_for(45, || c.sh("test -e /var/tmp/patch.done").status.success()),
        "the slow upload never finished"
    );
    let patch = c.ok("cat /var/tmp/patch.out");
    assert!(
        patch.trim_end().ends_with("202"),
        "the drain should let the chunk in flight finish; curl said: {patch}"
    );
    let acknowledged: u64 = 3_600_000;
    assert_eq!(
        c.ok("systemctl is-active private-registry.service || true")
            .trim(),
        "inactive",
        "stopped means stopped: a connection the daemon left queued on its own sockets starts it again"
    );
    // The next request starts the service again; the upload is all there.
    let status = c.ok(&local_curl(&format!(
        "-D - -o /dev/null --retry 5 --retry-connrefused '{upload}'"
    )));
    let range =
        header(&status, "range").unwrap_or_else(|| panic!("no Range in upload status:\n{status}"));
    assert_eq!(
        range,
        format!("0-{}", acknowledged - 1),
        "upload status after restart"
    );
    let ab_digest = c
        .ok("sha256sum /var/tmp/ab | cut -d' ' -f1")
        .trim()
        .to_string();
    let sep = if upload.contains('?') { '&' } else { '?' };
    let done = c.ok(&local_curl(&format!(
        "-o /dev/null -X PUT '{upload}{sep}digest=sha256:{ab_digest}'"
    )));
    assert!(
        done.trim_end().ends_with("201"),
        "finishing the upload: {done}"
    );
    let blob_url = format!("{LOCAL}/v2/e2e/upload/blobs/sha256:{ab_digest}");
    assert_eq!(
        c.ok(&format!(
            "curl -sS -u {USER}:{PASSWORD} '{blob_url}' | sha256sum | cut -d' ' -f1"
        ))
        .trim(),
        ab_digest
    );

    // --- Upgrade (the same version again takes the same path): the service
    // restarts on the new files, the sockets stay, nothing is lost.
    let pid = main_pid(&c);
    c.ok("apt-get install -y --reinstall /var/tmp/private-registry.deb");
    assert_eq!(c.ok("systemctl is-active private-registry.socket private-registry-network.socket private-registry.service"), "active\nactive\nactive\n");
    assert_ne!(main_pid(&c), pid, "upgrade restarts the service");
    c.ok(&format!("grep -q '^{USER}:' /etc/private-registry/htpasswd && test -f /etc/private-registry/tls/ca.key"));

    // --- Remove: everything stops, configuration and data stay.
    c.ok("apt-get remove -y private-registry");
    assert_eq!(
        c.ok("systemctl is-active private-registry.socket private-registry-network.socket private-registry.service || true"),
        "inactive\ninactive\ninactive\n"
    );
    let o = c.sh(&format!("curl -sS -m 5 {LOCAL}/v2/"));
    assert!(!o.status.success(), "nothing listens after remove");
    c.ok("test -f /etc/private-registry/htpasswd && test -d /var/lib/private-registry/docker/registry/v2/blobs");

    // --- Purge: configuration and logs go, image data stays and is named.
    let out = c.ok("apt-get purge -y private-registry 2>&1");
    assert!(
        out.contains("/var/lib/private-registry"),
        "purge says where the data is:\n{out}"
    );
    c.ok("test ! -e /etc/private-registry && test ! -e /var/log/private-registry");
    let blob_file = format!(
        "/var/lib/private-registry/docker/registry/v2/blobs/sha256/{}/{ab_digest}/data",
        &ab_digest[..2]
    );
    c.ok(&format!("test -f {blob_file}"));
    c.ok(&format!(
        "test -d /var/lib/private-registry/docker/registry/v2/repositories/team/app/_manifests/revisions/sha256/{}",
        &digest[7..]
    ));

    // --- Reinstall finds the data again.
    c.ok("apt-get install -y /var/tmp/private-registry.deb");
    c.ok(&format!(
        "echo {PASSWORD} | private-registry htpasswd add --password-stdin {USER}"
    ));
    assert_eq!(
        c.ok(&format!("curl -sS --retry 5 --retry-connrefused -u {USER}:{PASSWORD} '{blob_url}' | sha256sum | cut -d' ' -f1")).trim(),
        ab_digest
    );
    let tags = c.ok(&local_curl(&format!("{LOCAL}/v2/team/app/tags/list")));
    assert!(tags.contains("\"1.0\""), "tags after reinstall: {tags}");
}

/// A Docker engine on the host inside a container's network namespace,
/// trusting what certgen installed in the container's /etc/docker/certs.d
/// and nothing else; stopped (with the containerd it started) when dropped.
struct Dockerd {
    proc: Option<Child>,
    dir: PathBuf,
}

impl Dockerd {
    fn start(c: &Container, dir: &Path, hosts: &Path) -> Dockerd {
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        // Docker has no option for its certs.d; a private /etc/docker gets a
        // copy of the container's (a bind mount cannot reach into another
        // mount namespace).
        let setup = format!(
            "mount -t tmpfs -o mode=0755 tmpfs /etc/docker && cp -a {} /etc/docker/",
            c.path("/etc/docker/certs.d").display()
        );
        let mut cmd = c.host_cmd(hosts, &setup, "dockerd");
        let proc = docker::private_dockerd_args(&mut cmd, dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start dockerd (apt install docker.io)");
        let mut d = Dockerd {
            proc: Some(proc),
            dir: dir.to_path_buf(),
        };
        let up = wait_for(90, || {
            matches!(d.proc.as_mut().unwrap().try_wait(), Ok(Some(_)))
                || d.try_docker(&["info", "--format", "{{.ServerVersion}}"], None)
                    .status
                    .success()
        });
        assert!(
            up && matches!(d.proc.as_mut().unwrap().try_wait(), Ok(None)),
            "dockerd did not come up; its log:\n{}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        d
    }

    fn try_docker(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.dir.join("cfg"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("s").display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot run docker");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn docker(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.try_docker(args, stdin);
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("docker {args:?}"), &o)
        );
        text(&o.stdout)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &p.id().to_string()])
                .status();
            if !wait_for(30, || matches!(p.try_wait(), Ok(Some(_)))) {
                let _ = p.kill();
            }
            let _ = p.wait();
        }
        // The containerd it started, unless it used the host's.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("e/containerd/containerd.pid")) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
    }
}

#[test]
fn docker_logs_in_pushes_and_pulls_trusting_only_the_generated_ca() {
    let (c, _) = installed();
    c.ok(&format!("private-registry-certgen {HOST}"));
    c.ok(&format!(
        "echo {PASSWORD} | private-registry htpasswd add --password-stdin {USER}"
    ));
    // The sockets are up; the service starts with the first connection.
    c.ok(&format!(
        "curl -sS -o /dev/null --retry 5 --retry-connrefused {LOCAL}/v2/"
    ));

    let work = TempDir::new("deb-docker");
    let hosts = work.0.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n::1 localhost {HOST}\n"),
    )
    .unwrap();
    let files = work.0.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("hello.txt"), b"hello from docker\n").unwrap();
    let tar = work.0.join("image.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&files)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );

    let d = Dockerd::start(&c, &work.0, &hosts);
    let image = format!("{HOST}/team/app:1.0");
    let id = d.docker(&["import", tar.to_str().unwrap(), &image], None);
    let o = d.try_docker(&["push", &image], None);
    assert!(
        !o.status.success(),
        "push without login must fail: {}",
        describe("docker push", &o)
    );

    let out = d.docker(
        &["login", "-u", USER, "--password-stdin", HOST],
        Some(PASSWORD),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = d.docker(&["push", &image], None);
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in push output:\n{out}"))
        .to_string();
    d.docker(&["rmi", &image], None);
    d.docker(&["pull", &image], None);
    assert_eq!(
        d.docker(&["image", "inspect", "--format", "{{.Id}}", &image], None)
            .trim(),
        id.trim(),
        "pulled back the image pushed"
    );
    let tags = c.ok(&format!(
        "curl -sS -u {USER}:{PASSWORD} --cacert /etc/private-registry/tls/ca.crt --resolve {HOST}:443:127.0.0.1 https://{HOST}/v2/team/app/manifests/1.0 -o /dev/null -w '%{{http_code}} ' -D - | tr -d '\\r'"
    ));
    assert!(
        tags.to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "the registry serves what docker pushed ({digest}):\n{tags}"
    );

    // The plain local listener, as the package promises: no login (Docker
    // has no credentials for it) and plain HTTP, which Docker speaks to
    // localhost without being told.
    let local = "localhost:5000/team/local:1.0";
    d.docker(&["tag", &image, local], None);
    d.docker(&["push", local], None);
    d.docker(&["rmi", local], None);
    d.docker(&["pull", local], None);
}

/// The service as started by its first connection, with READY=1 sent.
fn start_service(c: &Container) {
    c.ok(&format!(
        "curl -sS -o /dev/null -m 10 --retry 10 --retry-connrefused {LOCAL}/v2/"
    ));
    assert!(
        wait_for(10, || c
            .ok("systemctl show -p ActiveState --value private-registry.service")
            .trim()
            == "active"),
        "the service did not become active: {}",
        c.ok("systemctl show -p ActiveState -p SubState -p Result private-registry.service")
    );
}

fn reloads_logged(c: &Container) -> usize {
    c.ok("journalctl --no-pager -u private-registry.service")
        .matches("reloaded configuration, users and certificates")
        .count()
}

#[test]
fn certgen_and_reload_work_on_a_minimal_system() {
    // Container::boot has checked that there is no /bin/kill.
    let (c, _) = installed();
    start_service(&c);
    let pid = main_pid(&c);
    let before = reloads_logged(&c);
    let o = c.sh(&format!("private-registry-certgen {HOST}"));
    assert!(
        o.status.success() && text(&o.stdout).contains("Reloaded private-registry.service"),
        "{}",
        describe("private-registry-certgen", &o)
    );
    assert!(
        wait_for(10, || reloads_logged(&c) > before),
        "certgen's reload never reached the daemon:\n{}",
        c.journal()
    );
    let cert = file_fingerprint(&c, "/etc/private-registry/tls/server.crt");
    assert!(
        wait_for(10, || try_served_fingerprint(&c) == cert),
        "the new certificate is not served (serving {:?})",
        try_served_fingerprint(&c)
    );

    let before = reloads_logged(&c);
    let o = c.sh("systemctl reload private-registry.service");
    assert!(
        o.status.success(),
        "{}\n{}",
        describe("systemctl reload", &o),
        c.journal()
    );
    assert!(
        wait_for(10, || reloads_logged(&c) > before),
        "systemctl reload never reached the daemon:\n{}",
        c.journal()
    );
    assert_eq!(main_pid(&c), pid, "reload must not restart the daemon");
    assert!(
        wait_for(10, || c
            .ok("systemctl show -p ActiveState --value private-registry.service")
            .trim()
            == "active"),
        "not active after reload"
    );
    assert_eq!(
        c.ok("systemctl show -p ReloadResult --value private-registry.service")
            .trim(),
        "success"
    );
}

#[test]
fn port_443_taken_leaves_the_local_listener_working_and_is_served_once_free() {
    let deb = deb();
    let c = Container::boot();
    // Another TLS server holds port 443 (all addresses) before the package
    // arrives.
    c.ok("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=squatter -days 2 \
          -keyout /var/tmp/squatter.key -out /var/tmp/squatter.crt 2>/dev/null");
    c.ok(
        "systemd-run --quiet --unit=squatter openssl s_server -quiet -www -accept 443 \
          -cert /var/tmp/squatter.crt -key /var/tmp/squatter.key",
    );
    let squatter = file_fingerprint(&c, "/var/tmp/squatter.crt");
    assert!(
        wait_for(10, || try_served_fingerprint(&c) == squatter),
        "the squatter does not serve on port 443"
    );

    c.put(deb, "/var/tmp/private-registry.deb");
    let apt = c.ok("apt-get install -y /var/tmp/private-registry.deb 2>&1");
    assert!(
        apt.contains("port 443") && apt.contains("in use by openssl"),
        "the install must say that port 443 is taken, and by what:\n{apt}"
    );
    assert_eq!(
        c.ok("systemctl is-active private-registry.socket || true")
            .trim(),
        "active"
    );
    assert_eq!(
        c.ok("systemctl is-active private-registry-network.socket || true")
            .trim(),
        "failed"
    );

    // The local listener works, again and again (no trigger limit), and so
    // does the service behind it.
    let codes = c.ok(&format!(
        "for i in $(seq 40); do curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' --retry 5 --retry-connrefused {LOCAL}/v2/ || exit 1; done"
    ));
    assert!(
        codes.lines().count() == 40 && codes.lines().all(|l| l == "200" || l == "401"),
        "GET /v2/ on the local listener:\n{codes}\n{}",
        c.journal()
    );
    start_service(&c);
    let hello = c.ok(&format!(
        "echo hello >/var/tmp/hello && curl -sS -m 10 -o /dev/null -w '%{{http_code}}' -X POST --data-binary @/var/tmp/hello \
         \"{LOCAL}/v2/local/hello/blobs/uploads/?digest=sha256:$(sha256sum /var/tmp/hello | cut -d' ' -f1)\""
    ));
    assert_eq!(hello, "201", "anonymous push on the local listener");
    assert_eq!(
        c.ok("systemctl is-active private-registry.socket || true")
            .trim(),
        "active",
        "the local socket survives the network socket's failure"
    );

    // systemctl status says what is wrong.
    let status = text(
        &c.sh("systemctl status --no-pager private-registry.service")
            .stdout,
    );
    assert!(
        status.contains("port 443") && status.contains("in use by openssl"),
        "systemctl status private-registry must say that port 443 is taken:\n{status}"
    );
    // And the daemon's own status line, which later log lines cannot push
    // out of view.
    let line = c.ok("systemctl show -p StatusText --value private-registry.service");
    assert!(
        line.contains("NOT listening on") && line.contains("\"network\""),
        "StatusText: {line}"
    );

    // A certificate and a user while the port is still taken; then the port
    // is freed, and nothing else is done.
    c.ok(&format!("private-registry-certgen {HOST}"));
    c.ok(&format!(
        "echo {PASSWORD} | private-registry htpasswd add --password-stdin {USER}"
    ));
    assert_eq!(try_served_fingerprint(&c), squatter);
    c.ok("systemctl stop squatter.service");
    let ours = file_fingerprint(&c, "/etc/private-registry/tls/server.crt");
    assert!(
        wait_for(60, || try_served_fingerprint(&c) == ours),
        "port 443 is free, but the registry does not serve it (serving {:?}); network socket {}\n{}",
        try_served_fingerprint(&c),
        c.ok("systemctl is-active private-registry-network.socket || true"),
        c.journal()
    );
    let code = c.ok(&format!(
        "curl -sS -m 10 -o /dev/null -w '%{{http_code}}' --retry 10 --retry-connrefused --retry-all-errors -u {USER}:{PASSWORD} \
         --cacert /etc/private-registry/tls/ca.crt --resolve {HOST}:443:127.0.0.1 https://{HOST}/v2/local/hello/tags/list"
    ));
    assert!(code == "200" || code == "404", "HTTPS on port 443: {code}");
    assert_eq!(
        c.ok("systemctl is-active private-registry.socket private-registry-network.socket private-registry.service || true"),
        "active\nactive\nactive\n"
    );
    let codes = c.ok(&format!(
        "curl -sS -m 10 -o /dev/null -w '%{{http_code}}' --retry 5 --retry-connrefused {LOCAL}/v2/"
    ));
    assert!(codes == "200" || codes == "401", "local listener: {codes}");
    // The retry helper has finished.
    assert!(
        wait_for(10, || c
            .ok("systemctl is-active private-registry-network-retry.service || true")
            .trim()
            == "inactive"),
        "the retry helper still runs"
    );
}

#[test]
fn purge_removes_the_ca_copies_certgen_installed_and_nothing_else() {
    let (c, _) = installed();
    c.ok(&format!("private-registry-certgen {HOST} --system-trust"));
    c.ok("private-registry-certgen other.e2e.test --port 5443 --force");
    // A line of our CA's base64, to look for in the system bundle.
    let ca_line = c
        .ok("sed -n 2p /etc/private-registry/tls/ca.crt")
        .trim()
        .to_string();
    c.ok(&format!(
        "grep -qxF '{ca_line}' /etc/ssl/certs/ca-certificates.crt"
    ));
    // Things certgen did not make: another registry's CA, a client
    // certificate beside our CA, and another CA where ours was.
    c.ok("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=foreign -days 30 \
          -keyout /var/tmp/foreign.key -out /var/tmp/foreign.crt 2>/dev/null");
    c.ok("private-registry-trust foreign.e2e.test /var/tmp/foreign.crt");
    c.ok(&format!(
        "cp /var/tmp/foreign.crt /etc/docker/certs.d/{HOST}/client.cert"
    ));
    c.ok("cp /var/tmp/foreign.crt /etc/containers/certs.d/other.e2e.test:5443/ca.crt");

    let out = c.ok("apt-get purge -y private-registry 2>&1");
    c.ok("test ! -e /etc/private-registry");
    // Ours went (with the directories it emptied), the rest stayed.
    c.ok(&format!("test ! -e /etc/docker/certs.d/{HOST}/ca.crt"));
    c.ok(&format!(
        "cmp /var/tmp/foreign.crt /etc/docker/certs.d/{HOST}/client.cert"
    ));
    c.ok(&format!("test ! -e /etc/containers/certs.d/{HOST}"));
    c.ok("test ! -e /etc/docker/certs.d/other.e2e.test:5443");
    c.ok("cmp /var/tmp/foreign.crt /etc/containers/certs.d/other.e2e.test:5443/ca.crt");
    for store in ["docker", "containers"] {
        c.ok(&format!(
            "cmp /var/tmp/foreign.crt /etc/{store}/certs.d/foreign.e2e.test/ca.crt"
        ));
    }
    c.ok(&format!(
        "test ! -e /usr/local/share/ca-certificates/private-registry-{HOST}.crt"
    ));
    let o = c.sh(&format!(
        "grep -qxF '{ca_line}' /etc/ssl/certs/ca-certificates.crt"
    ));
    assert!(
        !o.status.success(),
        "the system trust store still holds the deleted CA; purge said:\n{out}"
    );
}
