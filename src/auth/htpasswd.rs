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

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

/// bcrypt reads at most this many bytes of a password and ignores the rest
/// without a word, so a longer password would be weaker than it looks.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Longer names are more likely a pasted mistake than a user.
const MAX_USER_BYTES: usize = 255;

/// Owner reads and writes, the registry's group reads, nobody else: the
/// hashes are slow to attack, not impossible.
const FILE_MODE: u32 = 0o640;

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

/// What `add` and `delete` change has to be the only change: a rewrite keeps
/// every other line byte for byte, comments and unusable lines included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Without their `\n`; a `\r` from a CRLF file stays where it was.
    lines: Vec<String>,
}

/// What [`Document::set`] did, for telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Added => "added",
            Change::Updated => "updated",
        })
    }
}

impl Document {
    pub fn new(text: &str) -> Document {
        let text = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(String::from).collect()
        };
        Document { lines }
    }

    /// Gives `user` this hash: their first line is replaced in place (whatever
    /// format it had), later lines of theirs are dropped since they never
    /// counted, and a new user goes at the end.
    pub fn set(&mut self, user: &str, hash: &str) -> Result<Change, HtpasswdError> {
        validate_user(user)?;
        let line = format!("{user}:{hash}");
        match self.lines.iter().position(|l| line_user(l) == Some(user)) {
            Some(first) => {
                self.lines[first] = line;
                let rest = self.lines.split_off(first + 1);
                self.lines
                    .extend(rest.into_iter().filter(|l| line_user(l) != Some(user)));
                Ok(Change::Updated)
            }
            None => {
                self.lines.push(line);
                Ok(Change::Added)
            }
        }
    }

    /// Removes every line of `user`; false if there was none.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| line_user(l) != Some(user));
        self.lines.len() != before
    }

    fn text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// Fails unless the directory `path` would be created in exists. Separate
/// from [`write_atomic`] so a command can check before asking for a password.
pub fn check_directory(path: &Path) -> Result<(), HtpasswdError> {
    let dir = directory_of(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(HtpasswdError::DirectoryMissing {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(HtpasswdError::DirectoryMissing {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(HtpasswdError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file so that a reader (the registry reloading it, or a crash)
/// sees the old file or the new one, never a half-written one. The new file
/// is never readable by more people than the old one was: it is created
/// 0640, narrowed further if the old file was narrower, and given the old
/// file's owner and group so the registry's user can still read it after an
/// administrator edits it as root. A symlink is followed and the file it
/// points to replaced, so a link into a secrets directory stays a link.
pub fn write_atomic(path: &Path, document: &Document) -> Result<(), HtpasswdError> {
    let write_error = |source| HtpasswdError::Write {
        path: path.to_path_buf(),
        source,
    };
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).map_err(write_error)?,
        _ => path.to_path_buf(),
    };
    check_directory(&target)?;
    let old = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(write_error(e)),
    };
    let mode = old.as_ref().map_or(FILE_MODE, |m| m.mode() & FILE_MODE);
    let temp = temp_path(&target).ok_or_else(|| {
        write_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(write_error)?;
    let result = fill_and_rename(file, &temp, &target, old.as_ref(), mode, document);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|e| match e {
        Failure::Io(source) => write_error(source),
        Failure::Owner(source) => HtpasswdError::Owner {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Which step failed, so the error can tell a failed write from a refused
/// change of owner.
enum Failure {
    Io(io::Error),
    Owner(nix::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn fill_and_rename(
    mut file: File,
    temp: &Path,
    target: &Path,
    old: Option<&fs::Metadata>,
    mode: u32,
    document: &Document,
) -> Result<(), Failure> {
    if let Some(old) = old {
        // Compared with what the new file got rather than with our ids: a
        // setgid directory may already have given it the right group.
        let new = file.metadata()?;
        let owner = (old.uid() != new.uid()).then(|| Uid::from_raw(old.uid()));
        let group = (old.gid() != new.gid()).then(|| Gid::from_raw(old.gid()));
        if owner.is_some() || group.is_some() {
            nix::unistd::fchown(&file, owner, group).map_err(Failure::Owner)?;
        }
    }
    // The umask only ever narrows what `open` was given, and a narrower mode
    // than the one chosen would lock the registry's group out.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(document.text().as_bytes())?;
    file.sync_all()?;
    fs::rename(temp, target)?;
    File::open(directory_of(target))?.sync_all()?;
    Ok(())
}

/// Same directory, so the rename is atomic; a leading dot, so tools that
/// pick up files from the directory skip it.
fn temp_path(target: &Path) -> Option<PathBuf> {
    let name = target.file_name()?.to_str()?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).ok()?;
    Some(target.with_file_name(format!(".{name}.tmp-{}", crate::digest::to_hex(&random))))
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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

fn line_user(raw: &str) -> Option<&str> {
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
mod tests {
    use super::*;

    /// Cost 4 keeps the tests fast; the format is the same at any cost.
    fn quick_hash(password: &str) -> String {
        hash(password, 4).unwrap()
    }

    #[test]
    fn accepts_every_bcrypt_prefix() {
        let h = quick_hash("pw");
        let body = &h[4..];
        let text = format!("a:$2y${body}\nb:$2a${body}\n\n# note\nc:$2b${body}\n");
        let (entries, problems) = parse(&text);
        assert_eq!(problems, vec![]);
        let users: Vec<_> = entries.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["a", "b", "c"]);
        for e in &entries {
            assert!(verify(&e.hash, "pw"), "{}", e.hash);
        }
    }

    #[test]
    fn reports_other_formats_by_line_without_quoting_them() {
        let good = quick_hash("pw");
        let body = &good[4..];
        let text = format!(
            "# users\nok:{good}\nmd5:$apr1$abcdefgh$0123456789abcdefghijkl\n\
             sha:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nplain:hunter2hunter2\n\
             des:abJnggxhB/yWI\nx:$2x${body}\nshort:$2y$10$tooShort\n\
             cost:$2y$99${}\njustapassword\nok:{good}\n   \n",
            &body[3..]
        );
        let (entries, problems) = parse(&text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].user, "ok");
        let found: Vec<_> = problems.iter().map(|p| (p.line, p.user.as_str())).collect();
        assert_eq!(
            found,
            [
                (3, "md5"),
                (4, "sha"),
                (5, "plain"),
                (6, "des"),
                (7, "x"),
                (8, "short"),
                (9, "cost"),
                (10, ""),
                (11, "ok"),
            ]
        );
        let says = |line: usize, what: &str| {
            let p = problems.iter().find(|p| p.line == line).unwrap();
            assert!(p.message.contains(what), "{p}");
        };
        says(3, "Apache MD5");
        says(4, "SHA-1");
        says(5, "plaintext");
        says(6, "DES");
        says(7, "$2x$");
        says(8, "malformed");
        says(9, "malformed");
        says(10, "no ':'");
        says(11, "only line 2 counts");
        for p in &problems[..7] {
            assert!(p.message.contains("only bcrypt"), "{p}");
            assert!(
                p.message
                    .contains(&format!("private-registry htpasswd add {}", p.user)),
                "{p}"
            );
        }
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        for secret in ["hunter2", "abJnggxhB", "W6ph5", "justapassword", body] {
            assert!(!all.contains(secret), "{secret} leaked into: {all}");
        }
    }

    #[test]
    fn crlf_lines_parse_and_survive_a_rewrite() {
        let h = quick_hash("pw");
        let text = format!("a:{h}\r\nb:$apr1$x$y\r\n");
        let (entries, problems) = parse(&text);
        assert_eq!(entries[0].hash, h);
        assert_eq!(problems[0].user, "b");
        let mut doc = Document::new(&text);
        assert_eq!(doc.set("c", &h).unwrap(), Change::Added);
        assert_eq!(doc.text(), format!("{text}c:{h}\n"));
    }

    #[test]
    fn hash_verify_round_trip() {
        let h = quick_hash("correct horse");
        assert!(h.starts_with("$2y$04$"), "{h}");
        assert_eq!(h.len(), 60);
        assert_eq!(bcrypt_cost(&h), Some(4));
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsf"));
        assert!(!verify("$apr1$abcdefgh$0123456789abcdefghijkl", "x"));
        assert!(!verify("", ""));
    }

    #[test]
    fn refuses_passwords_bcrypt_would_truncate_or_that_are_empty() {
        let exactly = "p".repeat(MAX_PASSWORD_BYTES);
        assert!(verify(&quick_hash(&exactly), &exactly));
        let too_long = "p".repeat(MAX_PASSWORD_BYTES + 1);
        let err = hash(&too_long, 4).unwrap_err();
        assert!(matches!(err, HtpasswdError::PasswordTooLong(73)));
        assert!(err.to_string().contains("72 bytes"), "{err}");
        assert!(matches!(hash("", 4), Err(HtpasswdError::EmptyPassword)));
    }

    #[test]
    fn refuses_costs_bcrypt_cannot_do() {
        assert!(matches!(hash("pw", 3), Err(HtpasswdError::Cost(3))));
        assert!(matches!(hash("pw", 32), Err(HtpasswdError::Cost(32))));
    }

    #[test]
    fn user_names() {
        assert!(validate_user("alice").is_ok());
        assert!(validate_user("ci-bot@example.com").is_ok());
        assert!(validate_user(&"u".repeat(255)).is_ok());
        for bad in ["", "a:b", "a b", "a\tb", "a\u{7f}", &"u".repeat(256)] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_and_remove_touch_only_the_named_user() {
        let text = "# keep me\ncarol:$apr1$x$y\n\nalice:{SHA}abc\nnocolon\nalice:second\n";
        let mut doc = Document::new(text);
        assert_eq!(doc.set("alice", "H1").unwrap(), Change::Updated);
        assert_eq!(
            doc.text(),
            "# keep me\ncarol:$apr1$x$y\n\nalice:H1\nnocolon\n"
        );
        assert_eq!(doc.set("dave", "H2").unwrap(), Change::Added);
        assert!(doc.set("e:f", "H3").is_err());
        assert!(doc.remove("carol"));
        assert!(!doc.remove("carol"));
        assert_eq!(doc.text(), "# keep me\n\nalice:H1\nnocolon\ndave:H2\n");
    }
}
