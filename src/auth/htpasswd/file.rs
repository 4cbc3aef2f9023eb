//! Rewriting the htpasswd file: only the named user's line changes, and the
//! new file replaces the old in one rename with the old owner and a mode no
//! looser than 0640.

use super::{FILE_MODE, HtpasswdError, line_user, validate_user};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

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

    pub(super) fn text(&self) -> String {
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
