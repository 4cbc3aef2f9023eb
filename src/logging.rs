//! Where the daemon's words go. Messages: standard error (one line each, for
//! a terminal or the journal's stdout capture) or syslog with facility
//! daemon, so they land in /var/log/syslog and the journal alike. Requests:
//! with the messages, or in their own file in Combined Log Format, reopened
//! on SIGUSR1 so logrotate can move it away.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Logger {
    syslog: Mutex<Option<Syslog>>,
    access: Mutex<Option<(PathBuf, File)>>,
}

static LOGGER: Logger = Logger {
    syslog: Mutex::new(None),
    access: Mutex::new(None),
};

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut syslog = self.syslog.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = syslog.as_mut() {
            let msg = r.args().to_string();
            let _ = match r.level() {
                Level::Error => s.err(msg),
                Level::Warn => s.warning(msg),
                Level::Info => s.info(msg),
                Level::Debug | Level::Trace => s.debug(msg),
            };
            return;
        }
        let now = crate::timefmt::rfc3339(SystemTime::now());
        let target = if r.target() == "access" {
            "access"
        } else {
            "registry"
        };
        // One write per line: stderr is unbuffered, and formatting straight
        // into it cost about twenty system calls per access-log line.
        let line = format!("{now} {:<5} {target}: {}\n", r.level(), r.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Starts logging to standard error at `level`.
pub fn init(level: LevelFilter) {
    // A second call (tests) keeps the first logger and only changes the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Sends messages to syslog (`on`) or standard error; if syslog cannot be
/// reached they stay on standard error.
pub fn use_syslog(on: bool) {
    let mut current = LOGGER.syslog.lock().unwrap_or_else(|e| e.into_inner());
    if !on {
        *current = None;
        return;
    }
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "private-registry".into(),
        pid: std::process::id(),
    };
    match syslog::unix(formatter) {
        Ok(l) => *current = Some(l),
        Err(e) => {
            drop(current);
            log::warn!("syslog unavailable ({e}); logging to standard error");
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Sends access lines to `path` from now on, or with the messages if `None`.
pub fn access_file(path: Option<&Path>) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some((p.to_path_buf(), open_append(p)?)),
        None => None,
    };
    *LOGGER.access.lock().unwrap_or_else(|e| e.into_inner()) = file;
    Ok(())
}

/// Reopens the access log at its path (after logrotate moved it).
pub fn reopen() {
    let mut access = LOGGER.access.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((path, file)) = access.as_mut() {
        match open_append(path) {
            Ok(f) => {
                *file = f;
                log::info!("access log {} reopened", path.display());
            }
            Err(e) => log::error!("access log {}: cannot reopen: {e}", path.display()),
        }
    }
}

/// One served request.
pub struct Access<'a> {
    pub client: std::net::IpAddr,
    pub user: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub millis: f64,
}

/// Logs a request: a Combined Log Format line in the access file if one is
/// configured, else a message under the `access` target.
pub fn access(a: &Access) {
    let mut file = LOGGER.access.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = a.bytes.map_or("-".to_string(), |b| b.to_string());
    let Some((_, f)) = file.as_mut() else {
        drop(file);
        log::info!(
            target: "access",
            "{} {} {} {} {} {} {:.3}ms",
            a.client, a.user, a.method, a.target, a.status, bytes, a.millis
        );
        return;
    };
    let quote = |s: Option<&str>| s.map_or("-".to_string(), |s| s.replace('"', "\\\""));
    let line = format!(
        "{} - {} [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"\n",
        a.client,
        a.user,
        crate::timefmt::clf(SystemTime::now()),
        a.method,
        a.target,
        a.version,
        a.status,
        bytes,
        quote(a.referer),
        quote(a.user_agent)
    );
    let _ = f.write_all(line.as_bytes());
}
