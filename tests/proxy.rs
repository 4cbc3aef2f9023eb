//! Behind a TLS-terminating reverse proxy, as the seed setups run it: the
//! example configurations the package installs (packaging/examples), with
//! only their placeholders substituted, HAProxy and nginx each in front of a
//! registry node, two of the example's three nodes dead. Through each proxy:
//! `Location` and `Link` name the public `https://` origin, skopeo and the
//! Docker engine push and pull back over verified TLS, the UI's pull command
//! names the public host, the access log shows the real client (curl from 127.0.0.3, the
//! proxy being 127.0.0.1), and the OCI conformance suite passes. A direct
//! request from an untrusted address (127.0.0.2) with forged X-Forwarded-*
//! headers is logged with its own address and gets URLs that ignore them.
//!
//! The public name maps to `::1` in /etc/hosts (Docker skips certificate
//! checks for registries on 127.0.0.0/8): these tests need root.

mod common;

use common::conformance::conform;
use common::docker::*;
use common::front::{Front, Kind};
use common::oci::*;
use common::tls::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: (&str, &str) = ("proxied", "proxied-pw");
/// The client behind the proxy, and a stranger reaching the node directly;
/// the proxy reaches the node from 127.0.0.1.
const CLIENT: &str = "127.0.0.3";
const STRANGER: &str = "127.0.0.2";

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with each placeholder replaced; a placeholder the example no
/// longer has fails the test, so the substitutions cannot silently go stale.
fn substitute(name: &str, text: &str, pairs: &[(&str, String)]) -> String {
    pairs.iter().fold(text.to_string(), |t, (from, to)| {
        assert!(
            t.contains(from),
            "{name} no longer has the placeholder {from:?}"
        );
        t.replace(from, to)
    })
}

/// Everything one proxy run needs: a PKI, ports, a node's files.
struct Site {
    /// The public name, mapped to `::1`.
    name: String,
    _hosts: HostsEntry,
    dir: TempDir,
    pki: Pki,
    cert: CertPaths,
    /// Where the proxy listens: clients see `https://localhost:PORT`.
    public: u16,
    node: u16,
    /// The node's listener for this host.
    local: u16,
    /// The example's other nodes: ports nothing listens on.
    dead: [u16; 2],
}

impl Site {
    fn new(tag: &str) -> Site {
        let dir = TempDir::new(tag);
        let pki = Pki::new(&dir.0.join("pki"));
        let name = format!("pr-proxy-{tag}-{}.test", std::process::id());
        let cert = pki.server("proxy", KeyType::EcdsaP256, &[&name]);
        write_htpasswd(&dir.0.join("htpasswd"), &[USER]);
        Site {
            _hosts: HostsEntry::add(&name),
            name,
            dir,
            pki,
            cert,
            public: free_port(),
            node: free_port(),
            local: free_port(),
            dead: [free_port(), free_port()],
        }
    }

    fn public_host(&self) -> String {
        format!("{}:{}", self.name, self.public)
    }

    fn access_log(&self) -> PathBuf {
        self.dir.0.join("access.log")
    }

    fn nodes(&self) -> Vec<(&'static str, String)> {
        vec![
            ("10.0.0.11:5000", format!("127.0.0.1:{}", self.node)),
            ("10.0.0.12:5000", format!("127.0.0.1:{}", self.dead[0])),
            ("10.0.0.13:5000", format!("127.0.0.1:{}", self.dead[1])),
        ]
    }

    /// behind-a-proxy.yml for this node; without `http.host` when
    /// `with_host` is false, so URLs come from the forwarded headers.
    fn node_config(&self, with_host: bool) -> String {
        let name = "behind-a-proxy.yml";
        let text = example(name);
        // The bucket settings are placeholders: the test's storage instead.
        let (start, end) = (
            text.find("  s3:\n").unwrap(),
            text.find("  delete:\n").unwrap(),
        );
        let text = format!(
            "{}{}{}",
            &text[..start],
            storage_yaml(&self.dir.0.join("data")),
            &text[end..]
        );
        let host = if with_host {
            format!("https://{}", self.public_host())
        } else {
            String::new()
        };
        let text = substitute(
            name,
            &text,
            &[
                ("10.0.0.11:5000", format!("127.0.0.1:{}", self.node)),
                // The local listener's port, free for the test.
                ("127.0.0.1:5000", format!("127.0.0.1:{}", self.local)),
                ("[10.0.0.2]", "[127.0.0.1]".into()),
                ("https://registry.example.com", host),
                (
                    "/etc/private-registry/htpasswd",
                    path(&self.dir.0.join("htpasswd")),
                ),
                (
                    "/var/log/private-registry/access.log",
                    path(&self.access_log()),
                ),
            ],
        );
        text.replace("  host: \n", "")
    }

    /// A node from the example; deletes enabled (as an operator would, by
    /// environment) only so the conformance suite's deletes can run.
    fn start_node(&self, with_host: bool) -> Server {
        let dir = self
            .dir
            .0
            .join(if with_host { "node" } else { "node-no-host" });
        std::fs::create_dir_all(&dir).unwrap();
        let env = [("REGISTRY_STORAGE_DELETE_ENABLED", "true")];
        Server::start_config(&dir, &self.node_config(with_host), &env)
    }

    fn haproxy(&self) -> Front {
        let pem = self.dir.0.join("registry.pem");
        let mut both = std::fs::read(&self.cert.cert).unwrap();
        both.extend(std::fs::read(&self.cert.key).unwrap());
        std::fs::write(&pem, both).unwrap();
        let mut pairs = vec![
            (
                "bind :443",
                format!("bind 127.0.0.1:{p},[::1]:{p}", p = self.public),
            ),
            ("/etc/ssl/private/registry.pem", path(&pem)),
        ];
        pairs.extend(self.nodes());
        let config = substitute("haproxy.cfg", &example("haproxy.cfg"), &pairs);
        Front::start(Kind::Haproxy, &config, &self.public_addrs())
    }

    fn nginx(&self) -> Front {
        let mut pairs = vec![
            ("listen 443 ", format!("listen 127.0.0.1:{} ", self.public)),
            ("listen [::]:443 ", format!("listen [::1]:{} ", self.public)),
            ("registry.example.com", self.name.clone()),
            ("/etc/ssl/certs/registry.crt", path(&self.cert.cert)),
            ("/etc/ssl/private/registry.key", path(&self.cert.key)),
        ];
        pairs.extend(self.nodes());
        let site = substitute("nginx.conf", &example("nginx.conf"), &pairs);
        // The example is a site; this is the http {} around it that
        // /etc/nginx/nginx.conf would give it, its files under the prefix.
        let config = format!(
            "events {{}}\nhttp {{\naccess_log access.log;\nclient_body_temp_path body;\nproxy_temp_path proxy;\n{site}}}\n"
        );
        Front::start(Kind::Nginx, &config, &self.public_addrs())
    }

    /// Where the proxy listens: IPv4 for curl, `::1` for the public name.
    fn public_addrs(&self) -> [std::net::SocketAddr; 2] {
        let v6 = std::net::Ipv6Addr::LOCALHOST;
        [
            ([127, 0, 0, 1], self.public).into(),
            (v6, self.public).into(),
        ]
    }

    /// A request through the proxy, from [`CLIENT`], as [`USER`].
    fn via_proxy(&self, method: &str, path: &str, extra: &[&str]) -> Curl {
        let url = format!("https://{}{path}", self.public_host());
        let pin = format!("{}:127.0.0.1", self.public_host());
        let mut args = vec!["--cacert", self.pki.ca_pem().to_str().unwrap()];
        args.extend(["--resolve", &pin]);
        args.extend(extra);
        curl(CLIENT, method, &url, &args)
    }

    /// A request straight to the node, from [`STRANGER`], with forged forwarding headers.
    fn forged_direct(&self, method: &str, path: &str) -> Curl {
        let url = format!("http://127.0.0.1:{}{path}", self.node);
        curl(STRANGER, method, &url, &FORGED)
    }

    fn access_lines(&self) -> String {
        std::fs::read_to_string(self.access_log()).unwrap_or_default()
    }

    /// Waits for an access log line containing every one of `parts`.
    fn expect_access(&self, parts: &[&str]) {
        let found = wait_for(10, || {
            self.access_lines()
                .lines()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        });
        assert!(
            found,
            "no access line with {parts:?}:\n{}",
            self.access_lines()
        );
    }
}

const FORGED: [&str; 6] = [
    "-H",
    "X-Forwarded-For: 198.51.100.66",
    "-H",
    "X-Forwarded-Proto: https",
    "-H",
    "X-Forwarded-Host: forged.example",
];

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// What curl got: status, headers, body.
struct Curl {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Curl {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// curl from the local address `from`, logged in as [`USER`].
fn curl(from: &str, method: &str, url: &str, args: &[&str]) -> Curl {
    let login = format!("{}:{}", USER.0, USER.1);
    let out = run_ok(
        Command::new("curl")
            .args(["-sS", "-i", "--interface", from, "-X", method, "-u", &login])
            .args(args)
            .arg(url),
    );
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: no status in {out:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Curl {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Pushes `data` as a blob of `repo` in one POST through the proxy.
fn push_blob_via(site: &Site, repo: &str, data: &str) {
    let file = site.dir.0.join("blob");
    std::fs::write(&file, data).unwrap();
    let at = format!("@{}", path(&file));
    let digest = sha256(data.as_bytes());
    let target = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    let r = site.via_proxy("POST", &target, &["--data-binary", &at]);
    assert_eq!(r.status, 201, "{}", r.body);
    let public = format!("https://{}/v2/{repo}/blobs/{digest}", site.public_host());
    assert_eq!(r.header("Location"), Some(public.as_str()));
}

/// `Location` and `Link` through the proxy name the public origin; the
/// access log names the client behind it, not the proxy nor what it forged.
fn urls_and_client_address_through(site: &Site) {
    let public = format!("https://{}", site.public_host());
    let r = site.via_proxy("POST", "/v2/proxied/app/blobs/uploads/", &FORGED);
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("Location").unwrap_or_default();
    assert!(
        location.starts_with(&format!("{public}/v2/proxied/app/blobs/uploads/")),
        "{location}"
    );
    site.expect_access(&[
        &format!("{CLIENT} - proxied ["),
        "\"POST /v2/proxied/app/blobs/uploads/ ",
    ]);
    assert!(
        !site.access_lines().contains("198.51.100.66"),
        "{}",
        site.access_lines()
    );
    push_blob_via(site, "proxied/a", "first");
    push_blob_via(site, "proxied/b", "second");
    // Blobs alone make no repository in the catalog; a manifest does.
    for repo in ["proxied/a", "proxied/b"] {
        push_manifest_via(site, repo);
    }
    let r = site.via_proxy("GET", "/v2/_catalog?n=1", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let link = r.header("Link").unwrap_or_default();
    let (first, rest) = (
        &format!("<{public}/v2/_catalog?last="),
        "&n=1>; rel=\"next\"",
    );
    assert!(link.starts_with(first) && link.ends_with(rest), "{link}");
}

/// A manifest tagged `1` whose config is an empty JSON object.
fn push_manifest_via(site: &Site, repo: &str) {
    push_blob_via(site, repo, "{}");
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let m = image_manifest(mt, (&sha256(b"{}"), 2), &[]);
    let file = site.dir.0.join("manifest");
    std::fs::write(&file, &m).unwrap();
    let at = format!("@{}", path(&file));
    let ct = format!("Content-Type: {mt}");
    let target = format!("/v2/{repo}/manifests/1");
    let r = site.via_proxy("PUT", &target, &["-H", &ct, "--data-binary", &at]);
    assert_eq!(r.status, 201, "{}", r.body);
}

/// skopeo pushes an image through the proxy trusting only the test CA,
/// and pulls it back to the same digest; the UI shows the public pull command.
fn skopeo_and_ui_through(site: &Site) {
    let work = &site.dir.0;
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let certs = work.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(site.pki.ca_pem(), certs.join("ca.crt")).unwrap();
    let mut layout = Layout::new(work.join("src"));
    let img = layout.image(work, "amd64", 7, 1 << 20);
    layout.reference(OCI_MANIFEST, &img.digest, "a");
    let creds = format!("{}:{}", USER.0, USER.1);
    let remote = format!("docker://{}/proxied/image:1", site.public_host());
    let certs = path(&certs);
    let src = format!("oci:{}:a", path(&work.join("src")));
    let dest = format!("oci:{}:b", path(&work.join("back")));
    let mut push = vec!["copy", "--preserve-digests", "--dest-cert-dir", &certs];
    push.extend(["--dest-creds", &creds, &src, &remote]);
    skopeo(&tmp, &push);
    let pull = [
        "copy",
        "--src-cert-dir",
        &certs,
        "--src-creds",
        &creds,
        &remote,
        &dest,
    ];
    skopeo(&tmp, &pull);
    let index = std::fs::read_to_string(work.join("back/index.json")).unwrap();
    assert!(index.contains(&img.digest), "{index}");
    // The public name is ::1, so skopeo connects from there.
    site.expect_access(&["::1 - proxied [", "\"PUT /v2/proxied/image/manifests/1 "]);
    let r = site.via_proxy(
        "GET",
        "/ui/r/proxied/image/-/m/1",
        &["-H", "Accept: text/html"],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cmd = format!("docker pull {}/proxied/image:1", site.public_host());
    assert!(r.body.contains(&cmd), "no {cmd:?} in:\n{}", r.body);
}

/// The Docker engine logs in, pushes and pulls back the same image through
/// the proxy, trusting only the test CA (in `certs.d`); it connects from
/// `::1`, which the access log shows from the proxy's `X-Forwarded-For`.
fn docker_through(site: &Site) {
    if lacks_tools("proxy: Docker", &[&dockerd_bin(), &docker_bin()]) {
        return;
    }
    let _one = ONE_DOCKERD.lock().unwrap_or_else(|e| e.into_inner());
    let host = site.public_host();
    let _ca = DockerCa::install(&host, site.pki.ca_pem());
    let dk = Dockerd::start();
    dk.docker_stdin(&["login", "-u", USER.0, "--password-stdin", &host], USER.1);
    let (tar, _) = rootfs_tar(&site.dir.0, 11);
    let id = dk.docker(&["import", &path(&tar), "proxy/src:1"]);
    let before = dk.inspect(id.trim());
    let image = format!("{host}/proxied/docker:1");
    dk.docker(&["tag", id.trim(), &image]);
    dk.docker(&["push", &image]);
    dk.docker(&["rmi", &image, "proxy/src:1"]);
    dk.docker(&["pull", &image]);
    let after = dk.inspect(&image);
    assert_eq!(
        (&after["Id"], &after["RootFS"]),
        (&before["Id"], &before["RootFS"])
    );
    site.expect_access(&["::1 - proxied [", "\"PUT /v2/proxied/docker/manifests/1 "]);
}

/// A stranger's forged headers straight to the node change nothing: its own
/// address is logged, and (without `http.host`) its URLs name the node.
fn forged_headers_from_a_stranger(site: &Site, node: &Server, with_host: bool) {
    let r = site.forged_direct("POST", "/v2/proxied/app/blobs/uploads/");
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("Location").unwrap_or_default();
    let expected = if with_host {
        format!("https://{}/v2/", site.public_host())
    } else {
        format!("http://127.0.0.1:{}/v2/", site.node)
    };
    assert!(
        location.starts_with(&expected),
        "{location}, not {expected}"
    );
    site.expect_access(&[
        &format!("{STRANGER} - proxied ["),
        "\"POST /v2/proxied/app/blobs/uploads/ ",
    ]);
    assert!(
        !site.access_lines().contains("198.51.100.66"),
        "{}",
        site.access_lines()
    );
    node.expect_log(&format!(
        "request from {STRANGER} carries x-forwarded-for: ignored, since {STRANGER} is not in privateregistry.trustedproxies"
    ));
}

/// Failed logins count against the client behind the proxy, not the proxy:
/// once one client has used up `maxfailures` (10 by default) guessing, its
/// right password gets 429 too, while another client still logs in.
fn throttle_counts_the_client_not_the_proxy(site: &Site) {
    let wrong = format!("{}:wrong", USER.0);
    for _ in 0..10 {
        let r = site.via_proxy("GET", "/v2/", &["-u", &wrong]);
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = site.via_proxy("GET", "/v2/", &[]);
    assert_eq!(r.status, 429, "{CLIENT} is not throttled: {}", r.body);
    // curl takes the last of a repeated option.
    let r = site.via_proxy("GET", "/v2/", &["--interface", "127.0.0.4"]);
    assert_eq!(
        r.status, 200,
        "another client behind the proxy is throttled: {}",
        r.body
    );
}

/// Without `http.host`, the origin comes from the trusted proxy's headers:
/// `Location`, `Link` and the UI's pull command still name the public host.
fn forwarded_origin_through(site: &Site) {
    let public = format!("https://{}", site.public_host());
    let up = wait_for(20, || site.via_proxy("GET", "/v2/", &[]).status == 200);
    assert!(up, "the restarted node is not reachable through the proxy");
    let r = site.via_proxy("POST", "/v2/proxied/app/blobs/uploads/", &FORGED);
    assert_eq!(r.status, 202, "{}", r.body);
    let location = r.header("Location").unwrap_or_default();
    assert!(location.starts_with(&format!("{public}/v2/")), "{location}");
    let r = site.via_proxy("GET", "/v2/_catalog?n=1", &[]);
    let link = r.header("Link").unwrap_or_default();
    assert!(
        link.starts_with(&format!("<{public}/v2/_catalog?last=")),
        "{link}"
    );
    let r = site.via_proxy(
        "GET",
        "/ui/r/proxied/image/-/m/1",
        &["-H", "Accept: text/html"],
    );
    let cmd = format!("docker pull {}/proxied/image:1", site.public_host());
    assert!(r.body.contains(&cmd), "no {cmd:?} in:\n{}", r.body);
}

/// The dead nodes cost nothing above, yet the proxy did notice them: nginx
/// tried them and went on to the next node, HAProxy's `/healthz` checks
/// took them out of the rotation.
fn dead_nodes_were_noticed(front: &Front) {
    let said = |needles: &[&str]| {
        wait_for(20, || {
            let log = front.log_text();
            needles.iter().all(|n| log.contains(n))
        })
    };
    let needles: &[&str] = match front.kind {
        Kind::Nginx => &["(111: Connection refused) while connecting to upstream"],
        Kind::Haproxy => &[
            "registry_nodes/node2 is DOWN",
            "registry_nodes/node3 is DOWN",
        ],
    };
    assert!(
        said(needles),
        "{:?} not in the log:\n{}",
        needles,
        front.log_text()
    );
}

fn behind(kind: Kind) {
    if lacks_tools("proxy", &[kind.binary(), "curl", &skopeo_bin()]) {
        return;
    }
    let site = Site::new(kind.binary());
    let node = site.start_node(true);
    let front = match kind {
        Kind::Haproxy => site.haproxy(),
        Kind::Nginx => site.nginx(),
    };
    urls_and_client_address_through(&site);
    skopeo_and_ui_through(&site);
    forged_headers_from_a_stranger(&site, &node, true);
    docker_through(&site);
    conform(
        &format!("https://{}", site.public_host()),
        Some(USER),
        &[("SSL_CERT_FILE", site.pki.ca_pem())],
    );
    throttle_counts_the_client_not_the_proxy(&site);
    drop(node);
    // The next node's lines only, so its checks cannot pass on these.
    std::fs::remove_file(site.access_log()).unwrap();
    let node = site.start_node(false);
    forwarded_origin_through(&site);
    site.expect_access(&[&format!("{CLIENT} - proxied ["), "\"GET /v2/_catalog?n=1 "]);
    forged_headers_from_a_stranger(&site, &node, false);
    assert!(
        front.running(),
        "{} died:\n{}",
        kind.binary(),
        front.log_text()
    );
    dead_nodes_were_noticed(&front);
    front.stop();
}

#[test]
fn behind_haproxy_as_shipped() {
    behind(Kind::Haproxy);
}

#[test]
fn behind_nginx_as_shipped() {
    behind(Kind::Nginx);
}
