//! Taking turns at periodic jobs among nodes that share a store, so upload
//! purging, scheduled garbage collection and the full usage scan run once
//! per registry and period, not once per node.
//!
//! Each job has a record in the store (`paths::schedule`) naming the node
//! that last took its turn and when. A node whose timer fires skips the run
//! if another node's turn is more recent than the job's interval; otherwise
//! it writes its own claim, waits [`SETTLE`], reads the record back and runs
//! only if its claim stands. Stores have read-after-write consistency (a
//! filesystem; S3 and Garage) but no compare-and-swap, so two nodes that
//! both read before either wrote both write, and the later write wins the
//! read-back: both run only if one node's read and write are more than
//! `SETTLE` apart. Such a double run is harmless for these jobs: purging
//! removes what is stale either way, collections tolerate concurrent
//! collectors (`storage::condemn`), and two usage scans give the same figures.
//! Times are the nodes' own clocks, assumed in step to well within an interval.

use super::{Registry, Result, error::optional, paths};
use bytes::Bytes;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Between writing a claim and reading it back: far longer than a node
/// takes from reading the record to writing its claim.
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Claim {
    node: String,
    /// Unique to one claim, so a node's earlier claim is not mistaken for this one.
    nonce: String,
    /// Milliseconds since the epoch when the turn was claimed or last renewed.
    at: u64,
}

/// This node's side of the schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    node: String,
    settle: Duration,
}

/// What [`Schedule::claim`] decided.
#[derive(Debug, PartialEq)]
pub enum Turn {
    /// Ours: run the job through [`Schedule::run`].
    Mine(Claimed),
    /// Another node took it `ago`.
    Taken { by: String, ago: Duration },
}

#[derive(Debug, PartialEq)]
pub struct Claimed {
    job: String,
    nonce: String,
}

impl Schedule {
    /// `node` names this process in the records (logs and operators read it).
    pub fn new(node: String) -> Schedule {
        Schedule {
            node,
            settle: SETTLE,
        }
    }

    /// A name for this process: host, process id and a random part, so a
    /// restarted daemon is a new node.
    pub fn this_process() -> Schedule {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let node = format!(
            "{}/{}/{}",
            host.trim(),
            std::process::id(),
            super::tags::random_id()
        );
        Schedule::new(node)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Decides whether this node runs `job` now, given that it runs every `interval`.
    pub async fn claim(&self, reg: &Registry, job: &str, interval: Duration) -> Result<Turn> {
        let path = paths::schedule(job);
        if let Some(c) = read(reg, &path).await?
            && c.node != self.node
        {
            let ago = age(c.at);
            if ago < interval {
                return Ok(Turn::Taken { by: c.node, ago });
            }
        }
        let mine = Claim {
            node: self.node.clone(),
            nonce: super::tags::random_id(),
            at: now_ms(),
        };
        write(reg, &path, &mine).await?;
        tokio::time::sleep(self.settle).await;
        match read(reg, &path).await? {
            Some(c) if c == mine => Ok(Turn::Mine(Claimed {
                job: job.to_string(),
                nonce: mine.nonce,
            })),
            Some(c) => Ok(Turn::Taken {
                ago: age(c.at),
                by: c.node,
            }),
            // Removed meanwhile (by an operator): nobody else holds it.
            None => Ok(Turn::Mine(Claimed {
                job: job.to_string(),
                nonce: mine.nonce,
            })),
        }
    }

    /// Runs `job` as this node's turn. The record is renewed every half
    /// `interval` while it runs, so a run longer than the interval (a
    /// collection or a usage scan of a large store) is not taken for an
    /// abandoned one and started again elsewhere, and once more at the end,
    /// so the next interval counts from there.
    pub async fn run<T>(
        &self,
        reg: &Registry,
        turn: Claimed,
        interval: Duration,
        job: impl std::future::Future<Output = T>,
    ) -> T {
        let mut job = std::pin::pin!(job);
        let every = (interval / 2).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let out = loop {
            tokio::select! {
                out = &mut job => break out,
                _ = beat.tick() => self.renew(reg, &turn).await,
            }
        };
        self.renew(reg, &turn).await;
        out
    }

    /// Rewrites this node's claim with the time now. A failure costs at
    /// most a run by another node meanwhile, which is harmless.
    async fn renew(&self, reg: &Registry, turn: &Claimed) {
        let now = Claim {
            node: self.node.clone(),
            nonce: turn.nonce.clone(),
            at: now_ms(),
        };
        if let Err(e) = write(reg, &paths::schedule(&turn.job), &now).await {
            log::warn!("{}: renewing this node's turn: {e}", turn.job);
        }
    }
}

async fn read(reg: &Registry, path: &str) -> Result<Option<Claim>> {
    let Some(bytes) = optional(reg.driver.get_content(path.to_string()).await)? else {
        return Ok(None);
    };
    // An unreadable record (written by a future version, or damaged) is
    // nobody's claim: this node overwrites it.
    Ok(serde_json::from_slice(&bytes).ok())
}

async fn write(reg: &Registry, path: &str, c: &Claim) -> Result<()> {
    let bytes = serde_json::to_vec(c).expect("a claim serializes");
    Ok(reg
        .driver
        .put_content(path.to_string(), Bytes::from(bytes))
        .await?)
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.unwrap_or_default().as_millis() as u64
}

/// How long ago `at` was; a time ahead of this clock counts as now.
fn age(at: u64) -> Duration {
    Duration::from_millis(now_ms().saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::filesystem::FilesystemDriver;
    use std::sync::Arc;

    fn registry(tag: &str) -> (Arc<Registry>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let reg = Registry::new(Arc::new(FilesystemDriver::new(&dir)));
        (Arc::new(reg), dir)
    }

    fn node(name: &str) -> Schedule {
        Schedule {
            node: name.into(),
            settle: Duration::from_millis(200),
        }
    }

    fn is_mine(t: &Turn) -> bool {
        matches!(t, Turn::Mine(_))
    }

    #[tokio::test]
    async fn one_node_per_interval_and_another_after_it() {
        let (reg, dir) = registry("schedule");
        let (a, b) = (node("a"), node("b"));
        let hour = Duration::from_secs(3600);
        let t = a.claim(&reg, "purge", hour).await.unwrap();
        assert!(is_mine(&t), "{t:?}");
        match b.claim(&reg, "purge", hour).await.unwrap() {
            Turn::Taken { by, .. } => assert_eq!(by, "a"),
            t => panic!("b ran within a's interval: {t:?}"),
        }
        // Jobs are independent; a node's own earlier turn does not stop it.
        assert!(is_mine(&b.claim(&reg, "gc", hour).await.unwrap()));
        // A run longer than the interval keeps its turn: b's claim at its
        // end finds the record renewed meanwhile.
        let Turn::Mine(c) = t else { unreachable!() };
        let short = Duration::from_millis(300);
        let b_meanwhile = a
            .run(&reg, c, short, async {
                tokio::time::sleep(short * 2).await;
                b.claim(&reg, "purge", short).await.unwrap()
            })
            .await;
        assert!(!is_mine(&b_meanwhile), "{b_meanwhile:?}");
        assert!(is_mine(&a.claim(&reg, "purge", hour).await.unwrap()));
        let stored = std::fs::read_to_string(dir.join("private-registry/schedule/purge")).unwrap();
        assert!(stored.contains(r#""node":"a""#), "{stored}");
        // Once the interval has passed, another node takes over.
        tokio::time::sleep(short).await;
        assert!(is_mine(&b.claim(&reg, "purge", short).await.unwrap()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_nodes_claiming_at_once_exactly_one_runs() {
        let (reg, dir) = registry("schedule-race");
        for round in 0..5 {
            let job = format!("job{round}");
            let mut set = tokio::task::JoinSet::new();
            for i in 0..6 {
                let (reg, job, n) = (reg.clone(), job.clone(), node(&format!("n{i}")));
                set.spawn(async move { n.claim(&reg, &job, Duration::from_secs(3600)).await });
            }
            let turns: Vec<Turn> = set
                .join_all()
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let mine = turns.iter().filter(|t| is_mine(t)).count();
            assert_eq!(mine, 1, "round {round}: {turns:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
