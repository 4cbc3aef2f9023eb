//! Collection run by the daemon on a schedule (`privateregistry.gc`). The
//! schedule itself lives in the server's maintenance task; this is one run.

use super::{GcError, Options, Report, collect};
use crate::config::collection::ScheduledGc;
use crate::storage::Registry;

impl From<&ScheduledGc> for Options {
    fn from(c: &ScheduledGc) -> Self {
        Options {
            dry_run: c.dryrun,
            delete_untagged: c.deleteuntagged,
            grace: c.grace.0,
        }
    }
}

/// One scheduled collection, logged line by line as the command prints it.
/// Every scheduled run goes through here, so its outcome is known in one place.
pub async fn run_scheduled(registry: &Registry, opts: &Options) -> Result<Report, GcError> {
    log::info!("garbage collection: starting");
    let result = collect(registry, opts).await;
    match &result {
        Ok(report) => {
            for line in report.lines(opts.dry_run) {
                log::info!("garbage collection: {line}");
            }
            log::info!("garbage collection: finished");
        }
        Err(e) => log::error!("garbage collection failed: {e}"),
    }
    result
}
