//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with single `Range` requests.

use super::body::{self, StreamBody};
use super::error::{ApiError, Code};
use super::{Api, ApiResult, header, method_not_allowed};
use crate::digest::Digest;
use crate::mirror::BlobAnswer;
use crate::names::RepoName;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

pub async fn handle(api: &Api, req: &Parts, repo: &RepoName, digest: &str) -> ApiResult {
    let d = parse_digest(digest)?;
    match req.method {
        Method::GET | Method::HEAD => get(api, req, repo, &d).await,
        Method::DELETE => {
            api.require_delete()?;
            api.registry.unlink_blob(repo, &d).await?;
            Ok(accepted())
        }
        _ => Err(method_not_allowed()),
    }
}

pub fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e: crate::digest::DigestError| {
        ApiError::new(Code::DigestInvalid, format!("{s:?}: {e}"))
    })
}

pub fn accepted() -> Response<body::Body> {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("Content-Length", 0)
        .body(body::empty())
        .expect("valid response")
}

async fn get(api: &Api, req: &Parts, repo: &RepoName, d: &Digest) -> ApiResult {
    if let Some(mirrors) = &api.mirrors
        && let Some(c) = mirrors.route(repo)
    {
        let head = req.method == Method::HEAD;
        match mirrors.blob(&c, d, head).await? {
            BlobAnswer::Local => {}
            BlobAnswer::Size(size) => {
                return Ok(headers(d, size)
                    .status(StatusCode::OK)
                    .body(body::empty())
                    .expect("valid response"));
            }
            BlobAnswer::Fetched { size, body } => {
                let b = headers(d, size).status(StatusCode::OK);
                return Ok(b
                    .body(StreamBody::boxed(body, size))
                    .expect("valid response"));
            }
        }
    }
    local(api, req, repo, d).await
}

/// What every blob answer carries, for `len` bytes of it.
fn headers(d: &Digest, len: u64) -> hyper::http::response::Builder {
    Response::builder()
        .header("Content-Length", len)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", d.to_string())
        .header("ETag", format!("\"{d}\""))
        .header("Accept-Ranges", "bytes")
        .header("Cache-Control", "max-age=31536000")
}

async fn local(api: &Api, req: &Parts, repo: &RepoName, d: &Digest) -> ApiResult {
    // A HEAD is how a push learns it may skip an upload: count it as a
    // reference for garbage collection's grace period. Best effort (the
    // manifest put touches again, and must succeed); only "gone" matters
    // here. Done beside the lookup, not after it: on a bucket both wait on
    // the store.
    let size = if req.method == Method::HEAD {
        let (size, seen) = tokio::join!(
            api.registry.blob_size(repo, d),
            api.registry.note_blob_seen(d)
        );
        let size = size?;
        match seen {
            Ok(true) => {}
            Ok(false) => {
                return Err(crate::storage::StorageError::BlobUnknown(d.clone()).into());
            }
            Err(e) => log::debug!("HEAD {d}: cannot refresh its time: {e}"),
        }
        size
    } else {
        api.registry.blob_size(repo, d).await?
    };
    if req.method == Method::GET
        && !api.settings.redirect_disabled
        && let Some(url) = api.registry.blob_redirect(d).await?
    {
        return Ok(redirect(&url, d));
    }
    let range = parse_range(header(req, "Range"), size)?;
    let (start, len) = range.map_or((0, size), |(s, e)| (s, e - s + 1));
    let mut b = headers(d, len);
    b = match range {
        Some((s, e)) => b
            .status(StatusCode::PARTIAL_CONTENT)
            .header("Content-Range", format!("bytes {s}-{e}/{size}")),
        None => b.status(StatusCode::OK),
    };
    let body = if req.method == Method::HEAD || len == 0 {
        body::empty()
    } else {
        StreamBody::boxed(api.registry.blob_chunks(d, start, len).await?, len)
    };
    Ok(b.body(body).expect("valid response"))
}

/// Sends the client to the store for the bytes, as distribution does: a
/// temporary redirect, so the next pull asks us again (and is authorized again).
fn redirect(url: &str, d: &Digest) -> Response<body::Body> {
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header("Location", url)
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", 0)
        .body(body::empty())
        .expect("valid response")
}

/// One `bytes=` range, resolved against `size` to inclusive bounds. Other
/// forms (multiple ranges, other units) are ignored and the whole blob served.
fn parse_range(h: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = || {
        ApiError::new(
            Code::RangeInvalid,
            format!("range {spec:?} not satisfiable for size {size}"),
        )
        .with_header("Content-Range", format!("bytes */{size}"))
    };
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => {
            let suffix = num(b)?.min(size);
            (size - suffix, size.wrapping_sub(1))
        }
        (false, true) => (num(a)?, size.wrapping_sub(1)),
        (false, false) => (num(a)?, num(b)?.min(size.saturating_sub(1))),
        (true, true) => return Err(unsatisfiable()),
    };
    if size == 0 || start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=90-"), 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some((90, 99)));
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100).unwrap(),
            Some((50, 99))
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100).unwrap(), None);
        assert_eq!(parse_range(None, 100).unwrap(), None);
        assert!(parse_range(Some("bytes=100-"), 100).is_err());
        assert!(parse_range(Some("bytes=5-1"), 100).is_err());
        assert!(parse_range(Some("bytes=x-1"), 100).is_err());
    }
}
