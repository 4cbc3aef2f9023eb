//! `private-registry repository list|delete`: whole repositories, for the
//! operator who would otherwise `rm -rf` a directory by hand.

use super::count;
use super::offline::Offline;
use super::source::ConfigArgs;
use crate::names::RepoName;
use crate::storage::StorageError;
use crate::storage::repository::Contents;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RepositoryArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    source: ConfigArgs,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print every repository with its number of tags and manifests
    List {
        /// One JSON array of {"name", "tags", "manifests"} instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Remove a repository: its tags, manifests, blob links and uploads.
    /// Repositories nested in its name stay; its blobs go at the next
    /// garbage collection unless another repository uses them
    Delete {
        /// The repository, e.g. team/app
        name: String,
        /// Print what would be removed; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Open(String),
    #[error("invalid repository name {0:?}")]
    Name(String),
    #[error("no repository {0}")]
    Unknown(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("not deleting {0}: no terminal to confirm on; pass --yes")]
    NoTerminal(String),
    #[error("not deleting {0}: not confirmed")]
    NotConfirmed(String),
}

pub fn run(args: &RepositoryArgs) -> ExitCode {
    let result = Offline::open(&args.source)
        .map_err(CliError::Open)
        .and_then(|o| match &args.action {
            Action::List { json } => list(&o, *json),
            Action::Delete { name, dry_run, yes } => delete(&o, name, *dry_run, *yes),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("private-registry repository: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(o: &Offline, json: bool) -> Result<(), CliError> {
    let mut rows = vec![];
    for name in o.block_on(o.registry.all_repositories())? {
        let c = o.block_on(o.registry.repository_contents(&name))?;
        rows.push((name.to_string(), c.tags.len(), c.manifests.len()));
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(n, t, m)| serde_json::json!({"name": n, "tags": t, "manifests": m}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (n, t, m) in rows {
            println!("{n}\t{}\t{}", tags(t), manifests(m));
        }
    }
    Ok(())
}

fn delete(o: &Offline, name: &str, dry_run: bool, yes: bool) -> Result<(), CliError> {
    let repo = RepoName::parse(name).ok_or_else(|| CliError::Name(name.to_string()))?;
    let unknown = |e| match e {
        StorageError::NameUnknown(_) => CliError::Unknown(name.to_string()),
        e => CliError::Storage(e),
    };
    let contents = o
        .block_on(o.registry.repository_contents(&repo))
        .map_err(unknown)?;
    if dry_run {
        print_contents(&repo, &contents, "would delete");
        return Ok(());
    }
    if !yes {
        confirm(&repo, &contents)?;
    }
    let removed = o
        .block_on(o.registry.delete_repository(&repo))
        .map_err(unknown)?;
    print_contents(&repo, &removed, "deleted");
    println!(
        "its blobs are removed by the next garbage collection unless another repository uses them"
    );
    Ok(())
}

fn print_contents(repo: &RepoName, c: &Contents, verb: &str) {
    for (t, d) in &c.tags {
        let target = d
            .as_ref()
            .map_or("(unreadable link)".to_string(), |d| d.to_string());
        println!("{verb} tag {repo}:{t} -> {target}");
    }
    for d in &c.manifests {
        println!("{verb} manifest {repo}@{d}");
    }
    if c.uploads > 0 {
        let uploads = count(c.uploads, "upload", "uploads");
        println!("{verb} {uploads} in progress");
    }
    println!(
        "{verb} repository {repo}: {}, {}",
        tags(c.tags.len()),
        manifests(c.manifests.len())
    );
}

/// Asks on the terminal; without one, refuses (scripts say `--yes`).
fn confirm(repo: &RepoName, c: &Contents) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::NoTerminal(repo.to_string()));
    }
    eprint!(
        "Delete repository {repo} with {} and {}? Type its name to confirm: ",
        tags(c.tags.len()),
        manifests(c.manifests.len())
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    if answer.trim() == repo.to_string() {
        Ok(())
    } else {
        Err(CliError::NotConfirmed(repo.to_string()))
    }
}

fn tags(n: usize) -> String {
    count(n, "tag", "tags")
}

fn manifests(n: usize) -> String {
    count(n, "manifest", "manifests")
}
