//! The daemon: checks storage, loads certificates and users, binds every
//! listener, serves until SIGTERM/SIGINT and then lets in-flight requests
//! finish within `http.draintimeout`. SIGHUP and file changes reload the
//! certificate and the htpasswd file without dropping connections.

mod connection;
mod idle;
mod listen;

use crate::api::{Api, Settings};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::storage::Registry;
use crate::storage::driver::filesystem::FilesystemDriver;
use crate::tls::reload::TlsState;
use crate::tls::{TlsError, TlsFiles};
use connection::Shared;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("storage at {root} is not usable: {source}")]
    Storage {
        root: String,
        source: crate::storage::StorageError,
    },
    #[error(transparent)]
    Bind(#[from] listen::BindError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    #[error("auth: {0}")]
    Users(#[from] crate::auth::users::UsersError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// What can be reloaded while serving.
struct Reloadable {
    tls: Option<Arc<TlsState>>,
    auth: Option<Arc<Authenticator>>,
}

impl Reloadable {
    /// Polls the files; bcrypt and file reads stay off the async workers.
    async fn reload_if_changed(&self) {
        let (tls, auth) = (self.tls.clone(), self.auth.clone());
        let _ = tokio::task::spawn_blocking(move || {
            tls.iter().for_each(|t| t.reload_if_changed());
            auth.iter().for_each(|a| a.reload_if_changed());
        })
        .await;
    }

    async fn reload(&self) {
        let (tls, auth) = (self.tls.clone(), self.auth.clone());
        let _ = tokio::task::spawn_blocking(move || {
            tls.iter().for_each(|t| {
                t.reload("SIGHUP");
            });
            auth.iter().for_each(|a| a.reload());
        })
        .await;
    }
}

pub async fn run(config: Config) -> Result<(), ServeError> {
    let listeners = config.listeners()?;
    let root = config.root_directory();
    let registry = Registry::new(Arc::new(FilesystemDriver::new(&root)));
    registry
        .check()
        .await
        .map_err(|source| ServeError::Storage {
            root: root.display().to_string(),
            source,
        })?;
    let tls = match &config.http.tls {
        Some(t) if listeners.iter().any(|l| l.tls) => {
            let min = t.validate(&mut vec![])?;
            Some(Arc::new(TlsState::load(TlsFiles::from_config(t, min))?))
        }
        _ => None,
    };
    let auth = Authenticator::from_config(&config)?;
    let api = Arc::new(Api {
        registry,
        settings: Settings::from_config(&config),
        auth: auth.clone(),
    });
    let limits = &config.privateregistry.limits;
    let slots = Arc::new(Semaphore::new(limits.maxconnections));
    let (tx, rx) = mpsc::channel(64);
    for l in &listeners {
        let socket = listen::bind(l).await?;
        let addr = socket.local_addr().unwrap_or(l.addr);
        let kind = if l.tls { "tls" } else { "plain" };
        log::info!("serving on {addr} ({kind}) for listener {:?}", l.name);
        tokio::spawn(listen::accept_loop(
            socket,
            l.tls,
            slots.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    log::info!(
        "ready: {} listener(s), storage at {}, authentication {}",
        listeners.len(),
        root.display(),
        if auth.is_some() { "on" } else { "off" }
    );
    let shared = Arc::new(Shared::new(api, tls.clone(), limits));
    serve(rx, shared, Reloadable { tls, auth }, config.drain_timeout()).await
}

async fn serve(
    mut incoming: mpsc::Receiver<listen::Accepted>,
    shared: Arc<Shared>,
    reloadable: Reloadable,
    drain: std::time::Duration,
) -> Result<(), ServeError> {
    let sig = |k| signal(k).map_err(ServeError::Signal);
    let (mut term, mut int, mut hup) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
    );
    let mut poll = tokio::time::interval(crate::watch::INTERVAL);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            c = incoming.recv() => match c {
                Some(c) => {
                    tokio::spawn(connection::serve(shared.clone(), c, graceful.watcher()));
                }
                None => break,
            },
            _ = poll.tick() => reloadable.reload_if_changed().await,
            _ = hup.recv() => {
                log::info!("SIGHUP: reloading certificate and users");
                reloadable.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Closing the channel stops every accept loop and releases the sockets.
    drop(incoming);
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
