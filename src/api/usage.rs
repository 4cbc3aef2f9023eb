//! `GET /v2/_ext/usage` and `GET /v2/_ext/usage/<name>`: storage usage
//! from the latest snapshot (see `crate::usage`), as JSON. A caller sees the
//! repositories it may pull; the registry-wide totals only if it may pull
//! every repository, since they describe repositories it cannot see.

use super::error::{ApiError, Code};
use super::{Api, ApiResult, json};
use crate::names::RepoName;
use crate::storage::usage::{RepoUsage, Snapshot};
use hyper::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for the first scan after start.
const FIRST_SCAN_WAIT: Duration = Duration::from_secs(10);

/// The answer of [`all`], serialized as it stands.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct All<'a> {
    computed_at: String,
    registry: Option<Value>,
    repositories: Vec<&'a RepoUsage>,
}

pub async fn all(api: &Api, visible: &(dyn Fn(&str) -> bool + Sync)) -> ApiResult {
    let s = snapshot(api).await?;
    let repos: Vec<_> = s.repositories.iter().filter(|r| visible(&r.name)).collect();
    let registry = (repos.len() == s.repositories.len()).then(|| {
        json!({
            "blobs": s.blobs,
            "totalBytes": s.total_bytes,
            "reclaimableBytes": s.reclaimable_bytes,
        })
    });
    let body = All {
        computed_at: crate::timefmt::rfc3339(s.computed_at),
        repositories: repos,
        registry,
    };
    json(StatusCode::OK, &body)
}

pub async fn one(api: &Api, repo: &RepoName) -> ApiResult {
    let s = snapshot(api).await?;
    let Some(r) = s.repository(repo.as_str()) else {
        return Err(ApiError::new(
            Code::NameUnknown,
            json!({ "name": repo.as_str() }),
        ));
    };
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["computedAt"] = crate::timefmt::rfc3339(s.computed_at).into();
    json(StatusCode::OK, &v)
}

async fn snapshot(api: &Api) -> Result<Arc<Snapshot>, ApiError> {
    api.usage
        .snapshot_within(FIRST_SCAN_WAIT)
        .await
        .ok_or_else(|| {
            ApiError::new(Code::Unavailable, "storage usage is still being computed")
                .with_header("Retry-After", "10".into())
        })
}
