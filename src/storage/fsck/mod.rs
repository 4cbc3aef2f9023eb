//! Integrity check (`private-registry fsck`): every blob re-hashed, every
//! link (repository layer links, manifest revisions, tags and their index,
//! our referrers index) checked to name an intact blob, every manifest's
//! references checked, and what interrupted operations left behind found,
//! uploads a crash left half-completed among them.
//!
//! Repair only ever does what is safe while the daemon serves: a corrupt
//! blob is moved aside (never deleted), a dangling link is removed (and
//! written back if its blob turns up meanwhile, as a collection does), what
//! a killed collection set aside is put back (the collection protocol's own
//! recovery), an upload a crash left completed but unlinked gets the link
//! its retried PUT would write (its own record names the blob), and
//! leftovers that nothing can see are removed.

mod blobs;
mod leftovers;
mod links;
mod uploads;

use super::{Registry, Result};
use crate::digest::Digest;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

pub struct Options {
    pub repair: bool,
    /// Temporary files, staging directories and half-completed uploads
    /// younger than this may belong to a request in progress: not reported.
    pub grace: Duration,
}

/// One problem: where, which digest, what is wrong, and what repair did.
pub struct Finding {
    pub path: String,
    pub digest: Option<Digest>,
    pub problem: String,
    /// For a damaged manifest, the tags that point at it: what the
    /// operator knows the image by, and what a re-push must restore.
    pub tags: Vec<String>,
    pub repaired: Option<String>,
}

#[derive(Default)]
pub struct Report {
    pub blobs: usize,
    pub links: usize,
    pub manifests: usize,
    pub problems: Vec<Finding>,
    /// Worth knowing but not wrong (a referrer whose subject is absent,
    /// which OCI 1.1 allows).
    pub notes: Vec<Finding>,
}

/// The state of one check as it goes.
struct Check<'a> {
    reg: &'a Registry,
    repair: bool,
    cutoff: SystemTime,
    intact: HashSet<Digest>,
    corrupt: HashSet<Digest>,
    /// The repository being checked is a pull-through cache's, whose blobs
    /// and child manifests are fetched when first pulled: absent is fine.
    lazy: bool,
    report: Report,
}

impl Check<'_> {
    fn problem(
        &mut self,
        path: String,
        digest: Option<&Digest>,
        problem: String,
        repaired: Option<String>,
    ) {
        self.report.problems.push(Finding {
            path,
            digest: digest.cloned(),
            problem,
            tags: vec![],
            repaired,
        });
    }

    /// Whether `d` names a blob with the right bytes: hashed so, stored
    /// since the blobs were hashed (a push meanwhile), or set aside by a
    /// collection, which may put it back (reported as such, not as missing).
    async fn blob_ok(&self, d: &Digest) -> Result<bool> {
        if self.corrupt.contains(d) {
            return Ok(false);
        }
        Ok(self.intact.contains(d) || !self.reg.blob_gone(d).await?)
    }

    fn missing(&self, d: &Digest) -> &'static str {
        if self.corrupt.contains(d) {
            "whose bytes are corrupt"
        } else {
            "which is not stored"
        }
    }
}

impl Registry {
    pub async fn fsck(&self, opts: &Options) -> Result<Report> {
        let mut c = Check {
            reg: self,
            repair: opts.repair,
            cutoff: SystemTime::now()
                .checked_sub(opts.grace)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            intact: HashSet::new(),
            corrupt: HashSet::new(),
            lazy: false,
            report: Report::default(),
        };
        c.collection_leftovers().await?;
        c.repository_trash().await?;
        c.blobs().await?;
        for repo in self.all_repositories().await? {
            c.repository(&repo).await?;
        }
        c.uploads().await?;
        c.temporary_files().await?;
        Ok(c.report)
    }
}
