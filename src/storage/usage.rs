//! Storage usage: per repository, its tags, manifests, the bytes of the
//! distinct blobs its manifests reach (manifests themselves, configs,
//! layers, index children, referrers: every revision counts) and the part of
//! those no other repository reaches (what deleting it and collecting
//! garbage would free); for the registry, the bytes of every stored blob and
//! of those no manifest reaches (what garbage collection would free).
//!
//! An [`Inventory`] keeps what a scan read, so the next scan reads again only
//! listings: manifests are immutable under their digest and blob sizes are
//! known once stat'ed. [`Registry::rescan_repositories`] refreshes only the
//! repositories named, for changes the caller knows about.

use super::{Registry, Result, error::optional, paths};
use crate::digest::Digest;
use crate::names::RepoName;
use crate::storage::refs::{References, references};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

/// Larger than any manifest: a blob this big that an index names as a
/// child (in a data directory from elsewhere) is not read into memory.
const MANIFEST_READ_LIMIT: u64 = 64 << 20;

/// One repository's figures.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoUsage {
    pub name: String,
    pub tags: usize,
    pub manifests: usize,
    /// Bytes of the distinct stored blobs its manifests reach.
    pub referenced_bytes: u64,
    /// Of those, the bytes no other repository reaches.
    pub unique_bytes: u64,
}

/// The figures at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// In catalog order.
    pub repositories: Vec<RepoUsage>,
    /// Blobs in the blob store and their bytes.
    pub blobs: usize,
    pub total_bytes: u64,
    /// Bytes of stored blobs that no manifest revision reaches.
    pub reclaimable_bytes: u64,
    pub computed_at: SystemTime,
}

impl Snapshot {
    pub fn repository(&self, name: &str) -> Option<&RepoUsage> {
        self.repositories.iter().find(|r| r.name == name)
    }
}

#[derive(Default)]
struct RepoRefs {
    tags: usize,
    manifests: usize,
    reached: HashSet<Digest>,
}

/// What scans have read so far.
#[derive(Default)]
pub struct Inventory {
    repos: BTreeMap<String, RepoRefs>,
    /// References of manifests read, by digest (`None`: not a manifest);
    /// manifests are immutable under their digest.
    manifests: HashMap<Digest, Option<References>>,
    /// Stored blobs and their sizes.
    blobs: HashMap<Digest, u64>,
}

impl Registry {
    /// Reads every repository and the blob store again.
    pub async fn rescan_all(&self, inv: &mut Inventory) -> Result<()> {
        let names = self.all_repositories().await?;
        let present: HashSet<&str> = names.iter().map(RepoName::as_str).collect();
        inv.repos.retain(|n, _| present.contains(n.as_str()));
        self.rescan_repositories(inv, &names).await?;
        // Forget manifests nothing reaches any more.
        let reached: HashSet<&Digest> = inv.repos.values().flat_map(|r| &r.reached).collect();
        inv.manifests.retain(|d, _| reached.contains(d));
        Ok(())
    }

    /// Reads the named repositories (dropping those gone) and the blob store again.
    pub async fn rescan_repositories(&self, inv: &mut Inventory, names: &[RepoName]) -> Result<()> {
        for name in names {
            match self.scan_repository(inv, name).await? {
                Some(r) => inv.repos.insert(name.to_string(), r),
                None => inv.repos.remove(name.as_str()),
            };
        }
        self.scan_blobs(inv).await
    }

    async fn scan_repository(
        &self,
        inv: &mut Inventory,
        name: &RepoName,
    ) -> Result<Option<RepoRefs>> {
        if !self.exists(paths::repo(name)).await? {
            return Ok(None);
        }
        let revisions = self.revisions(name).await?;
        let mut r = RepoRefs {
            tags: (self.list(paths::tags(name)).await?.iter())
                .filter(|t| crate::names::Tag::parse(t).is_some())
                .count(),
            manifests: revisions.len(),
            reached: HashSet::new(),
        };
        let mut stack: Vec<Digest> = revisions.into_iter().map(|r| r.digest).collect();
        while let Some(d) = stack.pop() {
            if !r.reached.insert(d.clone()) {
                continue;
            }
            if !inv.manifests.contains_key(&d) {
                // A manifest missing for now (set aside by a garbage
                // collection) is read again next time rather than remembered.
                match self.stored_blob_size(&d).await? {
                    Some(n) if n > MANIFEST_READ_LIMIT => {
                        inv.manifests.insert(d.clone(), None);
                    }
                    Some(_) => {
                        if let Some(bytes) = self.blob_content(&d).await? {
                            inv.manifests.insert(d.clone(), references(&bytes));
                        }
                    }
                    None => {}
                }
            }
            if let Some(Some(refs)) = inv.manifests.get(&d) {
                r.reached.extend(refs.blobs.iter().cloned());
                stack.extend(
                    refs.children
                        .iter()
                        .filter(|c| !r.reached.contains(*c))
                        .cloned(),
                );
            }
        }
        Ok(Some(r))
    }

    /// Lists the blob store, stat'ing only blobs not seen before.
    async fn scan_blobs(&self, inv: &mut Inventory) -> Result<()> {
        let stored = self.stored_blobs().await?;
        let mut blobs = HashMap::with_capacity(stored.len());
        for d in stored {
            let size = match inv.blobs.get(&d) {
                Some(s) => *s,
                None => match optional(self.driver.stat(paths::blob_data(&d)).await)? {
                    Some(i) => i.size,
                    None => continue,
                },
            };
            blobs.insert(d, size);
        }
        inv.blobs = blobs;
        Ok(())
    }
}

impl Inventory {
    pub fn snapshot(&self) -> Snapshot {
        let mut reach_count: HashMap<&Digest, usize> = HashMap::new();
        for r in self.repos.values() {
            for d in &r.reached {
                *reach_count.entry(d).or_default() += 1;
            }
        }
        let size = |d: &Digest| self.blobs.get(d).copied().unwrap_or(0);
        let mut repositories: Vec<RepoUsage> = self
            .repos
            .iter()
            .map(|(name, r)| RepoUsage {
                name: name.clone(),
                tags: r.tags,
                manifests: r.manifests,
                referenced_bytes: r.reached.iter().map(size).sum(),
                unique_bytes: r
                    .reached
                    .iter()
                    .filter(|d| reach_count.get(d) == Some(&1))
                    .map(size)
                    .sum(),
            })
            .collect();
        repositories.sort_by(|a, b| crate::names::path_order(&a.name, &b.name));
        Snapshot {
            repositories,
            blobs: self.blobs.len(),
            total_bytes: self.blobs.values().sum(),
            reclaimable_bytes: self
                .blobs
                .iter()
                .filter(|(d, _)| !reach_count.contains_key(d))
                .map(|(_, s)| s)
                .sum(),
            computed_at: SystemTime::now(),
        }
    }
}
