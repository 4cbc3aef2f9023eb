//! The debug listener (`http.debug`): Prometheus metrics and
//! `/debug/health`, plain HTTP without authentication, on an address the
//! configuration has checked (loopback unless the operator opted in).
//! Under socket activation a passed socket named `debug`, or bound to the
//! same address, is used; otherwise the daemon binds it itself.

use crate::api::body::{self, Body};
use crate::api::health::Health;
use crate::config::DEBUG_HEALTH_PATH;
use crate::config::debug::DebugListener;
use crate::storage::Registry;
use crate::systemd::activation::Passed;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Scrapers and probes need few connections; more wait in the backlog.
const MAX_CONNECTIONS: usize = 16;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the passed socket meant for the debug listener out of `passed`,
/// or binds `l.addr`.
pub async fn bind(
    l: &DebugListener,
    passed: &mut Vec<Passed>,
) -> Result<TcpListener, super::listen::BindError> {
    let err = |e| super::listen::BindError::new("http.debug.addr".into(), l.addr, e);
    let mine = passed
        .iter()
        .position(|p| p.name == "debug" || p.socket.local_addr().is_ok_and(|a| a == l.addr));
    match mine {
        Some(i) => TcpListener::from_std(passed.remove(i).socket).map_err(err),
        None => TcpListener::bind(l.addr).await.map_err(err),
    }
}

/// Announces the debug listener and serves it until the task is aborted.
pub fn spawn(
    socket: TcpListener,
    l: DebugListener,
    services: &super::runtime::Services,
) -> tokio::task::JoinHandle<()> {
    let metrics = match &l.metrics_path {
        Some(p) => format!("metrics at {p}, "),
        None => String::new(),
    };
    log::info!(
        "debug listener on {} (plain, no authentication): {metrics}{DEBUG_HEALTH_PATH}",
        socket.local_addr().unwrap_or(l.addr),
    );
    let (r, h) = (services.registry.clone(), services.health.clone());
    tokio::spawn(serve(socket, l, r, h))
}

async fn serve(
    listener: TcpListener,
    config: DebugListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let config = Arc::new(config);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("debug listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (config, registry, health) = (config.clone(), registry.clone(), health.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (config, registry, health) = (config.clone(), registry.clone(), health.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        respond(&config, &registry, &health, &req).await,
                    )
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                log::debug!("debug connection from {peer}: {e}");
            }
        });
    }
}

async fn respond<B>(
    config: &DebugListener,
    registry: &Registry,
    health: &Health,
    req: &Request<B>,
) -> Response<Body> {
    let path = req.uri().path();
    if path == DEBUG_HEALTH_PATH {
        return health.respond(registry, req.method()).await;
    }
    if config.metrics_path.as_deref() != Some(path) {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    match *req.method() {
        Method::GET | Method::HEAD => {
            let mut r = text(StatusCode::OK, crate::metrics::render());
            r.headers_mut().insert(
                "Content-Type",
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            if *req.method() == Method::HEAD {
                *r.body_mut() = body::empty();
            }
            r
        }
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        ),
    }
}

fn text(status: StatusCode, s: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", s.len())
        .body(body::full(s))
        .expect("valid response")
}
