//! A cached repository's tag list is the upstream's, as distribution's
//! proxy answers it; during an outage the caller lists the cached tags.

use super::error::MirrorError;
use super::manifests::status_error;
use super::upstream::read_small;
use super::{Cached, Mirrors};
use crate::storage::StorageError;
use hyper::{Method, StatusCode};

impl Mirrors {
    /// The upstream's tags, sorted; `None` when the upstream cannot answer
    /// now (then the cached ones count). Paged by the caller, as ours are.
    pub async fn tags(&self, c: &Cached<'_>) -> Result<Option<Vec<String>>, MirrorError> {
        let path = format!("/v2/{}/tags/list", c.remote);
        let label = c.mirror.label();
        let answer = c
            .mirror
            .remote
            .send(Method::GET, &path, &["application/json"], &c.scope())
            .await;
        let resp = match answer {
            Ok(r) => r,
            Err(e) if e.is_outage() => {
                log::warn!(
                    "mirror {label:?}: {} {e}; listing cached tags of {}",
                    c.mirror.upstream.url,
                    c.repo
                );
                return Ok(None);
            }
            Err(e) => return Err(c.mirror.failed(e)),
        };
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(StorageError::NameUnknown(c.repo.to_string()).into());
            }
            s => {
                let e = status_error(s, &resp);
                if e.is_outage() {
                    log::warn!(
                        "mirror {label:?}: {} {e}; listing cached tags of {}",
                        c.mirror.upstream.url,
                        c.repo
                    );
                    return Ok(None);
                }
                return Err(c.mirror.failed(e));
            }
        }
        let body = read_small(resp, 16 << 20)
            .await
            .map_err(|e| c.mirror.failed(e))?;
        #[derive(serde::Deserialize)]
        struct List {
            tags: Option<Vec<String>>,
        }
        let list: List = serde_json::from_slice(&body).map_err(|e| {
            c.mirror
                .failed(super::error::UpstreamError::Protocol(format!(
                    "tag list: {e}"
                )))
        })?;
        let mut tags = list.tags.unwrap_or_default();
        tags.sort();
        Ok(Some(tags))
    }
}
