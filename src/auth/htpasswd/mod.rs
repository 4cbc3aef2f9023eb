//! Apache's htpasswd file, restricted to bcrypt.
//!
//! The format is the one operators already keep for nginx, Apache and
//! distribution, so an existing file keeps working. Only bcrypt is accepted
//! because it is the only scheme htpasswd offers that is deliberately slow:
//! the others (Apache MD5, SHA-1, DES crypt, plaintext) fall to an offline
//! guess rate of billions per second once the file leaks, and DES crypt reads
//! only the first 8 characters of a password. A line this registry cannot use
//! is reported, never guessed at, and never dropped when the file is
//! rewritten: it is still somebody's account.

mod file;

pub use file::{Document, check_directory, write_atomic};

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// bcrypt reads at most this many bytes of a password and ignores the rest
/// without a word, so a longer password would be weaker than it looks.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Longer names are more likely a pasted mistake than a user.
const MAX_USER_BYTES: usize = 255;

/// Owner reads and writes, the registry's group reads, nobody else: the
/// hashes are slow to attack, not impossible.
pub(crate) const FILE_MODE: u32 = 0o640;

/// The prefixes Apache's tools and the `bcrypt` crate agree on. `$2x$` marks
/// hashes from a crypt_blowfish bug and is refused with the other formats.
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2a$", "$2b$"];

/// A user this registry can authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    pub hash: String,
}

/// A line this registry cannot use. Says what is wrong without quoting the
/// hash or anything that might be a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based, as an editor shows it.
    pub line: usize,
    /// Empty when the line has no user field at all.
    pub user: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.user.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(
                f,
                "line {}, user {:?}: {}",
                self.line, self.user, self.message
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("the password is empty")]
    EmptyPassword,
    #[error(
        "the password is {0} bytes long; bcrypt silently ignores everything after \
         {MAX_PASSWORD_BYTES} bytes, so longer passwords are refused"
    )]
    PasswordTooLong(usize),
    #[error("bcrypt cost {0} is outside 4..=31")]
    Cost(u32),
    #[error("cannot hash the password: {0}")]
    Hash(#[source] bcrypt::BcryptError),
    #[error("invalid user name {user:?}: {reason}")]
    InvalidUser { user: String, reason: &'static str },
    #[error("cannot create {}: {} is not an existing directory", path.display(), dir.display())]
    DirectoryMissing { path: PathBuf, dir: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot give the new {} the owner and group of the old one: {source}", path.display())]
    Owner { path: PathBuf, source: nix::Error },
}

/// Reads the users out of an htpasswd file's text. A user's first line
/// counts; every line that cannot be used comes back as a [`Problem`].
pub fn parse(text: &str) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let (user, hash) = match fields(raw) {
            Fields::Skip => continue,
            Fields::NoSeparator => {
                problems.push(Problem {
                    line,
                    user: String::new(),
                    message: "no ':' between a user and a hash".into(),
                });
                continue;
            }
            Fields::Pair(user, hash) => (user, hash),
        };
        let problem = |message: String| Problem {
            line,
            user: user.to_string(),
            message,
        };
        if let Some(first) = first_line.get(user) {
            problems.push(problem(format!(
                "the user appears again; only line {first} counts"
            )));
            continue;
        }
        first_line.insert(user, line);
        if let Err(HtpasswdError::InvalidUser { reason, .. }) = validate_user(user) {
            problems.push(problem(format!("the user name {reason}")));
        } else if bcrypt_cost(hash).is_some() {
            entries.push(Entry {
                user: user.to_string(),
                hash: hash.to_string(),
            });
        } else {
            problems.push(problem(format!(
                "the hash looks like {}; only bcrypt ($2y$, $2a$, $2b$) is supported, \
                 and `private-registry htpasswd add {user}` rewrites it",
                looks_like(hash)
            )));
        }
    }
    (entries, problems)
}

/// Whether `password` matches a bcrypt `hash`. A malformed hash is simply
/// not a match: the caller has nothing better to do with the reason.
pub fn verify(hash: &str, password: &str) -> bool {
    bcrypt_cost(hash).is_some() && bcrypt::verify(password, hash).unwrap_or(false)
}

/// Hashes a password the way `htpasswd -B` does, `$2y$` prefix included, so
/// the file stays readable by Apache's tools.
pub fn hash(password: &str, cost: u32) -> Result<String, HtpasswdError> {
    if password.is_empty() {
        return Err(HtpasswdError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(HtpasswdError::PasswordTooLong(password.len()));
    }
    if !(4..=31).contains(&cost) {
        return Err(HtpasswdError::Cost(cost));
    }
    bcrypt::hash_with_result(password, cost)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoY))
        .map_err(HtpasswdError::Hash)
}

/// The cost of a well-formed bcrypt hash with an accepted prefix; `None` for
/// anything else, which is what makes a line a [`Problem`].
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let prefix = hash.get(..4)?;
    if !BCRYPT_PREFIXES.contains(&prefix) {
        return None;
    }
    let cost = hash.get(4..6)?;
    let rest = hash.get(6..)?.strip_prefix('$')?;
    if !cost.bytes().all(|b| b.is_ascii_digit()) || rest.len() != 53 {
        return None;
    }
    if !rest.bytes().all(is_crypt_base64) {
        return None;
    }
    let cost: u32 = cost.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

/// A user name that the file format and HTTP Basic can both carry: `:` ends
/// the name in both, and whitespace or control characters are invisible in a
/// listing, so a name with them is almost certainly a mistake.
pub fn validate_user(user: &str) -> Result<(), HtpasswdError> {
    let reason = if user.is_empty() {
        "is empty"
    } else if user.len() > MAX_USER_BYTES {
        "is longer than 255 bytes"
    } else if user.contains(':') {
        "contains ':', which separates the user from the hash"
    } else if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(HtpasswdError::InvalidUser {
        user: user.to_string(),
        reason,
    })
}

enum Fields<'a> {
    /// Blank or a comment.
    Skip,
    NoSeparator,
    Pair(&'a str, &'a str),
}

fn fields(raw: &str) -> Fields<'_> {
    let line = raw.strip_suffix('\r').unwrap_or(raw);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Fields::Skip;
    }
    match line.split_once(':') {
        Some((user, hash)) => Fields::Pair(user, hash),
        None => Fields::NoSeparator,
    }
}

pub(crate) fn line_user(raw: &str) -> Option<&str> {
    match fields(raw) {
        Fields::Pair(user, _) => Some(user),
        _ => None,
    }
}

/// The alphabet of crypt's base64 (`./0-9A-Za-z`).
fn is_crypt_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// Names the format of a hash this registry refuses, from its shape alone.
fn looks_like(hash: &str) -> &'static str {
    const KNOWN: [(&str, &str); 8] = [
        ("$2x$", "bcrypt marked $2x$ by the crypt_blowfish bug fix"),
        ("$2$", "bcrypt with the obsolete $2$ prefix"),
        ("$apr1$", "Apache MD5 ($apr1$)"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("{SHA}", "SHA-1 ({SHA})"),
        ("$argon2", "Argon2"),
    ];
    if let Some((_, name)) = KNOWN.iter().find(|(p, _)| hash.starts_with(p)) {
        return name;
    }
    if BCRYPT_PREFIXES.iter().any(|p| hash.starts_with(p)) {
        "bcrypt but is malformed (bad cost or length)"
    } else if hash.is_empty() {
        "nothing (the hash is empty)"
    } else if hash.starts_with('$') {
        "an unknown crypt scheme"
    } else if hash.len() == 13 && hash.bytes().all(is_crypt_base64) {
        "DES crypt"
    } else {
        "plaintext or an unknown format"
    }
}

#[cfg(test)]
mod tests;
