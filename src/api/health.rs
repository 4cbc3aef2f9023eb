//! The health check for load balancers: `GET /healthz` on every listener,
//! unauthenticated, answering 200 `ok` when storage can be written and read
//! back and 503 `unavailable` otherwise, and nothing more. The storage check
//! behind it runs at most once per [`TTL`] however often it is asked, so the
//! endpoint cannot be used to hammer storage.

use super::body;
use crate::storage::Registry;
use hyper::{Method, Response, StatusCode};
use std::time::{Duration, Instant};

pub const PATH: &str = "/healthz";

/// How long a check's result is reused.
pub const TTL: Duration = Duration::from_secs(2);

/// The last check's result; the lock also makes concurrent askers wait for
/// one check instead of running their own.
#[derive(Default)]
pub struct Health(tokio::sync::Mutex<Option<(Instant, bool)>>);

impl Health {
    /// Whether storage is usable, checked at most once per [`TTL`].
    pub async fn healthy(&self, registry: &Registry) -> bool {
        let mut last = self.0.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < TTL
        {
            return ok;
        }
        let ok = match registry.check().await {
            Ok(()) => true,
            Err(e) => {
                log::error!("health check: storage is not usable: {e}");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        ok
    }

    /// The response to a health request.
    pub async fn respond(&self, registry: &Registry, method: &Method) -> Response<body::Body> {
        let (status, text): (_, &[u8]) = match *method {
            Method::GET | Method::HEAD if self.healthy(registry).await => (StatusCode::OK, b"ok\n"),
            Method::GET | Method::HEAD => (StatusCode::SERVICE_UNAVAILABLE, b"unavailable\n"),
            _ => (StatusCode::METHOD_NOT_ALLOWED, b"method not allowed\n"),
        };
        let b = Response::builder()
            .status(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", text.len())
            .header("Cache-Control", "no-store");
        let body = if *method == Method::HEAD {
            body::empty()
        } else {
            body::full(text.to_vec())
        };
        b.body(body).expect("valid response")
    }
}
