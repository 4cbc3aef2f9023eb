//! Storage usage kept current while serving: a background task computes it
//! (see `crate::storage::usage`) and requests read the latest snapshot,
//! never waiting for storage. A push or delete through this daemon marks
//! its repository changed, and the task soon re-reads just that repository;
//! a full rescan every `privateregistry.usagerescan` catches what other
//! processes changed (`garbage-collect`, another node on the same storage).

use crate::names::RepoName;
use crate::storage::Registry;
use crate::storage::usage::{Inventory, Snapshot};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Changes arriving together (a push is many requests) are read together.
const SETTLE: Duration = Duration::from_millis(500);

pub struct Usage {
    registry: Arc<Registry>,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    changed: Mutex<HashSet<RepoName>>,
    wake: Notify,
}

impl Usage {
    pub fn new(registry: Arc<Registry>) -> Arc<Usage> {
        Arc::new(Usage {
            registry,
            latest: watch::Sender::new(None),
            changed: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        })
    }

    /// The latest figures; `None` until the first scan has finished.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.latest.borrow().clone()
    }

    /// The latest figures, waiting up to `limit` for the first scan.
    pub async fn snapshot_within(&self, limit: Duration) -> Option<Arc<Snapshot>> {
        if let Some(s) = self.snapshot() {
            return Some(s);
        }
        let mut rx = self.latest.subscribe();
        let first = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        first.ok()?.ok()?.clone()
    }

    /// Notes that `repo` (or, for blob uploads, the blob store) changed.
    pub fn changed(&self, repo: &RepoName) {
        let mut c = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        if c.insert(repo.clone()) {
            self.wake.notify_one();
        }
    }

    /// Runs the background task: a full scan now and every `rescan`, and a
    /// scan of changed repositories shortly after each change.
    pub fn spawn(self: &Arc<Self>, rescan: Duration) -> tokio::task::JoinHandle<()> {
        let u = self.clone();
        tokio::spawn(async move {
            let mut inv = Inventory::default();
            let mut full = tokio::time::interval(rescan);
            full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let only = tokio::select! {
                    _ = full.tick() => None,
                    _ = u.wake.notified() => {
                        tokio::time::sleep(SETTLE).await;
                        let mut c = u.changed.lock().unwrap_or_else(|e| e.into_inner());
                        Some(c.drain().collect::<Vec<_>>())
                    }
                };
                let started = std::time::Instant::now();
                let scanned = match &only {
                    None => u.registry.rescan_all(&mut inv).await,
                    Some(names) => u.registry.rescan_repositories(&mut inv, names).await,
                };
                match scanned {
                    Ok(()) => {
                        let what = only
                            .as_ref()
                            .map_or("full".into(), |n| format!("{} changed", n.len()));
                        log::debug!("storage usage: {what} scan took {:?}", started.elapsed());
                        u.publish(inv.snapshot());
                    }
                    Err(e) => {
                        log::error!("storage usage: {e}; keeping the previous figures");
                        // Read again with the next change or full rescan.
                        let mut c = u.changed.lock().unwrap_or_else(|e| e.into_inner());
                        c.extend(only.into_iter().flatten());
                    }
                }
            }
        })
    }

    fn publish(&self, s: Snapshot) {
        crate::metrics::storage(s.total_bytes, s.reclaimable_bytes, s.repositories.len());
        self.latest.send_replace(Some(Arc::new(s)));
    }
}
