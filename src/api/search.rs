//! `GET /v1/search?q=…&n=…&page=…`: Docker Hub's search API, which is what
//! `docker search HOST/term` asks, answering with the repositories the caller
//! may pull whose name contains the term. Private registries have no stars,
//! official images or automated builds; those fields are always empty.

use super::error::{ApiError, Code};
use super::{Api, ApiResult, json, query_param};
use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::json;

/// The engine asks for 25 unless `--limit` says otherwise (at most 100).
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 100;

pub async fn search(api: &Api, req: &Parts, visible: &(dyn Fn(&str) -> bool + Sync)) -> ApiResult {
    let term = query_param(req, "q").unwrap_or_default().to_lowercase();
    let n = number(req, "n", DEFAULT_PAGE)?.clamp(1, MAX_PAGE);
    let page = number(req, "page", 1)?.max(1);
    let keep = |name: &str| name.contains(term.as_str()) && visible(name);
    let names = api.registry.catalog(usize::MAX, None, &keep).await?;
    let results: Vec<_> = names
        .iter()
        .skip((page - 1).saturating_mul(n))
        .take(n)
        .map(|name| {
            json!({
                "name": name,
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "num_results": names.len(),
            "query": term,
            "page": page,
            "num_pages": names.len().div_ceil(n),
            "page_size": n,
            "results": results,
        }),
    )
}

fn number(req: &Parts, key: &str, default: usize) -> Result<usize, ApiError> {
    match query_param(req, key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ApiError::new(
                Code::PaginationNumberInvalid,
                format!("{key} must be a non-negative integer, got {v:?}"),
            )
        }),
    }
}
