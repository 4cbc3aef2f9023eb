//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`, with content
//! negotiation on `Accept` as distribution does it.

use super::blobs::accepted;
use super::body::{self, collect_limited};
use super::error::{ApiError, Code};
use super::{Api, ApiResult, header, method_not_allowed};
use crate::manifest::{DOCKER_LIST, linux_amd64_child};
use crate::names::RepoName;
use crate::storage::manifests::{Reference, StoredManifest};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

pub async fn handle(
    api: &Api,
    req: &Parts,
    body: Incoming,
    repo: &RepoName,
    reference: &str,
) -> ApiResult {
    let r = Reference::parse(reference).ok_or_else(|| invalid_reference(req, reference))?;
    match req.method {
        Method::GET | Method::HEAD => get(api, req, repo, &r).await,
        Method::PUT => put(api, req, body, repo, &r).await,
        Method::DELETE => {
            delete(api, repo, &r).await?;
            Ok(accepted())
        }
        _ => Err(method_not_allowed()),
    }
}

/// Nothing can be stored under a reference that is neither a tag nor a
/// digest, so reading or deleting one finds nothing (404, as the OCI spec and
/// distribution answer); only storing one is the client's mistake (400).
fn invalid_reference(req: &Parts, reference: &str) -> ApiError {
    let code = match req.method {
        Method::PUT if reference.contains(':') => Code::DigestInvalid,
        Method::PUT => Code::TagInvalid,
        _ => Code::ManifestUnknown,
    };
    ApiError::new(code, format!("invalid reference {reference:?}"))
}

/// Deletes a tag alone, or a manifest with every tag naming it: the API's
/// `DELETE` and the UI's delete button both come here.
pub async fn delete(api: &Api, repo: &RepoName, r: &Reference) -> Result<(), ApiError> {
    api.require_delete()?;
    match r {
        Reference::Digest(d) => api.registry.delete_manifest(repo, d).await?,
        Reference::Tag(t) => api.registry.delete_tag(repo, t).await?,
    }
    Ok(())
}

async fn get(api: &Api, req: &Parts, repo: &RepoName, r: &Reference) -> ApiResult {
    let cached = api.mirrors.as_ref().and_then(|m| Some((m, m.route(repo)?)));
    let mut m = match cached {
        Some((mirrors, c)) => mirrors.manifest(&c, r).await?,
        None => api.registry.get_manifest(repo, r).await?,
    };
    if let Reference::Tag(_) = r {
        m = negotiate(api, req, repo, m).await?;
    }
    let b = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", &m.media_type)
        .header("Content-Length", m.bytes.len())
        .header("Docker-Content-Digest", m.digest.to_string())
        .header("ETag", format!("\"{}\"", m.digest));
    let body = if req.method == Method::HEAD {
        body::empty()
    } else {
        body::full(m.bytes)
    };
    Ok(b.body(body).expect("valid response"))
}

/// Media types the client lists in `Accept`, or `None` if it accepts anything.
fn accepted_types(req: &Parts) -> Option<Vec<String>> {
    let types: Vec<String> = req
        .headers
        .get_all("Accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let any = types.is_empty() || types.iter().any(|t| t == "*/*" || t == "application/*");
    (!any).then_some(types)
}

/// A tag's manifest in a form the client accepts: a list it cannot read is
/// replaced by its linux/amd64 image; any other unacceptable type is unknown.
async fn negotiate(
    api: &Api,
    req: &Parts,
    repo: &RepoName,
    m: StoredManifest,
) -> Result<StoredManifest, ApiError> {
    let Some(types) = accepted_types(req) else {
        return Ok(m);
    };
    if types.contains(&m.media_type) {
        return Ok(m);
    }
    if m.media_type == DOCKER_LIST
        && let Some(child) = linux_amd64_child(&m.bytes)
    {
        return Ok(api
            .registry
            .get_manifest(repo, &Reference::Digest(child))
            .await?);
    }
    Err(ApiError::new(
        Code::ManifestUnknown,
        format!(
            "the manifest is a {} which the Accept header does not allow",
            m.media_type
        ),
    ))
}

async fn put(api: &Api, req: &Parts, body: Incoming, repo: &RepoName, r: &Reference) -> ApiResult {
    let max = api.settings.manifest_max_bytes;
    let too_large = || {
        ApiError::new(
            Code::ManifestInvalid,
            format!("manifest larger than the {max}-byte limit (privateregistry.manifestmaxbytes)"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if header(req, "Content-Length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > max)
    {
        return Err(too_large());
    }
    let bytes = collect_limited(body, max).await.map_err(|e| match e {
        None => too_large(),
        Some(e) => ApiError::new(Code::ManifestInvalid, format!("reading manifest: {e}")),
    })?;
    let out = api
        .registry
        .put_manifest(repo, r, bytes, header(req, "Content-Type"))
        .await?;
    let mut b = Response::builder()
        .status(StatusCode::CREATED)
        .header(
            "Location",
            api.url(req, &format!("/v2/{repo}/manifests/{}", out.digest)),
        )
        .header("Docker-Content-Digest", out.digest.to_string())
        .header("Content-Length", 0);
    if let Some(s) = out.subject {
        b = b.header("OCI-Subject", s.to_string());
    }
    Ok(b.body(body::empty()).expect("valid response"))
}
