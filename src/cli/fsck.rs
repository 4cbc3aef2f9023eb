//! `private-registry fsck [--repair]`: the integrity check. Exit status 0
//! when nothing is wrong, 1 when problems were found (repaired or not),
//! 2 when the check itself could not run.

use super::count;
use super::offline::Offline;
use super::source::ConfigArgs;
use crate::config;
use crate::storage::fsck::{Finding, Options};
use std::process::ExitCode;
use std::time::Duration;

pub const EXIT_STATUS: &str =
    "Exit status: 0 nothing wrong, 1 problems found (repaired or not), 2 the check could not run.";

#[derive(clap::Args)]
pub struct FsckArgs {
    #[command(flatten)]
    source: ConfigArgs,
    /// Move corrupt blobs aside (to docker/registry/v2/_corrupt/, never
    /// deleted), remove dangling links and tags, put back what an
    /// interrupted collection set aside, link the blobs of uploads a crash
    /// left completed but unlinked, remove leftovers of interrupted
    /// operations.
    #[arg(long)]
    repair: bool,
    /// Temporary files, staging directories and half-completed uploads
    /// younger than this may belong to a request in progress and are left
    /// alone (Go duration).
    #[arg(long, default_value = "1h", value_parser = config::duration::parse)]
    grace: Duration,
}

pub fn run(args: &FsckArgs) -> ExitCode {
    let opts = Options {
        repair: args.repair,
        grace: args.grace,
    };
    let (o, report) = match Offline::open(&args.source).and_then(|o| {
        let r = o
            .block_on(o.registry.fsck(&opts))
            .map_err(|e| e.to_string())?;
        Ok((o, r))
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("private-registry fsck: {e}");
            return ExitCode::from(2);
        }
    };
    for f in &report.problems {
        println!("problem: {}", line(&o, f));
    }
    for f in &report.notes {
        println!("note: {}", line(&o, f));
    }
    let repaired = report
        .problems
        .iter()
        .filter(|f| f.repaired.is_some())
        .count();
    println!(
        "checked {}, {}, {}: {}, {repaired} repaired",
        count(report.blobs, "blob", "blobs"),
        count(report.links, "link", "links"),
        count(report.manifests, "manifest", "manifests"),
        count(report.problems.len(), "problem", "problems")
    );
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `PATH DIGEST: PROBLEM [(tags: A, B)] [(repaired: WHAT)]`, the path as
/// found on disk.
fn line(o: &Offline, f: &Finding) -> String {
    let digest = f.digest.as_ref().map_or("-".to_string(), |d| d.to_string());
    let mut s = format!("{} {digest}: {}", o.full_path(&f.path).display(), f.problem);
    if !f.tags.is_empty() {
        s.push_str(&format!(" (tags: {})", f.tags.join(", ")));
    }
    if let Some(r) = &f.repaired {
        s.push_str(&format!(" (repaired: {r})"));
    }
    s
}
