//! `/ui/r/<name>/-/m/<ref>`: one manifest in full — the `docker pull`
//! command, its configuration (entrypoint, env, labels, history), its layers
//! or, for an index, its platforms, and what refers to it (signatures, SBOMs).
//! A platform image reached from its index's page links back to that index.

use super::super::Ctx;
use super::super::html::{esc, maybe_size, query, size};
use super::super::image::{Descriptor, Image, ImageConfig, ManifestBody, kind, when};
use super::super::layout::Crumb;
use super::{built, pushed, short_digest, table};
use crate::api::ApiResult;
use crate::api::error::ApiError;
use crate::names::RepoName;
use crate::storage::manifests::Reference;
use std::collections::BTreeMap;

pub async fn show(cx: &Ctx<'_>, repo: &RepoName, reference: &str) -> ApiResult {
    cx.require_pull(repo)?;
    let r = super::parse_reference(reference)?;
    let img = Image::load(cx.api, repo, &r).await?;
    let base = format!("/ui/r/{repo}");
    let sep = if matches!(r, Reference::Tag(_)) {
        ':'
    } else {
        '@'
    };
    let title = format!("{repo}{sep}{reference}");
    let parent = parent_index(cx, repo, &img).await;
    let mut main = format!("<h1 class=\"name\">{}</h1>", esc(&title));
    main.push_str(&pull_command(cx, &title));
    let mut extra = vec![];
    if let Reference::Tag(t) = &r {
        extra.push(("Pushed", pushed(cx, repo, t).await));
    }
    if let Some(p) = &parent {
        extra.push(("Platform of", index_link(&base, repo, p)));
    }
    main.push_str(&facts(&img, &base, extra));
    main.push_str(&actions(cx, repo, &base, &r, &img));
    if img.is_index() {
        main.push_str(&children(&img, &base, reference));
    } else {
        if let Some(c) = &img.config {
            main.push_str(&config(c));
        }
        main.push_str(&layers(&img.body.layers));
        if let Some(c) = &img.config {
            main.push_str(&history(c));
        }
    }
    main.push_str(&referrers(cx, repo, &img, &base).await?);
    let here = format!("{base}/-/m/{reference}");
    let up = parent.as_ref().map(|p| format!("{base}/-/m/{p}"));
    let mut crumbs = vec![Crumb(&base, repo.as_str())];
    if let (Some(up), Some(p)) = (&up, &parent) {
        crumbs.push(Crumb(up, p));
    }
    crumbs.push(Crumb(&here, reference));
    cx.page(&title, &crumbs, &main)
}

/// The index this page was reached from (`?index=`, which the index's own
/// page puts on its links), if it really lists this manifest: a manifest
/// can belong to many indexes and records none of them, and finding them
/// all would mean reading every manifest in the repository.
async fn parent_index(cx: &Ctx<'_>, repo: &RepoName, img: &Image) -> Option<String> {
    let name = cx.query("index")?;
    let r = Reference::parse(&name)?;
    let m = cx.api.registry.get_manifest(repo, &r).await.ok()?;
    let body: ManifestBody = serde_json::from_slice(&m.bytes).ok()?;
    let digest = img.digest.to_string();
    body.manifests
        .iter()
        .any(|e| e.digest == digest)
        .then_some(name)
}

fn index_link(base: &str, repo: &RepoName, parent: &str) -> String {
    let sep = if parent.contains(':') { '@' } else { ':' };
    format!(
        "<a href=\"{}\">{}</a>",
        esc(&format!("{base}/-/m/{parent}")),
        esc(&format!("{repo}{sep}{parent}"))
    )
}

fn pull_command(cx: &Ctx, name: &str) -> String {
    let cmd = format!("docker pull {}/{name}", cx.registry_host());
    format!(
        "<div class=\"pull\"><code id=\"pull-cmd\">{}</code>\
<button type=\"button\" class=\"copy\" data-copy=\"pull-cmd\" hidden>Copy</button></div>",
        esc(&cmd)
    )
}

/// The summary list; `extra` holds what is not read from the manifest
/// itself (already-escaped markup).
fn facts(img: &Image, base: &str, extra: Vec<(&str, String)>) -> String {
    let mut dl = vec![
        (
            "Digest",
            format!("<code>{}</code>", esc(&img.digest.to_string())),
        ),
        (
            "Media type",
            format!(
                "{} <code class=\"muted\">{}</code>",
                esc(kind(&img.media_type)),
                esc(&img.media_type)
            ),
        ),
        ("Manifest size", esc(&size(img.manifest_size)).to_string()),
    ];
    if let Some(total) = img.size() {
        let label = if img.is_index() {
            "Total size (all platforms)"
        } else {
            "Total size"
        };
        dl.push((label, esc(&size(total)).to_string()));
    }
    if img.created().is_some() {
        dl.push(("Built", built(img)));
    }
    dl.extend(extra);
    let platforms = img.platforms();
    if !platforms.is_empty() {
        dl.push(("Platforms", esc(&platforms.join(", ")).to_string()));
    }
    if let Some(t) = &img.body.artifact_type {
        dl.push(("Artifact type", format!("<code>{}</code>", esc(t))));
    }
    if let Some(s) = &img.body.subject {
        let link = format!("{base}/-/m/{}", s.digest);
        dl.push((
            "Refers to",
            format!("<a href=\"{}\">{}</a>", esc(&link), short_digest(&s.digest)),
        ));
    }
    if let Some(a) = img.config.as_ref().and_then(|c| c.author.as_deref()) {
        dl.push(("Author", esc(a).to_string()));
    }
    let mut out = String::from("<dl class=\"facts\">");
    for (k, v) in dl {
        out.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>"));
    }
    out.push_str("</dl>");
    out.push_str(&key_values("Annotations", &img.body.annotations));
    out
}

fn actions(cx: &Ctx, repo: &RepoName, base: &str, r: &Reference, img: &Image) -> String {
    if !cx.can_delete(repo) {
        return String::new();
    }
    let mut links = vec![];
    if let Reference::Tag(t) = r {
        links.push(format!(
            "<a class=\"button danger\" href=\"{}\">Delete tag {}</a>",
            esc(&format!("{base}/-/delete/{t}")),
            esc(t.as_str())
        ));
    }
    links.push(format!(
        "<a class=\"button danger\" href=\"{}\">Delete manifest</a>",
        esc(&format!("{base}/-/delete/{}", img.digest))
    ));
    format!("<div class=\"actions\">{}</div>", links.join(""))
}

/// An index's entries, each with its own image's size and build time, and
/// a link that lets the image's page link back here.
fn children(img: &Image, base: &str, reference: &str) -> String {
    let mut rows = String::new();
    for (m, child) in img.body.manifests.iter().zip(&img.children) {
        let platform = m.platform.as_ref().map(|p| p.label()).unwrap_or_default();
        let link = format!("{base}/-/m/{}?index={}", m.digest, query(reference));
        rows.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"wide\">{}</td><td class=\"num\">{}</td><td class=\"wide\">{}</td></tr>",
            esc(&platform),
            esc(&link),
            short_digest(&m.digest),
            esc(kind(m.media_type.as_deref().unwrap_or(""))),
            esc(&maybe_size(child.as_ref().and_then(Image::size))),
            child.as_ref().map(built).unwrap_or_default()
        ));
    }
    format!(
        "<h2>Manifests</h2>{}",
        table(&["Platform", "Digest", "~Type", "#Size", "~Built"], &rows)
    )
}

fn config(c: &ImageConfig) -> String {
    let rc = &c.config;
    let json = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_default())
    };
    let mut dl = String::new();
    let ports = rc
        .exposed_ports
        .as_ref()
        .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "));
    for (k, v) in [
        ("Entrypoint", json(&rc.entrypoint)),
        ("Cmd", json(&rc.cmd)),
        ("Working directory", rc.working_dir.clone()),
        ("User", rc.user.clone()),
        ("Exposed ports", ports),
    ] {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            dl.push_str(&format!("<dt>{k}</dt><dd><code>{}</code></dd>", esc(&v)));
        }
    }
    let mut out = String::from("<h2>Configuration</h2>");
    if dl.is_empty() {
        out.push_str("<p class=\"empty\">No entrypoint or command.</p>");
    } else {
        out.push_str(&format!("<dl class=\"facts\">{dl}</dl>"));
    }
    let env: BTreeMap<String, String> = rc
        .env
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    out.push_str(&key_values("Environment", &env));
    out.push_str(&key_values(
        "Labels",
        rc.labels.as_ref().unwrap_or(&BTreeMap::new()),
    ));
    out
}

/// A two-column table of names and values, or nothing if empty.
fn key_values(title: &str, map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let rows: String = map
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><td><code>{}</code></td><td class=\"wrap\"><code>{}</code></td></tr>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    format!(
        "<h3>{}</h3>{}",
        esc(title),
        table(&["Name", "Value"], &rows)
    )
}

fn layers(list: &[Descriptor]) -> String {
    let mut rows = String::new();
    for (i, l) in list.iter().enumerate() {
        rows.push_str(&format!(
            "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"wide\"><code class=\"muted\">{}</code></td><td class=\"num\">{}</td></tr>",
            i + 1,
            short_digest(&l.digest),
            esc(l.media_type.as_deref().unwrap_or("")),
            esc(&size(l.size))
        ));
    }
    let total: u64 = list.iter().map(|l| l.size).sum();
    format!(
        "<h2>Layers <span class=\"meta\">{} · {}</span></h2>{}",
        list.len(),
        esc(&size(total)),
        table(&["##", "Digest", "~Media type", "#Size"], &rows)
    )
}

fn history(c: &ImageConfig) -> String {
    if c.history.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for h in &c.history {
        let what = h
            .created_by
            .as_deref()
            .or(h.comment.as_deref())
            .unwrap_or("");
        rows.push_str(&format!(
            "<tr><td class=\"nowrap\">{}</td><td class=\"wrap\"><code>{}</code></td><td>{}</td></tr>",
            esc(&h.created.as_deref().map(when).unwrap_or_default()),
            esc(what),
            if h.empty_layer { "" } else { "layer" }
        ));
    }
    format!(
        "<h2>History</h2>{}",
        table(&["Created", "Created by", ""], &rows)
    )
}

async fn referrers(
    cx: &Ctx<'_>,
    repo: &RepoName,
    img: &Image,
    base: &str,
) -> Result<String, ApiError> {
    let refs = cx.api.registry.referrers(repo, &img.digest, None).await?;
    if refs.is_empty() {
        return Ok("<h2>Referrers</h2><p class=\"empty\">No signatures, SBOMs or other artifacts refer to this manifest.</p>".into());
    }
    let mut rows = String::new();
    for r in refs {
        let notes: Vec<String> = r
            .annotations
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td class=\"wrap\">{}</td></tr>",
            esc(r.artifact_type.as_deref().unwrap_or("")),
            esc(&format!("{base}/-/m/{}", r.digest)),
            short_digest(&r.digest.to_string()),
            esc(&size(r.size)),
            esc(&notes.join("\n"))
        ));
    }
    Ok(format!(
        "<h2>Referrers</h2>{}",
        table(&["Artifact type", "Digest", "#Size", "Annotations"], &rows)
    ))
}
