//! The Registry HTTP API V2 / OCI distribution API. This module routes a
//! request to its resource's handler, adds the headers every response carries,
//! and logs one line per request. Handlers speak in storage-layer calls and
//! never touch paths on disk.

pub mod blobs;
pub mod body;
pub mod catalog;
pub mod client;
pub mod error;
pub mod guard;
pub mod health;
pub mod manifests;
pub mod mirrored;
pub mod pagination;
pub mod referrers;
pub mod route;
pub mod search;
pub mod uploads;
pub mod usage;

use crate::auth::{Authenticator, Caller};
use crate::config::Config;
use crate::config::security::Action;
use crate::storage::Registry;
use body::Body;
use client::Client;
use error::{ApiError, Code};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use route::{Route, RouteError};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub type ApiResult = Result<Response<Body>, ApiError>;

/// What the handlers need from the configuration, resolved once at start.
pub struct Settings {
    pub delete_enabled: bool,
    /// `storage.maintenance.readonly.enabled`: pulls only.
    pub read_only: bool,
    /// Blob GETs stream through us even where the store could serve them
    /// (`storage.redirect.disable`).
    pub redirect_disabled: bool,
    pub manifest_max_bytes: usize,
    pub max_page: usize,
    pub host: Option<String>,
    pub relative_urls: bool,
    /// Whose `X-Forwarded-*` headers count (`privateregistry.trustedproxies`).
    pub trusted_proxies: crate::config::proxies::TrustedProxies,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub max_url_bytes: usize,
    /// Served at `/ca.crt` for clients to fetch what they should trust.
    pub ca_certificate: Option<Vec<u8>>,
    pub ui: crate::ui::UiSettings,
}

impl Settings {
    pub fn from_config(c: &Config, ca_certificate: Option<Vec<u8>>) -> Settings {
        let headers = c
            .http
            .headers
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v)))
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::try_from(v.as_str()).ok()?,
                ))
            })
            .collect();
        Settings {
            delete_enabled: c.storage.delete.enabled,
            read_only: c.storage.maintenance.readonly.enabled,
            redirect_disabled: c.storage.redirect_disabled(),
            manifest_max_bytes: c.privateregistry.manifestmaxbytes,
            max_page: c.privateregistry.maxpagesize,
            host: c
                .http
                .host
                .as_ref()
                .map(|h| h.trim_end_matches('/').to_string()),
            relative_urls: c.http.relativeurls,
            // Validated with the rest of the configuration before this runs.
            trusted_proxies: c.trusted_proxies().unwrap_or_default(),
            headers,
            max_url_bytes: c.privateregistry.limits.maxurlbytes,
            ca_certificate,
            ui: crate::ui::UiSettings::from_config(c),
        }
    }
}

/// Marks a request that arrived over TLS, so absolute URLs we hand out
/// (upload `Location`s) send the client back the same way.
#[derive(Clone, Copy)]
pub struct Tls;

/// Marks a request from a listener configured with `auth: false`.
#[derive(Clone, Copy)]
pub struct Unauthenticated;

/// Marks a request from a listener configured with `anonymous: true`.
#[derive(Clone, Copy)]
pub struct AnonymousOnly;

pub struct Api {
    pub registry: Arc<Registry>,
    pub settings: Settings,
    /// `None` when no `auth` section is configured.
    pub auth: Option<Arc<Authenticator>>,
    pub usage: Arc<crate::usage::Usage>,
    pub health: Arc<health::Health>,
    /// The pull-through cache, if upstreams are configured.
    pub mirrors: Option<Arc<crate::mirror::Mirrors>>,
}

impl Api {
    /// A URL for a `Location` header: `http.host` if set, relative if
    /// `http.relativeurls`, otherwise built from the origin the client
    /// addressed (through a trusted proxy, the one it forwarded) as
    /// distribution does.
    pub fn url(&self, req: &Parts, path: &str) -> String {
        if let Some(h) = &self.settings.host {
            return format!("{h}{path}");
        }
        if self.settings.relative_urls {
            return path.to_string();
        }
        Client::of(req)
            .url(path)
            .unwrap_or_else(|| path.to_string())
    }

    /// A URL for a next-page `Link`: relative, as distribution sends it,
    /// unless the public origin is known for certain (`http.host`, or a
    /// trusted proxy's `X-Forwarded-*`); then as [`Api::url`] makes it.
    pub fn link_url(&self, req: &Parts, path: &str) -> String {
        if self.settings.host.is_some() || Client::of(req).forwarded {
            self.url(req, path)
        } else {
            path.to_string()
        }
    }

    pub fn require_delete(&self) -> Result<(), ApiError> {
        if self.settings.delete_enabled {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::Unsupported,
                "deletes are disabled (storage.delete.enabled)",
            ))
        }
    }
}

/// Handles one request end to end; never fails, errors become error responses.
pub async fn handle(
    api: Arc<Api>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let tls = parts.extensions.get::<Tls>().is_some();
    let client = Client::resolve(&parts, peer.ip(), tls, &api.settings.trusted_proxies);
    let ip = client.ip;
    parts.extensions.insert(client);
    let route = route::parse(parts.uri.path());
    let kind = match (&route, parts.uri.path()) {
        (Ok(r), _) => r.kind(),
        (Err(_), health::PATH) => "health",
        (Err(_), p) if crate::ui::serves(&api, p) => "ui",
        (Err(_), _) => "unknown",
    };
    let upload = matches!(route, Ok(Route::Uploads(_) | Route::Upload(..)));
    let in_flight = crate::metrics::InFlight::start(upload);
    let changes = match (&route, &parts.method) {
        (_, &Method::GET | &Method::HEAD) => None,
        (Ok(r), _) => r.repository().cloned(),
        (Err(_), _) => None,
    };
    let (caller, result) = if parts.uri.path() == health::PATH {
        // The one path answered without authentication; it reveals nothing else.
        let resp = api.health.respond(&api.registry, &parts.method).await;
        (Caller::Anonymous, Ok(resp))
    } else {
        match guard::identify(&api, &parts, ip).await {
            Ok(c) => {
                let r = dispatch(&api, &c, &parts, body, route).await;
                (c, r)
            }
            Err(e) => (Caller::Anonymous, Err(e)),
        }
    };
    let mut resp = result.unwrap_or_else(|e| error_response(&parts, e));
    let status = resp.status();
    if let Some(repo) = changes.filter(|_| status.is_success()) {
        api.usage.changed(&repo);
    }
    let method = crate::metrics::method_label(&parts.method);
    in_flight.done(method, kind, status.as_u16(), started.elapsed());
    let h = resp.headers_mut();
    h.insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    // `http.headers` are appended as distribution does, but not a second
    // time where a handler (the UI's security headers) already set the same value.
    for (k, v) in &api.settings.headers {
        if !h.get_all(k).iter().any(|have| have == v) {
            h.append(k, v.clone());
        }
    }
    log_request(&parts, &resp, ip, caller.log_name(), started);
    Ok(resp)
}

async fn dispatch(
    api: &Api,
    caller: &Caller,
    req: &Parts,
    body: Incoming,
    route: Result<Route, RouteError>,
) -> ApiResult {
    check_url(api, req)?;
    check_read_only(api, req)?;
    if crate::ui::serves(api, req.uri.path()) {
        return crate::ui::handle(api, caller, req, body).await;
    }
    let route = route.map_err(|e| match e {
        // Even an anonymous caller admitted by some rule learns nothing about paths.
        _ if *caller == Caller::Anonymous => guard::challenge(api),
        RouteError::NotFound => {
            ApiError::new(Code::Unsupported, "no such endpoint").with_status(StatusCode::NOT_FOUND)
        }
        RouteError::NameInvalid(n) => {
            ApiError::new(Code::NameInvalid, serde_json::json!({ "name": n }))
        }
    })?;
    let route = mirrored::canonical(api, req, route).await?;
    let m = &req.method;
    let anonymous_listener = req.extensions.get::<AnonymousOnly>().is_some();
    guard::authorize(api, caller, &route, m, anonymous_listener)?;
    mirrored::refuse_writes(api, &route, m)?;
    let may_pull = |repo: &str| guard::may(api, caller, Action::Pull, repo);
    match route {
        Route::Base if matches!(*m, Method::GET | Method::HEAD) => {
            json(StatusCode::OK, &serde_json::json!({}))
        }
        Route::Catalog if *m == Method::GET => catalog::list(api, req, &may_pull).await,
        Route::CaCertificate if matches!(*m, Method::GET | Method::HEAD) => ca_certificate(api),
        Route::Tags(repo) if *m == Method::GET => catalog::tags(api, req, &repo).await,
        Route::Manifest(repo, r) => manifests::handle(api, req, body, &repo, &r).await,
        Route::Blob(repo, d) => blobs::handle(api, req, &repo, &d).await,
        Route::Uploads(repo) if *m == Method::POST => {
            uploads::start(api, req, body, &repo, &may_pull).await
        }
        Route::Upload(repo, id) => uploads::handle(api, req, body, &repo, &id).await,
        Route::Referrers(repo, d) if *m == Method::GET => {
            referrers::list(api, req, &repo, &d).await
        }
        Route::Search if *m == Method::GET => search::search(api, req, &may_pull).await,
        Route::Usage(None) if *m == Method::GET => usage::all(api, &may_pull).await,
        Route::Usage(Some(repo)) if *m == Method::GET => usage::one(api, &repo).await,
        _ => Err(method_not_allowed()),
    }
}

fn ca_certificate(api: &Api) -> ApiResult {
    let Some(pem) = &api.settings.ca_certificate else {
        return Err(
            ApiError::new(Code::Unsupported, "no CA certificate is configured")
                .with_status(StatusCode::NOT_FOUND),
        );
    };
    Ok(Response::builder()
        .header("Content-Type", "application/x-pem-file")
        .header("Content-Length", pem.len())
        .body(body::full(pem.clone()))
        .expect("valid response"))
}

/// In read-only mode every write is refused as distribution refuses it (405,
/// `Allow: GET, HEAD`), with the spec's JSON error saying why.
fn check_read_only(api: &Api, req: &Parts) -> Result<(), ApiError> {
    if !api.settings.read_only || matches!(req.method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    Err(ApiError::new(
        Code::Unsupported,
        "the registry is in read-only mode (storage.maintenance.readonly)",
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .with_header("Allow", "GET, HEAD".to_string()))
}

/// Long URLs are refused before routing: nothing legitimate needs them.
fn check_url(api: &Api, req: &Parts) -> Result<(), ApiError> {
    let len = req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if len <= api.settings.max_url_bytes {
        return Ok(());
    }
    Err(ApiError::new(
        Code::Unsupported,
        format!(
            "request URL longer than {} bytes",
            api.settings.max_url_bytes
        ),
    )
    .with_status(StatusCode::URI_TOO_LONG))
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(Code::Unsupported, "method not allowed on this endpoint")
}

fn error_response(req: &Parts, e: ApiError) -> Response<Body> {
    let login_page = e.code == Code::Unauthorized && from_browser(req);
    let mut b = Response::builder().status(e.status());
    let body = if login_page {
        b = crate::ui::layout::secure(b).header("Content-Type", "text/html; charset=utf-8");
        crate::ui::layout::login_prompt(header(req, "authorization").is_some()).into_bytes()
    } else {
        b = b.header("Content-Type", "application/json");
        serde_json::to_vec(&e.body()).unwrap_or_default()
    };
    b = b.header("Content-Length", body.len());
    for (k, v) in &e.headers {
        b = b.header(*k, v);
    }
    let body = if req.method == Method::HEAD {
        body::empty()
    } else {
        body::full(body)
    };
    b.body(body).expect("valid error response")
}

/// Whether a person's browser sent this, asking for a page: then the 401
/// challenge (which makes the browser ask for a login) carries a page
/// explaining it, for whoever cancels that dialog. Registry clients never
/// ask for HTML, and they keep the spec's JSON.
fn from_browser(req: &Parts) -> bool {
    req.headers
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Serializes `v` straight to bytes: a large answer (usage of every
/// repository) is never built as a `Value` tree first, ten times its size.
pub fn json(status: StatusCode, v: &impl serde::Serialize) -> ApiResult {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    Ok(Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Content-Length", bytes.len())
        .body(body::full(bytes))
        .expect("valid response"))
}

/// The `Range` header value for an upload holding `size` bytes.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// A query parameter, percent-decoded.
pub fn query_param(req: &Parts, key: &str) -> Option<String> {
    req.uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn log_request(req: &Parts, resp: &Response<Body>, client: IpAddr, user: &str, started: Instant) {
    let bytes = resp
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    crate::logging::access(&crate::logging::Access {
        client,
        user,
        method: req.method.as_str(),
        target,
        version: match req.version {
            hyper::Version::HTTP_2 => "HTTP/2.0",
            hyper::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        },
        status: resp.status().as_u16(),
        bytes,
        referer: header(req, "referer"),
        user_agent: header(req, "user-agent"),
        millis: started.elapsed().as_secs_f64() * 1000.0,
    });
}
