//! Background upkeep while serving: upload purging
//! (`storage.maintenance.uploadpurging`), as distribution does it, and
//! scheduled garbage collection (`privateregistry.gc`). Nodes sharing a
//! store take turns (`crate::storage::schedule`), so each job runs once
//! per registry and interval, not once per node.

use crate::config::UploadPurging;
use crate::storage::Registry;
use crate::storage::schedule::{Schedule, Turn};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Runs `job` (logged as `what`) if it is this node's turn this `interval`.
/// If the nodes cannot agree (the store fails), it runs: a double run is
/// harmless, a missed one is not noticed.
async fn in_turn(
    registry: &Registry,
    schedule: &Schedule,
    (what, interval): (&str, Duration),
    job: impl std::future::Future<Output = ()>,
) {
    let key = what.replace(' ', "-");
    let claimed = match schedule.claim(registry, &key, interval).await {
        Ok(Turn::Mine(c)) => Some(c),
        Ok(Turn::Taken { by, ago }) => {
            log::info!("{what}: node {by} took this turn {ago:?} ago; not running here");
            return;
        }
        Err(e) => {
            log::warn!("{what}: cannot take turns with other nodes ({e}); running anyway");
            None
        }
    };
    log::debug!("{what}: this node's turn ({})", schedule.node());
    match claimed {
        Some(turn) => schedule.run(registry, turn, interval, job).await,
        None => job.await,
    }
}

/// The first purge runs soon after start, so a daemon restarted more often
/// than `interval` still purges.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(10);

pub fn spawn_upload_purging(
    registry: Arc<Registry>,
    schedule: Schedule,
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
            let job = purge(&registry, age, dry_run);
            in_turn(&registry, &schedule, ("upload purging", interval), job).await;
        }
    }))
}

async fn purge(registry: &Registry, age: Duration, dry_run: bool) {
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

/// How soon after start the first scheduled collection runs (or after one
/// `interval`, if shorter), so a daemon restarted more often than
/// `interval` still collects.
const FIRST_GC_AFTER: Duration = Duration::from_secs(300);

/// The scheduled collection task (`privateregistry.gc`).
pub struct ScheduledGc {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts scheduled collection if configured. Runs follow one another
/// (the next is due `interval` after the previous ended), so they never
/// overlap; collections by other processes or nodes are safe anyway.
pub fn spawn_scheduled_gc(
    registry: Arc<Registry>,
    schedule: Schedule,
    c: &crate::config::collection::ScheduledGc,
) -> Option<ScheduledGc> {
    if !c.enabled {
        return None;
    }
    let (opts, interval) = (crate::gc::Options::from(c), c.interval.0);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    log::info!("garbage collection scheduled every {interval:?}");
    let task = tokio::spawn(async move {
        let mut wait = FIRST_GC_AFTER.min(interval);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
            wait = interval;
            let job = async {
                let _ = crate::gc::run_scheduled(&registry, &opts).await;
            };
            in_turn(&registry, &schedule, ("garbage collection", interval), job).await;
        }
    });
    Some(ScheduledGc { stop, task })
}

impl ScheduledGc {
    /// Stops the schedule, letting a collection in progress finish within
    /// `within`; one still running then is abandoned, which is as safe as a
    /// killed collector: the next collection puts back what it set aside.
    pub async fn stop(mut self, within: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            self.task.abort();
            log::warn!(
                "garbage collection interrupted by shutdown; the next one puts back what it set aside"
            );
        }
    }
}

/// Reclaims the pull-through cache (`privateregistry.mirrorcache`): expired
/// repositories, then the least recently pulled past the size cap; then, if
/// it removed any, a garbage collection (with `privateregistry.gc.grace`)
/// frees their blobs, so the cap holds on disk without a scheduled one.
pub fn spawn_mirror_expiry(
    registry: Arc<Registry>,
    schedule: Schedule,
    c: &crate::config::mirror::MirrorCache,
    grace: Duration,
) -> tokio::task::JoinHandle<()> {
    let (c, interval) = (c.clone(), crate::mirror::expiry::interval(c));
    let opts = crate::gc::Options {
        dry_run: false,
        delete_untagged: false,
        grace,
    };
    tokio::spawn(async move {
        let mut wait = FIRST_RUN_AFTER.min(interval);
        loop {
            tokio::time::sleep(wait).await;
            wait = interval;
            let job = async {
                match crate::mirror::expiry::reclaim(&registry, &c).await {
                    Ok(r) => {
                        for repo in &r.expired {
                            log::info!(
                                "mirror cache: removed {repo}, not pulled for {:?}",
                                c.expiry.0
                            );
                        }
                        for repo in &r.evicted {
                            log::info!(
                                "mirror cache: evicted {repo}, the least recently pulled, to stay under {} bytes",
                                c.maxsize.0
                            );
                        }
                        if !r.expired.is_empty() || !r.evicted.is_empty() {
                            let _ = crate::gc::run_scheduled(&registry, &opts).await;
                        }
                    }
                    Err(e) => log::error!("mirror cache: {e}"),
                }
            };
            in_turn(&registry, &schedule, ("mirror expiry", interval), job).await;
        }
    })
}
