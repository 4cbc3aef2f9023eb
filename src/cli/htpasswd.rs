//! `private-registry htpasswd`: manage the users of the htpasswd file.
//!
//! Built in so an operator needs neither Apache's tools nor a guess at which
//! of their hash formats this registry accepts: what this command writes is
//! bcrypt, in a file Apache's tools still read, and only the named user's
//! line ever changes.

use super::prompt::{self, HiddenInput};
use super::source;
use crate::auth::htpasswd::{self, Document, HtpasswdError};
use crate::config::{self, ConfigError};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the file is when neither `--file` nor the configuration says.
pub const DEFAULT_FILE: &str = "/etc/private-registry/htpasswd";
/// Apache's default is 5, which a GPU guesses through quickly; 12 costs a
/// login about a quarter of a second.
pub const DEFAULT_COST: u32 = 12;
/// Below this the file is not much harder to attack than a fast hash.
pub const MIN_COST: u32 = 10;

#[derive(clap::Args)]
pub struct HtpasswdArgs {
    #[command(subcommand)]
    pub action: Action,
    /// The htpasswd file [default: /etc/private-registry/htpasswd]
    #[arg(long, global = true, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// bcrypt cost of new hashes; each step doubles the work [default: 12]
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::value_parser!(u32).range(MIN_COST as i64..=31))]
    pub cost: Option<u32>,
    /// Configuration file whose auth.htpasswd.path names the file, and whose
    /// privateregistry.auth.bcryptcost sets the cost [default: /etc/private-registry/config.yml]
    #[arg(
        long,
        short,
        global = true,
        value_name = "PATH",
        conflicts_with = "file"
    )]
    pub config: Option<PathBuf>,
    /// Take them from the built-in developer configuration (as serve --dev)
    #[arg(long, global = true, conflicts_with_all = ["config", "file"])]
    pub dev: bool,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Add a user, or give an existing one a new password
    Add {
        /// The user's name
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user
    Delete {
        /// The user's name
        user: String,
    },
    /// Print the users, one per line; lines that cannot be used go to stderr
    List,
    /// Check a user's password
    Verify {
        /// The user's name
        user: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    #[error("{0}")]
    Unusable(htpasswd::Problem),
    #[error("password incorrect")]
    Incorrect,
    #[error("no terminal to prompt on; use --password-stdin")]
    NoTerminal,
    #[error("cannot read the password: {0}")]
    Password(io::Error),
    #[error("the passwords do not match")]
    Mismatch,
    #[error("bcrypt cost {0} is below the minimum of {MIN_COST}")]
    CostTooLow(u32),
    #[error("{0}; or pass --file PATH")]
    Config(ConfigError),
    #[error("{0}: no auth.htpasswd.path configured; pass --file PATH")]
    NoPath(String),
}

/// The htpasswd file and bcrypt cost: `--file`/`--cost` if given, else the
/// configuration's `auth.htpasswd.path` and `privateregistry.auth.bcryptcost`.
/// Without a configuration file at the default path, the packaged default
/// file, so the command works before any configuration exists.
fn target(args: &HtpasswdArgs) -> Result<(PathBuf, u32), CliError> {
    let path = args.config.clone();
    let path = path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let implicit = args.config.is_none() && !args.dev && !path.exists();
    let (file, cost) = match &args.file {
        Some(f) => (f.clone(), DEFAULT_COST),
        None if implicit => (PathBuf::from(DEFAULT_FILE), DEFAULT_COST),
        None => configured(&path, args.dev)?,
    };
    Ok((file, args.cost.unwrap_or(cost)))
}

fn configured(path: &Path, dev: bool) -> Result<(PathBuf, u32), CliError> {
    let c = source::load(path, dev).map_err(CliError::Config)?.config;
    let file = c.auth.and_then(|a| a.htpasswd).map(|h| h.path);
    let origin = if dev {
        "the built-in developer configuration".to_string()
    } else {
        path.display().to_string()
    };
    let file = file.ok_or(CliError::NoPath(origin))?;
    Ok((file, c.privateregistry.auth.bcryptcost))
}

/// Carries out one `htpasswd` action on the file `target` finds; every
/// failure, finding the file included, is reported alike and exits 1.
pub fn run(args: &HtpasswdArgs) -> ExitCode {
    match target(args).and_then(|(file, cost)| act(args, &file, cost)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn act(args: &HtpasswdArgs, file: &Path, cost: u32) -> Result<(), CliError> {
    match &args.action {
        Action::Add {
            user,
            password_stdin,
        } => add(file, user, *password_stdin, cost),
        Action::Delete { user } => delete(file, user),
        Action::List => list(file),
        Action::Verify {
            user,
            password_stdin,
        } => verify(file, user, *password_stdin),
    }
}

fn report(e: &dyn std::fmt::Display) {
    eprintln!("private-registry htpasswd: {e}");
}

/// Everything that can be checked is checked before the password is asked
/// for, and the file is read only after it, so a slow typist does not undo
/// an edit made in the meantime.
fn add(file: &Path, user: &str, password_stdin: bool, cost: u32) -> Result<(), CliError> {
    htpasswd::validate_user(user)?;
    if cost < MIN_COST {
        return Err(CliError::CostTooLow(cost));
    }
    htpasswd::check_directory(file)?;
    let password = read_password(password_stdin, true)?;
    let hash = htpasswd::hash(&password, cost)?;
    let mut document = Document::new(&read(file, true)?);
    let change = document.set(user, &hash)?;
    htpasswd::write_atomic(file, &document)?;
    println!("{change} user {user}");
    Ok(())
}

fn delete(file: &Path, user: &str) -> Result<(), CliError> {
    let mut document = Document::new(&read(file, false)?);
    if !document.remove(user) {
        return Err(CliError::NoSuchUser(user.to_string()));
    }
    htpasswd::write_atomic(file, &document)?;
    println!("deleted user {user}");
    Ok(())
}

fn list(file: &Path) -> Result<(), CliError> {
    let (entries, problems) = htpasswd::parse(&read(file, false)?);
    for entry in &entries {
        println!("{}", entry.user);
    }
    for problem in &problems {
        report(problem);
    }
    Ok(())
}

fn verify(file: &Path, user: &str, password_stdin: bool) -> Result<(), CliError> {
    let (entries, problems) = htpasswd::parse(&read(file, false)?);
    let Some(entry) = entries.into_iter().find(|e| e.user == user) else {
        return Err(match problems.into_iter().find(|p| p.user == user) {
            Some(problem) => CliError::Unusable(problem),
            None => CliError::NoSuchUser(user.to_string()),
        });
    };
    let password = read_password(password_stdin, false)?;
    if !htpasswd::verify(&entry.hash, &password) {
        return Err(CliError::Incorrect);
    }
    println!("password correct");
    Ok(())
}

/// The file's text; a missing file is empty when `missing_ok`, since `add`
/// creates it.
fn read(file: &Path, missing_ok: bool) -> Result<String, CliError> {
    match std::fs::read_to_string(file) {
        Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        r => r.map_err(|source| CliError::Read {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// From stdin only when asked, otherwise from the terminal, typed twice when
/// setting it so a typo does not lock the user out.
fn read_password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        return prompt::first_line(io::stdin().lock()).map_err(CliError::Password);
    }
    if !io::stdin().is_terminal() {
        return Err(CliError::NoTerminal);
    }
    let mut tty = HiddenInput::open().map_err(CliError::Password)?;
    let password = tty.ask("Password: ").map_err(CliError::Password)?;
    if confirm {
        let again = tty.ask("Retype password: ").map_err(CliError::Password)?;
        if again != password {
            return Err(CliError::Mismatch);
        }
    }
    Ok(password)
}
