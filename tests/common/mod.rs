//! Test harness: runs the real `private-registry` binary on a loopback port
//! with its own data directory, and talks to it over real sockets with a
//! deliberately minimal HTTP/1.1 client (so tests can send malformed requests).
#![allow(dead_code)]

pub mod conformance;
pub mod containerd;
pub mod distribution;
pub mod docker;
pub mod front;
pub mod images;
pub mod metrics;
pub mod mirror;
pub mod nodes;
pub mod oci;
pub mod s3;
pub mod store;
pub mod tls;
pub mod token;
pub mod ui;
pub mod upstream;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_private-registry");

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pr-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    child: Option<Child>,
    /// The first listener, which is the only one unless
    /// `privateregistry.listeners` says otherwise.
    pub addr: SocketAddr,
    /// Every listener, in the order the server announced them, and whether
    /// it speaks TLS.
    pub listeners: Vec<(SocketAddr, bool)>,
    pub root: PathBuf,
    pub config: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
    /// Sent as Basic credentials with every `req` when set.
    pub credentials: Option<(String, String)>,
    _dir: Option<TempDir>,
}

/// A config for tests: loopback, any free port, deletes on, plus `extra` YAML lines.
/// With `PRIVATE_REGISTRY_TEST_S3` naming a Garage cluster's env file
/// (`tests/garage/cluster`), the storage is that cluster's bucket, under a
/// prefix of its own for each data directory.
pub fn config_yaml(root: &Path, extra: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: debug\nstorage:\n{}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n{extra}",
        storage_yaml(root)
    )
}

/// The `storage:` driver section for `root` (see [`config_yaml`]).
pub fn storage_yaml(root: &Path) -> String {
    match s3::cluster() {
        Some(c) => c.storage_yaml(root),
        None => format!("  filesystem:\n    rootdirectory: {}\n", root.display()),
    }
}

impl Server {
    pub fn start() -> Server {
        Self::start_with("")
    }

    pub fn start_with(extra: &str) -> Server {
        Self::start_with_env(extra, &[])
    }

    /// [`Server::start_with`] with `env` on top, such as [`s3::REDIRECTS`].
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("srv");
        let root = dir.0.join("data");
        let mut s = Self::start_on(&root, extra, env);
        s._dir = Some(dir);
        s
    }

    /// Starts a server on an existing data directory (the caller owns it).
    pub fn start_on(root: &Path, extra: &str, env: &[(&str, &str)]) -> Server {
        let config = root.with_extension("yml");
        std::fs::write(&config, config_yaml(root, extra)).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config"]).arg(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, root, config)
    }

    /// Starts a server with exactly the configuration `yaml`, written to
    /// `dir/config.yml` (its filesystem data, if any, is the caller's).
    pub fn start_config(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Server {
        let config = dir.join("config.yml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config"]).arg(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, &dir.join("data"), config)
    }

    /// Runs `serve --dev` in `dir` (its data goes to `dir/data`), with `env`
    /// on top, for instance to move its fixed ports.
    pub fn start_dev(dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--dev"]).current_dir(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, &dir.join("data"), PathBuf::new())
    }

    /// Runs `cmd` and waits until it has announced its listeners.
    fn spawn(mut cmd: Command, root: &Path, config: PathBuf) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(event) = startup_event(&line) {
                    let _ = tx.send(event);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(20);
        let (first, marked) = loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Startup::Serving(addr, kind)) => break (addr, kind),
                Ok(Startup::Ready) => {}
                Err(_) => panic!("server did not start; log: {:?}", log.lock().unwrap()),
            }
        };
        let mut listeners = vec![(first, marked == Some(true))];
        // A line without "(plain)"/"(tls)" comes from a server that has one
        // listener and announces no readiness: nothing more to wait for.
        // Otherwise wait for "ready:", but not forever for a server that
        // never says it.
        if marked.is_some() {
            let until = Instant::now() + Duration::from_secs(1);
            while let Ok(event) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                match event {
                    Startup::Serving(addr, kind) => listeners.push((addr, kind == Some(true))),
                    Startup::Ready => break,
                }
            }
        }
        Server {
            child: Some(child),
            addr: first,
            listeners,
            root: root.to_path_buf(),
            config,
            log,
            credentials: None,
            _dir: None,
        }
    }

    /// The first listener that does (or does not) speak TLS.
    pub fn listener(&self, tls: bool) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(_, t)| *t == tls)
            .unwrap_or_else(|| panic!("no listener with tls={tls} in {:?}", self.listeners))
            .0
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`, following a redirect to the store (a blob of a server
    /// started with [`s3::REDIRECTS`]) as clients do: the answer of
    /// whoever serves the bytes.
    pub fn get_following(&self, path: &str) -> Resp {
        let r = self.req("GET", path).send();
        if r.status != 307 {
            return r;
        }
        let to = r.header("Location").expect("a redirect's Location");
        let rest = to
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{path}: redirected to {to}, not plain HTTP"));
        let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = host
            .parse()
            .unwrap_or_else(|e| panic!("{path}: redirected to {to}: {e}"));
        req_to(addr, "GET", target).send()
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        let req = req_to(self.addr, method, path);
        match &self.credentials {
            Some((u, p)) => req.header("Authorization", &basic_auth(u, p)),
            None => req,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `sig` and waits for the process to exit.
    pub fn signal_and_wait(&mut self, sig: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The debug listener's address, as the server announced it.
    pub fn debug_addr(&self) -> SocketAddr {
        let mut addr = None;
        assert!(
            wait_for(10, || {
                addr = self.log_text().lines().find_map(|l| {
                    let rest = l.split("debug listener on ").nth(1)?;
                    rest.split_whitespace().next()?.parse().ok()
                });
                addr.is_some()
            }),
            "no debug listener announced: {}",
            self.log_text()
        );
        addr.unwrap()
    }

    /// Panics unless `needle` shows up in the log within ten seconds. A line
    /// written before an answer can still reach the harness's pipe reader after
    /// the client has read that answer, so a bare `contains` right after a
    /// request races.
    pub fn expect_log(&self, needle: &str) {
        assert!(
            wait_for(10, || self.log_text().contains(needle)),
            "{needle:?} not logged; log:\n{}",
            self.log_text()
        );
    }
}

enum Startup {
    /// A listener's address and, if the line says, whether it is TLS.
    Serving(SocketAddr, Option<bool>),
    Ready,
}

/// Recognises `serving on ADDR [(plain)|(tls)] ...` and `... ready: ...`.
fn startup_event(line: &str) -> Option<Startup> {
    if let Some(rest) = line.split("serving on ").nth(1) {
        let (addr, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let addr = addr.trim_end_matches([',', ';']).parse().ok()?;
        let after = after.trim_start();
        let kind = if after.starts_with("(tls)") {
            Some(true)
        } else if after.starts_with("(plain)") {
            Some(false)
        } else {
            None
        };
        return Some(Startup::Serving(addr, kind));
    }
    // "ready:" as a word of its own, not the end of "already:".
    let i = line.find("ready:")?;
    let before = line[..i].chars().next_back();
    (!before.is_some_and(char::is_alphanumeric)).then_some(Startup::Ready)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Req {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    tls: Option<tls::ClientTls>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the connection negotiated, for a request sent over TLS.
    pub tls: Option<tls::TlsInfo>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error code of a spec error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The path part of the `Location` header.
    pub fn location_path(&self) -> String {
        let l = self.header("Location").expect("Location header");
        match l.find("/v2/") {
            Some(i) => l[i..].to_string(),
            None => l.to_string(),
        }
    }
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = b.into();
        self
    }

    /// Sends the request over TLS, expecting a certificate for
    /// `server_name` (a DNS name, or an IP address, which is then not sent
    /// as SNI).
    pub fn tls(mut self, server_name: &str, config: &Arc<rustls::ClientConfig>) -> Req {
        self.tls = Some(tls::ClientTls {
            server_name: server_name.to_string(),
            config: config.clone(),
        });
        self
    }

    pub fn send(self) -> Resp {
        let what = format!("{} {} to {}", self.method, self.path, self.addr);
        self.try_send()
            .unwrap_or_else(|e| panic!("{what}: {e} ({e:?})"))
    }

    /// Like [`Req::send`], but a failure to connect, a failed handshake, an
    /// alert or a close instead of a response is an error, not a panic.
    pub fn try_send(self) -> std::io::Result<Resp> {
        let raw = self.encode();
        let head_only = self.method == "HEAD";
        let Some(t) = &self.tls else {
            return try_raw_request(self.addr, &raw, head_only);
        };
        let (buf, info) = tls::exchange(self.addr, t, &raw)?;
        let mut r = try_parse_response(&buf, head_only)?;
        r.tls = Some(info);
        Ok(r)
    }

    /// Like [`Req::try_send`] over plain HTTP, but the body stops for
    /// `pause` after its first `after` bytes, so the server has taken those
    /// in (and acted on them) before the rest arrives.
    pub fn try_send_paused(self, after: usize, pause: Duration) -> std::io::Result<Resp> {
        assert!(self.tls.is_none(), "plain HTTP only");
        let raw = self.encode();
        let split = raw.len() - self.body.len() + after.min(self.body.len());
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.write_all(&raw[..split])?;
        std::thread::sleep(pause);
        s.write_all(&raw[split..])?;
        let mut buf = vec![];
        let _ = s.read_to_end(&mut buf);
        try_parse_response(&buf, self.method == "HEAD")
    }

    fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.addr
        );
        let chunked = self
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Transfer-Encoding") && v == "chunked");
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !chunked
            && !self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        if chunked {
            for c in self.body.chunks(1000) {
                raw.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                raw.extend_from_slice(c);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
        } else {
            raw.extend_from_slice(&self.body);
        }
        raw
    }
}

/// Sends raw bytes and parses the response (connection closed by the server).
pub fn raw_request(addr: SocketAddr, raw: &[u8], head_only: bool) -> Resp {
    try_raw_request(addr, raw, head_only).unwrap()
}

fn try_raw_request(addr: SocketAddr, raw: &[u8], head_only: bool) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(raw)?;
    let mut buf = vec![];
    let _ = s.read_to_end(&mut buf);
    try_parse_response(&buf, head_only)
}

/// A server that closed without a response is a result a test may expect
/// (a refused handshake, a dropped connection), not a harness failure.
fn try_parse_response(buf: &[u8], head_only: bool) -> std::io::Result<Resp> {
    if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no response head: {:?}", String::from_utf8_lossy(buf)),
        ));
    }
    Ok(parse_response(buf, head_only))
}

fn parse_response(buf: &[u8], head_only: bool) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        vec![]
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
        tls: None,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(
            std::str::from_utf8(&b[..nl])
                .unwrap()
                .split(';')
                .next()
                .unwrap(),
            16,
        )
        .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Uploads a blob monolithically and returns its digest.
pub fn push_blob(s: &Server, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = s
        .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(data.to_vec())
        .send();
    assert_eq!(r.status, 201, "push blob: {}", r.text());
    d
}

/// An image manifest of the given media type referencing `config` and `layers`.
pub fn image_manifest(media_type: &str, config: (&str, usize), layers: &[(&str, usize)]) -> String {
    let layer_type = if media_type.contains("docker") {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    };
    let config_type = if media_type.contains("docker") {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"{layer_type}","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
}

/// Pushes a config and one layer and a manifest tagged `tag`; returns the manifest digest.
pub fn push_image(s: &Server, repo: &str, tag: &str, seed: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let layer = format!("layer-{seed}").into_bytes();
    let c = push_blob(s, repo, config.as_bytes());
    let l = push_blob(s, repo, &layer);
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let m = image_manifest(mt, (&c, config.len()), &[(&l, layer.len())]);
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", mt)
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201, "push manifest: {}", r.text());
    sha256(m.as_bytes())
}

/// Waits until `f` holds, for at most `secs`.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

// ---------------------------------------------------------------------------
// Helpers for the end-to-end, interoperability and crash tests.
// ---------------------------------------------------------------------------

/// Media types a client sends in `Accept` to get any manifest back as stored.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// `GET` a manifest, accepting every manifest type so it comes back as stored.
pub fn get_manifest(s: &Server, repo: &str, reference: &str) -> Resp {
    s.req("GET", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Accept", ACCEPT_ALL_MANIFESTS)
        .send()
}

/// A request to any HTTP server on `addr` (another registry, say), with the
/// same raw client `Server::req` uses.
pub fn req_to(addr: SocketAddr, method: &str, path: &str) -> Req {
    Req {
        addr,
        method: method.to_string(),
        path: path.to_string(),
        headers: vec![],
        body: vec![],
        tls: None,
    }
}

/// The `Authorization` header value for HTTP Basic.
pub fn basic_auth(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for c in raw.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Adds or updates users in an htpasswd file. bcrypt cost 4 keeps the
/// tests fast; the `htpasswd` command itself (tested in cli_htpasswd.rs)
/// never writes below 10.
pub fn write_htpasswd(path: &Path, users: &[(&str, &str)]) {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    for (u, p) in users {
        let hash = bcrypt::hash_with_result(p, 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        lines.retain(|l| !l.starts_with(&format!("{u}:")));
        lines.push(format!("{u}:{hash}"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A small deterministic PRNG (xorshift64*), so test data is reproducible from a seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// `n` pseudo-random bytes from `seed`.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

/// A seed that differs between runs (or `TEST_SEED` if set), printed by
/// callers so a failure can be replayed.
pub fn time_seed() -> u64 {
    if let Some(s) = std::env::var("TEST_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// Runs a command to completion; panics with its output unless it succeeded. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every regular file under `dir` (recursively), sorted; symlinks are not
/// followed. A data directory's `private-registry/` (the daemon's own
/// records beside distribution's tree: turns at periodic jobs, the published
/// usage scan, rewritten on the daemon's timers) is left out.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    let own = dir.join("private-registry");
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p == own {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// sha256 of a file, streamed.
pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!(
        "sha256:{}",
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// What [`audit_store`] found in a distribution-layout data directory.
#[derive(Debug, Default)]
pub struct StoreAudit {
    /// Hard violations: a blob whose bytes do not hash to its name, a link
    /// that is not a digest, names a different digest than its directory, or
    /// names a blob that is not stored.
    pub problems: Vec<String>,
    /// Files that are neither `data` (under blobs/) nor `link` (under a
    /// repository's `_layers`/`_manifests`), e.g. temp files a crash left
    /// behind; they are invisible to clients but worth knowing about.
    pub strays: Vec<String>,
    /// Stored blob digests.
    pub blobs: Vec<String>,
}

/// Checks the invariants of a registry root (`<root>/docker/registry/v2`).
pub fn audit_store(root: &Path) -> StoreAudit {
    let v2 = root.join("docker/registry/v2");
    let mut a = StoreAudit::default();
    let blobs_dir = v2.join("blobs");
    for f in walk_files(&blobs_dir) {
        let rel = f
            .strip_prefix(&blobs_dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() == 4 && parts[3] == "data" && parts[0] == "sha256" {
            let want = format!("sha256:{}", parts[2]);
            let got = sha256_file(&f);
            if got != want || !parts[2].starts_with(parts[1]) {
                a.problems
                    .push(format!("blob {rel} holds content hashing to {got}"));
            }
            a.blobs.push(want);
        } else {
            a.strays.push(format!("blobs/{rel}"));
        }
    }
    let repos = v2.join("repositories");
    for f in walk_files(&repos) {
        let rel = f
            .strip_prefix(&repos)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let in_links = rel.contains("/_layers/") || rel.contains("/_manifests/");
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !in_links {
            // _uploads and anything else: not links, nothing to resolve.
            if !rel.contains("/_uploads/") {
                a.strays.push(format!("repositories/{rel}"));
            }
            continue;
        }
        if name != "link" {
            a.strays.push(format!("repositories/{rel}"));
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let d = text.trim();
        let Some(hex) = d
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            a.problems
                .push(format!("link {rel} holds {text:?}, not a digest"));
            continue;
        };
        // `<...>/sha256/<hex>/link` must name its own directory, except a tag's `current/link`.
        let dir = f.parent().unwrap();
        if !rel.ends_with("/current/link") {
            let dname = dir.file_name().unwrap().to_string_lossy();
            if dname != hex {
                a.problems
                    .push(format!("link {rel} names {d}, not its directory"));
            }
        }
        let data = blobs_dir
            .join("sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        if !data.is_file() {
            a.problems
                .push(format!("link {rel} names {d}, which is not stored"));
        }
    }
    a
}

/// Lets `child` run for `after`, then kills it if it is still running (a
/// collector killed at a random moment); returns whether it was killed and
/// what it printed on the pipes it was given.
pub fn kill_after(mut child: Child, after: Duration) -> (bool, std::process::Output) {
    std::thread::sleep(after);
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    (killed, child.wait_with_output().unwrap())
}

/// A child process killed (and reaped) when dropped.
pub struct ProcGuard(pub Option<Child>);

impl ProcGuard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Sends `sig` and waits for exit.
    pub fn signal_and_wait(&mut self, sig: &str) -> Option<std::process::ExitStatus> {
        let mut c = self.0.take()?;
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &c.id().to_string()])
            .status();
        c.wait().ok()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ProcGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The status of `GET path` on `addr`, or `None` if nothing answers there (yet).
pub fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = vec![];
    let _ = s.read_to_end(&mut buf);
    let line = buf.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Whether `cmd` (a path, or a name looked up on PATH) is an executable file.
pub fn installed(cmd: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if cmd.contains('/') {
        return executable(Path::new(cmd));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| executable(&d.join(cmd))))
}

/// For a test that drives external tools: true when one is not installed,
/// so the test can return instead of failing on a machine that lacks the
/// package. A tool that is installed but broken is not absent: the test
/// runs and fails.
///
/// The reason goes to the real stderr rather than through `eprintln!`,
/// which the test harness captures and throws away for a passing test: a
/// skip nobody sees would look like a pass.
pub fn lacks_tools(test: &str, cmds: &[&str]) -> bool {
    let missing: Vec<&str> = cmds.iter().copied().filter(|c| !installed(c)).collect();
    if missing.is_empty() {
        return false;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: not installed: {} (tests/run installs the packages)",
        missing.join(", ")
    );
    true
}

/// Runs Debian's `docker-registry garbage-collect` (CNCF distribution 2.8)
/// on `root`, with no server running, and returns its output. `--dry-run`
/// when `dry`.
pub fn distribution_gc(root: &Path, dry: bool) -> String {
    let dir = TempDir::new("dist-gc");
    let config = dir.0.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n{}  delete:\n    enabled: true\n",
            storage_yaml(root)
        ),
    )
    .unwrap();
    let bin = std::env::var("DOCKER_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into());
    let mut cmd = Command::new(bin);
    // It panics at start with this set ("unable to load custom CA bundle").
    cmd.arg("garbage-collect").env_remove("AWS_CA_BUNDLE");
    if dry {
        cmd.arg("--dry-run");
    }
    let out = cmd
        .arg(&config)
        .output()
        .expect("run docker-registry garbage-collect");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "docker-registry garbage-collect:\n{text}"
    );
    text
}
