//! The pull-through cache: repositories that mirror an upstream registry.
//! A pull of something not cached yet fetches it, serves it while storing
//! it, and keeps it: content-addressed manifests and blobs for good (until
//! expiry), tags until their `ttl`, after which a HEAD to the upstream
//! revalidates them. When the upstream is down, what is cached is served.
//!
//! Cached content is stored as pushed content is, in a repository named
//! `<prefix>/<name>` (distribution's `proxy:` mode: `<name>`), so a warm
//! pull is an ordinary local pull and garbage collection reclaims it.

mod blobs;
mod challenge;
pub mod error;
pub mod expiry;
mod flight;
mod manifests;
mod tags;
mod upstream;

use crate::config::mirror::Upstream;
use crate::names::RepoName;
use crate::storage::Registry;
pub use blobs::BlobAnswer;
use error::{MirrorError, UpstreamError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every manifest type we can store: the upstream picks, and the client's
/// own `Accept` is applied to what we stored.
const MANIFEST_TYPES: [&str; 4] = [
    crate::manifest::OCI_INDEX,
    crate::manifest::OCI_MANIFEST,
    crate::manifest::DOCKER_LIST,
    crate::manifest::DOCKER_MANIFEST,
];

/// How often a repository's "last pulled" record is rewritten at most:
/// expiry counts in days. A pull in between still checks it exists.
const PULLED_EVERY: Duration = Duration::from_secs(600);

/// One upstream and how to reach it.
pub struct Mirror {
    pub upstream: Upstream,
    remote: upstream::Remote,
}

/// A repository that mirrors an upstream: which one, and its name there.
pub struct Cached<'a> {
    pub mirror: &'a Mirror,
    pub repo: &'a RepoName,
    pub remote: String,
}

pub struct Mirrors {
    list: Vec<Mirror>,
    registry: Arc<Registry>,
    flights: flight::Flights,
    pulled: Mutex<HashMap<RepoName, Instant>>,
}

impl Mirrors {
    /// `None` when no upstream is configured.
    pub fn new(
        upstreams: Vec<Upstream>,
        registry: Arc<Registry>,
    ) -> Result<Option<Mirrors>, UpstreamError> {
        if upstreams.is_empty() {
            return Ok(None);
        }
        let mut list = vec![];
        for u in upstreams {
            let remote = upstream::Remote::new(&u.url, u.credentials.clone())?;
            list.push(Mirror {
                upstream: u,
                remote,
            });
        }
        Ok(Some(Mirrors {
            list,
            registry,
            flights: flight::Flights::default(),
            pulled: Mutex::new(HashMap::new()),
        }))
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The cache a repository belongs to, if it is a cached one.
    pub fn route<'a>(&'a self, repo: &'a RepoName) -> Option<Cached<'a>> {
        self.list.iter().find_map(|m| {
            let p = &m.upstream.prefix;
            let remote = if p.is_empty() {
                repo.as_str()
            } else {
                repo.as_str().strip_prefix(p.as_str())?.strip_prefix('/')?
            };
            Some(Cached {
                mirror: m,
                repo,
                remote: remote.to_string(),
            })
        })
    }

    /// The name a request's repository is cached under. containerd's
    /// mirror requests say which registry they mean (`?ns=docker.io`);
    /// Docker's `registry-mirrors` does not, and its names go to the
    /// `unprefixed` mirror unless a local repository has them, or
    /// `unprefixed` is false: a blob HEAD is how a push to a new local
    /// repository asks whether to upload, and the upstream must not answer.
    pub async fn canonical(
        &self,
        repo: &RepoName,
        ns: Option<&str>,
        unprefixed: bool,
    ) -> Result<Option<RepoName>, MirrorError> {
        if self.route(repo).is_some() {
            return Ok(None);
        }
        let by_ns = ns.and_then(|ns| {
            self.list
                .iter()
                .find(|m| !m.upstream.prefix.is_empty() && m.upstream.prefix == ns)
        });
        let mirror = match by_ns {
            Some(m) => m,
            None if !unprefixed => return Ok(None),
            None => match self.list.iter().find(|m| m.upstream.unprefixed) {
                Some(m) if !self.registry.is_repository(repo).await? => m,
                _ => return Ok(None),
            },
        };
        Ok(RepoName::parse(&format!(
            "{}/{repo}",
            mirror.upstream.prefix
        )))
    }

    /// Records that a cached repository was pulled, for expiry and the
    /// size cap; at most every [`PULLED_EVERY`] per repository and node.
    async fn note_pulled(&self, repo: &RepoName) {
        if self.noted_recently(repo) && self.registry.is_cached(repo).await.unwrap_or(true) {
            // Written within the interval and still there: expiry or the
            // size cap (on any node) removes the record with the repository.
            return;
        }
        if let Err(e) = self.registry.note_pulled(repo).await {
            log::warn!("mirror: cannot record a pull of {repo}: {e}");
        }
    }

    /// Records a pull right after a fetch stored something, whatever was
    /// written before: an eviction meanwhile may have removed the record.
    async fn stored(&self, repo: &RepoName) {
        if let Err(e) = self.registry.note_pulled(repo).await {
            log::warn!("mirror: cannot record a pull of {repo}: {e}");
        }
    }

    /// Whether this node wrote `repo`'s record within [`PULLED_EVERY`];
    /// if not, it is taken as written now.
    fn noted_recently(&self, repo: &RepoName) -> bool {
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if pulled
            .get(repo)
            .is_some_and(|t| now.duration_since(*t) < PULLED_EVERY)
        {
            return true;
        }
        pulled.retain(|_, t| now.duration_since(*t) < PULLED_EVERY);
        pulled.insert(repo.clone(), now);
        false
    }
}

impl Mirror {
    /// The metrics label: the prefix, empty for `proxy:` mode.
    pub fn label(&self) -> &str {
        &self.upstream.prefix
    }

    fn failed(&self, source: UpstreamError) -> MirrorError {
        crate::metrics::mirror_upstream_error(self.label());
        MirrorError::Upstream {
            url: self.upstream.url.clone(),
            source,
        }
    }
}
