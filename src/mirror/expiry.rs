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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::GoDuration;
    use crate::config::mirror::Size;
    use crate::digest::Digest;
    use crate::storage::driver::filesystem::FilesystemDriver;
    use bytes::Bytes;
    use std::sync::Arc;

    /// A cached repository holding one blob of `size` bytes, last pulled `ago`.
    async fn cached(
        reg: &Registry,
        dir: &std::path::Path,
        name: &str,
        size: usize,
        ago: Duration,
    ) -> RepoName {
        let repo = RepoName::parse(name).unwrap();
        let bytes = Bytes::from(vec![name.as_bytes()[0]; size]);
        let d = Digest::sha256_of(&bytes);
        let body: crate::storage::ByteStream = Box::pin(futures_stream(bytes));
        reg.put_blob(&repo, &d, body).await.unwrap();
        reg.note_pulled(&repo).await.unwrap();
        let record = dir.join(crate::storage::paths::mirror_pulled(&repo));
        let f = std::fs::File::options().write(true).open(record).unwrap();
        f.set_modified(SystemTime::now() - ago).unwrap();
        repo
    }

    fn futures_stream(b: Bytes) -> impl futures_core::Stream<Item = std::io::Result<Bytes>> {
        struct Once(Option<Bytes>);
        impl futures_core::Stream for Once {
            type Item = std::io::Result<Bytes>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                std::task::Poll::Ready(self.0.take().map(Ok))
            }
        }
        Once(Some(b))
    }

    #[tokio::test]
    async fn expired_go_first_then_the_least_recently_pulled_past_the_cap() {
        let dir = std::env::temp_dir().join(format!("pr-expiry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let reg = Registry::new(Arc::new(FilesystemDriver::new(&dir)));
        let day = Duration::from_secs(86400);
        let old = cached(&reg, &dir, "m/old", 100, day * 8).await;
        let older = cached(&reg, &dir, "m/older", 200, day * 2).await;
        let recent = cached(&reg, &dir, "m/recent", 300, Duration::ZERO).await;
        let c = MirrorCache {
            expiry: GoDuration(day * 7),
            maxsize: Size(350),
        };
        let r = reclaim(&reg, &c).await.unwrap();
        assert_eq!(r.expired, vec![old.clone()]);
        assert_eq!(r.evicted, vec![older.clone()]);
        let left: Vec<RepoName> = reg
            .cached_repositories()
            .await
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(left, vec![recent.clone()]);
        for gone in [&old, &older] {
            assert!(!reg.is_repository(gone).await.unwrap(), "{gone}");
        }
        assert!(reg.is_repository(&recent).await.unwrap());
        // Within the cap and the expiry, nothing more goes.
        assert_eq!(reclaim(&reg, &c).await.unwrap(), Reclaimed::default());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
