//! The daemon: checks storage, loads certificates and users, takes its
//! listeners from systemd or binds them, tells systemd when it is ready, and
//! serves until SIGTERM/SIGINT, then (behind a load balancer, for
//! `privateregistry.shutdowndelay`) fails `/healthz` while still serving,
//! and lets in-flight requests finish within `http.draintimeout`. SIGHUP re-reads the configuration, the htpasswd file
//! and the certificates without dropping connections; SIGUSR1 reopens the
//! access log.

mod connection;
mod debug;
mod idle;
mod listen;
mod maintenance;
mod plain;
mod runtime;
mod slots;
mod threads;
mod watchdog;

use crate::config::Config;
use crate::config::listeners::Listener;
use crate::storage::Registry;
use crate::systemd::{self, activation};
use connection::Shared;
use runtime::{Current, Runtime, Services};
use slots::Slots;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("storage at {root} is not usable: {source}")]
    Storage {
        root: String,
        source: crate::storage::StorageError,
    },
    #[error("{0}")]
    StorageSetup(String),
    #[error(transparent)]
    Bind(#[from] listen::BindError),
    #[error(transparent)]
    Activation(#[from] activation::ActivationError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("auth: {0}")]
    Users(#[from] crate::auth::users::UsersError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("cannot start connection threads: {0}")]
    Threads(std::io::Error),
}

/// How to read the configuration again on SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// One listening socket with what it serves.
struct Bound {
    listener: Listener,
    socket: tokio::net::TcpListener,
}

pub async fn run(
    config: Config,
    mut passed: Vec<activation::Passed>,
    reload: Reload,
) -> Result<(), ServeError> {
    let configured = config.listeners()?;
    let debug_listener = config.debug_listener(&mut vec![])?;
    let backend = config.backend();
    let limit = config.privateregistry.limits.upload_limit();
    let driver = crate::storage::driver::open(&backend).map_err(ServeError::StorageSetup)?;
    let read_only = config.storage.maintenance.readonly.enabled;
    let registry = Arc::new(
        Registry::new(driver)
            .with_upload_limit(limit)
            .with_read_only(read_only)
            .with_blob_cache(config.storage.blob_descriptor_cache()),
    );
    registry
        .check()
        .await
        .map_err(|source| ServeError::Storage {
            root: backend.describe(),
            source,
        })?;
    let services = Services::new(registry.clone(), &config)?;
    let runtime = {
        let (c, s) = (&config, &services);
        tokio::task::block_in_place(|| Runtime::build(c, s, None))?
    };
    let debug_socket = match &debug_listener {
        Some(l) => Some(debug::bind(l, &mut passed).await?),
        None => None,
    };
    let bound = bind_all(&configured, passed).await?;
    let absent = configured
        .iter()
        .filter(|l| !bound.iter().any(|b| b.listener.name == l.name))
        .map(|l| format!("{} ({:?})", l.addr, l.name))
        .collect();
    let current = Arc::new(Current::new(runtime));
    let slots = Slots::new(config.privateregistry.limits.maxconnections);
    let (tx, rx) = mpsc::channel(64);
    for b in &bound {
        let addr = b.socket.local_addr().unwrap_or(b.listener.addr);
        let kind = if b.listener.tls { "tls" } else { "plain" };
        log::info!(
            "serving on {addr} ({kind}) for listener {:?}",
            b.listener.name
        );
    }
    let rescan = config.privateregistry.usagerescan.0;
    let mut background = vec![services.usage.spawn(rescan)];
    if let (Some(socket), Some(l)) = (debug_socket, debug_listener) {
        background.push(debug::spawn(socket, l, &services));
    }
    let probe = watchdog::probe_target(&bound);
    let threads = threads::Threads::start().map_err(ServeError::Threads)?;
    for b in bound {
        let task = listen::accept_loop(b.socket, b.listener, slots.clone(), tx.clone());
        tokio::spawn(task);
    }
    drop(tx);
    let shared = Arc::new(Shared::new(current, &config.privateregistry.limits));
    let state = State {
        shared: shared.clone(),
        services,
        config,
        reload,
        slots,
        absent,
    };
    log::info!("ready: {}", state.status());
    systemd::ready(&state.status());
    let watchdog = watchdog::spawn(probe);
    let (purging, collection) = if state.config.storage.maintenance.readonly.enabled {
        log::info!("read-only mode: no upload purging or scheduled garbage collection");
        (None, None)
    } else {
        (
            maintenance::spawn_upload_purging(
                state.services.registry.clone(),
                state.services.schedule.clone(),
                &state.config.storage.maintenance.uploadpurging,
            ),
            maintenance::spawn_scheduled_gc(
                state.services.registry.clone(),
                state.services.schedule.clone(),
                &state.config.privateregistry.gc,
            ),
        )
    };
    let drain = state.config.drain_timeout();
    background.extend(purging);
    if let Some(m) = &state.services.mirrors
        && !state.config.storage.maintenance.readonly.enabled
    {
        background.push(maintenance::spawn_mirror_expiry(
            m.registry(),
            state.services.schedule.clone(),
            &state.config.privateregistry.mirrorcache,
            state.config.privateregistry.gc.grace.0,
        ));
    }
    let result = serve(rx, state, watchdog, &threads).await;
    for task in background {
        task.abort();
    }
    if let Some(c) = collection {
        c.stop(drain).await;
    }
    result
}

/// Serves an accepted connection on a connection thread.
fn hand_off(shared: &Arc<Shared>, threads: &threads::Threads, c: listen::Accepted) {
    let shared = shared.clone();
    threads.spawn(move || connection::serve(shared, c));
}

/// How recently a balancer must have asked `/healthz` for a shutdown to
/// wait for it.
const BALANCER_SEEN: std::time::Duration = std::time::Duration::from_secs(60);

/// Makes `/healthz` fail, then, if a balancer is checking it, keeps
/// accepting and serving for `privateregistry.shutdowndelay` so the
/// balancer stops sending requests here before the listeners close:
/// otherwise a request it sends meanwhile meets a refused connection or a
/// closed keep-alive one, which it can retry only if it kept the body.
async fn announce_shutdown(
    mut incoming: mpsc::Receiver<listen::Accepted>,
    state: &State,
    threads: &threads::Threads,
) -> mpsc::Receiver<listen::Accepted> {
    crate::api::health::begin_draining();
    let delay = state.config.privateregistry.shutdowndelay.0;
    if delay.is_zero() || !crate::api::health::asked_within(BALANCER_SEEN) {
        return incoming;
    }
    log::info!(
        "shutting down: /healthz fails now; serving {delay:?} more for the load balancer to notice"
    );
    let until = tokio::time::sleep(delay);
    let mut until = std::pin::pin!(until);
    loop {
        tokio::select! {
            c = incoming.recv() => match c {
                Some(c) => hand_off(&state.shared, threads, c),
                None => return incoming,
            },
            _ = &mut until => return incoming,
        }
    }
}

/// Takes the sockets systemd passed, or binds the configured addresses.
async fn bind_all(
    configured: &[Listener],
    passed: Vec<activation::Passed>,
) -> Result<Vec<Bound>, ServeError> {
    if passed.is_empty() {
        let mut bound = vec![];
        for l in configured {
            let socket = listen::bind(l).await?;
            bound.push(Bound {
                listener: l.clone(),
                socket,
            });
        }
        return Ok(bound);
    }
    let assigned = activation::assign(passed, configured)?;
    for l in configured
        .iter()
        .filter(|l| !assigned.iter().any(|(a, _)| a.name == l.name))
    {
        log::warn!(
            "listener {:?} ({}) was not passed by systemd (its socket unit failed?); not listening there",
            l.name,
            l.addr
        );
    }
    assigned
        .into_iter()
        .map(|(listener, socket)| {
            let key = listener.key.clone();
            let addr = listener.addr;
            let socket = tokio::net::TcpListener::from_std(socket)
                .map_err(|source| listen::BindError::new(key, addr, source))?;
            Ok(Bound { listener, socket })
        })
        .collect()
}

/// What the serving loop needs besides the connections.
struct State {
    shared: Arc<Shared>,
    services: Services,
    config: Config,
    reload: Reload,
    slots: Arc<Slots>,
    /// Listeners configured but not listening: systemd passed no socket
    /// for them (its socket unit failed, say because the port is taken).
    absent: Vec<String>,
}

impl State {
    /// The one-line summary for systemd's `STATUS=`.
    fn status(&self) -> String {
        let rt = self.shared.current.get();
        let tls = match &rt.tls {
            Some(t) if !t.ready() => ", TLS waiting for a certificate",
            _ => "",
        };
        let open = self.slots.open();
        let served = self.shared.requests.load(Ordering::Relaxed);
        let absent = match self.absent.as_slice() {
            [] => String::new(),
            a => format!(
                "; NOT listening on {}: no socket from systemd (see its .socket unit)",
                a.join(", ")
            ),
        };
        format!("serving: {open} connection(s) open, {served} request(s) served{tls}{absent}")
    }

    /// Re-reads the configuration and swaps in what it describes. Listeners
    /// and the storage root stay as they are until a restart.
    async fn reload(&mut self) {
        systemd::reloading();
        let result = tokio::task::block_in_place(|| {
            let config = (self.reload)().map_err(|e| format!("config: {e}"))?;
            let old = self.shared.current.get();
            let rt =
                Runtime::build(&config, &self.services, Some(&old)).map_err(|e| e.to_string())?;
            Ok::<_, String>((config, rt))
        });
        match result {
            Ok((config, rt)) => {
                self.warn_restart_needed(&config);
                crate::apply_logging(&config);
                self.shared.current.replace(rt);
                self.config = config;
                log::info!("reloaded configuration, users and certificates");
            }
            Err(e) => log::error!("reload failed, keeping the running configuration: {e}"),
        }
        systemd::ready(&self.status());
    }

    fn warn_restart_needed(&self, new: &Config) {
        if new.root_directory() != self.config.root_directory() {
            log::warn!("storage root changed; takes effect on restart");
        }
        if new.listeners().ok() != self.config.listeners().ok() {
            log::warn!("listeners changed; take effect on restart");
        }
        if new.storage.maintenance.uploadpurging != self.config.storage.maintenance.uploadpurging {
            log::warn!("storage.maintenance.uploadpurging changed; takes effect on restart");
        }
        if new.privateregistry.gc != self.config.privateregistry.gc {
            log::warn!("privateregistry.gc changed; takes effect on restart");
        }
        if new.http.debug != self.config.http.debug
            || new.privateregistry.usagerescan != self.config.privateregistry.usagerescan
        {
            log::warn!(
                "http.debug or privateregistry.usagerescan changed; takes effect on restart"
            );
        }
        if new.privateregistry.limits != self.config.privateregistry.limits {
            log::warn!("privateregistry.limits changed; take effect on restart");
        }
    }
}

async fn serve(
    mut incoming: mpsc::Receiver<listen::Accepted>,
    mut state: State,
    watchdog: Option<tokio::task::JoinHandle<()>>,
    threads: &threads::Threads,
) -> Result<(), ServeError> {
    let sig = |k| signal(k).map_err(ServeError::Signal);
    let (mut term, mut int, mut hup, mut usr1) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
        sig(SignalKind::user_defined1())?,
    );
    let mut poll = tokio::time::interval(crate::watch::INTERVAL);
    let mut last_status = String::new();
    loop {
        tokio::select! {
            c = incoming.recv() => match c {
                Some(c) => hand_off(&state.shared, threads, c),
                None => break,
            },
            _ = poll.tick() => {
                let rt = state.shared.current.get();
                tokio::task::block_in_place(|| rt.reload_files());
                let status = state.status();
                if status != last_status {
                    systemd::status(&status);
                    last_status = status;
                }
            }
            _ = hup.recv() => {
                log::info!("SIGHUP: reloading");
                state.reload().await;
            }
            _ = usr1.recv() => crate::logging::reopen(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    systemd::stopping();
    let incoming = announce_shutdown(incoming, &state, threads).await;
    // Closing the channel stops every accept loop and releases the sockets.
    drop(incoming);
    let drain = state.config.drain_timeout();
    log::info!("shutting down: draining in-flight requests (up to {drain:?})");
    if tokio::time::timeout(drain, state.slots.drain())
        .await
        .is_err()
    {
        log::warn!("drain timeout reached; closing remaining connections");
    }
    log::info!("stopped");
    Ok(())
}
