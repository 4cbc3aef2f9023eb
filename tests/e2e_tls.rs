//! End to end over verified TLS with htpasswd logins and access rules, with
//! the clients people use: the Docker engine, skopeo and podman. Each one
//! trusts only the test CA, is refused with a wrong password, pushes and
//! pulls back the same image with the right one, and (Docker) a read-only
//! user is refused a push. The tests also pin down what each client does
//! with an anonymous-pull repository when it has no credentials.
//!
//! Docker skips certificate checks for registries on 127.0.0.0/8, so its
//! test uses a name of its own mapped to `::1` in /etc/hosts: it needs root.

mod common;

use common::docker::*;
use common::oci::*;
use common::tls::*;
use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

const ALICE: (&str, &str) = ("alice", "alice-pw");
const READER: (&str, &str) = ("reader", "reader-pw");

/// A registry with one TLS listener on `listen`, alice allowed everything,
/// reader only pulls, and anyone may pull `public/*`.
fn start_registry(dir: &Path, cert: &CertPaths, listen: &str) -> Server {
    let htpasswd = dir.join("htpasswd");
    write_htpasswd(&htpasswd, &[ALICE, READER]);
    // Wrong passwords, and the empty logins containers/image sends, are
    // part of these tests; the throttle is tested elsewhere and must not
    // turn the later right passwords into 429s.
    let extra = format!(
        "{}auth:
  htpasswd:
    realm: e2e-tls
    path: {}
privateregistry:
  listeners:
    - {{name: e2e, addr: \"{listen}\", tls: true}}
  auth:
    maxfailures: 100000
  access:
    rules:
      - {{repositories: ['*'], users: [{}], allow: [pull, push, delete]}}
      - {{repositories: ['*'], users: [{}], allow: [pull]}}
      - {{repositories: ['public/*'], anonymous: true, allow: [pull]}}
",
        http_tls_yaml(cert, &[]),
        htpasswd.display(),
        ALICE.0,
        READER.0,
    );
    let s = Server::start_with(&extra);
    assert_eq!(s.listeners.len(), 1, "{:?}", s.listeners);
    assert!(
        s.listeners[0].1,
        "the listener is not TLS: {:?}",
        s.listeners
    );
    s
}

/// A request over TLS, as `creds` or anonymous, verified against `ca`.
fn tls_req(
    s: &Server,
    name: &str,
    ca: &Arc<rustls::ClientConfig>,
    creds: Option<(&str, &str)>,
    method: &str,
    path: &str,
) -> Resp {
    let mut r = s.req(method, path).tls(name, ca);
    if let Some((u, p)) = creds {
        r = r.header("Authorization", &basic_auth(u, p));
    }
    r.header("Accept", ACCEPT_ALL_MANIFESTS).send()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---------------------------------------------------------------------------
// Docker engine.
// ---------------------------------------------------------------------------

#[test]
fn docker_engine_logs_in_pushes_and_pulls_over_verified_tls() {
    if lacks_tools(
        "docker_engine_logs_in_pushes_and_pulls_over_verified_tls",
        &[&dockerd_bin(), &docker_bin()],
    ) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let work = TempDir::new("tls-dk");
    let pki = Pki::new(&work.0.join("pki"));
    let name = format!("pr-e2e-{}.test", std::process::id());
    let cert = pki.server("docker", KeyType::EcdsaP256, &[&name]);
    let _hosts = HostsEntry::add(&name);
    let s = start_registry(&work.0, &cert, "[::1]:0");
    let port = s.addr.port();
    assert_eq!(
        s.addr,
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port))
    );
    let host = format!("{name}:{port}");
    let ca = client_config(pki.ca_pem(), &ClientOpts::default());
    let dk = Dockerd::start();
    let login = |(user, password): (&str, &str)| {
        dk.try_docker_stdin(&["login", "-u", user, "--password-stdin", &host], password)
    };

    // Before the CA is installed the engine refuses the certificate: it
    // really verifies this registry, rather than treating it as insecure.
    let o = login(ALICE);
    assert!(!o.status.success(), "login succeeded without the CA");
    assert!(
        stderr(&o).contains("certificate signed by unknown authority"),
        "{}",
        stderr(&o)
    );
    let _ca = DockerCa::install(&host, pki.ca_pem());

    let o = login((ALICE.0, "wrong"));
    assert!(!o.status.success(), "login with a wrong password succeeded");
    assert!(stderr(&o).contains("401 Unauthorized"), "{}", stderr(&o));
    assert!(
        dk.client_config()["auths"][&host].is_null(),
        "a failed login stored credentials: {}",
        dk.client_config()
    );
    dk.docker_stdin(
        &["login", "-u", ALICE.0, "--password-stdin", &host],
        ALICE.1,
    );
    assert!(
        dk.client_config()["auths"][&host]["auth"].is_string(),
        "no credentials stored in DOCKER_CONFIG: {}",
        dk.client_config()
    );

    // Push, remove locally, pull back: the same image.
    let (tar, _) = rootfs_tar(&work.0, 31);
    let id = dk
        .docker(&["import", tar.to_str().unwrap(), "e2e/tls:src"])
        .trim()
        .to_string();
    let before = dk.inspect(&id);
    let app = format!("{host}/team/app:1");
    let public = format!("{host}/public/base:1");
    dk.docker(&["tag", &id, &app]);
    dk.docker(&["tag", &id, &public]);
    let digest = pushed_digest(&dk.docker(&["push", &app]));
    dk.docker(&["push", &public]);
    let r = tls_req(
        &s,
        &name,
        &ca,
        Some(ALICE),
        "GET",
        &format!("/v2/team/app/manifests/{digest}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sha256(&r.body), digest);
    // docker search over TLS: the engine sends the stored login with it.
    let search = |term: &str| {
        let out = dk.docker(&["search", "--format", "{{.Name}}", &format!("{host}/{term}")]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(search("app"), ["team/app"]);
    assert_eq!(search("base"), ["public/base"]);
    s.expect_log("::1 alice GET /v1/search?q=app&n=25 200");
    dk.docker(&["rmi", &app, &public, "e2e/tls:src"]);
    assert!(
        !dk.try_docker(&["image", "inspect", &id]).status.success(),
        "image still present after rmi"
    );
    dk.docker(&["pull", &app]);
    let after = dk.inspect(&app);
    assert_eq!(after["Id"], before["Id"], "pulled image id differs");
    assert_eq!(after["RootFS"], before["RootFS"], "pulled layers differ");
    // The access log names the user, and the client address shows the
    // requests came in on the TLS listener on ::1.
    s.expect_log("::1 alice PUT /v2/team/app/manifests/1 201");

    // A read-only user logs in and pulls, and is denied a push.
    dk.docker(&["logout", &host]);
    dk.docker_stdin(
        &["login", "-u", READER.0, "--password-stdin", &host],
        READER.1,
    );
    dk.docker(&["rmi", &app]);
    dk.docker(&["pull", &app]);
    assert_eq!(dk.inspect(&app)["Id"], before["Id"]);
    let denied = format!("{host}/team/app:2");
    dk.docker(&["tag", &id, &denied]);
    let err = dk.docker_fails(&["push", &denied]);
    assert!(err.contains("denied"), "{err}");
    let logged = |user_path: &str, status: &str| {
        wait_for(10, || {
            s.log_text()
                .lines()
                .any(|l| l.contains(user_path) && l.contains(status))
        })
    };
    // 307: on object storage the blob is fetched from the store.
    assert!(
        logged("::1 reader GET /v2/team/app/blobs/", " 200 ")
            || logged("::1 reader GET /v2/team/app/blobs/", " 307 "),
        "no access log line for reader's pull: {}",
        s.log_text()
    );
    assert!(
        logged("::1 reader ", " 403 "),
        "no 403 for reader's push in the access log: {}",
        s.log_text()
    );
    let r = tls_req(&s, &name, &ca, Some(ALICE), "GET", "/v2/team/app/tags/list");
    assert_eq!(r.json()["tags"], serde_json::json!(["1"]), "{}", r.text());

    // Without stored credentials the engine does not pull even a repository
    // open to anonymous callers: /v2/ answers with a Basic challenge, and
    // Docker's client refuses to go on without a user and password, before
    // it asks for the manifest. The server does admit an anonymous pull.
    dk.docker(&["logout", &host]);
    assert!(
        dk.client_config()["auths"][&host].is_null(),
        "{}",
        dk.client_config()
    );
    dk.docker(&["rmi", "-f", &id]);
    let err = dk.docker_fails(&["pull", &public]);
    assert!(err.contains("no basic auth credentials"), "{err}");
    let r = tls_req(&s, &name, &ca, None, "GET", "/v2/public/base/manifests/1");
    assert_eq!(r.status, 200, "anonymous pull refused: {}", r.text());
    let r = tls_req(&s, &name, &ca, None, "GET", "/v2/team/app/manifests/1");
    assert_eq!(r.status, 401, "{}", r.text());
}

// ---------------------------------------------------------------------------
// skopeo.
// ---------------------------------------------------------------------------

/// How containers/image reports a certificate from a CA it does not trust.
const UNKNOWN_CA: &str = "certificate signed by unknown authority";

#[test]
fn skopeo_copies_with_creds_over_tls_verified_with_cert_dir() {
    if lacks_tools(
        "skopeo_copies_with_creds_over_tls_verified_with_cert_dir",
        &[&skopeo_bin()],
    ) {
        return;
    }
    let work = TempDir::new("tls-skopeo");
    let tmp = work.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let pki = Pki::new(&work.0.join("pki"));
    let cert = pki.server("registry", KeyType::Rsa2048, &["localhost", "127.0.0.1"]);
    let trusted = cert_dir(&work.0.join("trusted"), pki.ca_pem());
    let other = Pki::new(&work.0.join("other-pki"));
    let untrusted = cert_dir(&work.0.join("untrusted"), other.ca_pem());
    let s = start_registry(&work.0, &cert, "127.0.0.1:0");
    let ca = client_config(pki.ca_pem(), &ClientOpts::default());

    let src = work.0.join("src");
    let mut layout = Layout::new(src.clone());
    let img = layout.image(&work.0, "amd64", 41, 1 << 20);
    layout.reference(OCI_MANIFEST, &img.digest, "a");
    let oci = format!("oci:{}:a", src.display());
    let at = |repo: &str| format!("docker://localhost:{}/{repo}:1", s.addr.port());
    let creds = |(user, password): (&str, &str)| format!("{user}:{password}");
    let push = |creds: &str, certs: &Path, repo: &str| {
        try_skopeo(
            &tmp,
            &[
                "copy",
                "--preserve-digests",
                "--dest-cert-dir",
                certs.to_str().unwrap(),
                "--dest-creds",
                creds,
                &oci,
                &at(repo),
            ],
        )
    };

    let o = push(&creds((ALICE.0, "wrong")), &trusted, "team/app");
    assert!(!o.status.success(), "copy with a wrong password succeeded");
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );
    let o = push(&creds(READER), &trusted, "team/app");
    assert!(!o.status.success(), "a read-only user pushed");
    assert!(stderr(&o).contains("denied"), "{}", stderr(&o));
    let o = push(&creds(ALICE), &untrusted, "team/app");
    assert!(!o.status.success(), "copy trusting another CA succeeded");
    assert!(stderr(&o).contains(UNKNOWN_CA), "{}", stderr(&o));
    assert_eq!(
        tls_req(&s, "localhost", &ca, Some(ALICE), "GET", "/v2/_catalog").json()["repositories"],
        serde_json::json!([]),
        "a refused copy left a repository behind"
    );

    for repo in ["team/app", "public/base"] {
        let o = push(&creds(ALICE), &trusted, repo);
        assert!(o.status.success(), "copy to {repo}: {}", stderr(&o));
    }
    let r = tls_req(
        &s,
        "localhost",
        &ca,
        Some(ALICE),
        "GET",
        "/v2/team/app/manifests/1",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == img.manifest, "manifest changed: {}", r.text());

    // Copy back and compare every byte.
    let pull = |creds: Option<&str>, certs: &Path, repo: &str, dest: &Path| {
        let certs = certs.to_str().unwrap();
        let dest = format!("oci:{}:back", dest.display());
        let src = at(repo);
        let mut args = vec!["copy", "--preserve-digests", "--src-cert-dir", certs];
        match creds {
            Some(c) => args.extend(["--src-creds", c]),
            None => args.push("--src-no-creds"),
        }
        args.extend([src.as_str(), dest.as_str()]);
        try_skopeo(&tmp, &args)
    };
    let back = work.0.join("back");
    let o = pull(Some(&creds(READER)), &trusted, "team/app", &back);
    assert!(o.status.success(), "copy back: {}", stderr(&o));
    assert_eq!(layout_ref(&back, "back"), img.digest);
    for d in [&img.digest, &img.config, &img.layer] {
        assert!(
            layout_blob(&back, d) == layout.blobs[d.as_str()],
            "blob {d} differs after the round trip"
        );
    }
    let o = pull(Some(&creds(READER)), &untrusted, "team/app", &back);
    assert!(!o.status.success(), "pull trusting another CA succeeded");
    assert!(stderr(&o).contains(UNKNOWN_CA), "{}", stderr(&o));

    // Anonymous: containers/image answers the Basic challenge of /v2/ with
    // `Authorization: Basic Og==` (an empty user and password) when it has
    // no credentials; the server takes that as anonymous, so the public
    // repository pulls and nothing counts as a failed login.
    let anon = work.0.join("anon");
    let o = pull(None, &trusted, "public/base", &anon);
    assert!(o.status.success(), "skopeo --src-no-creds: {}", stderr(&o));
    assert!(
        !s.log_text().contains("failed login for user \"\""),
        "{}",
        s.log_text()
    );
    let o = pull(None, &trusted, "team/app", &work.0.join("anon-team"));
    assert!(!o.status.success(), "anonymous pull of team/app succeeded");
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------
// podman.
// ---------------------------------------------------------------------------

fn podman_bin() -> String {
    std::env::var("PODMAN_BIN").unwrap_or_else(|_| "podman".to_string())
}

/// Where podman (as root) makes netavark's run directory whatever its
/// configuration says.
const NETAVARK_RUN: &str = "/run/containers/networks";

/// podman with everything it keeps in a scratch directory: storage (vfs),
/// run and temp directories, events, network configuration, registries and
/// logins, so nothing is read from or left in the system's.
struct Podman {
    dir: TempDir,
    /// Of `/run/containers` and its `networks`, those this made.
    made: Vec<PathBuf>,
}

impl Podman {
    fn new() -> Podman {
        let dir = TempDir::new("podman");
        let p = |n: &str| dir.0.join(n);
        std::fs::write(
            p("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p("root").display(),
                p("run").display()
            ),
        )
        .unwrap();
        std::fs::write(
            p("containers.conf"),
            format!(
                "[engine]\ntmp_dir = \"{}\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n\
                 cgroup_manager = \"cgroupfs\"\n[network]\nnetwork_config_dir = \"{}\"\n",
                p("tmp").display(),
                p("events.log").display(),
                p("net").display()
            ),
        )
        .unwrap();
        std::fs::write(p("registries.conf"), "unqualified-search-registries = []\n").unwrap();
        std::fs::write(p("auth.json"), "{}").unwrap();
        let made = [Path::new(NETAVARK_RUN), Path::new("/run/containers")]
            .into_iter()
            .filter(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        Podman { dir, made }
    }

    fn authfile(&self) -> PathBuf {
        self.dir.0.join("auth.json")
    }

    fn logins(&self) -> serde_json::Value {
        json(&std::fs::read_to_string(self.authfile()).unwrap())["auths"].clone()
    }

    fn try_run(&self, args: &[&str], input: Option<&str>) -> Output {
        let p = |n: &str| self.dir.0.join(n);
        let mut child = Command::new(podman_bin())
            .env("CONTAINERS_STORAGE_CONF", p("storage.conf"))
            .env("CONTAINERS_CONF", p("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", p("registries.conf"))
            .env("REGISTRY_AUTH_FILE", self.authfile())
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", podman_bin()));
        if let Some(text) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let o = self.try_run(args, None);
        assert!(o.status.success(), "podman {args:?}: {}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn image_id(&self, image: &str) -> String {
        self.run(&["image", "inspect", "--format", "{{.Id}}", image])
            .trim()
            .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for d in &self.made {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn podman_logs_in_pushes_and_pulls_over_tls_verified_with_cert_dir() {
    if lacks_tools(
        "podman_logs_in_pushes_and_pulls_over_tls_verified_with_cert_dir",
        &[&podman_bin()],
    ) {
        return;
    }
    let work = TempDir::new("tls-podman");
    let pki = Pki::new(&work.0.join("pki"));
    let cert = pki.server("registry", KeyType::Ed25519, &["localhost"]);
    let certs = cert_dir(&work.0.join("certs"), pki.ca_pem());
    let certs = certs.to_str().unwrap();
    let s = start_registry(&work.0, &cert, "127.0.0.1:0");
    let host = format!("localhost:{}", s.addr.port());
    let pm = Podman::new();
    let authfile = pm.authfile();
    let authfile = authfile.to_str().unwrap();
    let login = |(user, password): (&str, &str)| {
        pm.try_run(
            &[
                "login",
                "--cert-dir",
                certs,
                "--authfile",
                authfile,
                "-u",
                user,
                "--password-stdin",
                &host,
            ],
            Some(password),
        )
    };

    let o = login((ALICE.0, "wrong"));
    assert!(!o.status.success(), "login with a wrong password succeeded");
    assert!(
        stderr(&o).contains("invalid username/password"),
        "{}",
        stderr(&o)
    );
    assert!(pm.logins()[&host].is_null(), "{}", pm.logins());
    let o = login(ALICE);
    assert!(o.status.success(), "login: {}", stderr(&o));
    assert!(pm.logins()[&host]["auth"].is_string(), "{}", pm.logins());

    // Push an imported image, remove it, pull it back.
    let (tar, _) = rootfs_tar(&work.0, 51);
    let app = format!("{host}/team/app:1");
    let public = format!("{host}/public/base:1");
    pm.run(&["import", tar.to_str().unwrap(), &app]);
    let id = pm.image_id(&app);
    pm.run(&["tag", &app, &public]);
    for image in [&app, &public] {
        pm.run(&["push", "--cert-dir", certs, "--authfile", authfile, image]);
    }
    pm.run(&["rmi", &app, &public]);
    assert!(
        !pm.try_run(&["image", "exists", &id], None).status.success(),
        "image still present after rmi"
    );
    pm.run(&["pull", "--cert-dir", certs, "--authfile", authfile, &app]);
    assert_eq!(pm.image_id(&app), id, "pulled image id differs");
    s.expect_log("127.0.0.1 alice PUT /v2/team/app/manifests/1 201");

    // Logged out, podman pulls the anonymous repository and nothing else.
    pm.run(&["logout", "--authfile", authfile, &host]);
    assert!(pm.logins()[&host].is_null(), "{}", pm.logins());
    pm.run(&["rmi", &app]);
    let pull = |image: &str| {
        pm.try_run(
            &["pull", "--cert-dir", certs, "--authfile", authfile, image],
            None,
        )
    };
    let o = pull(&public);
    assert!(
        o.status.success(),
        "anonymous pull of {public}: {}",
        stderr(&o)
    );
    let o = pull(&app);
    assert!(!o.status.success(), "pulled {app} logged out");
    assert!(
        stderr(&o).contains("authentication required"),
        "{}",
        stderr(&o)
    );
}
