//! `GET /v2/_catalog` and `GET /v2/<name>/tags/list`.

use super::pagination::{Page, WithoutN};
use super::{Api, ApiResult, json};
use crate::names::RepoName;
use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::json;

/// Lists the repositories `visible` admits: a caller sees only what it may pull.
pub async fn list(api: &Api, req: &Parts, visible: &(dyn Fn(&str) -> bool + Sync)) -> ApiResult {
    let page = Page::from_request(req, api.settings.max_page, WithoutN::FirstPage)?;
    let mut repos = api
        .registry
        .catalog(page.fetch(), page.last.as_deref(), visible)
        .await?;
    let link = page.finish(&api.link_url(req, "/v2/_catalog"), &mut repos);
    with_link(
        json(StatusCode::OK, &json!({ "repositories": repos })),
        link,
    )
}

pub async fn tags(api: &Api, req: &Parts, repo: &RepoName) -> ApiResult {
    let page = Page::from_request(req, api.settings.max_page, WithoutN::Everything)?;
    let mut all = None;
    if let Some(mirrors) = &api.mirrors
        && let Some(c) = mirrors.route(repo)
    {
        all = mirrors.tags(&c).await?;
    }
    let all = match all {
        Some(upstream) => upstream,
        None => api
            .registry
            .tags(repo)
            .await?
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
    };
    let mut tags: Vec<String> = all
        .iter()
        .map(|t| t.as_str())
        .filter(|t| page.last.as_deref().is_none_or(|l| *t > l))
        .take(page.fetch())
        .map(str::to_string)
        .collect();
    let link = page.finish(
        &api.link_url(req, &format!("/v2/{repo}/tags/list")),
        &mut tags,
    );
    with_link(
        json(
            StatusCode::OK,
            &json!({ "name": repo.as_str(), "tags": tags }),
        ),
        link,
    )
}

fn with_link(resp: ApiResult, link: Option<String>) -> ApiResult {
    let mut resp = resp?;
    if let Some(l) = link {
        resp.headers_mut()
            .insert("Link", l.parse().expect("link header is ASCII"));
    }
    Ok(resp)
}
