//! The certificate in service, swapped without a restart. Each handshake
//! takes the configuration current at that moment, so connections already
//! open keep theirs and new ones get the renewed certificate. A new
//! certificate that fails to load never replaces a working one.

use super::suites::Configs;
use super::{TlsError, TlsFiles, load};
use crate::watch::Watched;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub struct TlsState {
    files: TlsFiles,
    /// `None` while waiting for a certificate that does not exist yet.
    current: RwLock<Option<Arc<Configs>>>,
    watched: Mutex<(Watched, Option<String>)>,
    expiry_checked: Mutex<Instant>,
}

const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

impl TlsState {
    /// Loads the certificate for the first time; any error stops the start,
    /// except, with `wait`, certificate files that do not exist yet.
    pub fn load(files: TlsFiles, wait: bool) -> Result<TlsState, TlsError> {
        let watched = Watched::new(files.paths());
        let missing = !files.certificate.exists() || !files.key.exists();
        let config = if wait && missing {
            log::warn!(
                "tls: no certificate at {} yet; TLS listeners answer with a handshake failure until it exists. Create one with: private-registry-certgen HOST",
                files.certificate.display()
            );
            None
        } else {
            let (config, warnings) = load(&files)?;
            warnings.iter().for_each(|w| log::warn!("tls: {w}"));
            log::info!("tls: certificate {} loaded", files.certificate.display());
            Some(config)
        };
        Ok(TlsState {
            files,
            current: RwLock::new(config),
            watched: Mutex::new((watched, None)),
            expiry_checked: Mutex::new(Instant::now()),
        })
    }

    pub fn config(&self) -> Option<Arc<Configs>> {
        self.current.read().expect("tls lock").clone()
    }

    /// Whether a certificate is in service.
    pub fn ready(&self) -> bool {
        self.current.read().expect("tls lock").is_some()
    }

    pub fn same_files(&self, other: &TlsFiles) -> bool {
        self.files.paths() == other.paths() && self.files.min == other.min
    }

    /// Reloads if a file changed since the last successful load. A failure
    /// is retried on every call (a renewal may be half-written) but logged
    /// once per distinct error.
    pub fn reload_if_changed(&self) {
        let changed = self.watched.lock().expect("tls lock").0.changed();
        if changed {
            self.reload("files changed");
        }
        self.warn_if_expiring();
    }

    /// Reloads now; returns whether the new certificate is in service. A
    /// reload asked for explicitly (SIGHUP) always logs its outcome.
    pub fn reload(&self, why: &str) -> bool {
        let mut w = self.watched.lock().expect("tls lock");
        let snapshot = w.0.snapshot();
        match load(&self.files) {
            Ok((config, warnings)) => {
                warnings.iter().for_each(|m| log::warn!("tls: {m}"));
                *self.current.write().expect("tls lock") = Some(config);
                w.0.mark_seen(snapshot);
                w.1 = None;
                log::info!("tls: certificate reloaded ({why})");
                true
            }
            Err(e) => {
                let msg = e.to_string();
                let asked = why != "files changed";
                if asked || w.1.as_deref() != Some(msg.as_str()) {
                    log::error!(
                        "tls: keeping the certificate in service; reload failed ({why}): {msg}"
                    );
                    w.1 = Some(msg);
                }
                false
            }
        }
    }

    /// Repeats the expiry warnings once a day while serving, so a renewal
    /// that silently stopped working shows up in the log before clients fail.
    fn warn_if_expiring(&self) {
        let mut last = self.expiry_checked.lock().expect("tls lock");
        if last.elapsed() < EXPIRY_CHECK_EVERY {
            return;
        }
        *last = Instant::now();
        if let Some(leaf) = self.leaf_der() {
            for w in super::expiry_warnings(&self.files.certificate, &leaf) {
                log::warn!("tls: {w}");
            }
        }
    }

    fn leaf_der(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        super::certificates(&self.files.certificate)
            .ok()?
            .into_iter()
            .next()
    }
}
