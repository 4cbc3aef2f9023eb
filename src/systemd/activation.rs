//! Socket activation: listening sockets systemd opened for us. They let an
//! unprivileged daemon serve :443 and let connections queue while it
//! (re)starts. Each socket is matched to a configured listener by its
//! `FileDescriptorName=` (one .socket unit names all its sockets alike, so the
//! package ships one unit per listener), or else by its address.

use crate::config::listeners::Listener;
use std::net::TcpListener;
use std::os::fd::FromRawFd;

/// A socket systemd passed, with the name it gave it.
pub struct Passed {
    pub name: String,
    pub socket: TcpListener,
}

/// Takes the sockets passed to this process. Must run before any thread
/// starts: it clears the `LISTEN_*` variables so children do not inherit them.
pub fn take() -> std::io::Result<Vec<Passed>> {
    if std::env::var_os("LISTEN_FDS").is_none() {
        return Ok(vec![]);
    }
    let fds: Vec<_> = sd_notify::listen_fds_with_names()?.collect();
    // SAFETY: called from main before the runtime or any other thread exists,
    // so nothing reads the environment concurrently.
    unsafe {
        for v in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
            std::env::remove_var(v);
        }
    }
    fds.into_iter()
        .map(|(fd, name)| {
            // SAFETY: systemd hands these descriptors to this process alone,
            // and each is wrapped exactly once.
            let socket = unsafe { TcpListener::from_raw_fd(fd) };
            socket.set_nonblocking(true)?;
            Ok(Passed { name, socket })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "systemd passed socket {name:?} ({addr}), which matches no configured listener by name or address"
    )]
    Unmatched { name: String, addr: String },
    #[error("systemd passed socket {name:?}, which is not a TCP listening socket: {source}")]
    NotTcp {
        name: String,
        source: std::io::Error,
    },
}

/// Pairs each passed socket with the configured listener it stands for.
pub fn assign(
    passed: Vec<Passed>,
    configured: &[Listener],
) -> Result<Vec<(Listener, TcpListener)>, ActivationError> {
    passed
        .into_iter()
        .map(|p| {
            let addr = p
                .socket
                .local_addr()
                .map_err(|source| ActivationError::NotTcp {
                    name: p.name.clone(),
                    source,
                })?;
            let by_name = configured.iter().find(|l| l.name == p.name);
            let by_addr = || {
                configured.iter().find(|l| {
                    l.addr == addr || (l.addr.ip().is_unspecified() && l.addr.port() == addr.port())
                })
            };
            match by_name.or_else(by_addr) {
                Some(l) => Ok((l.clone(), p.socket)),
                None => Err(ActivationError::Unmatched {
                    name: p.name,
                    addr: addr.to_string(),
                }),
            }
        })
        .collect()
}
