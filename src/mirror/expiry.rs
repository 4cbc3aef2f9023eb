//! Reclaiming the cache: repositories not pulled for
//! `privateregistry.mirrorcache.expiry` are removed, then, past `maxsize`,
//! the least recently pulled until the rest fits. Removing a repository
//! removes its tags, manifests and links; garbage collection (scheduled, or
//! `garbage-collect`) then reclaims the blobs nothing else references.

use crate::config::mirror::MirrorCache;
use crate::names::RepoName;
use crate::storage::{Registry, Result};
use std::time::{Duration, SystemTime};

/// What one pass removed.
#[derive(Debug, Default, PartialEq)]
pub struct Reclaimed {
    pub expired: Vec<RepoName>,
    pub evicted: Vec<RepoName>,
}

/// How often the pass runs: often enough for a short expiry, at most hourly.
pub fn interval(c: &MirrorCache) -> Duration {
    let e = c.expiry.0;
    if e.is_zero() {
        Duration::from_secs(3600)
    } else {
        (e / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

pub async fn reclaim(registry: &Registry, c: &MirrorCache) -> Result<Reclaimed> {
    let mut cached = registry.cached_repositories().await?;
    let mut out = Reclaimed::default();
    if !c.expiry.0.is_zero() {
        let cutoff = SystemTime::now() - c.expiry.0;
        for (repo, _) in cached.iter().filter(|(_, pulled)| *pulled < cutoff) {
            registry.evict_cached(repo).await?;
            out.expired.push(repo.clone());
        }
        cached.retain(|(_, pulled)| *pulled >= cutoff);
    }
    if c.maxsize.0 > 0 {
        out.evicted = evict_to_fit(registry, cached, c.maxsize.0).await?;
    }
    Ok(out)
}

/// Removes the least recently pulled repositories until the others fit.
async fn evict_to_fit(
    registry: &Registry,
    mut cached: Vec<(RepoName, SystemTime)>,
    max: u64,
) -> Result<Vec<RepoName>> {
    let mut sized = vec![];
    let mut total = 0;
    for (repo, pulled) in cached.drain(..) {
        let size = registry.cached_size(&repo).await?;
        total += size;
        sized.push((pulled, repo, size));
    }
    sized.sort_by_key(|(pulled, ..)| *pulled);
    let mut evicted = vec![];
    for (_, repo, size) in sized {
        if total <= max {
            break;
        }
        registry.evict_cached(&repo).await?;
        total -= size;
        evicted.push(repo);
    }
    Ok(evicted)
}
