//! Authentication and authorisation at the HTTP boundary: identifies the
//! caller before anything is routed, then checks the action a route needs.
//! With auth configured, no path (unknown ones included) answers anything
//! but a challenge to a caller the rules do not admit.

use super::Api;
use super::error::{ApiError, Code};
use super::route::Route;
use crate::auth::{AuthError, Caller};
use crate::config::security::Action;
use crate::names::RepoName;
use hyper::Method;
use hyper::http::request::Parts;
use std::net::IpAddr;

/// Who is calling; an anonymous caller is challenged right away unless
/// some rule grants anonymous access.
pub async fn identify(api: &Api, req: &Parts, ip: IpAddr) -> Result<Caller, ApiError> {
    let Some(auth) = &api.auth else {
        return Ok(Caller::Open);
    };
    if req.extensions.get::<super::Unauthenticated>().is_some() {
        return Ok(Caller::Open);
    }
    if req.extensions.get::<super::AnonymousOnly>().is_some() {
        // Credentials are not asked for here, nor read.
        return Ok(Caller::Anonymous);
    }
    let header = super::header(req, "authorization");
    match auth.authenticate(header, ip).await {
        Ok(Caller::Anonymous) if !auth.policy.anonymous_access() => Err(challenge(api)),
        Ok(c) => Ok(c),
        Err(AuthError::Invalid) => {
            crate::metrics::auth_failure();
            Err(challenge(api))
        }
        Err(AuthError::Throttled(wait)) => Err({
            crate::metrics::auth_failure();
            ApiError::new(
                Code::TooManyRequests,
                "too many failed logins from this address",
            )
            .with_header("Retry-After", wait.as_secs().max(1).to_string())
        }),
    }
}

/// The action a request needs on its repository, if it names one.
fn action<'a>(route: &'a Route, method: &Method) -> Option<(Action, &'a RepoName)> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let delete = *method == Method::DELETE;
    match route {
        Route::Base | Route::Catalog | Route::CaCertificate | Route::Search => None,
        Route::Usage(None) => None,
        Route::Tags(r) | Route::Referrers(r, _) | Route::Usage(Some(r)) => Some((Action::Pull, r)),
        Route::Manifest(r, _) | Route::Blob(r, _) if read => Some((Action::Pull, r)),
        Route::Manifest(r, _) | Route::Blob(r, _) if delete => Some((Action::Delete, r)),
        Route::Manifest(r, _) | Route::Blob(r, _) | Route::Uploads(r) | Route::Upload(r, _) => {
            Some((Action::Push, r))
        }
    }
}

/// Checks a routed request; an anonymous caller is asked to log in, an
/// authenticated one is refused.
pub fn authorize(
    api: &Api,
    caller: &Caller,
    route: &Route,
    method: &Method,
    anonymous_listener: bool,
) -> Result<(), ApiError> {
    let allowed = match action(route, method) {
        Some((a, repo)) => may(api, caller, a, repo.as_str()),
        // On an anonymous listener nobody logs in: the base endpoint says
        // only that this is a registry.
        None if matches!(route, Route::Base) && anonymous_listener => true,
        // The base endpoint answers "you are logged in", and the CA is for
        // clients with an account; an anonymous caller is neither.
        None if matches!(route, Route::Base | Route::CaCertificate) => *caller != Caller::Anonymous,
        None => true,
    };
    match (allowed, caller) {
        (true, _) => Ok(()),
        (false, Caller::Anonymous) => Err(challenge(api)),
        (false, _) => Err(ApiError::new(
            Code::Denied,
            serde_json::json!({ "action": action(route, method).map(|(a, _)| a) }),
        )),
    }
}

/// Whether `caller` may perform `action` on `repo`.
pub fn may(api: &Api, caller: &Caller, action: Action, repo: &str) -> bool {
    api.auth
        .as_ref()
        .is_none_or(|a| a.policy.allows(caller, action, repo))
}

pub fn challenge(api: &Api) -> ApiError {
    let realm = api.auth.as_ref().map_or("", |a| a.realm.as_str());
    ApiError::new(Code::Unauthorized, "authentication required")
        .with_header("WWW-Authenticate", format!("Basic realm=\"{realm}\""))
}
