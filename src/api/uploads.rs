//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start, monolithic with
//! `?digest=`, or cross-repository `?mount=&from=`), then `PATCH`, `PUT`,
//! `GET` and `DELETE` on `/v2/<name>/blobs/uploads/<id>`.

use super::blobs::parse_digest;
use super::body::{self, IncomingStream};
use super::error::{ApiError, Code};
use super::{Api, ApiResult, header, method_not_allowed, query_param, upload_range};
use crate::digest::Digest;
use crate::names::RepoName;
use crate::storage::{ByteStream, StorageError};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

/// The request body for the storage layer, which enforces
/// `privateregistry.limits.maxuploadbytes` as bytes arrive. A body that
/// announces more than the limit is refused before any of it is read.
fn stream(api: &Api, req: &Parts, body: Incoming) -> Result<ByteStream, ApiError> {
    let declared = header(req, "Content-Length").and_then(|l| l.parse::<u64>().ok());
    if let (Some(limit), Some(len)) = (api.registry.upload_limit(), declared)
        && len > limit
    {
        return Err(StorageError::UploadTooLarge { limit }.into());
    }
    Ok(Box::pin(IncomingStream(body)))
}

/// Starts an upload. A mount from a repository `may_pull` refuses falls
/// back to a plain upload, as the spec allows, revealing nothing about it.
pub async fn start(
    api: &Api,
    req: &Parts,
    body: Incoming,
    repo: &RepoName,
    may_pull: &(dyn Fn(&str) -> bool + Sync),
) -> ApiResult {
    if let Some(mount) = query_param(req, "mount") {
        let d = parse_digest(&mount)?;
        let from = query_param(req, "from")
            .and_then(|f| RepoName::parse(&f))
            .filter(|f| may_pull(f.as_str()));
        if let Some(from) = from
            && api.registry.mount_blob(repo, &from, &d).await?.is_some()
        {
            return Ok(created(api, req, repo, &d));
        }
    } else if let Some(digest) = query_param(req, "digest") {
        let d = parse_digest(&digest)?;
        api.registry
            .put_blob(repo, &d, stream(api, req, body)?)
            .await?;
        return Ok(created(api, req, repo, &d));
    }
    let id = api.registry.start_upload(repo).await?;
    Ok(progress(api, req, repo, &id, 0, StatusCode::ACCEPTED))
}

pub async fn handle(
    api: &Api,
    req: &Parts,
    body: Incoming,
    repo: &RepoName,
    id: &str,
) -> ApiResult {
    match req.method {
        Method::GET => {
            let size = api.registry.upload_size(repo, id).await?;
            Ok(progress(api, req, repo, id, size, StatusCode::NO_CONTENT))
        }
        Method::PATCH => {
            let start = content_range_start(req)?;
            let size = api
                .registry
                .append_upload(repo, id, start, stream(api, req, body)?)
                .await?;
            Ok(progress(api, req, repo, id, size, StatusCode::ACCEPTED))
        }
        Method::PUT => {
            let digest = query_param(req, "digest").ok_or_else(|| {
                ApiError::new(
                    Code::DigestInvalid,
                    "the digest query parameter is required to complete an upload",
                )
            })?;
            let d = parse_digest(&digest)?;
            api.registry
                .finish_upload(repo, id, &d, Some(stream(api, req, body)?))
                .await?;
            Ok(created(api, req, repo, &d))
        }
        Method::DELETE => {
            api.registry.cancel_upload(repo, id).await?;
            Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(body::empty())
                .expect("valid response"))
        }
        _ => Err(method_not_allowed()),
    }
}

/// The start offset from `Content-Range: <start>-<end>`, checked against
/// `Content-Length` when both are given.
fn content_range_start(req: &Parts) -> Result<Option<u64>, ApiError> {
    let Some(cr) = header(req, "Content-Range") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            Code::RangeInvalid,
            format!("malformed Content-Range {cr:?}; expected <start>-<end>"),
        )
    };
    let spec = cr
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches([' ', '=']);
    let spec = spec.split('/').next().unwrap_or(spec);
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if end < start {
        return Err(bad());
    }
    if let Some(len) = header(req, "Content-Length").and_then(|l| l.parse::<u64>().ok())
        && len != end - start + 1
    {
        return Err(ApiError::new(
            Code::SizeInvalid,
            format!(
                "Content-Range {cr:?} spans {} bytes but Content-Length is {len}",
                end - start + 1
            ),
        ));
    }
    Ok(Some(start))
}

fn progress(
    api: &Api,
    req: &Parts,
    repo: &RepoName,
    id: &str,
    size: u64,
    status: StatusCode,
) -> Response<body::Body> {
    Response::builder()
        .status(status)
        .header(
            "Location",
            api.url(req, &format!("/v2/{repo}/blobs/uploads/{id}")),
        )
        .header("Range", upload_range(size))
        .header("Docker-Upload-UUID", id)
        .header("Content-Length", 0)
        .body(body::empty())
        .expect("valid response")
}

fn created(api: &Api, req: &Parts, repo: &RepoName, d: &Digest) -> Response<body::Body> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header("Location", api.url(req, &format!("/v2/{repo}/blobs/{d}")))
        .header("Docker-Content-Digest", d.to_string())
        .header("Content-Length", 0)
        .body(body::empty())
        .expect("valid response")
}
