//! Storage usage kept current while serving: a background task computes it
//! (see `crate::storage::usage`) and requests read the latest snapshot,
//! never waiting for storage. A push or delete through this daemon marks
//! its repository changed, and the task soon re-reads just that repository;
//! a full rescan every `privateregistry.usagerescan` catches what other
//! processes changed (`garbage-collect`, another node on the same storage).
//!
//! Nodes sharing a store take turns at the full rescan
//! (`crate::storage::schedule`): the node whose turn it is publishes its
//! inventory to the store, and the others load that instead of scanning
//! the whole store themselves, checking for a newer one every few seconds.
//! A node still re-reads the repositories it changed itself, also on top
//! of a loaded inventory that was scanned before its change.

use crate::names::RepoName;
use crate::storage::Registry;
use crate::storage::schedule::{Schedule, Turn};
use crate::storage::usage::{Inventory, Snapshot};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};

/// Changes arriving together (a push is many requests) are read together.
const SETTLE: Duration = Duration::from_millis(500);

/// The job's name in the schedule.
const JOB: &str = "usage-scan";

/// A change this long before a loaded inventory's scan began may be
/// missing from it (the scan lists a repository some time after it began,
/// and clocks differ a little), so it is read again on top.
const CHANGE_MARGIN: Duration = Duration::from_secs(30);

pub struct Usage {
    registry: Arc<Registry>,
    schedule: Schedule,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
    changed: Mutex<HashSet<RepoName>>,
    wake: Notify,
}

impl Usage {
    pub fn new(registry: Arc<Registry>, schedule: Schedule) -> Arc<Usage> {
        Arc::new(Usage {
            registry,
            schedule,
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

    fn take_changed(&self) -> Vec<RepoName> {
        let mut c = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        c.drain().collect()
    }

    /// Runs the background task: a full scan (or a published one loaded)
    /// now and every `rescan`, and a scan of changed repositories shortly
    /// after each change.
    pub fn spawn(self: &Arc<Self>, rescan: Duration) -> tokio::task::JoinHandle<()> {
        let task = Task {
            u: self.clone(),
            rescan,
            inv: Inventory::default(),
            loaded: None,
            mine: HashMap::new(),
        };
        tokio::spawn(task.run())
    }

    fn publish(&self, s: Snapshot) {
        crate::metrics::storage(s.total_bytes, s.reclaimable_bytes, s.repositories.len());
        self.latest.send_replace(Some(Arc::new(s)));
    }
}

struct Task {
    u: Arc<Usage>,
    rescan: Duration,
    inv: Inventory,
    /// The store's time of the published inventory `inv` came from or went to.
    loaded: Option<SystemTime>,
    /// Repositories this node changed, and when.
    mine: HashMap<RepoName, SystemTime>,
}

impl Task {
    async fn run(mut self) {
        let mut full = tokio::time::interval(self.rescan);
        full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = (self.rescan / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut follow = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = !self.u.registry.read_only();
        loop {
            tokio::select! {
                _ = full.tick() => self.full(shared).await,
                _ = follow.tick(), if shared => {
                    if self.load_published().await {
                        self.u.publish(self.inv.snapshot());
                    }
                }
                _ = self.u.wake.notified() => {
                    tokio::time::sleep(SETTLE).await;
                    let names = self.u.take_changed();
                    let now = SystemTime::now();
                    self.mine.extend(names.iter().map(|n| (n.clone(), now)));
                    self.rescan(&names).await;
                }
            }
        }
    }

    /// The periodic full scan, if it is this node's turn; otherwise the
    /// latest published one. A read-only node writes no turns: it scans.
    async fn full(&mut self, shared: bool) {
        if !shared {
            self.scan_all().await;
            return;
        }
        let u = self.u.clone();
        let reg = &u.registry;
        match u.schedule.claim(reg, JOB, self.rescan).await {
            Ok(Turn::Mine(turn)) => {
                let interval = self.rescan;
                let job = async {
                    if self.scan_all().await {
                        let since = self.inv.scanned_at().unwrap_or(SystemTime::UNIX_EPOCH);
                        self.forget_changes_before(since);
                        match reg.publish_usage(&self.inv).await {
                            Ok(at) => self.loaded = Some(at),
                            Err(e) => log::error!("storage usage: publishing for other nodes: {e}"),
                        }
                    }
                };
                u.schedule.run(reg, turn, interval, job).await;
            }
            Ok(Turn::Taken { by, ago }) => {
                log::debug!("storage usage: node {by} took the full scan {ago:?} ago");
                // Nothing published yet means that node is still scanning:
                // its figures arrive with the next check, and requests
                // meanwhile hear "still being computed", as before any scan.
                if self.load_published().await {
                    self.u.publish(self.inv.snapshot());
                }
            }
            Err(e) => {
                log::error!("storage usage: taking turns with other nodes: {e}; scanning here");
                self.scan_all().await;
            }
        }
    }

    /// Scans everything here; returns whether it succeeded.
    async fn scan_all(&mut self) -> bool {
        let started = std::time::Instant::now();
        match self.u.registry.rescan_all(&mut self.inv).await {
            Ok(()) => {
                log::debug!(
                    "storage usage: full scan took {:?}, {} repositories",
                    started.elapsed(),
                    self.inv.repositories()
                );
                self.u.publish(self.inv.snapshot());
                crate::alloc::release_free();
                true
            }
            Err(e) => {
                log::error!("storage usage: {e}; keeping the previous figures");
                false
            }
        }
    }

    /// Loads the published inventory if it is newer than what this node
    /// holds, then re-reads on top what this node changed since shortly
    /// before its scan. Returns whether it loaded one.
    async fn load_published(&mut self) -> bool {
        let u = self.u.clone();
        let reg = &u.registry;
        let at = match reg.usage_published_at().await {
            Ok(Some(at)) if Some(at) != self.loaded => at,
            Ok(_) => return false,
            Err(e) => {
                log::error!("storage usage: reading the published figures: {e}");
                return false;
            }
        };
        let inv = match reg.published_usage().await {
            Ok(Some(bytes)) => Inventory::decode(&bytes),
            Ok(None) => return false,
            Err(e) => {
                log::error!("storage usage: reading the published figures: {e}");
                return false;
            }
        };
        let inv = match inv {
            Ok(inv) => inv,
            Err(e) => {
                log::warn!("storage usage: {e}; ignoring it");
                self.loaded = Some(at);
                return false;
            }
        };
        let since = inv.scanned_at().unwrap_or(SystemTime::UNIX_EPOCH);
        self.inv = inv;
        self.loaded = Some(at);
        log::debug!(
            "storage usage: loaded the published figures, {} repositories",
            self.inv.repositories()
        );
        self.forget_changes_before(since);
        let again: Vec<RepoName> = self.mine.keys().cloned().collect();
        if !again.is_empty() {
            self.rescan_quietly(&again).await;
        }
        crate::alloc::release_free();
        true
    }

    /// Forgets this node's changes that a full scan begun at `since` has
    /// surely read, keeping those it may have missed.
    fn forget_changes_before(&mut self, since: SystemTime) {
        let cutoff = since.checked_sub(CHANGE_MARGIN).unwrap_or(since);
        self.mine.retain(|_, when| *when >= cutoff);
    }

    /// Re-reads `names` and publishes the figures.
    async fn rescan(&mut self, names: &[RepoName]) {
        let started = std::time::Instant::now();
        if self.rescan_quietly(names).await {
            log::debug!(
                "storage usage: {} changed scan took {:?}",
                names.len(),
                started.elapsed()
            );
            self.u.publish(self.inv.snapshot());
        }
    }

    async fn rescan_quietly(&mut self, names: &[RepoName]) -> bool {
        match self
            .u
            .registry
            .rescan_repositories(&mut self.inv, names)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                log::error!("storage usage: {e}; keeping the previous figures");
                // Read again with the next change or full rescan.
                let mut c = self.u.changed.lock().unwrap_or_else(|e| e.into_inner());
                c.extend(names.iter().cloned());
                false
            }
        }
    }
}
