//! The built-in web UI under `/ui/`: server-rendered pages over the storage
//! layer, behind the same authentication and access rules as the API, so a
//! user sees exactly the repositories they may pull. Reading needs no
//! JavaScript; `assets/ui.js` only adds filtering as you type and a copy
//! button. The one action, deleting a tag or manifest, is a confirmed POST
//! protected against forgery (`csrf.rs`).
//!
//! URLs: `/ui/` repositories, `/ui/r/<name>` its tags, `/ui/r/<name>/-/m/<ref>`
//! a manifest, `/ui/r/<name>/-/delete/<ref>` the delete confirmation. `-` can
//! never be a component of a repository name, so the split is unambiguous.

pub mod assets;
pub mod csrf;
pub mod html;
pub mod image;
pub mod layout;
pub mod pages;

use crate::api::error::{ApiError, Code};
use crate::api::{Api, ApiResult, guard};
use crate::auth::Caller;
use crate::config::Config;
use crate::config::security::Action;
use crate::names::RepoName;
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

/// The UI's part of the API settings, resolved at start.
pub struct UiSettings {
    pub enabled: bool,
    pub key: csrf::Key,
}

impl UiSettings {
    pub fn from_config(c: &Config) -> UiSettings {
        UiSettings {
            enabled: c.privateregistry.ui.enabled,
            key: csrf::Key::new(c.secret().as_deref()),
        }
    }
}

/// What a UI path asks for.
#[derive(Debug, PartialEq, Eq)]
enum View {
    Root,
    Repositories,
    Repository(RepoName),
    Manifest(RepoName, String),
    Delete(RepoName, String),
    Asset(&'static assets::Asset),
    NotFound,
}

/// Whether the UI answers `path` (`/` and everything under `/ui`).
pub fn serves(api: &Api, path: &str) -> bool {
    api.settings.ui.enabled && (path == "/" || path == "/ui" || path.starts_with("/ui/"))
}

fn parse(path: &str) -> View {
    match path {
        "/" => return View::Root,
        "/ui" | "/ui/" => return View::Repositories,
        _ => {}
    }
    if let Some(a) = assets::find(path) {
        return View::Asset(a);
    }
    let Some(rest) = path.strip_prefix("/ui/r/") else {
        return View::NotFound;
    };
    let (name, action) = match rest.split_once("/-/") {
        Some((n, a)) => (n, Some(a)),
        None => (rest.trim_end_matches('/'), None),
    };
    let Some(repo) = RepoName::parse(name) else {
        return View::NotFound;
    };
    match action.map(|a| a.split_once('/')) {
        None => View::Repository(repo),
        Some(Some(("m", r))) if !r.is_empty() => View::Manifest(repo, r.to_string()),
        Some(Some(("delete", r))) if !r.is_empty() => View::Delete(repo, r.to_string()),
        _ => View::NotFound,
    }
}

/// What a page needs to know about the request and who makes it.
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub caller: &'a Caller,
    pub req: &'a Parts,
}

impl Ctx<'_> {
    pub fn may(&self, action: Action, repo: &str) -> bool {
        guard::may(self.api, self.caller, action, repo)
    }

    /// Whether the delete buttons show: deletes enabled and the caller allowed.
    pub fn can_delete(&self, repo: &RepoName) -> bool {
        self.api.settings.delete_enabled && self.may(Action::Delete, repo.as_str())
    }

    /// The name shown in the header, if the caller logged in.
    pub fn user(&self) -> Option<&str> {
        match self.caller {
            Caller::User(u) => Some(u),
            _ => None,
        }
    }

    pub fn query(&self, key: &str) -> Option<String> {
        crate::api::query_param(self.req, key).filter(|v| !v.is_empty())
    }

    /// The `host[:port]` clients pull from: `http.host` if set, else the
    /// host the browser addressed (through a trusted proxy, the one it forwarded).
    pub fn registry_host(&self) -> String {
        let from_config = self.api.settings.host.as_deref().map(|h| {
            let h = h.split_once("://").map_or(h, |(_, rest)| rest);
            h.split('/').next().unwrap_or(h).to_string()
        });
        from_config
            .or_else(|| crate::api::client::Client::of(self.req).host.clone())
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// A full page with the caller's name in the header.
    pub fn page(&self, title: &str, crumbs: &[layout::Crumb], main: &str) -> ApiResult {
        Ok(layout::html(
            StatusCode::OK,
            layout::document(title, self.user(), crumbs, main),
        ))
    }

    /// Refuses a caller who may not pull `repo`, before anything about it is read.
    pub fn require_pull(&self, repo: &RepoName) -> Result<(), ApiError> {
        if self.may(Action::Pull, repo.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Denied,
                "you may not pull this repository",
            ))
        }
    }
}

/// Serves a UI request. Only an anonymous caller gets an API error (the 401
/// challenge, which makes browsers ask for a login, and whose body the API
/// layer makes the login prompt for them); every other failure is an HTML page.
pub async fn handle(api: &Api, caller: &Caller, req: &Parts, body: Incoming) -> ApiResult {
    // Even where anonymous pulls are allowed, a browser only sends a login
    // after a challenge: the UI always asks for one.
    if *caller == Caller::Anonymous {
        return Err(guard::challenge(api));
    }
    let cx = Ctx { api, caller, req };
    let view = parse(req.uri.path());
    let read = matches!(req.method, Method::GET | Method::HEAD);
    let result = match view {
        View::Root if read => Ok(redirect("/ui/")),
        View::Repositories if read => pages::repositories::show(&cx).await,
        View::Repository(repo) if read => pages::tags::show(&cx, &repo).await,
        View::Manifest(repo, r) if read => pages::manifest::show(&cx, &repo, &r).await,
        View::Delete(repo, r) if read => pages::delete::confirm(&cx, &repo, &r).await,
        View::Delete(repo, r) if req.method == Method::POST => {
            pages::delete::perform(&cx, &repo, &r, body).await
        }
        View::Asset(a) if read => Ok(asset(a)),
        View::NotFound => {
            Err(ApiError::new(Code::Unsupported, "no such page").with_status(StatusCode::NOT_FOUND))
        }
        _ => Err(crate::api::method_not_allowed()),
    };
    result.or_else(|e| match e.code {
        Code::Unauthorized | Code::TooManyRequests => Err(e),
        _ => Ok(error_page(&cx, &e)),
    })
}

fn error_page(cx: &Ctx, e: &ApiError) -> Response<crate::api::body::Body> {
    let message = match &e.detail {
        serde_json::Value::String(s) => s.clone(),
        _ => match e.code {
            Code::NameUnknown => "no such repository".into(),
            Code::ManifestUnknown => "no such tag or manifest".into(),
            Code::Denied => "you are not allowed to do that".into(),
            _ => "the request failed".into(),
        },
    };
    layout::error_page(e.status(), cx.user(), &message)
}

pub fn redirect(to: &str) -> Response<crate::api::body::Body> {
    layout::secure(Response::builder().status(StatusCode::SEE_OTHER))
        .header("Location", to)
        .header("Content-Length", 0)
        .body(crate::api::body::empty())
        .expect("valid response")
}

fn asset(a: &assets::Asset) -> Response<crate::api::body::Body> {
    layout::secure(Response::builder())
        .header("Content-Type", a.content_type)
        .header("Content-Length", a.body.len())
        // The URL names the content, so it never changes under it.
        .header("Cache-Control", "private, max-age=31536000, immutable")
        .body(crate::api::body::full(a.body))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn paths() {
        assert_eq!(parse("/"), View::Root);
        assert_eq!(parse("/ui/"), View::Repositories);
        assert_eq!(parse("/ui/r/a/b"), View::Repository(name("a/b")));
        assert_eq!(parse("/ui/r/a/b/"), View::Repository(name("a/b")));
        assert_eq!(
            parse("/ui/r/a/manifests/-/m/1.0"),
            View::Manifest(name("a/manifests"), "1.0".into())
        );
        assert_eq!(
            parse("/ui/r/a/-/delete/sha256:00"),
            View::Delete(name("a"), "sha256:00".into())
        );
        assert_eq!(parse("/ui/r/A/-/m/x"), View::NotFound);
        assert_eq!(parse("/ui/r/a/-/m/"), View::NotFound);
        assert_eq!(parse("/ui/r/a/-/other/x"), View::NotFound);
        assert_eq!(parse("/ui/assets/style.css"), View::NotFound);
        assert_eq!(parse(assets::STYLE.url()), View::Asset(&assets::STYLE));
        assert_eq!(parse("/ui/elsewhere"), View::NotFound);
    }
}
