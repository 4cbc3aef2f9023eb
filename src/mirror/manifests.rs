//! Manifests through the cache. By digest: cached for good once fetched.
//! By tag: believed for the mirror's `ttl`, then revalidated with a HEAD
//! (a GET only when the upstream's digest differs); during an upstream
//! outage the cached tag is served, with a warning.

use super::error::{MirrorError, UpstreamError};
use super::upstream::read_small;
use super::{Cached, MANIFEST_TYPES, Mirrors};
use crate::digest::Digest;
use crate::names::Tag;
use crate::storage::StorageError;
use crate::storage::manifests::{Reference, StoredManifest};
use hyper::{Method, StatusCode};
use std::time::SystemTime;

/// The largest manifest taken from an upstream (as for a push, 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;

impl Mirrors {
    /// The manifest `r` names in a cached repository. The pull is recorded
    /// first: the record also marks the repository as a cache's (for
    /// `fsck`, expiry) before anything is stored in it.
    pub async fn manifest(
        &self,
        c: &Cached<'_>,
        r: &Reference,
    ) -> Result<StoredManifest, MirrorError> {
        self.note_pulled(c.repo).await;
        match r {
            Reference::Digest(d) => self.by_digest(c, d).await,
            Reference::Tag(t) => self.by_tag(c, t).await,
        }
    }

    async fn by_digest(&self, c: &Cached<'_>, d: &Digest) -> Result<StoredManifest, MirrorError> {
        let r = Reference::Digest(d.clone());
        if let Some(m) = self.cached(c, &r, "manifest").await? {
            return Ok(m);
        }
        let _flight = self.flights.enter(format!("m {} {d}", c.repo)).await;
        if let Some(m) = self.cached(c, &r, "manifest").await? {
            return Ok(m);
        }
        crate::metrics::mirror_lookup(c.mirror.label(), "manifest", false);
        self.fetch(c, &r, &d.to_string()).await
    }

    async fn by_tag(&self, c: &Cached<'_>, t: &Tag) -> Result<StoredManifest, MirrorError> {
        let r = Reference::Tag(t.clone());
        if let Some(m) = self.fresh(c, t).await? {
            return Ok(m);
        }
        let _flight = self.flights.enter(format!("t {} {t}", c.repo)).await;
        if let Some(m) = self.fresh(c, t).await? {
            return Ok(m);
        }
        let local = optional(self.registry.get_manifest(c.repo, &r).await)?;
        let label = c.mirror.label();
        match self.upstream_digest(c, t).await {
            Ok(Some(d)) if local.as_ref().is_some_and(|m| m.digest == d) => {
                self.registry.note_tag_checked(c.repo, t).await?;
                crate::metrics::mirror_lookup(label, "manifest", true);
                Ok(local.expect("matched"))
            }
            Ok(_) => {
                crate::metrics::mirror_lookup(label, "manifest", false);
                let m = self.fetch(c, &r, t.as_str()).await?;
                self.registry.note_tag_checked(c.repo, t).await?;
                Ok(m)
            }
            Err(MirrorError::Upstream { url, source }) if source.is_outage() && local.is_some() => {
                log::warn!(
                    "mirror {label:?}: {url} {source}; serving cached {}:{t}, last confirmed {}",
                    c.repo,
                    self.checked_ago(c, t).await
                );
                crate::metrics::mirror_lookup(label, "manifest", true);
                Ok(local.expect("checked"))
            }
            Err(e) => Err(e),
        }
    }

    /// A cached manifest, counted as a hit.
    async fn cached(
        &self,
        c: &Cached<'_>,
        r: &Reference,
        kind: &'static str,
    ) -> Result<Option<StoredManifest>, MirrorError> {
        let m = optional(self.registry.get_manifest(c.repo, r).await)?;
        if m.is_some() {
            crate::metrics::mirror_lookup(c.mirror.label(), kind, true);
        }
        Ok(m)
    }

    /// The cached tag if it was confirmed within the mirror's `ttl`.
    async fn fresh(&self, c: &Cached<'_>, t: &Tag) -> Result<Option<StoredManifest>, MirrorError> {
        let Some(checked) = self.registry.tag_checked(c.repo, t).await? else {
            return Ok(None);
        };
        let age = SystemTime::now()
            .duration_since(checked)
            .unwrap_or_default();
        if age >= c.mirror.upstream.ttl {
            return Ok(None);
        }
        self.cached(c, &Reference::Tag(t.clone()), "manifest").await
    }

    async fn checked_ago(&self, c: &Cached<'_>, t: &Tag) -> String {
        match self.registry.tag_checked(c.repo, t).await {
            Ok(Some(at)) => format!(
                "{}s ago",
                SystemTime::now()
                    .duration_since(at)
                    .unwrap_or_default()
                    .as_secs()
            ),
            _ => "never".into(),
        }
    }

    /// What the upstream's tag names now, by a HEAD; `None` if it does not
    /// say (then the manifest is fetched).
    async fn upstream_digest(
        &self,
        c: &Cached<'_>,
        t: &Tag,
    ) -> Result<Option<Digest>, MirrorError> {
        let resp = self.ask_manifest(c, Method::HEAD, t.as_str()).await?;
        Ok(resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// GETs a manifest from the upstream and stores it: its digest checked
    /// against the one asked for, or recorded under the tag.
    async fn fetch(
        &self,
        c: &Cached<'_>,
        r: &Reference,
        reference: &str,
    ) -> Result<StoredManifest, MirrorError> {
        let resp = self.ask_manifest(c, Method::GET, reference).await?;
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_small(resp, MAX_MANIFEST)
            .await
            .map_err(|e| c.mirror.failed(e))?;
        crate::metrics::mirror_upstream_bytes(c.mirror.label(), bytes.len() as u64);
        let stored = self
            .registry
            .put_cached_manifest(c.repo, r, bytes.clone(), content_type.as_deref())
            .await;
        if let Err(e) = &stored {
            log::warn!(
                "mirror {:?}: manifest {}@{reference} from {} failed verification: {e}",
                c.mirror.label(),
                c.remote,
                c.mirror.upstream.url
            );
        }
        let out = stored?;
        self.stored(c.repo).await;
        Ok(StoredManifest {
            media_type: crate::manifest::stored_media_type(&bytes),
            digest: out.digest,
            bytes,
        })
    }

    /// A manifest request to the upstream; a 404 is the manifest unknown,
    /// another error status an upstream failure.
    async fn ask_manifest(
        &self,
        c: &Cached<'_>,
        method: Method,
        reference: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, MirrorError> {
        let path = format!("/v2/{}/manifests/{reference}", c.remote);
        let resp = c
            .mirror
            .remote
            .send(method, &path, &MANIFEST_TYPES, &c.scope())
            .await
            .map_err(|e| c.mirror.failed(e))?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => {
                Err(StorageError::ManifestUnknown(reference.to_string()).into())
            }
            s => Err(c.mirror.failed(status_error(s, &resp))),
        }
    }
}

impl Cached<'_> {
    /// The token scope a pull from this repository needs.
    pub fn scope(&self) -> String {
        format!("repository:{}:pull", self.remote)
    }
}

pub fn status_error<B>(s: StatusCode, resp: &hyper::Response<B>) -> UpstreamError {
    UpstreamError::Status {
        status: s.as_u16(),
        retry_after: resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Not found is no answer, not an error.
fn optional<T>(r: Result<T, StorageError>) -> Result<Option<T>, StorageError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            StorageError::ManifestUnknown(_)
            | StorageError::NameUnknown(_)
            | StorageError::BlobUnknown(_),
        ) => Ok(None),
        Err(e) => Err(e),
    }
}
