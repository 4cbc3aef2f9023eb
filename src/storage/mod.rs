//! The registry's storage layer: blobs, uploads, manifests, tags and
//! repositories expressed over a [`driver::StorageDriver`]. It knows the
//! on-disk layout and the rules that keep it consistent; it knows nothing of HTTP.
//!
//! Consistency rule: every write that makes something visible is a single
//! atomic driver operation done last (a link written, a file moved into place),
//! so a crash at any point leaves either the old state or the new one.

pub mod blobs;
mod cache;
pub mod catalog;
pub mod collect;
mod condemn;
pub mod driver;
pub mod error;
pub mod fsck;
pub mod manifests;
pub mod mirror;
pub mod paths;
pub mod purge;
pub mod referrers;
pub mod refs;
pub mod repository;
pub mod schedule;
pub mod tags;
pub mod uploads;
pub mod usage;

use crate::digest::Digest;
use bytes::Bytes;
use driver::StorageDriver;
pub use error::{Result, StorageError};
use futures_core::Stream;
use std::pin::Pin;
use std::sync::Arc;

/// Incoming bytes for an upload, as the HTTP layer hands them over.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub struct Registry {
    driver: Arc<dyn StorageDriver>,
    uploads: uploads::Sessions,
    /// The most one upload may hold (`privateregistry.limits.maxuploadbytes`).
    upload_limit: Option<u64>,
    /// Read-only mode: the health check writes nothing either.
    read_only: bool,
    manifests: cache::ContentCache,
    seen: cache::Seen,
    /// Whether blob lookups on a bucket may answer from [`cache::Seen`]
    /// (`storage.cache.blobdescriptor: inmemory`): only right when no
    /// other node removes links from the same bucket.
    blob_cache: bool,
}

impl Registry {
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Registry {
            driver,
            uploads: uploads::Sessions::default(),
            upload_limit: None,
            read_only: false,
            manifests: cache::ContentCache::default(),
            seen: cache::Seen::default(),
            blob_cache: false,
        }
    }

    pub fn with_blob_cache(self, blob_cache: bool) -> Self {
        Registry { blob_cache, ..self }
    }

    pub fn with_read_only(self, read_only: bool) -> Self {
        Registry { read_only, ..self }
    }

    pub fn with_upload_limit(self, upload_limit: Option<u64>) -> Self {
        Registry {
            upload_limit,
            ..self
        }
    }

    /// Whether the store can hand out direct URLs for blob GETs.
    pub async fn blob_redirect(&self, d: &Digest) -> Result<Option<String>> {
        Ok(self.driver.redirect_url(paths::blob_data(d)).await?)
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn upload_limit(&self) -> Option<u64> {
        self.upload_limit
    }

    /// Checks the storage can be written and read back: before serving, and
    /// for the health endpoint. The file name is unique to the check, so
    /// checks by several nodes sharing the storage do not trip each other.
    pub async fn check(&self) -> Result<()> {
        self.driver.check().await?;
        if self.read_only {
            self.list(paths::ROOT.to_string()).await?;
            return Ok(());
        }
        let path = format!("{}/.healthcheck-{}", paths::ROOT, tags::random_id());
        self.driver
            .put_content(path.clone(), Bytes::from_static(b"ok"))
            .await?;
        self.driver.get_content(path.clone()).await?;
        self.driver.delete(path).await?;
        Ok(())
    }

    /// Reads a link file: a digest, possibly followed by whitespace.
    async fn read_link(&self, path: String) -> Result<Option<Digest>> {
        let Some(bytes) = error::optional(self.driver.get_content(path.clone()).await)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        text.trim()
            .parse()
            .map(Some)
            .map_err(|e| StorageError::CorruptLink {
                path,
                detail: format!("{e}"),
            })
    }

    async fn write_link(&self, path: String, d: &Digest) -> Result<()> {
        Ok(self
            .driver
            .put_content(path, Bytes::from(d.to_string()))
            .await?)
    }

    async fn exists(&self, path: String) -> Result<bool> {
        Ok(error::optional(self.driver.stat(path).await)?.is_some())
    }

    /// Removes `path`, treating an absent one as already removed.
    async fn remove(&self, path: String) -> Result<bool> {
        Ok(error::optional(self.driver.delete(path).await)?.is_some())
    }

    /// Removes a link together with the directory that holds it, as
    /// distribution lays links out (`.../<hex>/link`). Returns whether it existed.
    async fn remove_link(&self, link: String) -> Result<bool> {
        let dir = link.strip_suffix("/link").expect("link paths end in /link");
        self.remove(dir.to_string()).await
    }

    /// Lists a directory, absent meaning empty.
    async fn list(&self, path: String) -> Result<Vec<String>> {
        Ok(error::optional(self.driver.list(path).await)?.unwrap_or_default())
    }

    /// Lists several directories in one driver call, absent meaning empty.
    async fn list_many(&self, dirs: Vec<String>) -> Result<Vec<Vec<String>>> {
        Ok(self.driver.list_many(dirs).await?)
    }

    /// Digests stored under `<dir>/<algorithm>/<hex>`, skipping anything that is not one.
    async fn list_digests(&self, dir: &str) -> Result<Vec<Digest>> {
        let mut out = vec![];
        for alg in self.list(dir.to_string()).await? {
            for hex in self.list(format!("{dir}/{alg}")).await? {
                if let Ok(d) = format!("{alg}:{hex}").parse() {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}
