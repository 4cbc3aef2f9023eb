//! A bearer-token issuer on loopback for an upstream registry run with
//! distribution's `auth: token:` (Debian's `docker-registry`, 2.8): it checks
//! Basic credentials, grants what each `scope` asks, and answers a JWT signed
//! RS256 with a self-signed certificate in its `x5c` header, which the
//! registry trusts through `rootcertbundle`. It counts the tokens it gave
//! out over HTTP, so a test can tell a client reused one.
//!
//! Keys and signatures come from the openssl command line: `openssl dgst
//! -sha256 -sign` gives the PKCS#1 v1.5 signature RS256 is.

use super::{TempDir, run_ok};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// What the registry's `auth.token` section must name.
pub const SERVICE: &str = "mirror-test-upstream";
pub const ISSUER: &str = "mirror-test-issuer";
/// Seconds a token is valid (its `exp`), and by default what `expires_in`
/// tells the client.
pub const LIFETIME: u64 = 300;

/// One `access` entry of a token: a resource and the actions granted on it.
pub struct Grant {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Grant {
    /// `repository:team/app:pull,push` as a client sends it in `scope`.
    pub fn parse(scope: &str) -> Option<Grant> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Grant {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions.split(',').map(str::to_string).collect(),
        })
    }
}

/// The signing material, shared by the server thread and the test.
struct Keys {
    key: PathBuf,
    /// The certificate, DER in standard base64, as `x5c` carries it.
    x5c: String,
}

pub struct TokenIssuer {
    pub addr: SocketAddr,
    keys: Arc<Keys>,
    issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    dir: TempDir,
}

impl TokenIssuer {
    /// Starts an issuer that accepts `user`/`password` only.
    pub fn start(user: &str, password: &str) -> TokenIssuer {
        Self::start_telling(user, password, LIFETIME)
    }

    /// An issuer whose answers say `expires_in` seconds (its tokens stay
    /// valid for [`LIFETIME`]), to see when a client asks again.
    pub fn start_telling(user: &str, password: &str, expires_in: u64) -> TokenIssuer {
        let dir = TempDir::new("token");
        let keys = Arc::new(make_keys(&dir.0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let issued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let login = super::basic_auth(user, password);
        let (k, n, s) = (keys.clone(), issued.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (k, n, login) = (k.clone(), n.clone(), login.clone());
                std::thread::spawn(move || answer(conn, &k, &n, &login, expires_in));
            }
        });
        TokenIssuer {
            addr,
            keys,
            issued,
            stop,
            dir,
        }
    }

    /// The certificate the registry's `rootcertbundle` names.
    pub fn cert(&self) -> PathBuf {
        self.dir.0.join("cert.pem")
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// distribution's `auth:` section trusting this issuer.
    pub fn registry_auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            self.cert().display()
        )
    }

    /// Tokens handed out over HTTP so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// A token signed here for the test itself (pushing to the upstream),
    /// not counted among those issued.
    pub fn token(&self, subject: &str, grants: &[Grant]) -> String {
        sign(&self.keys, subject, grants)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A 2048-bit RSA key and a self-signed certificate for it.
fn make_keys(dir: &Path) -> Keys {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=mirror-test-token-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(der.status.success(), "openssl x509 -outform DER failed");
    Keys {
        key,
        x5c: STANDARD.encode(der.stdout),
    }
}

/// The compact JWT: header and claims base64url'd, then the signature.
fn sign(keys: &Keys, subject: &str, grants: &[Grant]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [keys.x5c]});
    let access: Vec<serde_json::Value> = grants
        .iter()
        .map(|g| serde_json::json!({"type": g.kind, "name": g.name, "actions": g.actions}))
        .collect();
    static JTI: AtomicUsize = AtomicUsize::new(0);
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + LIFETIME,
        "nbf": now - 1,
        "iat": now,
        "jti": format!("jti-{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&keys.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl dgst -sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}

/// Serves one request on `conn`: 401 without the right Basic credentials,
/// else a token granting every scope asked for.
fn answer(conn: TcpStream, keys: &Keys, issued: &AtomicUsize, login: &str, expires_in: u64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authorized = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            authorized |= k.trim().eq_ignore_ascii_case("authorization") && v.trim() == login;
        }
    }
    let (status, body) = if !authorized {
        (
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#.to_string(),
        )
    } else {
        let grants: Vec<Grant> = query(&target, "scope")
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(Grant::parse)
            .collect();
        let account = query(&target, "account").pop().unwrap_or_default();
        let token = sign(keys, &account, &grants);
        issued.fetch_add(1, Ordering::SeqCst);
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token, "expires_in": expires_in})
                .to_string(),
        )
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Every value of `key` in `target`'s query, percent-decoded.
fn query(target: &str, key: &str) -> Vec<String> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
