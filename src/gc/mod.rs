//! Garbage collection: mark every blob reachable from a manifest revision,
//! sweep the rest, while the daemon keeps serving.
//!
//! # Why it is safe online: grace period plus touch-on-reference, no locks
//!
//! The daemon, whenever it makes a repository reference an existing blob or
//! manifest (a mount, an upload completing onto a blob already stored, a
//! manifest put naming configs, layers or child manifests, and a blob HEAD,
//! which is how a push decides to skip an upload), first *touches* it: its
//! modification time becomes now, through `StorageDriver::touch`, which
//! never creates anything. Only then does it write the link. New blobs and
//! links are written fresh, so they carry a recent time too.
//!
//! The collector records its start time and keeps everything modified
//! within the grace period (default 1 h) before it. A blob or untagged
//! manifest is removed only if nothing marked it *and* its modification time,
//! read again immediately before removal, is older than `start - grace`.
//! So anything uploaded, linked or referenced after the collection started
//! (which its snapshot of links cannot see) is kept, and so is anything a
//! request touched up to `grace` before it started and links only now. The
//! grace period must therefore exceed the time one request takes between
//! its touch and its link write (milliseconds); `0s` is for a registry that
//! is not serving.
//!
//! There is no lock or marker file: the daemon never waits for a collector,
//! a collector killed at any point has only removed unreferenced, untouched
//! things (and at most left one thing aside, see below), and two collections
//! at once are safe for the same reason; removing what the other already
//! removed is not an error.
//!
//! Closing the last window: a blob or an untagged manifest revision is
//! removed by first moving its directory aside (`_quarantine/`, one rename)
//! and reading its time again there. A request that touched it before the
//! rename shows up, and it is put back (a manifest only after everything it
//! needs has been touched too); a request after the rename finds it gone, so
//! its touch fails and it answers "unknown" instead of linking something that
//! is about to vanish. A collection lists a repository's revisions and then
//! what another collection has set aside there, and keeps both, so one that
//! is put back in between was touched with all it needs before that.
//! Whatever a killed collection left aside is put back by the next one and
//! judged afresh.
//!
//! Links that only name a blob (`_layers`, a tag's history, our referrers
//! index) are removed once their blob is gone, this collection's doing or
//! a killed one's (distribution leaves them), each re-written if the
//! blob's bytes are back by then. A blob another collection has set aside
//! is not gone: it may be put back.

mod command;
mod report;
mod scheduled;
mod untagged;

pub use command::{GcArgs, run_command};
pub use scheduled::run_scheduled;

use crate::digest::Digest;
use crate::names::RepoName;
use crate::storage::refs::{self, References};
use crate::storage::{Registry, StorageError};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{0}")]
    Storage(#[from] StorageError),
}

pub struct Options {
    pub dry_run: bool,
    pub delete_untagged: bool,
    pub grace: Duration,
}

/// What one collection did (or, dry, would do).
#[derive(Default)]
pub struct Report {
    pub marked: usize,
    /// Unmarked blobs older than the grace period.
    pub eligible: usize,
    /// Unmarked blobs the grace period keeps, and when the last of them
    /// becomes eligible: what `du` counts as reclaimable but this run left.
    pub held: usize,
    pub held_until: Option<SystemTime>,
    pub grace: Duration,
    pub manifests_deleted: Vec<(RepoName, Digest)>,
    pub blobs_deleted: Vec<Digest>,
    pub links_removed: usize,
    /// Blobs and revisions a killed collection had set aside, put back to be judged again.
    pub recovered: usize,
}

impl Report {
    /// Counts an unmarked blob the grace period keeps until `until`.
    fn hold(&mut self, until: SystemTime) {
        self.held += 1;
        self.held_until = self.held_until.max(Some(until));
    }
}

/// A repository as the collection started to see it.
struct Repo {
    name: RepoName,
    revisions: HashMap<Digest, SystemTime>,
    tags: Vec<Digest>,
    /// Revisions another collection had set aside when this one looked:
    /// kept, with all they reference, since it may put them back.
    aside: Vec<Digest>,
}

/// References of stored manifests, read once per digest.
#[derive(Default)]
struct Manifests(HashMap<Digest, Option<References>>);

impl Manifests {
    async fn get(&mut self, reg: &Registry, d: &Digest) -> Result<Option<&References>, GcError> {
        if !self.0.contains_key(d) {
            let refs = reg
                .blob_content(d)
                .await?
                .and_then(|b| refs::references(&b));
            if refs.is_none() {
                log::warn!("manifest {d} is missing or not JSON; it references nothing");
            }
            self.0.insert(d.clone(), refs);
        }
        Ok(self.0[d].as_ref())
    }
}

/// Runs one collection, counted in the metrics (`registry_gc_runs_total`).
pub async fn collect(reg: &Registry, opts: &Options) -> Result<Report, GcError> {
    let r = collect_once(reg, opts).await;
    crate::metrics::gc_run(r.is_ok());
    r
}

async fn collect_once(reg: &Registry, opts: &Options) -> Result<Report, GcError> {
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = Report {
        grace: opts.grace,
        ..Report::default()
    };
    if !opts.dry_run {
        report.recovered = reg.recover_quarantine().await?;
    }
    let mut manifests = Manifests::default();
    let mut repos = vec![];
    for name in reg.all_repositories().await? {
        if !opts.dry_run {
            for (d, aside) in reg.revisions_aside(&name).await? {
                reg.put_revision_back(&name, &d, &aside).await?;
                report.recovered += 1;
            }
        }
        let revisions = reg
            .revisions(&name)
            .await?
            .into_iter()
            .map(|r| (r.digest, r.modified))
            .collect();
        let tags = reg.tag_targets(&name).await?;
        // Listed after the revisions: a revision put back in between was
        // touched, with all it references, before it was put back.
        let aside = reg.revisions_aside(&name).await?;
        let aside = aside.into_iter().map(|(d, _)| d).collect();
        repos.push(Repo {
            name,
            revisions,
            tags,
            aside,
        });
    }
    if opts.delete_untagged {
        for repo in &mut repos {
            delete_untagged(reg, opts, cutoff, repo, &mut manifests, &mut report).await?;
        }
    }
    let marked = mark(reg, &repos, &mut manifests).await?;
    report.marked = marked.len();
    let mut eligible = vec![];
    for d in reg.stored_blobs().await? {
        if marked.contains(&d) {
            continue;
        }
        match reg.blob_modified(&d).await? {
            Some(m) if m < cutoff => eligible.push(d),
            Some(m) => report.hold(m + opts.grace),
            None => {}
        }
    }
    eligible.sort();
    report.eligible = eligible.len();
    if opts.dry_run {
        report.blobs_deleted = eligible;
        return Ok(report);
    }
    for d in eligible {
        if reg.delete_blob_if_older(&d, cutoff).await? {
            report.blobs_deleted.push(d);
        }
    }
    // Links to blobs that are gone, this collection's or a killed one's.
    for repo in &repos {
        for (link, d) in reg.blob_links(&repo.name).await? {
            if reg.blob_gone(&d).await? && reg.unlink_unless_back(link, &d).await? {
                report.links_removed += 1;
            }
        }
    }
    Ok(report)
}

/// Removes (or, dry, lists) the manifests of `repo` that `untagged` does not keep.
async fn delete_untagged(
    reg: &Registry,
    opts: &Options,
    cutoff: SystemTime,
    repo: &mut Repo,
    manifests: &mut Manifests,
    report: &mut Report,
) -> Result<(), GcError> {
    let mut graph = untagged::Graph::new();
    for d in repo.revisions.keys().chain(&repo.aside) {
        graph.insert(d.clone(), manifests.get(reg, d).await?.cloned());
    }
    let fresh = repo
        .revisions
        .iter()
        .filter(|(_, m)| **m >= cutoff)
        .map(|(d, _)| d);
    let mut kept = HashSet::new();
    let roots = repo.tags.iter().chain(fresh).chain(&repo.aside);
    untagged::keep_closure(&graph, roots, &mut kept);
    for d in untagged::deletion_order(&graph, &kept) {
        if kept.contains(&d) {
            continue;
        }
        let subject = graph[&d].as_ref().and_then(|r| r.subject.clone());
        let deleted = opts.dry_run
            || remove_revision(reg, repo, &d, subject.as_ref(), cutoff, &graph, manifests).await?;
        if deleted {
            repo.revisions.remove(&d);
            report.manifests_deleted.push((repo.name.clone(), d));
        } else {
            // Touched since the snapshot: it stays, and so does all it needs.
            untagged::keep_closure(&graph, [&d], &mut kept);
        }
    }
    Ok(())
}

/// Removes an untagged revision if its link is older than `cutoff`, moving
/// it aside first and reading its time there (see the module doc). One
/// touched meanwhile goes back, but only after everything it needs (its
/// blobs, children and referrers, recursively) has been touched too, so a
/// collection that did not see it still keeps all of that.
async fn remove_revision(
    reg: &Registry,
    repo: &Repo,
    d: &Digest,
    subject: Option<&Digest>,
    cutoff: SystemTime,
    graph: &untagged::Graph,
    manifests: &mut Manifests,
) -> Result<bool, GcError> {
    let modified = reg.revision_modified(&repo.name, d).await?;
    if modified.is_none_or(|m| m >= cutoff) {
        return Ok(false);
    }
    let Some((aside, modified)) = reg.set_revision_aside(&repo.name, d).await? else {
        return Ok(false);
    };
    match modified {
        // Put back meanwhile by another collection.
        None => Ok(false),
        Some(m) if m >= cutoff => {
            let mut needed = HashSet::new();
            untagged::keep_closure(graph, [d], &mut needed);
            for n in &needed {
                reg.refresh_blob(n).await?;
                if n != d {
                    reg.refresh_revision(&repo.name, n).await?;
                }
                if let Some(r) = manifests.get(reg, n).await? {
                    for b in r.blobs.clone() {
                        reg.refresh_blob(&b).await?;
                    }
                }
            }
            reg.put_revision_back(&repo.name, d, &aside).await?;
            Ok(false)
        }
        Some(_) => Ok(reg.discard_revision(&repo.name, d, aside, subject).await?),
    }
}

/// Every blob reachable from the remaining revisions: the manifests
/// themselves, their configs and layers, and their children, recursively.
async fn mark(
    reg: &Registry,
    repos: &[Repo],
    manifests: &mut Manifests,
) -> Result<HashSet<Digest>, GcError> {
    let mut marked = HashSet::new();
    let mut stack: Vec<Digest> = repos
        .iter()
        .flat_map(|r| r.revisions.keys().chain(&r.aside).cloned())
        .collect();
    while let Some(d) = stack.pop() {
        if !marked.insert(d.clone()) {
            continue;
        }
        if let Some(r) = manifests.get(reg, &d).await? {
            marked.extend(r.blobs.iter().cloned());
            stack.extend(r.children.iter().filter(|c| !marked.contains(*c)).cloned());
        }
    }
    Ok(marked)
}
