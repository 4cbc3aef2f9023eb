//! `/ui/`: the repositories the caller may pull, filtered by `?q=`, a page
//! at a time through the storage layer's catalog walk (`?last=` cursor).

use super::super::Ctx;
use super::super::html::{esc, maybe_size};
use super::{filter_form, page_size, pager, table};
use crate::api::{Api, ApiResult};
use crate::config::security::Action;
use crate::names::RepoName;

/// One row of the list.
pub struct Row {
    pub name: String,
    pub tags: usize,
    pub size: Option<u64>,
}

/// The bytes a repository's manifests reach, from the storage usage
/// snapshot (`crate::usage`); unknown (shown as `—`) until the first scan
/// has finished or the repository is in it, never computed per request.
pub async fn repository_size(api: &Api, repo: &RepoName) -> Option<u64> {
    let s = api.usage.snapshot()?;
    s.repository(repo.as_str()).map(|r| r.referenced_bytes)
}

async fn row(api: &Api, name: String) -> Row {
    // The catalog lists only valid names; anything else would show empty.
    let Some(repo) = RepoName::parse(&name) else {
        return Row {
            name,
            tags: 0,
            size: None,
        };
    };
    let tags = api.registry.tags(&repo).await.map_or(0, |t| t.len());
    let size = repository_size(api, &repo).await;
    Row { name, tags, size }
}

pub async fn show(cx: &Ctx<'_>) -> ApiResult {
    let q = cx.query("q").unwrap_or_default().to_lowercase();
    let n = page_size(cx);
    let last = cx.query("last");
    let keep = |name: &str| name.contains(q.as_str()) && cx.may(Action::Pull, name);
    let mut names = cx
        .api
        .registry
        .catalog(n + 1, last.as_deref(), &keep)
        .await?;
    let more = names.len() > n;
    names.truncate(n);
    let cursor = names.last().cloned();
    let mut rows = String::new();
    for name in names {
        let r = row(cx.api, name).await;
        rows.push_str(&format!(
            "<tr><td><a href=\"/ui/r/{0}\">{0}</a></td><td class=\"num\">{1}</td><td class=\"num\">{2}</td></tr>",
            esc(&r.name),
            r.tags,
            esc(&maybe_size(r.size))
        ));
    }
    let results = if rows.is_empty() {
        let what = if q.is_empty() {
            "No repositories yet (or none you may pull)."
        } else {
            "No repositories match."
        };
        format!("<p class=\"empty\">{what}</p>")
    } else {
        table(&["Repository", "#Tags", "#Size"], &rows)
    };
    let main = format!(
        "<h1>Repositories</h1>{}<div id=\"results\">{results}{}</div>",
        filter_form("/ui/", &q, "Filter repositories"),
        pager(cx, "/ui/", &q, cursor.as_deref(), more)
    );
    cx.page("Repositories", &[], &main)
}
