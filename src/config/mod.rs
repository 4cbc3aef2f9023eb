//! Configuration: distribution's `config.yml` keys wherever they overlap, so a
//! file written for `registry:2` works unchanged, plus our own additions under
//! `privateregistry:`. Unknown keys are warnings that name the key; wrong values
//! are errors that name the key and say what was expected, found before
//! anything is bound.

pub mod collection;
pub mod debug;
pub mod duration;
pub mod env;
pub mod listeners;
pub mod security;

use collection::ScheduledGc;
use duration::GoDuration;
use listeners::{Limits, ListenerConfig};
use security::{Access, Auth, AuthTuning, Tls};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/private-registry/config.yml";
pub const DEFAULT_ROOT: &str = "/var/lib/private-registry";
/// The health check on the debug listener, where distribution has it.
pub const DEBUG_HEALTH_PATH: &str = "/debug/health";
/// The developer configuration, built in so `serve --dev` works from a checkout.
pub const DEV_CONFIG: &str = include_str!("../../etc/dev.yml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub version: Option<Value>,
    pub log: Log,
    /// Deprecated in distribution in favour of `log.level`; still honoured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loglevel: Option<LogLevel>,
    pub storage: Storage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    pub http: Http,
    pub privateregistry: Ours,
    /// distribution sections we accept so its files load, but do not act on.
    #[serde(skip_serializing)]
    pub notifications: Option<Value>,
    #[serde(skip_serializing)]
    pub redis: Option<Value>,
    #[serde(skip_serializing)]
    pub health: Option<Value>,
    #[serde(skip_serializing)]
    pub proxy: Option<Value>,
    #[serde(skip_serializing)]
    pub compatibility: Option<Value>,
    #[serde(skip_serializing)]
    pub validation: Option<Value>,
    #[serde(skip_serializing)]
    pub middleware: Option<Value>,
    #[serde(skip_serializing)]
    pub reporting: Option<Value>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Log {
    pub level: Option<LogLevel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatter: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    pub accesslog: AccessLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Value>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AccessLog {
    pub disabled: bool,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[serde(alias = "panic", alias = "fatal")]
    Error,
    #[serde(alias = "warning")]
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Storage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    pub delete: Delete,
    pub maintenance: Maintenance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Value>,
    /// distribution's other drivers: refused by name in validation.
    #[serde(skip_serializing)]
    pub inmemory: Option<Value>,
    #[serde(skip_serializing)]
    pub s3: Option<Value>,
    #[serde(skip_serializing)]
    pub azure: Option<Value>,
    #[serde(skip_serializing)]
    pub gcs: Option<Value>,
    #[serde(skip_serializing)]
    pub swift: Option<Value>,
    #[serde(skip_serializing)]
    pub oss: Option<Value>,
}

impl Storage {
    fn unsupported_driver(&self) -> Option<&'static str> {
        let drivers = [
            ("inmemory", &self.inmemory),
            ("s3", &self.s3),
            ("azure", &self.azure),
            ("gcs", &self.gcs),
            ("swift", &self.swift),
            ("oss", &self.oss),
        ];
        drivers.iter().find(|(_, v)| v.is_some()).map(|(k, _)| *k)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Filesystem {
    pub rootdirectory: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxthreads: Option<u32>,
}

impl Default for Filesystem {
    fn default() -> Self {
        Filesystem {
            rootdirectory: PathBuf::from(DEFAULT_ROOT),
            maxthreads: None,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Delete {
    pub enabled: bool,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Maintenance {
    pub uploadpurging: UploadPurging,
    pub readonly: ReadOnly,
}

/// distribution's defaults: on, purge uploads older than a week, every day.
#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct UploadPurging {
    pub enabled: bool,
    pub age: GoDuration,
    pub interval: GoDuration,
    pub dryrun: bool,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: GoDuration(Duration::from_secs(168 * 3600)),
            interval: GoDuration(Duration::from_secs(24 * 3600)),
            dryrun: false,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ReadOnly {
    pub enabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Http {
    pub addr: String,
    pub net: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Value>,
    pub relativeurls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draintimeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<debug::Debug>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2c: Option<Value>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            addr: "127.0.0.1:5000".into(),
            net: "tcp".into(),
            host: None,
            prefix: None,
            secret: None,
            relativeurls: false,
            draintimeout: None,
            headers: BTreeMap::new(),
            tls: None,
            debug: None,
            http2: None,
            h2c: None,
        }
    }
}

/// Settings of our own, with no counterpart in distribution.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Ours {
    /// Largest manifest accepted, in bytes (distribution 3 and the OCI spec suggest 4 MiB).
    pub manifestmaxbytes: usize,
    /// Largest `n` honoured on `tags/list` and `_catalog`; larger requests are capped.
    pub maxpagesize: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerConfig>,
    /// The explicit opt-in for a listener reachable from the network
    /// without TLS or without authentication.
    pub insecurenetwork: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    pub auth: AuthTuning,
    pub limits: Limits,
    /// Send messages to syslog (facility daemon) instead of standard error.
    pub syslog: bool,
    /// Write the access log to this file, in Combined Log Format, reopened on
    /// SIGUSR1 for logrotate; without it access lines go with the messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accesslog: Option<PathBuf>,
    /// With the certificate files still missing at start, serve the plain
    /// listeners and bring TLS up once they appear, instead of refusing to
    /// start. Meant for the package, whose certificate comes after install.
    pub awaitcertificate: bool,
    /// A CA certificate served at `/ca.crt` (behind authentication) so
    /// clients can fetch what they should trust.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cacertificate: Option<PathBuf>,
    /// How often storage usage is recomputed in full, to catch changes made
    /// by other processes (`garbage-collect`); the daemon's own pushes and
    /// deletes are counted within a second.
    pub usagerescan: GoDuration,
    /// The built-in web UI under `/ui/` (distribution has no such key).
    pub ui: Ui,
    /// Garbage collection run by the daemon on a schedule (off by default).
    pub gc: ScheduledGc,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Ui {
    pub enabled: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui { enabled: true }
    }
}

impl Default for Ours {
    fn default() -> Self {
        Ours {
            manifestmaxbytes: 4 << 20,
            maxpagesize: 1000,
            listeners: vec![],
            insecurenetwork: false,
            access: None,
            auth: AuthTuning::default(),
            limits: Limits::default(),
            syslog: false,
            accesslog: None,
            awaitcertificate: false,
            cacertificate: None,
            usagerescan: GoDuration(Duration::from_secs(60)),
            ui: Ui::default(),
            gc: ScheduledGc::default(),
        }
    }
}

/// A configuration with the warnings found while loading it.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads `path`, applies `REGISTRY_*` overrides from `vars`, and validates.
    pub fn load(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), vars)
    }

    pub fn parse(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        if doc.is_null() {
            doc = Value::Mapping(Default::default());
        }
        env::apply(&mut doc, vars);
        let mut warnings = vec![];
        let mut note_unknown =
            |p: serde_ignored::Path| warnings.push(format!("{p}: unknown key, ignored"));
        let de = serde_ignored::Deserializer::new(doc, &mut note_unknown);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            invalid(&key, e.into_inner().to_string())
        })?;
        config.validate(&mut warnings)?;
        Ok(Loaded { config, warnings })
    }

    fn validate(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        match &self.version {
            None => warnings.push("version: missing; assuming 0.1".into()),
            Some(Value::String(s)) if s == "0.1" => {}
            Some(Value::Number(n)) if n.as_f64() == Some(0.1) => {}
            Some(v) => return Err(invalid("version", format!("expected 0.1, got {v:?}"))),
        }
        let unused = [
            ("notifications", &self.notifications),
            ("redis", &self.redis),
            ("health", &self.health),
            ("compatibility", &self.compatibility),
            ("validation", &self.validation),
            ("middleware", &self.middleware),
            ("reporting", &self.reporting),
        ];
        for (key, _) in unused.iter().filter(|(_, v)| v.is_some()) {
            warnings.push(format!(
                "{key}: distribution section accepted but not used by this registry"
            ));
        }
        if self.proxy.is_some() {
            return Err(invalid(
                "proxy",
                "pull-through cache mode is not supported yet",
            ));
        }
        if let Some(driver) = self.storage.unsupported_driver() {
            return Err(invalid(
                &format!("storage.{driver}"),
                "unknown or unsupported storage driver (this version supports filesystem)",
            ));
        }
        if self.storage.maintenance.readonly.enabled {
            return Err(invalid(
                "storage.maintenance.readonly.enabled",
                "read-only mode is not supported yet",
            ));
        }
        if self.http.net != "tcp" {
            return Err(invalid(
                "http.net",
                format!("expected tcp, got {:?}", self.http.net),
            ));
        }
        self.validate_security(warnings)?;
        if let Some(host) = &self.http.host
            && !(host.starts_with("http://") || host.starts_with("https://"))
        {
            return Err(invalid(
                "http.host",
                format!(
                    "expected an absolute URL such as https://registry.example.com, got {host:?}"
                ),
            ));
        }
        if self
            .http
            .prefix
            .as_deref()
            .is_some_and(|p| p != "/" && !p.is_empty())
        {
            return Err(invalid(
                "http.prefix",
                "serving under a path prefix is not supported yet",
            ));
        }
        self.privateregistry.gc.validate()?;
        if self.privateregistry.usagerescan.0.is_zero() {
            return Err(invalid(
                "privateregistry.usagerescan",
                "expected a positive duration",
            ));
        }
        if self.privateregistry.maxpagesize == 0 {
            return Err(invalid(
                "privateregistry.maxpagesize",
                "expected a positive number",
            ));
        }
        Ok(())
    }

    fn validate_security(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if let Some(tls) = &self.http.tls {
            tls.validate(warnings)?;
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        if let Some(access) = &self.privateregistry.access {
            if self.auth.is_none() {
                return Err(invalid(
                    "privateregistry.access",
                    "access rules need authentication: configure auth.htpasswd",
                ));
            }
            access.validate(warnings)?;
        }
        self.privateregistry.auth.validate()?;
        self.privateregistry.limits.validate()?;
        self.debug_listener(warnings)?;
        let listeners = self.listeners()?;
        if self.http.tls.is_some() && !listeners.iter().any(|l| l.tls) {
            warnings.push(
                "http.tls: set, but every privateregistry.listeners entry is plain (tls: false)"
                    .into(),
            );
        }
        for l in listeners {
            if self.privateregistry.insecurenetwork
                && !l.addr.ip().is_loopback()
                && !(l.tls && l.auth && self.auth.is_some())
            {
                warnings.push(format!(
                    "{}: INSECURE: {} is reachable from the network without TLS or authentication (privateregistry.insecurenetwork)",
                    l.key, l.addr
                ));
            }
        }
        Ok(())
    }

    /// The debug listener (`http.debug`), if configured, checked.
    pub fn debug_listener(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<Option<debug::DebugListener>, ConfigError> {
        match &self.http.debug {
            Some(d) => d.listener(self.privateregistry.insecurenetwork, warnings),
            None => Ok(None),
        }
    }

    pub fn log_level(&self) -> LogLevel {
        self.log.level.or(self.loglevel).unwrap_or(LogLevel::Info)
    }

    pub fn root_directory(&self) -> PathBuf {
        self.storage
            .filesystem
            .as_ref()
            .map_or_else(|| PathBuf::from(DEFAULT_ROOT), |f| f.rootdirectory.clone())
    }

    pub fn drain_timeout(&self) -> Duration {
        self.http
            .draintimeout
            .map_or(Duration::from_secs(30), |d| d.0)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
