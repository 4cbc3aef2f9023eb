//! Background upkeep while serving: upload purging
//! (`storage.maintenance.uploadpurging`), as distribution does it.

use crate::config::UploadPurging;
use crate::storage::Registry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The first purge runs soon after start, so a daemon restarted more often
/// than `interval` still purges.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(10);

pub fn spawn_upload_purging(
    registry: Arc<Registry>,
    p: &UploadPurging,
) -> Option<tokio::task::JoinHandle<()>> {
    if !p.enabled {
        return None;
    }
    let (age, interval, dry_run) = (p.age.0, p.interval.0.max(Duration::from_secs(1)), p.dryrun);
    Some(tokio::spawn(async move {
        let mut wait = FIRST_RUN_AFTER.min(interval);
        loop {
            tokio::time::sleep(wait).await;
            wait = interval;
            let cutoff = SystemTime::now() - age;
            match registry.purge_uploads(cutoff, dry_run).await {
                Ok(stale) => {
                    let verb = if dry_run { "would purge" } else { "purged" };
                    for s in &stale {
                        log::info!("upload purging: {verb} upload {} in {}", s.id, s.repo);
                    }
                    log::info!(
                        "upload purging: {verb} {} upload(s) older than {age:?}",
                        stale.len()
                    );
                }
                Err(e) => log::error!("upload purging: {e}"),
            }
        }
    }))
}
