//! The health check for load balancers: `GET /healthz` on every listener,
//! unauthenticated, answering 200 `ok` when storage can be written and read
//! back and 503 `unavailable` otherwise, and nothing more. The storage check
//! behind it runs at most once per [`TTL`] however often it is asked, so the
//! endpoint cannot be used to hammer storage. Once shutdown begins it
//! answers 503 at once, while the daemon still serves, so a balancer takes
//! the node out before its connections go (see `server::serve`).

use super::body;
use crate::storage::Registry;
use hyper::{Method, Response, StatusCode};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const PATH: &str = "/healthz";

/// How long a check's result is reused.
pub const TTL: Duration = Duration::from_secs(2);

/// Set when the process begins to shut down: process-wide, since a reload
/// builds a new [`Health`] and the answer must not come back with it.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// When `/healthz` was last asked, in milliseconds since [`epoch`] (0: never).
static LAST_ASKED_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

/// From now on `/healthz` answers 503: the process is shutting down.
pub fn begin_draining() {
    DRAINING.store(true, Ordering::SeqCst);
}

/// Whether the process is shutting down.
pub fn draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// Whether something (a load balancer) asked `/healthz` within `window`:
/// only then is it worth waiting for it to notice a shutdown.
pub fn asked_within(window: Duration) -> bool {
    let last = LAST_ASKED_MS.load(Ordering::Relaxed);
    last != 0
        && epoch()
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
            < window
}

fn note_asked() {
    let ms = epoch().elapsed().as_millis() as u64;
    LAST_ASKED_MS.store(ms.max(1), Ordering::Relaxed);
}

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
        note_asked();
        let draining = draining();
        let (status, text): (_, &[u8]) = match *method {
            Method::GET | Method::HEAD if draining => {
                (StatusCode::SERVICE_UNAVAILABLE, b"shutting down\n")
            }
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
