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
pub mod mirror;
pub mod proxies;
pub mod s3;
pub mod security;
mod suggest;

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
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// Every mistake in the file at once, so one round of edits fixes them all.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ConfigError>),
    /// Errors in a file that also has keys nothing reads: a misspelt key
    /// often explains a missing or default value.
    #[error("{error}; {}", unknown.join("; "))]
    WithUnknown {
        error: Box<ConfigError>,
        unknown: Vec<String>,
    },
}

impl ConfigError {
    /// The single errors this stands for, to report one per line.
    pub fn each(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(v) => v.iter().flat_map(ConfigError::each).collect(),
            ConfigError::WithUnknown { error, .. } => error.each(),
            e => vec![e],
        }
    }

    fn with_unknown(self, unknown: Vec<String>) -> ConfigError {
        if unknown.is_empty() {
            self
        } else {
            ConfigError::WithUnknown {
                error: Box::new(self),
                unknown,
            }
        }
    }

    /// The unknown-key warnings that came with the errors.
    pub fn unknown(&self) -> &[String] {
        match self {
            ConfigError::WithUnknown { unknown, .. } => unknown,
            _ => &[],
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Runs every check rather than stopping at the first failure: `Ok` if all
/// passed, else every error, flattened.
pub fn all(results: impl IntoIterator<Item = Result<(), ConfigError>>) -> Result<(), ConfigError> {
    let errors: Vec<_> = results
        .into_iter()
        .filter_map(Result::err)
        .flat_map(flatten)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(several(errors))
    }
}

fn several(mut errors: Vec<ConfigError>) -> ConfigError {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        ConfigError::Several(errors)
    }
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
    /// distribution's pull-through cache of one upstream (`mirror` module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<mirror::Proxy>,
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
    #[serde(skip_serializing)]
    pub s3: Option<s3::S3>,
    /// distribution's other drivers: refused by name in validation.
    #[serde(skip_serializing)]
    pub inmemory: Option<Value>,
    #[serde(skip_serializing)]
    pub azure: Option<Value>,
    #[serde(skip_serializing)]
    pub gcs: Option<Value>,
    #[serde(skip_serializing)]
    pub swift: Option<Value>,
    #[serde(skip_serializing)]
    pub oss: Option<Value>,
}

/// Where the images live, as configured.
pub enum Backend {
    Filesystem(PathBuf),
    S3(Box<s3::S3>),
}

impl Backend {
    /// Where the images live, for messages.
    pub fn describe(&self) -> String {
        match self {
            Backend::Filesystem(root) => root.display().to_string(),
            Backend::S3(s3) => format!("s3://{}/{} at {}", s3.bucket, s3.prefix(), s3.endpoint()),
        }
    }
}

impl Storage {
    /// `storage.redirect.disable`: blob GETs stream through the registry
    /// instead of redirecting to the store (only object stores redirect).
    pub fn redirect_disabled(&self) -> bool {
        self.redirect
            .as_ref()
            .and_then(|r| r.get("disable"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `storage.cache.blobdescriptor: inmemory`, as distribution reads it:
    /// this process may answer blob `HEAD`s on a bucket from what it saw in
    /// the last second. Off without it, since a link another node removed
    /// would be reported for that long (see `storage::cache::Seen`).
    pub fn blob_descriptor_cache(&self) -> bool {
        self.blob_descriptor() == Some("inmemory")
    }

    fn blob_descriptor(&self) -> Option<&str> {
        self.cache.as_ref()?.get("blobdescriptor")?.as_str()
    }

    fn validate(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        if let Some(other) = self.blob_descriptor().filter(|v| *v != "inmemory") {
            warnings.push(format!(
                "storage.cache.blobdescriptor: {other:?} is not supported (only inmemory); blob lookups are not cached"
            ));
        }
        match (&self.filesystem, &self.s3) {
            (Some(_), Some(_)) => Err(invalid(
                "storage",
                "both filesystem and s3 are configured: keep one driver",
            )),
            (_, Some(s3)) => s3.validate(warnings),
            _ => Ok(()),
        }
    }

    fn unsupported_driver(&self) -> Option<&'static str> {
        let drivers = [
            ("inmemory", &self.inmemory),
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
    /// The reverse proxies whose `X-Forwarded-*` headers are believed
    /// (addresses or CIDR blocks); none by default.
    pub trustedproxies: Vec<String>,
    /// On SIGTERM, how long `/healthz` answers 503 while requests are still
    /// served, before the listeners close: the time a load balancer needs to
    /// take the node out (HAProxy's default check: 3 failures, 2 s apart).
    /// Waited only if `/healthz` was asked within the last minute, so a
    /// registry without a balancer stops at once.
    pub shutdowndelay: GoDuration,
    /// The built-in web UI under `/ui/` (distribution has no such key).
    pub ui: Ui,
    /// Garbage collection run by the daemon on a schedule (off by default).
    pub gc: ScheduledGc,
    /// Upstream registries cached under a repository prefix each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<mirror::MirrorEntry>,
    pub mirrorcache: mirror::MirrorCache,
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
            trustedproxies: vec![],
            shutdowndelay: GoDuration(Duration::from_secs(6)),
            ui: Ui::default(),
            gc: ScheduledGc::default(),
            mirrors: vec![],
            mirrorcache: mirror::MirrorCache::default(),
        }
    }
}

/// A configuration with the warnings found while loading it.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// The keys this registry does not read (also among `warnings`): what
    /// `check-config --strict` refuses, for CI.
    pub unknown: Vec<String>,
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
        let parsed = Parsed::from(doc);
        let unknown = parsed.unknown.clone();
        parsed
            .validated()
            .map_err(|error| error.with_unknown(unknown))
    }

    fn validate(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
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
        self.warn_unshared_secret(warnings);
        all([
            self.validate_version(warnings),
            self.validate_supported(),
            self.storage.validate(warnings),
            self.validate_security(warnings),
            self.validate_http(),
            self.trusted_proxies().map(drop),
            self.privateregistry.gc.validate(),
            self.upstreams(warnings).map(drop),
            positive(
                "privateregistry.usagerescan",
                !self.privateregistry.usagerescan.0.is_zero(),
                "a positive duration",
            ),
            positive(
                "privateregistry.maxpagesize",
                self.privateregistry.maxpagesize > 0,
                "a positive number",
            ),
        ])
    }

    fn validate_version(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        match &self.version {
            None => warnings.push("version: missing; assuming 0.1".into()),
            Some(Value::String(s)) if s == "0.1" => {}
            Some(Value::Number(n)) if n.as_f64() == Some(0.1) => {}
            Some(v) => return Err(invalid("version", format!("expected 0.1, got {v:?}"))),
        }
        Ok(())
    }

    /// distribution features this registry refuses by name rather than ignore.
    fn validate_supported(&self) -> Result<(), ConfigError> {
        let mut refused = vec![];
        if let Some(driver) = self.storage.unsupported_driver() {
            refused.push(invalid(
                &format!("storage.{driver}"),
                "unknown or unsupported storage driver (this version supports filesystem and s3)",
            ));
        }
        all(refused.into_iter().map(Err))
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let mut wrong = vec![];
        if self.http.net != "tcp" {
            wrong.push(invalid(
                "http.net",
                format!("expected tcp, got {:?}", self.http.net),
            ));
        }
        if let Some(host) = &self.http.host
            && !(host.starts_with("http://") || host.starts_with("https://"))
        {
            wrong.push(invalid(
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
            wrong.push(invalid(
                "http.prefix",
                "serving under a path prefix is not supported yet",
            ));
        }
        all(wrong.into_iter().map(Err))
    }

    /// `http.secret` keys what must verify on any node serving the same
    /// name. Only a bucket is shared by several nodes, so only then does a
    /// missing secret break something.
    fn warn_unshared_secret(&self, warnings: &mut Vec<String>) {
        if self.storage.s3.is_some() && self.secret().is_none() {
            warnings.push(
                "http.secret: not set, and storage.s3 lets several nodes serve one bucket: each node then makes its own random key for the web UI's delete confirmations, so a confirmation page shown by one node is refused (403) by another, and by the same node after a restart; set the same http.secret on every node (blob uploads keep their state in the bucket and work across nodes either way)"
                    .into(),
            );
        }
    }

    /// `http.secret`, if set and not empty; a number or boolean is taken as
    /// written, as distribution reads the key into a string.
    pub fn secret(&self) -> Option<String> {
        let text = match self.http.secret.as_ref()? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some(text).filter(|s| !s.is_empty())
    }

    /// The pull-through cache's upstreams (`proxy:` or
    /// `privateregistry.mirrors`), checked.
    pub fn upstreams(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<mirror::Upstream>, ConfigError> {
        mirror::upstreams(self.proxy.as_ref(), &self.privateregistry.mirrors, warnings)
    }

    /// `privateregistry.trustedproxies`, parsed.
    pub fn trusted_proxies(&self) -> Result<proxies::TrustedProxies, ConfigError> {
        proxies::TrustedProxies::parse(&self.privateregistry.trustedproxies)
    }

    fn validate_security(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        let access = match &self.privateregistry.access {
            Some(_) if self.auth.is_none() => Err(invalid(
                "privateregistry.access",
                "access rules need authentication: configure auth.htpasswd",
            )),
            Some(access) => access.validate(warnings),
            None => Ok(()),
        };
        all([
            self.http
                .tls
                .as_ref()
                .map_or(Ok(()), |t| t.validate(warnings).map(drop)),
            self.auth.as_ref().map_or(Ok(()), Auth::validate),
            access,
            self.privateregistry.auth.validate(),
            self.privateregistry.limits.validate(),
            self.debug_listener(warnings).map(drop),
            self.validate_listeners(warnings),
        ])
    }

    fn validate_listeners(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
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

    pub fn backend(&self) -> Backend {
        match &self.storage.s3 {
            Some(s3) => Backend::S3(Box::new(s3.clone())),
            None => Backend::Filesystem(self.root_directory()),
        }
    }

    pub fn drain_timeout(&self) -> Duration {
        self.http
            .draintimeout
            .map_or(Duration::from_secs(30), |d| d.0)
    }

    /// The configuration as it takes effect: the keys whose default is
    /// decided only when used show the value that applies, not `null` or
    /// nothing, so the operator reads what the registry will do.
    pub fn to_yaml(&self) -> String {
        fn effective(v: impl Serialize) -> Value {
            serde_yaml_ng::to_value(v).unwrap_or_default()
        }
        let mut v = effective(self);
        v["version"] = Value::from(0.1);
        v["log"]["level"] = effective(self.log_level());
        match &self.storage.s3 {
            Some(s3) => v["storage"]["s3"] = s3.masked(),
            None => v["storage"]["filesystem"]["rootdirectory"] = effective(self.root_directory()),
        }
        v["http"]["draintimeout"] = effective(GoDuration(self.drain_timeout()));
        if let Some(p) = v.get_mut("proxy") {
            mask_password(p);
        }
        if let Some(Value::Sequence(ms)) = v["privateregistry"].get_mut("mirrors") {
            ms.iter_mut().for_each(mask_password);
        }
        if self.secret().is_some() {
            // It keys the UI's delete tokens: output that gets pasted into
            // tickets must not carry it.
            v["http"]["secret"] = "********".into();
        }
        serde_yaml_ng::to_string(&v).unwrap_or_default()
    }
}

/// Upstream passwords never reach `check-config`'s output.
fn mask_password(v: &mut Value) {
    if v.get("password").is_some() {
        v["password"] = "********".into();
    }
}

pub(crate) fn positive(key: &str, ok: bool, expected: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(key, format!("expected {expected}")))
    }
}

fn flatten(e: ConfigError) -> Vec<ConfigError> {
    match e {
        ConfigError::Several(v) => v,
        e => vec![e],
    }
}

/// Whether one key lies within the other (`a.b` and `a.b.c`, `a.b[0]`).
fn overlap(a: &str, b: &str) -> bool {
    let within = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    within(a, b) || within(b, a)
}

/// A document deserialized as far as it goes.
struct Parsed {
    /// `None` if a wrong value could not be dropped to go on.
    config: Option<Config>,
    errors: Vec<ConfigError>,
    /// The keys dropped for their wrong values, their defaults in effect.
    dropped: Vec<String>,
    unknown: Vec<String>,
}

impl From<Value> for Parsed {
    /// serde stops at the first wrong value; so each is recorded, its key
    /// dropped and the rest deserialized again, to report every one at once.
    fn from(mut doc: Value) -> Parsed {
        let mut errors = vec![];
        let mut dropped = vec![];
        loop {
            let mut unknown = vec![];
            let mut note = |p: serde_ignored::Path| unknown.push(unknown_key(&p));
            let de = serde_ignored::Deserializer::new(doc.clone(), &mut note);
            let e = match serde_path_to_error::deserialize::<_, Config>(de) {
                Ok(config) => {
                    return Parsed {
                        config: Some(config),
                        errors,
                        dropped,
                        unknown,
                    };
                }
                Err(e) => e,
            };
            let removed = drop_key(&mut doc, e.path());
            errors.push(invalid(&e.path().to_string(), e.into_inner().to_string()));
            match removed {
                Some(key) if errors.len() < 100 => dropped.push(key),
                _ => {
                    return Parsed {
                        config: None,
                        errors,
                        dropped,
                        unknown,
                    };
                }
            }
        }
    }
}

impl Parsed {
    /// The configuration validated, or every error: those of deserializing
    /// and those of validating, less the follow-on errors of keys dropped
    /// for their wrong values, which would fail again as missing.
    fn validated(self) -> Result<Loaded, ConfigError> {
        let Some(config) = self.config else {
            return Err(several(self.errors));
        };
        let mut warnings = self.unknown.clone();
        let validated = all([config.validate(&mut warnings)]).err();
        let dropped = &self.dropped;
        let follow_on = |e: &ConfigError| {
            e.key()
                .is_some_and(|k| dropped.iter().any(|d| overlap(k, d)))
        };
        let rest = validated.map_or(vec![], flatten);
        let rest = rest.into_iter().filter(|e| !follow_on(e));
        all(self.errors.into_iter().chain(rest).map(Err))?;
        Ok(Loaded {
            config,
            warnings,
            unknown: self.unknown,
        })
    }
}

/// Removes from `doc` the innermost key on `path`; returns that key.
fn drop_key(doc: &mut Value, path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let last = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let mut steps = vec![];
    let mut at = doc;
    for s in &segments[..last] {
        at = match s {
            Segment::Map { key } => {
                steps.push(suggest::Step::Key(key.clone()));
                at.get_mut(key.as_str())?
            }
            Segment::Seq { index } => {
                steps.push(suggest::Step::Index(*index));
                at.get_mut(*index)?
            }
            _ => return None,
        };
    }
    let Segment::Map { key } = segments[last] else {
        return None;
    };
    at.as_mapping_mut()?.remove(key.as_str())?;
    Some(suggest::key_of(&steps, key))
}

/// The warning for a key nothing reads, with the known key it is closest to.
fn unknown_key(p: &serde_ignored::Path) -> String {
    let steps = suggest::steps(p);
    let key = match steps.split_last() {
        Some((suggest::Step::Key(k), parent)) => suggest::key_of(parent, k),
        _ => p.to_string(),
    };
    match suggest::suggestion(&steps) {
        Some(meant) => format!("{key}: unknown key, ignored; did you mean {meant}?"),
        None => format!("{key}: unknown key, ignored"),
    }
}

#[cfg(test)]
mod tests;
