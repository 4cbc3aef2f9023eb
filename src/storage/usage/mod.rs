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
//!
//! Memory is what limits the registry's size here, so the inventory names
//! blobs by interned 4-byte ids (`table`) and keeps per repository only a
//! sorted list of them: about 150 bytes per repository plus about 100 per
//! distinct blob (bench/README.md), where sets of digests took 2.3 KiB per
//! repository. `codec` writes it compactly, so nodes sharing a store can
//! load one node's scan instead of each scanning (see `crate::usage`).

mod codec;
mod publish;
mod table;

use super::{Registry, Result, error::optional, paths};
use crate::names::RepoName;
use crate::storage::refs::{References, references};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;
use table::{Id, Key, Table};

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

/// Marks a blob id that is not in the blob store in [`Inventory::sizes`].
const ABSENT: u64 = u64::MAX;

struct RepoRefs {
    tags: u32,
    manifests: u32,
    /// Every blob its manifests reach, sorted.
    reached: Box<[Id]>,
}

/// A manifest's references, by id.
struct Refs {
    blobs: Box<[Id]>,
    children: Box<[Id]>,
}

/// What scans have read so far.
#[derive(Default)]
pub struct Inventory {
    table: Table,
    repos: BTreeMap<Box<str>, RepoRefs>,
    /// References of manifests read (`None`: not a manifest); manifests
    /// are immutable under their digest. Not published: a node that loads
    /// another's scan reads the manifests it rescans itself.
    manifests: HashMap<Id, Option<Refs>>,
    /// Size of each stored blob by id, [`ABSENT`] for ids not stored.
    sizes: Vec<u64>,
    /// When the last full scan began (that node's clock).
    scanned_at: Option<SystemTime>,
}

impl Registry {
    /// Reads every repository and the blob store again.
    pub async fn rescan_all(&self, inv: &mut Inventory) -> Result<()> {
        let started = SystemTime::now();
        let names = self.all_repositories().await?;
        let present: HashSet<&str> = names.iter().map(RepoName::as_str).collect();
        inv.repos.retain(|n, _| present.contains(&**n));
        drop(present);
        self.rescan_repositories(inv, &names).await?;
        // Forget manifests nothing reaches any more, and digests nothing names.
        let mut reached = vec![false; inv.table.len()];
        for id in inv.repos.values().flat_map(|r| r.reached.iter()) {
            reached[*id as usize] = true;
        }
        inv.manifests.retain(|id, _| reached[*id as usize]);
        inv.compact();
        inv.scanned_at = Some(started);
        Ok(())
    }

    /// Reads the named repositories (dropping those gone) and the blob store again.
    pub async fn rescan_repositories(&self, inv: &mut Inventory, names: &[RepoName]) -> Result<()> {
        for name in names {
            match self.scan_repository(inv, name).await? {
                Some(r) => inv.repos.insert(name.as_str().into(), r),
                None => inv.repos.remove(name.as_str()),
            };
            // Between repositories every id in use is in `inv`, so the
            // table can be rebuilt; keeps the first scan's peak down.
            if inv.table.wants_sorting() {
                inv.compact();
            }
        }
        self.scan_blobs(inv).await
    }

    async fn scan_repository(
        &self,
        inv: &mut Inventory,
        name: &RepoName,
    ) -> Result<Option<RepoRefs>> {
        // As the catalog decides; a bucket has no directory to stat.
        if !self.is_repository(name).await? {
            return Ok(None);
        }
        let revisions = self.revisions(name).await?;
        let tags = (self.list(paths::tags(name)).await?.iter())
            .filter(|t| crate::names::Tag::parse(t).is_some())
            .count();
        let manifests = revisions.len();
        let mut reached: HashSet<Id> = HashSet::new();
        let mut stack: Vec<Id> = revisions
            .iter()
            .map(|r| inv.table.intern(&r.digest))
            .collect();
        drop(revisions);
        while let Some(id) = stack.pop() {
            if !reached.insert(id) {
                continue;
            }
            if !inv.manifests.contains_key(&id) {
                self.read_manifest(inv, id).await?;
            }
            if let Some(Some(refs)) = inv.manifests.get(&id) {
                reached.extend(refs.blobs.iter().copied());
                stack.extend(refs.children.iter().filter(|c| !reached.contains(*c)));
            }
        }
        let mut reached: Vec<Id> = reached.into_iter().collect();
        reached.sort_unstable();
        Ok(Some(RepoRefs {
            tags: u32::try_from(tags).unwrap_or(u32::MAX),
            manifests: u32::try_from(manifests).unwrap_or(u32::MAX),
            reached: reached.into_boxed_slice(),
        }))
    }

    /// Reads and remembers manifest `id`'s references. A manifest missing
    /// for now (set aside by a garbage collection) is read again next time
    /// rather than remembered.
    async fn read_manifest(&self, inv: &mut Inventory, id: Id) -> Result<()> {
        let d = inv.table.key(id).digest();
        let refs = match self.stored_blob_size(&d).await? {
            Some(n) if n > MANIFEST_READ_LIMIT => None,
            Some(_) => match self.blob_content(&d).await? {
                Some(bytes) => references(&bytes).map(|r| inv.refs(&r)),
                None => return Ok(()),
            },
            None => return Ok(()),
        };
        inv.manifests.insert(id, refs);
        Ok(())
    }

    /// Lists the blob store, stat'ing only blobs not seen before; one
    /// directory at a time, never holding every digest as text.
    async fn scan_blobs(&self, inv: &mut Inventory) -> Result<()> {
        let old = std::mem::take(&mut inv.sizes);
        let mut sizes = vec![ABSENT; inv.table.len()];
        let walked = self.walk_blobs(inv, &old, &mut sizes).await;
        // A failed walk keeps the sizes known before.
        inv.sizes = if walked.is_ok() { sizes } else { old };
        inv.sizes.shrink_to_fit();
        walked
    }

    async fn walk_blobs(
        &self,
        inv: &mut Inventory,
        old: &[u64],
        sizes: &mut Vec<u64>,
    ) -> Result<()> {
        for dir in self.blob_store_dirs().await? {
            let listed = self.stored_blobs_in(&dir).await?;
            self.size_blobs(inv, listed, old, sizes).await?;
        }
        Ok(())
    }

    /// Records the sizes of `stored` in `sizes`, from `old` where known.
    async fn size_blobs(
        &self,
        inv: &mut Inventory,
        stored: Vec<crate::digest::Digest>,
        old: &[u64],
        sizes: &mut Vec<u64>,
    ) -> Result<()> {
        for d in stored {
            let id = inv.table.intern(&d) as usize;
            let size = match old.get(id).copied().filter(|s| *s != ABSENT) {
                Some(s) => s,
                None => match optional(self.driver.stat(paths::blob_data(&d)).await)? {
                    Some(i) => i.size,
                    None => continue,
                },
            };
            if id >= sizes.len() {
                sizes.resize(id + 1, ABSENT);
            }
            sizes[id] = size;
        }
        Ok(())
    }
}

impl Inventory {
    /// The ids of a manifest's references, interned.
    fn refs(&mut self, r: &References) -> Refs {
        let mut ids =
            |v: &[crate::digest::Digest]| v.iter().map(|d| self.table.intern(d)).collect();
        Refs {
            blobs: ids(&r.blobs),
            children: ids(&r.children),
        }
    }

    /// Builds a new table holding only the ids still named somewhere,
    /// sorted, so it needs no index (see `table`).
    fn compact(&mut self) {
        let mut live = vec![false; self.table.len()];
        let mut mark = |ids: &[Id]| ids.iter().for_each(|i| live[*i as usize] = true);
        for r in self.repos.values() {
            mark(&r.reached);
        }
        for (id, refs) in &self.manifests {
            mark(&[*id]);
            if let Some(r) = refs {
                mark(&r.blobs);
                mark(&r.children);
            }
        }
        for (id, s) in self.sizes.iter().enumerate() {
            live[id] |= *s != ABSENT;
        }
        let mut keys: Vec<(Key, Id)> = (live.iter().enumerate())
            .filter(|(_, l)| **l)
            .map(|(id, _)| (self.table.key(id as Id), id as Id))
            .collect();
        drop(live);
        // sha256 first, in byte order: the new table's sorted base.
        keys.sort_by(|(a, _), (b, _)| {
            (matches!(a, Key::Sha512(_)), a.bytes()).cmp(&(matches!(b, Key::Sha512(_)), b.bytes()))
        });
        let mut to = vec![Id::MAX; self.table.len()];
        for (new, (_, old)) in keys.iter().enumerate() {
            to[*old as usize] = new as Id;
        }
        let map = |ids: &[Id]| -> Box<[Id]> { ids.iter().map(|i| to[*i as usize]).collect() };
        for r in self.repos.values_mut() {
            let mut ids = map(&r.reached);
            ids.sort_unstable();
            r.reached = ids;
        }
        self.manifests = std::mem::take(&mut self.manifests)
            .into_iter()
            .map(|(id, refs)| {
                let refs = refs.map(|r| Refs {
                    blobs: map(&r.blobs),
                    children: map(&r.children),
                });
                (to[id as usize], refs)
            })
            .collect();
        let mut sizes = vec![ABSENT; keys.len()];
        for (id, s) in self.sizes.iter().enumerate() {
            if *s != ABSENT {
                sizes[to[id] as usize] = *s;
            }
        }
        self.sizes = sizes;
        let keys = keys.into_iter().map(|(k, _)| k).collect();
        self.table = Table::from_keys(keys).expect("live ids name distinct keys");
    }

    fn size(&self, id: Id) -> u64 {
        match self.sizes.get(id as usize) {
            Some(s) if *s != ABSENT => *s,
            _ => 0,
        }
    }

    pub fn repositories(&self) -> usize {
        self.repos.len()
    }

    /// When the full scan this inventory comes from began.
    pub fn scanned_at(&self) -> Option<SystemTime> {
        self.scanned_at
    }

    pub fn snapshot(&self) -> Snapshot {
        // How many repositories reach each blob, enough to tell one from more.
        let mut reach = vec![0u8; self.table.len()];
        for id in self.repos.values().flat_map(|r| r.reached.iter()) {
            let c = &mut reach[*id as usize];
            *c = c.saturating_add(1);
        }
        let mut repositories: Vec<RepoUsage> = self
            .repos
            .iter()
            .map(|(name, r)| RepoUsage {
                name: name.to_string(),
                tags: r.tags as usize,
                manifests: r.manifests as usize,
                referenced_bytes: r.reached.iter().map(|i| self.size(*i)).sum(),
                unique_bytes: (r.reached.iter())
                    .filter(|i| reach[**i as usize] == 1)
                    .map(|i| self.size(*i))
                    .sum(),
            })
            .collect();
        repositories.sort_by(|a, b| crate::names::path_order(&a.name, &b.name));
        let stored = || self.sizes.iter().enumerate().filter(|(_, s)| **s != ABSENT);
        Snapshot {
            repositories,
            blobs: stored().count(),
            total_bytes: stored().map(|(_, s)| s).sum(),
            reclaimable_bytes: stored()
                .filter(|(id, _)| reach.get(*id).is_none_or(|c| *c == 0))
                .map(|(_, s)| s)
                .sum(),
            computed_at: SystemTime::now(),
        }
    }
}
