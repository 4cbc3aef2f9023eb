//! `private-registry garbage-collect`: runs one collection on the
//! configured storage and prints what it marked and removed.

use super::{Options, collect};
use crate::config::{self, Config};
use crate::storage::Registry;
use crate::storage::driver::filesystem::FilesystemDriver;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct GcArgs {
    /// Configuration file (distribution's config.yml format).
    #[arg(long, short, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Print what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove manifests no tag reaches (children of a tagged index and
    /// referrers of a kept manifest are kept).
    #[arg(long)]
    delete_untagged: bool,
    /// Keep anything written or referenced this recently (Go duration: 1h,
    /// 30m, 0s). Zero is safe only while no daemon serves the storage.
    #[arg(long, default_value = "1h", value_parser = config::duration::parse)]
    grace: Duration,
}

pub fn run_command(args: &GcArgs) -> ExitCode {
    let loaded = match Config::load(&args.config, std::env::vars()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("private-registry garbage-collect: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.warnings {
        log::warn!("config: {w}");
    }
    let root = loaded.config.root_directory();
    let registry = Registry::new(Arc::new(FilesystemDriver::new(root)));
    let opts = Options {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace: args.grace,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("private-registry garbage-collect: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match rt.block_on(collect(&registry, &opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("private-registry garbage-collect: {e}");
            return ExitCode::FAILURE;
        }
    };
    if report.recovered > 0 {
        println!(
            "put back {} blobs and manifests an interrupted collection had set aside",
            report.recovered
        );
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (repo, d) in &report.manifests_deleted {
        println!("{verb} manifest {repo}@{d}");
    }
    println!(
        "{} blobs marked, {} blobs eligible for deletion",
        report.marked, report.eligible
    );
    for d in &report.blobs_deleted {
        println!("{verb} blob {d}");
    }
    if report.links_removed > 0 {
        println!(
            "removed {} repository links to deleted blobs",
            report.links_removed
        );
    }
    ExitCode::SUCCESS
}
