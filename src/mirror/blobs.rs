//! Blobs through the cache. The first pull streams the upstream's bytes to
//! the client while they are stored; the blob becomes visible only once
//! its digest is verified, and the client gets the last chunk only then:
//! a corrupt or cut-off download reaches neither the cache nor, whole, the
//! client.

use super::error::{MirrorError, UpstreamError};
use super::flight::Flight;
use super::manifests::status_error;
use super::{Cached, Mirrors};
use crate::digest::Digest;
use crate::storage::{ByteStream, StorageError};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The upstream may pause this long within a blob before we give up on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed to reach the bytes (Docker Hub sends one, to its CDN).
const MAX_REDIRECTS: usize = 5;
/// Batches buffered towards the client and towards the store.
const QUEUE: usize = 8;
/// The upstream's frames (tens of KiB) go on in batches of about this
/// much, so the tasks pass one message per batch rather than per frame.
const BATCH: usize = 512 << 10;

type Batch = std::io::Result<Vec<Bytes>>;

pub enum BlobAnswer {
    /// Cached (now linked into the repository): serve it as any blob.
    Local,
    /// Not cached, for a HEAD: the upstream's size.
    Size(u64),
    /// Being fetched: the bytes, as they arrive.
    Fetched { size: u64, body: ByteStream },
}

impl Mirrors {
    pub async fn blob(
        self: &Arc<Self>,
        c: &Cached<'_>,
        d: &Digest,
        head: bool,
    ) -> Result<BlobAnswer, MirrorError> {
        let label = c.mirror.label();
        if self.linked(c, d).await? {
            crate::metrics::mirror_lookup(label, "blob", true);
            return Ok(BlobAnswer::Local);
        }
        if head {
            let resp = self.ask_blob(c, Method::HEAD, d).await?;
            return Ok(BlobAnswer::Size(length(&resp).unwrap_or(0)));
        }
        let flight = self.flights.enter(format!("b {d}")).await;
        if self.linked(c, d).await? {
            crate::metrics::mirror_lookup(label, "blob", true);
            return Ok(BlobAnswer::Local);
        }
        crate::metrics::mirror_lookup(label, "blob", false);
        let resp = self.ask_blob(c, Method::GET, d).await?;
        let size = length(&resp).ok_or_else(|| {
            c.mirror.failed(UpstreamError::Protocol(format!(
                "blob {d}: no Content-Length"
            )))
        })?;
        let body = self.tee(c, d, resp.into_body(), flight);
        Ok(BlobAnswer::Fetched { size, body })
    }

    /// Whether the blob is readable in the repository. One stored for
    /// another repository is linked here only once this repository is shown
    /// to have it upstream (or, the upstream down, a cached manifest here
    /// references it): a digest alone must not open another repository's
    /// blob, as it must not for a mount.
    async fn linked(&self, c: &Cached<'_>, d: &Digest) -> Result<bool, MirrorError> {
        match self.registry.blob_size(c.repo, d).await {
            Ok(_) => return Ok(true),
            Err(StorageError::BlobUnknown(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if !self.registry.blob_stored(d).await? {
            return Ok(false);
        }
        let upstream_has = match self.ask_blob(c, Method::HEAD, d).await {
            Ok(_) => true,
            Err(MirrorError::Upstream { source, .. }) if source.is_outage() => {
                self.registry.manifests_reference(c.repo, d).await?
            }
            Err(e) => return Err(e),
        };
        if !upstream_has {
            return Err(StorageError::BlobUnknown(d.clone()).into());
        }
        Ok(self.registry.link_stored_blob(c.repo, d).await?.is_some())
    }

    /// A blob request to the upstream, following its redirects (without
    /// our credentials, which are for the registry only).
    async fn ask_blob(
        &self,
        c: &Cached<'_>,
        method: Method,
        d: &Digest,
    ) -> Result<Response<Incoming>, MirrorError> {
        let path = format!("/v2/{}/blobs/{d}", c.remote);
        let remote = &c.mirror.remote;
        let mut resp = remote
            .send(method.clone(), &path, &[], &c.scope())
            .await
            .map_err(|e| c.mirror.failed(e))?;
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(to) = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| absolute(remote.base(), l))
            else {
                break;
            };
            resp = remote
                .plain(&method, &to)
                .await
                .map_err(|e| c.mirror.failed(e))?;
        }
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(StorageError::BlobUnknown(d.clone()).into()),
            s => Err(c.mirror.failed(status_error(s, &resp))),
        }
    }

    /// Copies the upstream's body to the store and to the client at once;
    /// the returned stream is the client's. The fetch goes on if the client
    /// leaves, so the blob is cached anyway; `flight` is held until it is stored.
    fn tee(
        self: &Arc<Self>,
        c: &Cached<'_>,
        d: &Digest,
        body: Incoming,
        flight: Flight,
    ) -> ByteStream {
        let (to_client, client) = mpsc::channel(QUEUE);
        let (to_store, store) = mpsc::channel(QUEUE);
        let (me, repo, d) = (self.clone(), c.repo.clone(), d.clone());
        let (label, url) = (c.mirror.label().to_string(), c.mirror.upstream.url.clone());
        let registry = self.registry.clone();
        let stored = {
            let (repo, d) = (repo.clone(), d.clone());
            tokio::spawn(async move {
                registry
                    .put_blob(&repo, &d, Box::pin(Channel::new(store)))
                    .await
            })
        };
        tokio::spawn(async move {
            let _flight = flight;
            let copied = copy(body, &to_store, &to_client, &label).await;
            drop(to_store);
            let stored = stored
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match (copied, stored) {
                (Ok(last), Ok(_)) => {
                    if let Some(last) = last {
                        let _ = to_client.send(Ok(last)).await;
                    }
                    me.stored(&repo).await;
                }
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!(
                        "mirror {label:?}: blob {d} from {url} failed verification or was cut off: {e}; nothing cached"
                    );
                    let _ = to_client.send(Err(std::io::Error::other(e))).await;
                }
            }
        });
        Box::pin(Channel::new(client))
    }
}

/// Reads the upstream's body, sending every chunk to the store and all but
/// the last to the client, which is returned for sending once verified.
async fn copy(
    mut body: Incoming,
    to_store: &mpsc::Sender<Batch>,
    to_client: &mpsc::Sender<Batch>,
    label: &str,
) -> Result<Option<Vec<Bytes>>, String> {
    let mut held: Option<Vec<Bytes>> = None;
    loop {
        let Some(batch) = next_batch(&mut body).await? else {
            return Ok(held);
        };
        let n: usize = batch.iter().map(Bytes::len).sum();
        crate::metrics::mirror_upstream_bytes(label, n as u64);
        if to_store.send(Ok(batch.clone())).await.is_err() {
            return Err("storing stopped".into());
        }
        if let Some(prev) = held.replace(batch) {
            // A client that left does not stop the fetch.
            let _ = to_client.send(Ok(prev)).await;
        }
    }
}

/// The upstream's next frames, about [`BATCH`] bytes of them; `None` at the end.
async fn next_batch(body: &mut Incoming) -> Result<Option<Vec<Bytes>>, String> {
    let (mut batch, mut len) = (vec![], 0);
    while len < BATCH {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(format!("no bytes for {}s", IDLE_TIMEOUT.as_secs())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            len += data.len();
            batch.push(data);
        }
    }
    Ok((!batch.is_empty()).then_some(batch))
}

/// A channel of batches as a byte stream.
struct Channel {
    rx: mpsc::Receiver<Batch>,
    ready: std::collections::VecDeque<Bytes>,
}

impl Channel {
    fn new(rx: mpsc::Receiver<Batch>) -> Channel {
        Channel {
            rx,
            ready: Default::default(),
        }
    }
}

impl futures_core::Stream for Channel {
    type Item = std::io::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(Ok(batch)) => self.ready.extend(batch),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            }
        }
    }
}

fn length<B>(resp: &Response<B>) -> Option<u64> {
    resp.headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A `Location` made absolute against the upstream's base URL.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}
