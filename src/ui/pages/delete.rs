//! `/ui/r/<name>/-/delete/<ref>`: GET asks for confirmation, POST deletes.
//! The POST must come from this origin and carry the token the confirmation
//! page made for this user and target (see `csrf.rs`); whoever may not
//! delete gets 403 whatever they send. The deletion itself is the API's.

use super::super::html::{esc, query};
use super::super::layout::Crumb;
use super::super::{Ctx, redirect};
use crate::api::ApiResult;
use crate::api::body::collect_limited;
use crate::api::error::{ApiError, Code};
use crate::names::RepoName;
use crate::storage::manifests::Reference;
use hyper::body::Incoming;

const ACTION: &str = "delete";

fn denied(why: &str) -> ApiError {
    ApiError::new(Code::Denied, why.to_string())
}

/// Refuses unless deletes are enabled and the caller may delete here.
fn allowed(cx: &Ctx, repo: &RepoName) -> Result<(), ApiError> {
    if !cx.api.settings.delete_enabled {
        return Err(denied(
            "deletes are disabled on this registry (storage.delete.enabled)",
        ));
    }
    if !cx.can_delete(repo) {
        return Err(denied("you may not delete in this repository"));
    }
    Ok(())
}

fn target(repo: &RepoName, reference: &str) -> String {
    format!("{repo}/-/{reference}")
}

fn user(cx: &Ctx) -> String {
    cx.user().unwrap_or("").to_string()
}

pub async fn confirm(cx: &Ctx<'_>, repo: &RepoName, reference: &str) -> ApiResult {
    allowed(cx, repo)?;
    let r = super::parse_reference(reference)?;
    let digest = cx.api.registry.resolve(repo, &r).await?;
    let what = match &r {
        Reference::Tag(t) => format!(
            "<p>Delete the tag <code>{}</code> from <code>{}</code>? The manifest \
<code>{}</code> it names stays, with any other tags on it.</p>",
            esc(t.as_str()),
            esc(repo.as_str()),
            esc(&digest.to_string())
        ),
        Reference::Digest(d) => format!(
            "<p>Delete the manifest <code>{}</code> from <code>{}</code>, \
<strong>and every tag that names it</strong>? Pulls by those tags or this digest will fail.</p>",
            esc(&d.to_string()),
            esc(repo.as_str())
        ),
    };
    let base = format!("/ui/r/{repo}");
    let back = format!("{base}/-/m/{reference}");
    let here = format!("{base}/-/delete/{reference}");
    let token = cx
        .api
        .settings
        .ui
        .key
        .token(&user(cx), ACTION, &target(repo, reference));
    let main = format!(
        "<h1>Delete?</h1>{what}<p class=\"meta\">Storage is reclaimed by the next garbage collection.</p>\
<form method=\"post\" action=\"{here}\" class=\"confirm\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\" class=\"danger\">Delete</button> <a class=\"button\" href=\"{back}\">Cancel</a></form>",
        here = esc(&here),
        token = esc(&token),
        back = esc(&back),
    );
    cx.page(
        "Delete?",
        &[Crumb(&base, repo.as_str()), Crumb(&back, reference)],
        &main,
    )
}

pub async fn perform(cx: &Ctx<'_>, repo: &RepoName, reference: &str, body: Incoming) -> ApiResult {
    allowed(cx, repo)?;
    let host = crate::api::header(cx.req, "host").unwrap_or("");
    let ours = cx.registry_host();
    if !super::super::csrf::same_origin(
        crate::api::header(cx.req, "origin"),
        crate::api::header(cx.req, "referer"),
        &[host, &ours],
    ) {
        return Err(denied(
            "the request did not come from this registry's pages",
        ));
    }
    let form = collect_limited(body, 4096)
        .await
        .map_err(|_| denied("unreadable form"))?;
    let token = String::from_utf8_lossy(&form)
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or("")
        .to_string();
    let key = &cx.api.settings.ui.key;
    if !key.verify(&token, &user(cx), ACTION, &target(repo, reference)) {
        return Err(denied(
            "missing or wrong form token; reload the confirmation page",
        ));
    }
    let r = super::parse_reference(reference)?;
    crate::api::manifests::delete(cx.api, repo, &r).await?;
    cx.api.usage.changed(repo);
    let what = match &r {
        Reference::Tag(t) => format!("tag {t}"),
        Reference::Digest(d) => format!("manifest {d}"),
    };
    Ok(redirect(&format!("/ui/r/{repo}?deleted={}", query(&what))))
}
