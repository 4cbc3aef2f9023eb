//! TLS test infrastructure: a throwaway PKI made with the `openssl` command
//! line tool (so the certificates come from an implementation independent of
//! the server's), a rustls client for the harness's raw HTTP/1.1 requests,
//! and a hand-built legacy ClientHello no modern library will send any more.

use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::run_ok;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    EcdsaP256,
    Ed25519,
}

impl KeyType {
    pub const ALL: [KeyType; 3] = [KeyType::Rsa2048, KeyType::EcdsaP256, KeyType::Ed25519];

    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyType::EcdsaP256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyType::Ed25519 => &["-algorithm", "ED25519"],
        }
    }

    /// RSA keys may also be used for key transport; the others only sign.
    fn key_usage(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "critical, digitalSignature, keyEncipherment",
            _ => "critical, digitalSignature",
        }
    }
}

/// A certificate file (PEM; for certificates issued by the intermediate CA
/// the leaf followed by the intermediate) and its private key file (PEM).
#[derive(Clone, Debug)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    /// `sha256:<hex>` of the first (end-entity) certificate in the file.
    pub fn sha256(&self) -> String {
        let first = CertificateDer::pem_file_iter(&self.cert)
            .unwrap()
            .next()
            .unwrap_or_else(|| panic!("no certificate in {}", self.cert.display()))
            .unwrap();
        super::sha256(&first)
    }

    /// The same certificate with its key rewritten from PKCS#8 to the
    /// algorithm-specific encoding (PKCS#1 for RSA, SEC1 for ECDSA) that
    /// older tools still write; Ed25519 has no such encoding, so this panics.
    pub fn with_traditional_key(&self) -> CertPaths {
        let out = run_ok(
            Command::new("openssl")
                .args(["pkey", "-traditional", "-in"])
                .arg(&self.key),
        );
        assert!(
            out.contains("-----BEGIN RSA PRIVATE KEY-----")
                || out.contains("-----BEGIN EC PRIVATE KEY-----"),
            "{} has no traditional encoding",
            self.key.display()
        );
        let stem = self.key.file_stem().unwrap().to_string_lossy();
        let key = self.key.with_file_name(format!("{stem}-traditional.key"));
        write_secret(&key, out.as_bytes());
        CertPaths {
            cert: self.cert.clone(),
            key,
        }
    }
}

/// A test certificate authority (a self-signed root and an intermediate it
/// signed) whose files live in one directory.
pub struct Pki {
    dir: PathBuf,
    root: CertPaths,
    intermediate: CertPaths,
}

/// How long ordinary certificates are valid: far longer than any test run.
const DAYS: &str = "30";

impl Pki {
    /// Makes a fresh root and intermediate CA in `dir` (created if missing).
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let root = CertPaths {
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        };
        gen_key(&root.key, KeyType::EcdsaP256);
        // Two PKIs in one test must not share issuer names: a verifier that
        // finds a same-named CA reports a bad signature, not an unknown one.
        let tag = unique_tag();
        let cnf = write_cnf(
            dir,
            "ca",
            &format!("Test Root CA {tag}"),
            "basicConstraints = critical, CA:TRUE\n\
             keyUsage = critical, keyCertSign, cRLSign\n\
             subjectKeyIdentifier = hash\n",
        );
        run_ok(
            Command::new("openssl")
                .args(["req", "-x509", "-new", "-sha256", "-days", "3650"])
                .args(["-extensions", "ext", "-config"])
                .arg(&cnf)
                .arg("-key")
                .arg(&root.key)
                .arg("-out")
                .arg(&root.cert),
        );
        // The intermediate's file holds only itself: leaves issued by it get
        // it appended, and clients are given the root on its own.
        let intermediate = issue(
            dir,
            "intermediate",
            KeyType::EcdsaP256,
            &format!("Test Intermediate CA {tag}"),
            "basicConstraints = critical, CA:TRUE, pathlen:0\n\
             keyUsage = critical, keyCertSign, cRLSign\n",
            &root,
            Validity::Days,
        );
        Pki {
            dir: dir.to_path_buf(),
            root,
            intermediate,
        }
    }

    /// The root certificate (PEM): what clients trust, and what goes into
    /// `clientcas`.
    pub fn ca_pem(&self) -> &Path {
        &self.root.cert
    }

    /// The intermediate CA certificate (PEM) alone.
    pub fn intermediate_pem(&self) -> &Path {
        &self.intermediate.cert
    }

    /// A server certificate for `sans` (DNS names, or IPv4/IPv6 addresses;
    /// the first is also the common name) issued by the root, written as
    /// `<name>.crt` and `<name>.key`.
    pub fn server(&self, name: &str, key: KeyType, sans: &[&str]) -> CertPaths {
        self.root_issued(name, key, sans, Validity::Days)
    }

    fn root_issued(&self, name: &str, key: KeyType, sans: &[&str], v: Validity) -> CertPaths {
        let ext = server_ext(key, sans);
        issue(&self.dir, name, key, sans[0], &ext, &self.root, v)
    }

    /// Like [`Pki::server`], but issued by the intermediate CA, so that a
    /// client trusting only the root needs the chain the server sends: the
    /// certificate file holds the leaf and then the intermediate.
    pub fn server_via_intermediate(&self, name: &str, key: KeyType, sans: &[&str]) -> CertPaths {
        let ext = server_ext(key, sans);
        let ca = &self.intermediate;
        let p = issue(&self.dir, name, key, sans[0], &ext, ca, Validity::Days);
        let mut chain = std::fs::read(&p.cert).unwrap();
        chain.extend(std::fs::read(&ca.cert).unwrap());
        std::fs::write(&p.cert, chain).unwrap();
        p
    }

    /// A server certificate issued by the root whose validity ended in 2021.
    pub fn expired_server(&self, name: &str, key: KeyType, sans: &[&str]) -> CertPaths {
        self.root_issued(name, key, sans, Validity::Expired)
    }

    /// A client certificate (ECDSA P-256, extendedKeyUsage clientAuth) for
    /// common name `cn`, issued by the root, written as `client-<cn>.*`.
    pub fn client(&self, cn: &str) -> CertPaths {
        let key = KeyType::EcdsaP256;
        let ext = format!(
            "basicConstraints = critical, CA:FALSE\n\
             keyUsage = {}\n\
             extendedKeyUsage = clientAuth\n",
            key.key_usage()
        );
        let name = format!("client-{cn}");
        issue(&self.dir, &name, key, cn, &ext, &self.root, Validity::Days)
    }
}

/// Makes a key and a certificate for it, `<name>.key` and `<name>.crt` in
/// `dir`, signed by `ca`, with the extensions in `ext` (config lines).
fn issue(
    dir: &Path,
    name: &str,
    key: KeyType,
    cn: &str,
    ext: &str,
    ca: &CertPaths,
    validity: Validity,
) -> CertPaths {
    let p = CertPaths {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    gen_key(&p.key, key);
    let ext = format!("{ext}subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n");
    let cnf = write_cnf(dir, name, cn, &ext);
    let csr = dir.join(format!("{name}.csr"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-config"])
            .arg(&cnf)
            .arg("-key")
            .arg(&p.key)
            .arg("-out")
            .arg(&csr),
    );
    match validity {
        Validity::Days => {
            run_ok(
                Command::new("openssl")
                    .args(["x509", "-req", "-sha256", "-days", DAYS])
                    .args(["-extensions", "ext", "-extfile"])
                    .arg(&cnf)
                    .arg("-in")
                    .arg(&csr)
                    .arg("-CA")
                    .arg(&ca.cert)
                    .arg("-CAkey")
                    .arg(&ca.key)
                    .arg("-CAcreateserial")
                    .arg("-CAserial")
                    .arg(ca.cert.with_extension("srl"))
                    .arg("-out")
                    .arg(&p.cert),
            );
        }
        // `x509 -req` in OpenSSL 3.0 can only start a certificate now;
        // `ca` takes explicit dates, at the price of its database files.
        Validity::Expired => {
            let db = dir.join("ca-db");
            std::fs::create_dir_all(&db).unwrap();
            let index = db.join("index.txt");
            if !index.exists() {
                std::fs::write(&index, "").unwrap();
                std::fs::write(db.join("serial"), "1000\n").unwrap();
            }
            let ca_cnf = db.join("ca.cnf");
            std::fs::write(
                &ca_cnf,
                format!(
                    "[ca]\ndefault_ca = test_ca\n\
                         [test_ca]\ndatabase = {}\nserial = {}\nnew_certs_dir = {}\n\
                         default_md = sha256\npolicy = any\nunique_subject = no\n\
                         [any]\ncommonName = supplied\n",
                    index.display(),
                    db.join("serial").display(),
                    db.display()
                ),
            )
            .unwrap();
            run_ok(
                Command::new("openssl")
                    .args(["ca", "-batch", "-notext", "-config"])
                    .arg(&ca_cnf)
                    .args(["-startdate", "20210101000000Z"])
                    .args(["-enddate", "20210201000000Z"])
                    .args(["-extensions", "ext", "-extfile"])
                    .arg(&cnf)
                    .arg("-cert")
                    .arg(&ca.cert)
                    .arg("-keyfile")
                    .arg(&ca.key)
                    .arg("-in")
                    .arg(&csr)
                    .arg("-out")
                    .arg(&p.cert),
            );
        }
    }
    p
}

fn unique_tag() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[derive(Clone, Copy)]
enum Validity {
    Days,
    Expired,
}

fn server_ext(key: KeyType, sans: &[&str]) -> String {
    let alt: Vec<String> = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(_) => format!("IP:{s}"),
            Err(_) => format!("DNS:{s}"),
        })
        .collect();
    format!(
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = {}\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = {}\n",
        key.key_usage(),
        alt.join(", ")
    )
}

/// Writes a config holding everything `req`, `x509` and `ca` read, so that
/// neither the system's openssl.cnf nor `OPENSSL_CONF` changes the result.
fn write_cnf(dir: &Path, name: &str, cn: &str, ext: &str) -> PathBuf {
    let p = dir.join(format!("{name}.cnf"));
    let text =
        format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n[ext]\n{ext}");
    std::fs::write(&p, text).unwrap();
    p
}

/// The key goes through our own 0600 file rather than openssl's `-out`,
/// which would create it with the umask's mode first.
fn gen_key(path: &Path, key: KeyType) {
    let pem = run_ok(
        Command::new("openssl")
            .arg("genpkey")
            .args(key.genpkey_args()),
    );
    write_secret(path, pem.as_bytes());
}

fn write_secret(path: &Path, data: &[u8]) {
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(data).unwrap();
}

/// The YAML for `http.tls`, indented to continue the `http:` mapping that
/// [`super::config_yaml`] ends with: put it first in the `extra` YAML.
pub fn http_tls_yaml(server: &CertPaths, clientcas: &[&Path]) -> String {
    let mut y = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        server.cert.display(),
        server.key.display()
    );
    if !clientcas.is_empty() {
        y.push_str("    clientcas:\n");
        for ca in clientcas {
            y.push_str(&format!("      - {}\n", ca.display()));
        }
    }
    y
}

// ---------------------------------------------------------------------------
// Client side.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// What a client configuration adds to trusting the test root.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientOpts<'a> {
    /// Offer only this version; both 1.2 and 1.3 when `None`.
    pub version: Option<TlsVersion>,
    /// ALPN protocols offered, most preferred first; none when empty.
    pub alpn: &'a [&'a str],
    /// A client certificate (chain and key) to present when asked.
    pub identity: Option<&'a CertPaths>,
}

/// A rustls client configuration trusting only the root in `ca` (PEM).
///
/// The provider is named rather than taken as the process default, which
/// rustls only has while exactly one crypto feature is enabled in the whole
/// dependency graph: a dependency switching on another must not break tests.
pub fn client_config(ca: &Path, opts: &ClientOpts) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.version {
        None => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some(TlsVersion::Tls12) => &[&rustls::version::TLS12],
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
    };
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match opts.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_file_iter(&id.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&id.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// What a TLS connection negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: TlsVersion,
    pub alpn: Option<Vec<u8>>,
    pub cipher_suite: rustls::CipherSuite,
    /// `sha256:<hex>` of the end-entity certificate the server presented,
    /// to tell which certificate was in service (compare [`CertPaths::sha256`]).
    pub peer_cert: String,
}

impl TlsInfo {
    fn of(c: &ClientConnection) -> TlsInfo {
        let version = match c.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
            Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
            v => panic!("negotiated {v:?}"),
        };
        TlsInfo {
            version,
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            cipher_suite: c.negotiated_cipher_suite().unwrap().suite(),
            peer_cert: super::sha256(&c.peer_certificates().unwrap()[0]),
        }
    }
}

/// The TLS side of a [`super::Req`]: whom to expect and how to talk to it.
#[derive(Clone)]
pub(super) struct ClientTls {
    pub(super) server_name: String,
    pub(super) config: Arc<ClientConfig>,
}

fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let name = ServerName::try_from(server_name.to_string())
        .unwrap_or_else(|e| panic!("server name {server_name:?}: {e}"));
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(StreamOwned::new(conn, tcp))
}

/// A connection with its handshake done, and what it negotiated.
fn connected(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<(StreamOwned<ClientConnection, TcpStream>, TlsInfo)> {
    let mut s = connect(addr, server_name, config)?;
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    let info = TlsInfo::of(&s.conn);
    Ok((s, info))
}

/// Completes a handshake and closes, without sending a request: the way to
/// look at negotiation alone (an `h2` ALPN result, say, after which the
/// harness's HTTP/1.1 requests would make no sense).
///
/// In TLS 1.3 the client finishes before the server has judged its
/// certificate, so a rejected (or missing) client certificate shows only
/// when reading: use [`super::Req::try_send`] for that.
pub fn handshake(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<TlsInfo> {
    let (mut s, info) = connected(addr, server_name, config)?;
    s.conn.send_close_notify();
    let _ = s.conn.complete_io(&mut s.sock);
    Ok(info)
}

/// One TLS connection carrying several HTTP/1.1 requests, for what the
/// harness's one-request-per-connection [`super::Req`] cannot show: that a
/// connection opened earlier survives something done to the server since.
pub struct KeepAlive {
    s: io::BufReader<StreamOwned<ClientConnection, TcpStream>>,
    host: String,
    pub info: TlsInfo,
}

impl KeepAlive {
    pub fn open(
        addr: SocketAddr,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<KeepAlive> {
        let (s, info) = connected(addr, server_name, config)?;
        Ok(KeepAlive {
            s: io::BufReader::new(s),
            host: addr.to_string(),
            info,
        })
    }

    /// Sends bytes as they are (an HTTP/2 preface, say) and reads nothing.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let tls = self.s.get_mut();
        tls.write_all(bytes)?;
        tls.flush()
    }

    /// Whether the server has closed the connection, waiting up to `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let tls = self.s.get_mut();
        if tls.sock.set_read_timeout(Some(limit)).is_err() {
            return false;
        }
        let mut buf = [0u8; 256];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// `GET path` on this connection; the status, with the body read so
    /// the connection is ready for the next request. Only `Content-Length`
    /// bodies are understood, which is what the API's small answers use.
    pub fn get(&mut self, path: &str) -> io::Result<u16> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        let tls = self.s.get_mut();
        tls.write_all(req.as_bytes())?;
        tls.flush()?;
        let mut status = None;
        let mut length = 0;
        loop {
            let mut line = String::new();
            if self.s.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            match (status, line.split_once(':')) {
                (None, _) => status = line.split(' ').nth(1).and_then(|c| c.parse().ok()),
                (Some(_), Some((k, v))) if k.eq_ignore_ascii_case("content-length") => {
                    length = v.trim().parse().map_err(io::Error::other)?;
                }
                _ => {}
            }
        }
        let mut body = vec![0; length];
        self.s.read_exact(&mut body)?;
        status.ok_or_else(|| io::Error::other("no status line"))
    }
}

/// Sends `raw` over TLS and reads until the server closes; a close without
/// close_notify after some data is taken as the end, as plain HTTP would.
pub(super) fn exchange(
    addr: SocketAddr,
    tls: &ClientTls,
    raw: &[u8],
) -> io::Result<(Vec<u8>, TlsInfo)> {
    let mut s = connect(addr, &tls.server_name, &tls.config)?;
    s.write_all(raw)?;
    s.flush()?;
    let mut buf = vec![];
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok((buf, TlsInfo::of(&s.conn)))
}

/// The rustls error behind an I/O error from a TLS exchange, if any (a
/// certificate the client rejected, an alert the server sent, ...).
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

// ---------------------------------------------------------------------------
// Legacy handshakes.
// ---------------------------------------------------------------------------

pub const TLS1_0: u16 = 0x0301;
pub const TLS1_1: u16 = 0x0302;

/// Alert level `fatal` and description `protocol_version` (RFC 8446 §6).
pub const FATAL_PROTOCOL_VERSION: (u8, u8) = (2, 70);

/// A ClientHello as a TLS 1.0 or 1.1 client sends it: the version only in
/// `client_version` (no supported_versions extension) and classic CBC
/// suites.
#[derive(Clone, Copy, Debug)]
pub struct LegacyHello<'a> {
    /// [`TLS1_0`] or [`TLS1_1`].
    pub version: u16,
    pub sni: Option<&'a str>,
    /// Whether to send signature_algorithms, which only TLS 1.2 defines, so
    /// a genuine 1.0/1.1 client omits it. rustls 0.23 checks for it before
    /// it looks at the version: without it, rustls answers
    /// `handshake_failure` (40), with it `protocol_version` (70); OpenSSL
    /// answers `protocol_version` either way.
    pub signature_algorithms: bool,
}

impl LegacyHello<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = vec![];
        body.extend(self.version.to_be_bytes());
        body.extend((0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a)); // random
        body.push(0); // session_id
        let suites: [u16; 4] = [
            0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
            0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
            0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
            0x0035, // TLS_RSA_WITH_AES_256_CBC_SHA
        ];
        body.extend(((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend(s.to_be_bytes());
        }
        body.extend([1, 0]); // compression: null only
        let mut exts = vec![];
        if let Some(name) = self.sni {
            let n = name.len() as u16;
            let mut list = vec![];
            list.extend((n + 3).to_be_bytes());
            list.push(0); // host_name
            list.extend(n.to_be_bytes());
            list.extend(name.as_bytes());
            push_ext(&mut exts, 0x0000, &list);
        }
        push_ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x17, 0x00, 0x1d]); // P-256, X25519
        push_ext(&mut exts, 0x000b, &[1, 0]); // uncompressed points
        if self.signature_algorithms {
            // rsa_pkcs1_sha256, ecdsa_secp256r1_sha256, rsa_pkcs1_sha1, ecdsa_sha1
            let algs = [0x0401u16, 0x0403, 0x0201, 0x0203];
            let mut list = ((algs.len() * 2) as u16).to_be_bytes().to_vec();
            for a in algs {
                list.extend(a.to_be_bytes());
            }
            push_ext(&mut exts, 0x000d, &list);
        }
        push_ext(&mut exts, 0xff01, &[0]); // renegotiation_info, empty
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);

        let mut hs = vec![1]; // client_hello
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    /// Sends the hello to `addr` and returns what the server answers: its
    /// first complete record, or whatever came before it closed (nothing,
    /// for a server that just hangs up) or went quiet for 10 s.
    pub fn send(&self, addr: SocketAddr) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&self.bytes()).unwrap();
        let mut buf = vec![];
        let mut chunk = [0u8; 4096];
        while !(buf.len() >= 5
            && buf.len() >= 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]])))
        {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    }
}

fn push_ext(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend(ty.to_be_bytes());
    out.extend((data.len() as u16).to_be_bytes());
    out.extend(data);
}

/// The (level, description) of `bytes` if they start with an alert record.
pub fn first_alert(bytes: &[u8]) -> Option<(u8, u8)> {
    match bytes {
        [0x15, 0x03, _, 0x00, 0x02, level, desc, ..] => Some((*level, *desc)),
        _ => None,
    }
}
