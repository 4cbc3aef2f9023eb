//! Cross-site request forgery protection for the UI's one state-changing
//! action. A browser re-sends cached Basic credentials with any request to
//! this origin, a forged cross-site form included, so a delete must carry a
//! token only our pages hand out — an HMAC over who may do what to which
//! target — and come from a page of this origin (`Origin`, else `Referer`).
//!
//! The key is `http.secret` when set, as distribution uses it for state
//! shared by several nodes behind one name; otherwise a random key made once
//! per process (tokens then stay valid across reloads but not restarts).

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub struct Key([u8; 32]);

impl Key {
    /// The key from `http.secret`, or the process's random one.
    pub fn new(secret: Option<&str>) -> Key {
        match secret.filter(|s| !s.is_empty()) {
            Some(s) => Key(Sha256::digest(s.as_bytes()).into()),
            None => {
                static RANDOM: OnceLock<[u8; 32]> = OnceLock::new();
                Key(*RANDOM.get_or_init(|| {
                    let mut k = [0u8; 32];
                    getrandom::fill(&mut k).expect("system random source");
                    k
                }))
            }
        }
    }

    /// The token for `user` doing `action` on `target`; parts are
    /// length-prefixed so no two different triples hash the same input.
    pub fn token(&self, user: &str, action: &str, target: &str) -> String {
        let mut msg = Vec::new();
        for part in [user, action, target] {
            msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
            msg.extend_from_slice(part.as_bytes());
        }
        crate::digest::to_hex(&hmac_sha256(&self.0, &msg))
    }

    /// Whether `given` is the token for this user, action and target,
    /// compared in constant time.
    pub fn verify(&self, given: &str, user: &str, action: &str, target: &str) -> bool {
        let want = self.token(user, action, target);
        want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// HMAC-SHA256 as RFC 2104 defines it.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.map(|k| k ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Whether a state-changing request comes from one of our pages: its
/// `Origin` (or, without one, its `Referer`) names this host. Hosts are
/// compared without the scheme so a TLS-terminating proxy in front still
/// works; `allowed` are the `host[:port]` forms that count as ours.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, allowed: &[&str]) -> bool {
    let source = match (origin, referer) {
        (Some(o), _) if o != "null" => o,
        (None, Some(r)) => r,
        _ => return false,
    };
    let authority = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    authority.is_some_and(|a| !a.is_empty() && allowed.iter().any(|h| h.eq_ignore_ascii_case(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231() {
        let hex = |b: [u8; 32]| crate::digest::to_hex(&b);
        // Test case 2.
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_bind_user_action_and_target() {
        let k = Key::new(Some("s3cret"));
        let t = k.token("alice", "delete", "team/app:1.0");
        assert!(k.verify(&t, "alice", "delete", "team/app:1.0"));
        assert!(!k.verify(&t, "bob", "delete", "team/app:1.0"));
        assert!(!k.verify(&t, "alice", "delete", "team/app:2.0"));
        assert!(!k.verify("", "alice", "delete", "team/app:1.0"));
        assert!(!k.verify(&t[1..], "alice", "delete", "team/app:1.0"));
        assert!(!Key::new(Some("other")).verify(&t, "alice", "delete", "team/app:1.0"));
        // Random keys are per process, the same for every caller.
        let r = Key::new(None).token("a", "b", "c");
        assert!(Key::new(Some("")).verify(&r, "a", "b", "c"));
    }

    #[test]
    fn origin_checks() {
        let ours = ["reg.example:5000"];
        assert!(same_origin(Some("http://reg.example:5000"), None, &ours));
        assert!(same_origin(Some("https://REG.example:5000"), None, &ours));
        assert!(same_origin(
            None,
            Some("http://reg.example:5000/ui/x"),
            &ours
        ));
        assert!(!same_origin(Some("http://evil.example"), None, &ours));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("http://reg.example:5000/ui/"),
            &ours
        ));
        assert!(!same_origin(Some("null"), None, &ours));
        assert!(!same_origin(None, None, &ours));
        assert!(!same_origin(
            None,
            Some("http://reg.example:5000.evil/"),
            &ours
        ));
        assert!(!same_origin(Some("reg.example:5000"), None, &ours));
    }
}
