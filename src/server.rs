//! The daemon: checks storage, binds the listener, serves HTTP/1.1 (and h2)
//! connections, and on SIGTERM/SIGINT stops accepting and lets in-flight
//! requests finish within `http.draintimeout`.

use crate::api::{self, Api, Settings};
use crate::config::Config;
use crate::storage::Registry;
use crate::storage::driver::filesystem::FilesystemDriver;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("storage at {root} is not usable: {source}")]
    Storage {
        root: String,
        source: crate::storage::StorageError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

pub async fn run(config: Config) -> Result<(), ServeError> {
    let addr = config.listen_addr()?;
    let root = config.root_directory();
    let registry = Registry::new(Arc::new(FilesystemDriver::new(&root)));
    registry
        .check()
        .await
        .map_err(|source| ServeError::Storage {
            root: root.display().to_string(),
            source,
        })?;
    let listener = bind(addr).await?;
    let api = Arc::new(Api {
        registry,
        settings: Settings::from_config(&config),
    });
    log::info!(
        "serving on {} with storage at {}",
        listener.local_addr().map_or(addr, |a| a),
        root.display()
    );
    serve(listener, api, config.drain_timeout()).await
}

/// Binds `addr`; `[::]` falls back to `0.0.0.0` on hosts without IPv6.
async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    match TcpListener::bind(addr).await {
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            log::debug!("IPv6 bind failed ({e}); trying {v4}");
            TcpListener::bind(v4)
                .await
                .map_err(|source| ServeError::Bind { addr: v4, source })
        }
        r => r.map_err(|source| ServeError::Bind { addr, source }),
    }
}

async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    drain: std::time::Duration,
) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    log::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        let svc = service_fn(move |req| api::handle(api.clone(), req, peer));
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    log::info!("shutting down: draining in-flight requests (up to {drain:?})");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("drain timeout reached; closing remaining connections");
    }
    log::info!("stopped");
    Ok(())
}
