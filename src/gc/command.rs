//! `private-registry garbage-collect`: runs one collection on the
//! configured storage and prints what it marked and removed.

use super::{Options, collect};
use crate::cli::offline::Offline;
use crate::cli::source::ConfigArgs;
use crate::config;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct GcArgs {
    #[command(flatten)]
    source: ConfigArgs,
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
    let opts = Options {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace: args.grace,
    };
    let result = Offline::open(&args.source).and_then(|o| {
        o.block_on(collect(&o.registry, &opts))
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(report) => {
            for line in report.lines(args.dry_run) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("private-registry garbage-collect: {e}");
            ExitCode::FAILURE
        }
    }
}
