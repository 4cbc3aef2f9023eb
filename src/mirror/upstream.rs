//! Requests to one upstream registry: connections kept and reused, HTTPS
//! verified against the system's trust store, and the registry's challenge
//! answered: basic credentials, or a bearer token fetched from the realm it
//! names (Docker Hub's scheme) and reused until it expires.

use super::challenge::Challenge;
use super::error::UpstreamError;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A connection that takes longer than this is a store that is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Until the response head arrives; a body's pauses are timed by its reader.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is renewed this long before the upstream says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// What a token without `expires_in` lasts (the token spec's default).
const TOKEN_DEFAULT: Duration = Duration::from_secs(60);

pub struct Remote {
    base: String,
    credentials: Option<(String, String)>,
    client: Client<Https, Empty<Bytes>>,
    /// `Authorization` values by scope: bearer tokens with their expiry, or
    /// basic credentials once the upstream asked for them.
    auth: Mutex<HashMap<String, (String, Instant)>>,
}

impl Remote {
    pub fn new(base: &str, credentials: Option<(String, String)>) -> Result<Remote, UpstreamError> {
        let provider = rustls::crypto::ring::default_provider();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| UpstreamError::Unreachable(format!("the system's trust store: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Remote {
            base: base.to_string(),
            credentials,
            client,
            auth: Mutex::new(HashMap::new()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with the credentials `scope` needs, answering
    /// one challenge if the upstream makes it. Any status comes back; only
    /// a failure to get an answer at all is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &[&str],
        scope: &str,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let known = self.known_auth(scope);
        let resp = self.once(&method, &url, accept, known.as_deref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(hyper::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
            .ok_or_else(|| {
                UpstreamError::Denied(format!("{url}: 401 without a challenge we can answer"))
            })?;
        let (value, lasts) = self.answer(&challenge, scope).await?;
        self.remember(scope, &value, lasts);
        self.once(&method, &url, accept, Some(&value)).await
    }

    /// A request without credentials, to where the upstream redirected us.
    pub async fn plain(
        &self,
        method: &Method,
        url: &str,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.once(method, url, &[], None).await
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        accept: &[&str],
        auth: Option<&str>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut b = Request::builder().method(method.clone()).uri(url).header(
            "User-Agent",
            concat!("private-registry/", env!("CARGO_PKG_VERSION")),
        );
        for a in accept {
            b = b.header(hyper::header::ACCEPT, *a);
        }
        if let Some(a) = auth {
            b = b.header(hyper::header::AUTHORIZATION, a);
        }
        let req = b
            .body(Empty::new())
            .map_err(|e| UpstreamError::Protocol(format!("{url}: {e}")))?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(UpstreamError::Unreachable(format!(
                "{url}: {}",
                source_chain(&e)
            ))),
            Err(_) => Err(UpstreamError::Unreachable(format!(
                "{url}: no answer within {}s",
                RESPONSE_TIMEOUT.as_secs()
            ))),
        }
    }

    fn known_auth(&self, scope: &str) -> Option<String> {
        let auth = self.auth.lock().ok()?;
        let (value, until) = auth.get(scope)?;
        (Instant::now() < *until).then(|| value.clone())
    }

    fn remember(&self, scope: &str, value: &str, lasts: Duration) {
        if let Ok(mut auth) = self.auth.lock() {
            let now = Instant::now();
            auth.retain(|_, (_, until)| *until > now);
            auth.insert(scope.to_string(), (value.to_string(), now + lasts));
        }
    }

    /// The `Authorization` value a challenge asks for, and how long it holds.
    async fn answer(
        &self,
        c: &Challenge,
        scope: &str,
    ) -> Result<(String, Duration), UpstreamError> {
        match c {
            Challenge::Basic => {
                let (u, p) = self.credentials.as_ref().ok_or_else(|| {
                    UpstreamError::Denied(format!(
                        "{} asks for credentials and none are configured",
                        self.base
                    ))
                })?;
                Ok((basic(u, p), Duration::from_secs(24 * 3600)))
            }
            Challenge::Bearer { realm, service } => {
                self.token(realm, service.as_deref(), scope).await
            }
        }
    }

    /// Fetches a bearer token for `scope` from the challenge's realm.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), UpstreamError> {
        let mut query = vec![format!("scope={}", encode(scope))];
        if let Some(s) = service {
            query.push(format!("service={}", encode(s)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let auth = self.credentials.as_ref().map(|(u, p)| basic(u, p));
        let resp = self
            .once(&Method::GET, &url, &["application/json"], auth.as_deref())
            .await?;
        let status = resp.status();
        let body = read_small(resp, 1 << 20).await?;
        if !status.is_success() {
            return Err(UpstreamError::Denied(format!(
                "token from {realm}: {status}"
            )));
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("token from {realm}: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UpstreamError::Protocol(format!("token from {realm}: no token in the answer"))
            })?;
        let lasts = t
            .expires_in
            .map_or(TOKEN_DEFAULT, Duration::from_secs)
            .saturating_sub(TOKEN_MARGIN);
        Ok((format!("Bearer {token}"), lasts))
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A small body (a manifest, a token, a tag list) read whole, up to `max` bytes.
pub async fn read_small(resp: Response<Incoming>, max: usize) -> Result<Bytes, UpstreamError> {
    let limited = http_body_util::Limited::new(resp.into_body(), max);
    let read = tokio::time::timeout(RESPONSE_TIMEOUT, limited.collect()).await;
    match read {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => Err(UpstreamError::Unreachable(format!(
            "reading the answer: {e}"
        ))),
        Err(_) => Err(UpstreamError::Unreachable("the answer stalled".into())),
    }
}

/// An error with its causes, which say what actually went wrong
/// (`client error (Connect)` alone does not).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&format!(": {s}"));
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            super::encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
