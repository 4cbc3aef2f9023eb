//! TLS against the real server: the certificates it can serve, the protocol
//! versions and ALPN it negotiates, client certificates, what stops it from
//! starting, certificate reloads seen by a busy client, TLS next to plain
//! listeners, and authentication over TLS.

mod common;

use common::tls::*;
use common::*;
use rustls::{AlertDescription, CertificateError, ClientConfig};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What every server certificate is issued for; clients ask for the first.
const SANS: &[&str] = &["localhost", "127.0.0.1"];
const HOST: &str = "localhost";
const BOTH_VERSIONS: [TlsVersion; 2] = [TlsVersion::Tls12, TlsVersion::Tls13];

/// A fresh PKI in a scratch directory that also holds the test's other files.
fn pki() -> (TempDir, Pki) {
    let dir = TempDir::new("tls");
    let pki = Pki::new(&dir.0.join("pki"));
    (dir, pki)
}

/// A server whose only listener is TLS with `cert`; `more` continues the
/// `http.tls` mapping (`    minimumtls: ...`) or adds top-level sections.
fn start_tls(cert: &CertPaths, clientcas: &[&Path], more: &str) -> Server {
    Server::start_with(&format!("{}{more}", http_tls_yaml(cert, clientcas)))
}

fn client(pki: &Pki, opts: ClientOpts) -> Arc<ClientConfig> {
    client_config(pki.ca_pem(), &opts)
}

fn pinned(pki: &Pki, version: TlsVersion) -> Arc<ClientConfig> {
    client(
        pki,
        ClientOpts {
            version: Some(version),
            ..Default::default()
        },
    )
}

/// `GET /v2/` over TLS, each call on a new connection with a new handshake.
fn get_v2(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<Resp> {
    req_to(addr, "GET", "/v2/").tls(HOST, config).try_send()
}

/// The alert the server ended the handshake with, if that is how it failed.
fn alert_received(e: &io::Error) -> Option<AlertDescription> {
    match rustls_error(e) {
        Some(rustls::Error::AlertReceived(a)) => Some(*a),
        _ => None,
    }
}

/// A request works over TLS 1.2 and over TLS 1.3, and the certificate the
/// server presents is the one in `cert`, which the client verified against
/// the test root alone.
fn assert_serves(s: &Server, pki: &Pki, cert: &CertPaths) {
    for version in BOTH_VERSIONS {
        let r = get_v2(s.addr, &pinned(pki, version))
            .unwrap_or_else(|e| panic!("{} over {version:?}: {e:?}", cert.cert.display()));
        assert_eq!(r.status, 200, "{}: {}", cert.cert.display(), r.text());
        let info = r.tls.unwrap();
        assert_eq!(info.version, version, "{}", cert.cert.display());
        assert_eq!(info.peer_cert, cert.sha256(), "{}", cert.cert.display());
    }
}

// ---------------------------------------------------------------------------
// Certificates and keys.
// ---------------------------------------------------------------------------

#[test]
fn rsa_ecdsa_and_ed25519_certificates_are_served() {
    let (_dir, pki) = pki();
    for key in KeyType::ALL {
        let cert = pki.server(&format!("{key:?}"), key, SANS);
        let s = start_tls(&cert, &[], "");
        assert_serves(&s, &pki, &cert);
    }
}

#[test]
fn a_chain_file_lets_clients_that_trust_only_the_root_verify() {
    let (dir, pki) = pki();
    let chained = pki.server_via_intermediate("chained", KeyType::EcdsaP256, SANS);
    let s = start_tls(&chained, &[], "");
    assert_serves(&s, &pki, &chained);

    // Without the intermediate the same leaf must not verify; otherwise the
    // client trusts more than the root and the check above proves nothing.
    let pem = std::fs::read_to_string(&chained.cert).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let leaf = CertPaths {
        cert: dir.0.join("leaf-only.crt"),
        key: chained.key.clone(),
    };
    std::fs::write(&leaf.cert, &pem[..pem.find(end).unwrap() + end.len()]).unwrap();
    let s = start_tls(&leaf, &[], "");
    let e = get_v2(s.addr, &client(&pki, ClientOpts::default())).unwrap_err();
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{e:?}"
    );
}

#[test]
fn pkcs1_and_sec1_keys_are_accepted() {
    let (_dir, pki) = pki();
    for key in [KeyType::Rsa2048, KeyType::EcdsaP256] {
        let cert = pki
            .server(&format!("trad-{key:?}"), key, SANS)
            .with_traditional_key();
        let s = start_tls(&cert, &[], "");
        assert_serves(&s, &pki, &cert);
    }
}

// ---------------------------------------------------------------------------
// Protocol versions and ALPN.
// ---------------------------------------------------------------------------

#[test]
fn minimumtls_13_refuses_a_tls12_only_client() {
    let (_dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[], "    minimumtls: tls1.3\n");
    let r = get_v2(s.addr, &pinned(&pki, TlsVersion::Tls13)).unwrap();
    assert_eq!(r.status, 200);
    let e = get_v2(s.addr, &pinned(&pki, TlsVersion::Tls12)).unwrap_err();
    assert_eq!(
        alert_received(&e),
        Some(AlertDescription::ProtocolVersion),
        "{e:?}"
    );
}

#[test]
fn tls10_and_tls11_hellos_get_a_fatal_alert() {
    let (_dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[], "");
    for version in [TLS1_0, TLS1_1] {
        let hello = |signature_algorithms| LegacyHello {
            version,
            sni: Some(HOST),
            signature_algorithms,
        };
        // As a real 1.0/1.1 client sends it: refused, for want of
        // signature_algorithms or for its version.
        let answer = hello(false).send(s.addr);
        assert!(
            matches!(first_alert(&answer), Some((2, 40 | 70))),
            "{version:#06x}: {answer:02x?}"
        );
        // With signature_algorithms present, rustls gets as far as the
        // version, so this is the refusal of the version itself.
        let answer = hello(true).send(s.addr);
        assert_eq!(
            first_alert(&answer),
            Some(FATAL_PROTOCOL_VERSION),
            "{version:#06x}: {answer:02x?}"
        );
    }
}

#[test]
fn alpn_picks_h2_when_offered_and_http11_otherwise() {
    let (_dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[], "");
    let alpn = |alpn| {
        client(
            &pki,
            ClientOpts {
                alpn,
                ..Default::default()
            },
        )
    };
    let info = handshake(s.addr, HOST, &alpn(&["h2", "http/1.1"])).unwrap();
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]));
    let r = get_v2(s.addr, &alpn(&["http/1.1"])).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.tls.unwrap().alpn.as_deref(), Some(&b"http/1.1"[..]));
}

/// curl (OpenSSL, nghttp2) fetching `path` over HTTPS into `out`; returns
/// curl's `HTTP-VERSION STATUS`.
fn curl(s: &Server, pki: &Pki, protocol: &str, path: &str, out: &Path) -> String {
    let port = s.addr.port();
    run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", protocol, "--cacert"])
            .arg(pki.ca_pem())
            .args(["--resolve", &format!("{HOST}:{port}:127.0.0.1")])
            .args(["-w", "%{http_version} %{response_code}", "-o"])
            .arg(out)
            .arg(format!("https://{HOST}:{port}{path}")),
    )
}

#[test]
fn curl_downloads_a_blob_over_http2_and_http11() {
    let (dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[], "");
    // Larger than h2's initial 64 KiB window, so flow control takes part.
    let blob = random_bytes(300 << 10, 7);
    let digest = sha256(&blob);
    let tls = client(&pki, ClientOpts::default());
    let r = req_to(
        s.addr,
        "POST",
        &format!("/v2/over/tls/blobs/uploads/?digest={digest}"),
    )
    .tls(HOST, &tls)
    .body(blob.clone())
    .send();
    assert_eq!(r.status, 201, "{}", r.text());

    let out = dir.0.join("download");
    let path = format!("/v2/over/tls/blobs/{digest}");
    for (protocol, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let _ = std::fs::remove_file(&out);
        assert_eq!(
            curl(&s, &pki, protocol, &path, &out),
            format!("{version} 200")
        );
        assert!(std::fs::read(&out).unwrap() == blob, "{protocol}: body");
    }
}

// ---------------------------------------------------------------------------
// Client certificates.
// ---------------------------------------------------------------------------

#[test]
fn clientcas_admits_only_clients_with_a_certificate_from_those_cas() {
    let (dir, pki) = pki();
    let other = Pki::new(&dir.0.join("other-pki"));
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[pki.ca_pem()], "");
    let member = pki.client("member");
    let stranger = other.client("stranger");
    for version in BOTH_VERSIONS {
        let as_client = |identity| {
            client(
                &pki,
                ClientOpts {
                    version: Some(version),
                    identity,
                    ..Default::default()
                },
            )
        };
        let r = get_v2(s.addr, &as_client(Some(&member))).unwrap();
        assert_eq!(r.status, 200, "{version:?}: {}", r.text());

        let e = get_v2(s.addr, &as_client(None)).unwrap_err();
        assert_eq!(
            alert_received(&e),
            Some(AlertDescription::CertificateRequired),
            "{version:?}: {e:?}"
        );
        let e = get_v2(s.addr, &as_client(Some(&stranger))).unwrap_err();
        assert_eq!(
            alert_received(&e),
            Some(AlertDescription::UnknownCA),
            "{version:?}: {e:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Start-up.
// ---------------------------------------------------------------------------

/// Runs `serve` on a configuration it must refuse; returns its stderr.
fn refused_start(extra: &str) -> String {
    let dir = TempDir::new("tls-refused");
    let config = dir.0.join("config.yml");
    std::fs::write(&config, config_yaml(&dir.0.join("data"), extra)).unwrap();
    // A file rather than a pipe: readable whether or not the server exits.
    let stderr_path = dir.0.join("stderr");
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut server = ProcGuard(Some(child));
    let mut status = None;
    wait_for(20, || {
        status = server.exited();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let status = status.unwrap_or_else(|| panic!("still running after 20 s: {stderr}"));
    assert!(!status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("serving on"), "{stderr}");
    stderr
}

#[test]
fn unusable_certificate_or_key_files_stop_the_start_naming_the_file() {
    let (dir, pki) = pki();
    let a = pki.server("a", KeyType::EcdsaP256, SANS);
    let b = pki.server("b", KeyType::EcdsaP256, SANS);
    let garbage = dir.0.join("garbage.crt");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.0.join("missing.crt");
    let with = |cert: &Path, key: &Path| CertPaths {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    let cases = [
        ("key of another certificate", with(&a.cert, &b.key), &b.key),
        ("missing certificate", with(&missing, &a.key), &missing),
        (
            "certificate file without one",
            with(&garbage, &a.key),
            &garbage,
        ),
    ];
    for (what, files, culprit) in cases {
        let stderr = refused_start(&http_tls_yaml(&files, &[]));
        let culprit = culprit.display().to_string();
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(" ERROR ") && l.contains(&culprit)),
            "{what}: no error naming {culprit}: {stderr}"
        );
    }
}

#[test]
fn an_expired_certificate_is_served_with_a_warning_giving_its_date() {
    let (_dir, pki) = pki();
    let expired = pki.expired_server("expired", KeyType::EcdsaP256, SANS);
    let s = start_tls(&expired, &[], "");
    let log = s.log_text();
    let path = expired.cert.display().to_string();
    assert!(
        log.lines().any(|l| l.contains(" WARN ")
            && l.contains(&path)
            && l.contains("certificate EXPIRED on 2021-02-01")),
        "{log}"
    );
    // Served nonetheless, and clients refuse it for exactly that reason.
    let e = get_v2(s.addr, &client(&pki, ClientOpts::default())).unwrap_err();
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------
// Reloading.
// ---------------------------------------------------------------------------

/// Replaces `to` with a copy of `from` the way renewal tools do: a complete
/// new file renamed over the old, so the server never reads half of one.
fn install_file(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The key first: a poll between the two renames then sees the old
/// certificate with the new key, which must not load.
fn install(from: &CertPaths, to: &CertPaths) {
    install_file(&from.key, &to.key);
    install_file(&from.cert, &to.cert);
}

/// The log lines written since `mark` lines had been.
fn log_since(s: &Server, mark: usize) -> Vec<String> {
    s.log.lock().unwrap()[mark..].to_vec()
}

fn wait_for_log(s: &Server, mark: usize, what: &str, f: impl Fn(&str) -> bool) {
    assert!(
        wait_for(10, || log_since(s, mark).iter().any(|l| f(l))),
        "no log line {what}: {:#?}",
        log_since(s, mark)
    );
}

fn kill(s: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The certificate each request saw, or why it failed.
type Outcome = Result<String, String>;

/// A client requesting `GET /v2/` back to back, a new connection (and so a
/// new handshake) each time, from a thread of its own.
struct Prober {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Outcome>>>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(addr: SocketAddr, config: Arc<ClientConfig>) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(vec![]));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let outcome = match get_v2(addr, &config) {
                    Ok(r) if r.status == 200 => Ok(r.tls.unwrap().peer_cert),
                    Ok(r) => Err(format!("{}: {}", r.status, r.text())),
                    Err(e) => Err(format!("{e:?}")),
                };
                seen2.lock().unwrap().push(outcome);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        Prober {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// What the next `n` requests, all started after this call, saw.
    fn next(&self, n: usize) -> Vec<Outcome> {
        let from = self.count() + 1;
        assert!(wait_for(10, || self.count() >= from + n), "prober stalled");
        self.seen.lock().unwrap()[from..from + n].to_vec()
    }

    /// Waits until a request sees `cert` (its SHA-256).
    fn wait_for_cert(&self, cert: &str) {
        let from = self.count();
        let seen = || self.seen.lock().unwrap()[from..].contains(&Ok(cert.to_string()));
        assert!(wait_for(10, seen), "{cert} not seen: {:?}", self.tail());
    }

    fn tail(&self) -> Vec<Outcome> {
        let seen = self.seen.lock().unwrap();
        seen[seen.len().saturating_sub(5)..].to_vec()
    }

    fn finish(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn renewed_certificates_reach_new_connections_without_a_failed_request() {
    let (dir, pki) = pki();
    let [first, second, third] =
        ["first", "second", "third"].map(|n| pki.server(n, KeyType::EcdsaP256, SANS));
    let live = CertPaths {
        cert: dir.0.join("live.crt"),
        key: dir.0.join("live.key"),
    };
    install(&first, &live);
    let s = start_tls(&live, &[], "");
    let config = client(&pki, ClientOpts::default());
    let mut opened_before = KeepAlive::open(s.addr, HOST, &config).unwrap();
    assert_eq!(opened_before.get("/v2/").unwrap(), 200);
    assert_eq!(opened_before.info.peer_cert, first.sha256());
    let prober = Prober::start(s.addr, config.clone());
    prober.wait_for_cert(&first.sha256());

    // A renewal: new handshakes get it, the open connection carries on.
    let mark = s.log.lock().unwrap().len();
    install(&second, &live);
    prober.wait_for_cert(&second.sha256());
    wait_for_log(&s, mark, "reporting the reload", |l| {
        l.contains("tls: certificate reloaded (files changed)")
    });
    assert_eq!(opened_before.get("/v2/").unwrap(), 200);

    // A certificate that does not go with the key stays out of service.
    let mark = s.log.lock().unwrap().len();
    install_file(&third.cert, &live.cert);
    let key = live.key.display().to_string();
    wait_for_log(&s, mark, "explaining the failed reload", |l| {
        l.contains("tls: keeping the certificate in service; reload failed (files changed):")
            && l.contains(&key)
    });
    let after = prober.next(5);
    assert!(after.iter().all(|o| *o == Ok(second.sha256())), "{after:?}");

    // Completed, and signalled rather than left to the file poll.
    let mark = s.log.lock().unwrap().len();
    install_file(&third.key, &live.key);
    kill(&s, "HUP");
    wait_for_log(&s, mark, "reporting the SIGHUP reload", |l| {
        l.contains("tls: certificate reloaded (SIGHUP)")
    });
    prober.wait_for_cert(&third.sha256());

    let mut runs = prober.finish();
    runs.dedup();
    let want: Vec<Outcome> = [&first, &second, &third]
        .iter()
        .map(|c| Ok(c.sha256()))
        .collect();
    assert_eq!(runs, want, "certificates seen, in order, or failures");
}

/// Overwrites `path` in place with `content` padded to the old size and
/// puts the old modification time back, so that device, inode, size and
/// mtime, all the file poll compares, stay as they were.
fn rewrite_unnoticed(path: &Path, content: &[u8]) {
    let meta = std::fs::metadata(path).unwrap();
    let size = usize::try_from(meta.len()).unwrap();
    assert!(content.len() <= size, "{} grew", path.display());
    let mut padded = content.to_vec();
    padded.resize(size, b'\n');
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    io::Write::write_all(&mut &f, &padded).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
}

/// Only SIGHUP can load a renewal the poll cannot see, so this is the test
/// that the signal itself reloads, not the poll that happens to run.
#[test]
fn sighup_loads_a_renewal_the_file_poll_cannot_see() {
    let (dir, pki) = pki();
    let [old, new] = ["old", "new"].map(|n| pki.server(n, KeyType::EcdsaP256, SANS));
    let live = CertPaths {
        cert: dir.0.join("live.crt"),
        key: dir.0.join("live.key"),
    };
    // Trailing blank lines are ignored in PEM; they leave room for the new
    // certificate, whose DER may be a few bytes longer.
    for (from, to) in [(&old.cert, &live.cert), (&old.key, &live.key)] {
        let mut pem = std::fs::read(from).unwrap();
        pem.extend([b'\n'; 256]);
        std::fs::write(to, pem).unwrap();
    }
    let s = start_tls(&live, &[], "");
    let config = client(&pki, ClientOpts::default());
    assert_eq!(
        get_v2(s.addr, &config).unwrap().tls.unwrap().peer_cert,
        old.sha256()
    );

    for (from, to) in [(&new.cert, &live.cert), (&new.key, &live.key)] {
        rewrite_unnoticed(to, &std::fs::read(from).unwrap());
    }
    let mark = s.log.lock().unwrap().len();
    kill(&s, "HUP");
    wait_for_log(&s, mark, "reporting the SIGHUP reload", |l| {
        l.contains("tls: certificate reloaded (SIGHUP)")
    });
    let r = get_v2(s.addr, &config).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.tls.unwrap().peer_cert, new.sha256());
}

// ---------------------------------------------------------------------------
// Listeners and authentication.
// ---------------------------------------------------------------------------

#[test]
fn plain_and_tls_listeners_serve_side_by_side_each_only_its_own_protocol() {
    let (_dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(
        &cert,
        &[],
        "privateregistry:\n  listeners:\n    - {name: local, addr: \"127.0.0.1:0\"}\n    - {name: secure, addr: \"127.0.0.1:0\", tls: true}\n",
    );
    let kinds: Vec<bool> = s.listeners.iter().map(|(_, tls)| *tls).collect();
    assert_eq!(kinds, [false, true], "{}", s.log_text());
    let (plain, secure) = (s.listener(false), s.listener(true));
    let config = client(&pki, ClientOpts::default());

    assert_eq!(req_to(plain, "GET", "/v2/").send().status, 200);
    let r = get_v2(secure, &config).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.tls.unwrap().peer_cert, cert.sha256());

    // Plain HTTP on the TLS port is told to use https, not served.
    let r = req_to(secure, "GET", "/v2/").send();
    assert_eq!(r.status, 400, "plain HTTP on the TLS port: {}", r.text());
    assert!(r.text().contains("https://"), "{}", r.text());
    let r = get_v2(plain, &config);
    assert!(r.is_err(), "TLS on the plain port: {r:?}");
}

#[test]
fn basic_auth_over_tls_challenges_then_admits() {
    let (dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let htpasswd = dir.0.join("htpasswd");
    write_htpasswd(&htpasswd, &[("alice", "wonderland")]);
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: tls-realm\n    path: {}\n",
        htpasswd.display()
    );
    let mut s = start_tls(&cert, &[], &auth);
    let config = client(&pki, ClientOpts::default());
    let send = |s: &Server| s.req("GET", "/v2/").tls(HOST, &config).send();

    let r = send(&s);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"tls-realm\"")
    );
    s.credentials = Some(("alice".into(), "wrong".into()));
    assert_eq!(send(&s).status, 401);
    s.credentials = Some(("alice".into(), "wonderland".into()));
    let r = send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.tls.is_some());
}

/// The suite OpenSSL's `s_client` ends up with, given its extra arguments.
fn negotiated(s: &Server, pki: &Pki, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &s.addr.to_string(),
            "-servername",
            HOST,
        ])
        .arg("-CAfile")
        .arg(pki.ca_pem())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split_once("Cipher is ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no cipher in s_client output: {text}"))
}

/// AES-128-GCM is preferred over the client's AES-256-GCM, as the reference
/// (Go) does, while a client that puts ChaCha20 first keeps it.
#[test]
fn aes128_is_preferred_unless_the_client_leads_with_chacha20() {
    if lacks_tools("aes128_is_preferred", &["openssl"]) {
        return;
    }
    let (_dir, pki) = pki();
    let cert = pki.server("server", KeyType::EcdsaP256, SANS);
    let s = start_tls(&cert, &[], "");
    let aes256_first = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
    assert_eq!(
        negotiated(&s, &pki, &["-tls1_3", "-ciphersuites", aes256_first]),
        "TLS_AES_128_GCM_SHA256"
    );
    let chacha_first = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
    assert_eq!(
        negotiated(&s, &pki, &["-tls1_3", "-ciphersuites", chacha_first]),
        "TLS_CHACHA20_POLY1305_SHA256"
    );
    let tls12 = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
    assert_eq!(
        negotiated(&s, &pki, &["-tls1_2", "-cipher", tls12]),
        "ECDHE-ECDSA-AES128-GCM-SHA256"
    );
}

/// Before its certificate exists (`awaitcertificate`, as the package
/// starts), the TLS port answers TLS clients with a handshake-failure alert
/// and plain HTTP with a 400 that says what to do; once the files appear it
/// serves TLS without a restart.
#[test]
fn before_its_certificate_exists_the_tls_port_says_so() {
    let (dir, pki) = pki();
    let cert = pki.server("a", KeyType::EcdsaP256, SANS);
    let later = CertPaths {
        cert: dir.0.join("later.crt"),
        key: dir.0.join("later.key"),
    };
    let s = start_tls(&later, &[], "privateregistry:\n  awaitcertificate: true\n");
    let config = client(&pki, ClientOpts::default());
    let e = get_v2(s.addr, &config).unwrap_err();
    assert_eq!(
        alert_received(&e),
        Some(AlertDescription::HandshakeFailure),
        "{e:?}"
    );
    let r = req_to(s.addr, "GET", "/v2/").send();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("private-registry-certgen"),
        "{}",
        r.text()
    );
    install(&cert, &later);
    assert!(wait_for(20, || get_v2(s.addr, &config)
        .is_ok_and(|r| r.status == 200)));
}
