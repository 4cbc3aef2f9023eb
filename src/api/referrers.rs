//! `GET /v2/<name>/referrers/<digest>` (OCI 1.1), with `artifactType` filtering.

use super::blobs::parse_digest;
use super::body;
use super::{Api, ApiResult, query_param};
use crate::manifest::OCI_INDEX;
use crate::names::RepoName;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

pub async fn list(api: &Api, req: &Parts, repo: &RepoName, digest: &str) -> ApiResult {
    let subject = parse_digest(digest)?;
    let filter = query_param(req, "artifactType").filter(|t| !t.is_empty());
    let refs = api
        .registry
        .referrers(repo, &subject, filter.as_deref())
        .await?;
    let manifests: Vec<Value> = refs
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest.to_string(), "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = r.annotations {
                d["annotations"] = json!(a);
            }
            d
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", OCI_INDEX)
        .header("Content-Length", bytes.len());
    if filter.is_some() {
        b = b.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(b.body(body::full(bytes)).expect("valid response"))
}
