//! Requests for repositories the pull-through cache serves (`crate::mirror`):
//! the name a request means (containerd's `?ns=`, Docker's unprefixed
//! mirror names), and the writes such repositories refuse.

use super::error::ApiError;
use super::route::Route;
use super::{Api, query_param};
use hyper::Method;
use hyper::http::request::Parts;

/// The route with its repository as it is cached, before access is
/// checked: the rules apply to that name, however the client spelled it.
pub async fn canonical(api: &Api, req: &Parts, route: Route) -> Result<Route, ApiError> {
    let Some(mirrors) = &api.mirrors else {
        return Ok(route);
    };
    let ns = query_param(req, "ns");
    let ns = ns.as_deref();
    let read = matches!(req.method, Method::GET | Method::HEAD);
    Ok(match route {
        Route::Manifest(r, x) if read => {
            let n = mirrors.canonical(&r, ns, true).await?;
            Route::Manifest(n.unwrap_or(r), x)
        }
        Route::Blob(r, x) if read => {
            let head = req.method == Method::HEAD;
            let n = mirrors.canonical(&r, ns, !head).await?;
            Route::Blob(n.unwrap_or(r), x)
        }
        Route::Tags(r) => {
            let n = mirrors.canonical(&r, ns, true).await?;
            Route::Tags(n.unwrap_or(r))
        }
        other => other,
    })
}

/// Pushes to a cached repository go to its upstream; deletes (dropping
/// something from the cache) are allowed where deletes are.
pub fn refuse_writes(api: &Api, route: &Route, m: &Method) -> Result<(), ApiError> {
    let Some(mirrors) = &api.mirrors else {
        return Ok(());
    };
    let repo = match route {
        Route::Uploads(r) | Route::Upload(r, _) => r,
        Route::Manifest(r, _) if *m == Method::PUT => r,
        _ => return Ok(()),
    };
    match mirrors.route(repo) {
        Some(c) => Err(crate::mirror::error::MirrorError::ReadOnly {
            repo: repo.to_string(),
            url: c.mirror.upstream.url.clone(),
        }
        .into()),
        None => Ok(()),
    }
}
