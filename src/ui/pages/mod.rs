//! One module per page, and the pieces they share: the filter form, the
//! cursor pager, and page sizes.

pub mod delete;
pub mod manifest;
pub mod repositories;
pub mod tags;

use super::Ctx;
use super::html::{esc, query};
use super::image::{Image, when, when_time};
use crate::api::error::{ApiError, Code};
use crate::names::{RepoName, Tag};
use crate::storage::manifests::Reference;

/// Rows per page unless `?n=` says otherwise (capped by `privateregistry.maxpagesize`).
const PAGE: usize = 50;

pub fn page_size(cx: &Ctx) -> usize {
    cx.query("n")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(PAGE)
        .clamp(1, cx.api.settings.max_page)
}

/// A GET form filtering the list below it; `ui.js` re-fetches `#results` as
/// one types, without script it is submitted.
pub fn filter_form(action: &str, q: &str, label: &str) -> String {
    format!(
        "<form class=\"filter\" method=\"get\" action=\"{}\" role=\"search\" data-live=\"results\">\
<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"{}\" aria-label=\"{}\" autocomplete=\"off\" spellcheck=\"false\">\
<button type=\"submit\">Filter</button></form>",
        esc(action),
        esc(q),
        esc(label),
        esc(label)
    )
}

/// Links to the first page and, if `more`, to the page after `last`, keeping
/// the filter and page size.
pub fn pager(cx: &Ctx, base: &str, q: &str, last: Option<&str>, more: bool) -> String {
    let mut params = String::new();
    if !q.is_empty() {
        params.push_str(&format!("q={}&", query(q)));
    }
    if let Some(n) = cx.query("n") {
        params.push_str(&format!("n={}&", query(&n)));
    }
    let mut links = vec![];
    if cx.query("last").is_some() {
        let first = format!("{base}?{}", params.trim_end_matches('&'));
        links.push(format!(
            "<a href=\"{}\">« First page</a>",
            esc(first.trim_end_matches('?'))
        ));
    }
    if let (true, Some(last)) = (more, last) {
        let next = format!("{base}?{params}last={}", query(last));
        links.push(format!(
            "<a rel=\"next\" href=\"{}\">Next page »</a>",
            esc(&next)
        ));
    }
    if links.is_empty() {
        return String::new();
    }
    format!("<nav class=\"pager\">{}</nav>", links.join(""))
}

/// A table inside a scrolling wrapper, so wide tables never widen the page.
/// A heading starting with `#` is a numeric column; with `~`, a column
/// phones leave out (its cells carry `class="wide"` too).
pub fn table(head: &[&str], rows: &str) -> String {
    let cols: String = head
        .iter()
        .map(|h| match (h.strip_prefix('#'), h.strip_prefix('~')) {
            (Some(h), _) => format!("<th class=\"num\">{}</th>", esc(h)),
            (_, Some(h)) => format!("<th class=\"wide\">{}</th>", esc(h)),
            _ => format!("<th>{}</th>", esc(h)),
        })
        .collect();
    format!(
        "<div class=\"table-wrap\"><table><thead><tr>{cols}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// A digest shortened for tables, with the whole one in its title.
pub fn short_digest(d: &str) -> String {
    let (alg, hex) = d.split_once(':').unwrap_or(("", d));
    let short = &hex[..hex.len().min(12)];
    format!(
        "<code class=\"digest\" title=\"{}\">{}:{}</code>",
        esc(d),
        esc(alg),
        esc(short)
    )
}

/// A tag or digest from a URL; anything else names nothing.
pub fn parse_reference(reference: &str) -> Result<Reference, ApiError> {
    Reference::parse(reference)
        .ok_or_else(|| ApiError::new(Code::ManifestUnknown, "not a tag or digest"))
}

/// When the image was built, marked as its newest platform's date for an
/// index, so a date in the same column never means two different things
/// unannounced.
pub fn built(img: &Image) -> String {
    let Some(c) = img.created() else {
        return String::new();
    };
    let note = if img.is_index() {
        " <span class=\"meta\">(newest platform)</span>"
    } else {
        ""
    };
    format!("{}{note}", esc(&when(c)))
}

/// When the tag was last pushed, empty if that cannot be read (the tag was
/// deleted meanwhile): a missing date is no reason to fail the page.
pub async fn pushed(cx: &Ctx<'_>, repo: &RepoName, t: &Tag) -> String {
    match cx.api.registry.tag_pushed(repo, t).await {
        Ok(Some(at)) => esc(&when_time(at)).to_string(),
        _ => String::new(),
    }
}
