//! What a configuration turns into while serving — the API with its
//! settings and users, and the TLS state — and its replacement on SIGHUP.
//! Connections take the current one when they are accepted; requests already
//! running finish with the one they started with.

use super::ServeError;
use crate::api::health::Health;
use crate::api::{Api, Settings};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::storage::Registry;
use crate::tls::TlsFiles;
use crate::tls::reload::TlsState;
use std::sync::{Arc, RwLock};

/// What lives as long as the daemon, across reloads.
#[derive(Clone)]
pub struct Services {
    pub registry: Arc<Registry>,
    pub usage: Arc<crate::usage::Usage>,
    pub health: Arc<Health>,
    /// This node's side of the turns nodes sharing the store take at periodic jobs.
    pub schedule: crate::storage::schedule::Schedule,
    /// The pull-through cache's upstreams; changing them takes a restart.
    pub mirrors: Option<Arc<crate::mirror::Mirrors>>,
}

impl Services {
    pub fn new(registry: Arc<Registry>, config: &Config) -> Result<Services, ServeError> {
        let schedule = crate::storage::schedule::Schedule::this_process();
        let mut upstreams = config.upstreams(&mut vec![])?;
        if config.storage.maintenance.readonly.enabled && !upstreams.is_empty() {
            log::info!(
                "read-only mode: the pull-through cache serves what it holds and fetches nothing"
            );
            upstreams.clear();
        }
        let mirrors = crate::mirror::Mirrors::new(upstreams, registry.clone())
            .map_err(|e| ServeError::StorageSetup(format!("pull-through cache: {e}")))?;
        Ok(Services {
            usage: crate::usage::Usage::new(registry.clone(), schedule.clone()),
            schedule,
            health: Arc::new(Health::default()),
            mirrors: mirrors.map(Arc::new),
            registry,
        })
    }
}

pub struct Runtime {
    pub api: Arc<Api>,
    pub tls: Option<Arc<TlsState>>,
}

impl Runtime {
    /// Builds from `config`. With a `previous` runtime (SIGHUP) whose
    /// certificate files are the same, its TLS state is reloaded in place, so
    /// a bad certificate keeps the one in service. Blocking: reads files and
    /// may run bcrypt.
    pub fn build(
        config: &Config,
        services: &Services,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, ServeError> {
        let tls = match &config.http.tls {
            Some(t) => {
                let files = TlsFiles::from_config(t, t.validate(&mut vec![])?);
                match previous.and_then(|p| p.tls.as_ref()) {
                    Some(old) if old.same_files(&files) => {
                        old.reload("SIGHUP");
                        Some(old.clone())
                    }
                    _ => Some(Arc::new(TlsState::load(
                        files,
                        config.privateregistry.awaitcertificate,
                    )?)),
                }
            }
            None => None,
        };
        let auth = Authenticator::from_config(config)?;
        let ca_certificate = match &config.privateregistry.cacertificate {
            Some(p) => std::fs::read(p).ok().or_else(|| {
                // Before private-registry-certgen has run, that is expected.
                let level = if config.privateregistry.awaitcertificate {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                let path = p.display();
                log::log!(
                    level,
                    "{path}: CA certificate not readable; /ca.crt answers 404"
                );
                None
            }),
            None => None,
        };
        let api = Api {
            registry: services.registry.clone(),
            settings: Settings::from_config(config, ca_certificate),
            auth,
            usage: services.usage.clone(),
            health: services.health.clone(),
            mirrors: services.mirrors.clone(),
        };
        Ok(Runtime {
            api: Arc::new(api),
            tls,
        })
    }

    /// Re-reads the htpasswd file and certificates if they changed.
    pub fn reload_files(&self) {
        if let Some(t) = &self.tls {
            t.reload_if_changed();
        }
        if let Some(a) = &self.api.auth {
            a.reload_if_changed();
        }
    }
}

/// The runtime in service.
pub struct Current(RwLock<Arc<Runtime>>);

impl Current {
    pub fn new(r: Runtime) -> Current {
        Current(RwLock::new(Arc::new(r)))
    }

    pub fn get(&self) -> Arc<Runtime> {
        self.0.read().expect("runtime lock").clone()
    }

    pub fn replace(&self, r: Runtime) {
        *self.0.write().expect("runtime lock") = Arc::new(r);
    }
}
