//! `/ui/r/<name>`: a repository's tags, a page at a time, each with what its
//! manifest says (digest, type, platforms, size, build time) and when the
//! tag was pushed.

use super::super::Ctx;
use super::super::html::{esc, maybe_size};
use super::super::image::{Image, kind};
use super::super::layout::Crumb;
use super::{built, filter_form, page_size, pager, pushed, short_digest, table};
use crate::api::ApiResult;
use crate::names::{RepoName, Tag};
use crate::storage::manifests::Reference;

pub async fn show(cx: &Ctx<'_>, repo: &RepoName) -> ApiResult {
    cx.require_pull(repo)?;
    let q = cx.query("q").unwrap_or_default();
    let n = page_size(cx);
    let last = cx.query("last");
    let all = cx.api.registry.tags(repo).await?;
    let mut page: Vec<&Tag> = all
        .iter()
        .filter(|t| t.as_str().contains(q.as_str()))
        .filter(|t| last.as_deref().is_none_or(|l| t.as_str() > l))
        .take(n + 1)
        .collect();
    let more = page.len() > n;
    page.truncate(n);
    let base = format!("/ui/r/{repo}");
    let mut rows = String::new();
    for t in &page {
        rows.push_str(&tag_row(cx, repo, &base, t).await);
    }
    let results = if rows.is_empty() {
        format!(
            "<p class=\"empty\">{}</p>",
            if q.is_empty() {
                "This repository has no tags."
            } else {
                "No tags match."
            }
        )
    } else {
        let mut head = vec![
            "Tag",
            "~Digest",
            "~Type",
            "Platforms",
            "#Size",
            "~Built",
            "Pushed",
        ];
        if cx.can_delete(repo) {
            head.push("");
        }
        table(&head, &rows)
    };
    let notice = cx.query("deleted").map_or(String::new(), |d| {
        format!(
            "<p class=\"notice\" role=\"status\">Deleted {}.</p>",
            esc(&d)
        )
    });
    let main = format!(
        "{notice}<h1 class=\"name\">{}</h1><p class=\"meta\">{} tag{}</p>{}<div id=\"results\">{results}{}</div>",
        esc(repo.as_str()),
        all.len(),
        if all.len() == 1 { "" } else { "s" },
        filter_form(&base, &q, "Filter tags"),
        pager(cx, &base, &q, page.last().map(|t| t.as_str()), more)
    );
    cx.page(repo.as_str(), &[Crumb(&base, repo.as_str())], &main)
}

async fn tag_row(cx: &Ctx<'_>, repo: &RepoName, base: &str, t: &Tag) -> String {
    let link = format!("{base}/-/m/{t}");
    let cells = match Image::load(cx.api, repo, &Reference::Tag((*t).clone())).await {
        Ok(img) => format!(
            "<td class=\"wide\">{}</td><td class=\"wide\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"wide\">{}</td>",
            short_digest(&img.digest.to_string()),
            esc(kind(&img.media_type)),
            esc(&img.platforms().join(", ")),
            esc(&maybe_size(img.size())),
            built(&img),
        ),
        // Deleted meanwhile, or unreadable: the row says so and the rest still shows.
        Err(_) => "<td colspan=\"5\" class=\"empty\">manifest not readable</td>".to_string(),
    };
    let action = if cx.can_delete(repo) {
        format!(
            "<td><a class=\"danger-link\" href=\"{base}/-/delete/{t}\">Delete</a></td>",
            base = esc(base),
            t = esc(t.as_str())
        )
    } else {
        String::new()
    };
    format!(
        "<tr><td><a href=\"{}\">{}</a></td>{cells}<td>{}</td>{action}</tr>",
        esc(&link),
        esc(t.as_str()),
        pushed(cx, repo, t).await
    )
}
