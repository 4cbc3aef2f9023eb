//! Where the daemon listens and what it tolerates from clients: our
//! `privateregistry.listeners` (several sockets, each plain or TLS) and
//! `privateregistry.limits`. Without `listeners`, distribution's single
//! `http.addr` applies, TLS when `http.tls` is set.

use super::duration::GoDuration;
use super::{Config, ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ListenerConfig {
    /// Names the listener in logs and, under systemd, matches the socket's
    /// `FileDescriptorName=`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub addr: String,
    pub tls: bool,
    /// `false` serves this listener without authentication, as if no `auth`
    /// were configured: for a loopback listener the host itself uses.
    #[serde(default = "yes")]
    pub auth: bool,
    /// Nobody logs in here: every request is anonymous, admitted only by
    /// the access rules' `anonymous` entries, and `/v2/` answers without a
    /// challenge. For clients that cannot log in, as Docker's engine cannot
    /// to a `registry-mirrors` entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

fn yes() -> bool {
    true
}

/// A listener resolved from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub tls: bool,
    /// Whether requests on it must authenticate (when `auth` is configured).
    pub auth: bool,
    /// Whether every request on it is anonymous (see [`ListenerConfig::anonymous`]).
    pub anonymous: bool,
    /// The key that configured it, for messages.
    pub key: String,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Request line plus headers; larger requests get 431.
    pub maxheaderbytes: usize,
    /// Request target; longer ones get 414.
    pub maxurlbytes: usize,
    /// Time allowed for a client to send a request's headers (and to finish
    /// the TLS handshake); defeats slowloris.
    pub headertimeout: GoDuration,
    /// A connection on which nothing moves in either direction for this long
    /// is closed, mid-request included, so a stalled upload frees its slot.
    pub idletimeout: GoDuration,
    /// Connections served at once across all listeners; when all are taken
    /// the longest idle gives way, and more wait only while all are busy.
    pub maxconnections: usize,
    /// The most one blob upload may hold, all its requests together; 0 for
    /// no limit (distribution has none). Beyond it, 413.
    pub maxuploadbytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            maxheaderbytes: 32 << 10,
            maxurlbytes: 8 << 10,
            headertimeout: GoDuration(Duration::from_secs(10)),
            idletimeout: GoDuration(Duration::from_secs(120)),
            maxconnections: 1024,
            maxuploadbytes: 0,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (
                "maxheaderbytes",
                self.maxheaderbytes >= 8192,
                "at least 8192",
            ),
            ("maxurlbytes", self.maxurlbytes >= 256, "at least 256"),
            (
                "maxconnections",
                self.maxconnections > 0,
                "a positive number",
            ),
            (
                "headertimeout",
                !self.headertimeout.0.is_zero(),
                "a positive duration",
            ),
            (
                "idletimeout",
                !self.idletimeout.0.is_zero(),
                "a positive duration",
            ),
        ];
        super::all(checks.iter().map(|(k, ok, want)| {
            super::positive(&format!("privateregistry.limits.{k}"), *ok, want)
        }))
    }
}

/// The `i`th entry of `privateregistry.listeners`, its address parsed.
fn resolve((i, l): (usize, &ListenerConfig)) -> Result<Listener, ConfigError> {
    let key = format!("privateregistry.listeners[{i}]");
    if l.anonymous && !l.auth {
        return Err(invalid(
            &format!("{key}.anonymous"),
            "set together with auth: false: an anonymous listener applies the access rules' anonymous entries, auth: false none at all; keep one",
        ));
    }
    Ok(Listener {
        name: if l.name.is_empty() {
            format!("listener{i}")
        } else {
            l.name.clone()
        },
        addr: parse_addr(&format!("{key}.addr"), &l.addr)?,
        tls: l.tls,
        auth: l.auth,
        anonymous: l.anonymous,
        key,
    })
}

/// distribution's `:5000` means every interface.
pub fn parse_addr(key: &str, addr: &str) -> Result<SocketAddr, ConfigError> {
    let full = if addr.starts_with(':') {
        format!("[::]{addr}")
    } else {
        addr.to_string()
    };
    full.parse().map_err(|_| {
        invalid(
            key,
            format!("expected host:port such as 127.0.0.1:5000 or :5000, got {addr:?}"),
        )
    })
}

impl Config {
    /// Every listener, checked: TLS ones need `http.tls`, and one reachable
    /// from the network needs TLS and authentication unless the operator
    /// opts out with `privateregistry.insecurenetwork`.
    pub fn listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let ours = &self.privateregistry.listeners;
        let resolved = if ours.is_empty() {
            vec![
                parse_addr("http.addr", &self.http.addr).map(|addr| Listener {
                    name: "default".into(),
                    addr,
                    tls: self.http.tls.is_some(),
                    auth: true,
                    anonymous: false,
                    key: "http.addr".into(),
                }),
            ]
        } else {
            ours.iter().enumerate().map(resolve).collect()
        };
        let mut listeners = vec![];
        let mut errors = vec![];
        for l in resolved {
            match l.and_then(|l| self.check_listener(&l).map(|()| l)) {
                Ok(l) => listeners.push(l),
                Err(e) => errors.push(Err(e)),
            }
        }
        super::all(errors)?;
        Ok(listeners)
    }

    fn check_listener(&self, l: &Listener) -> Result<(), ConfigError> {
        if l.anonymous && self.auth.is_none() {
            return Err(invalid(
                &format!("{}.anonymous", l.key),
                "needs an auth section: without one every request is admitted anyway",
            ));
        }
        if l.tls && self.http.tls.is_none() {
            return Err(invalid(
                &format!("{}.tls", l.key),
                "a TLS listener needs http.tls.certificate and http.tls.key",
            ));
        }
        self.check_exposure(l)
    }

    fn check_exposure(&self, l: &Listener) -> Result<(), ConfigError> {
        let loopback = l.addr.ip().is_loopback();
        let auth = self.auth.is_some() && l.auth;
        if loopback || (l.tls && auth) || self.privateregistry.insecurenetwork {
            return Ok(());
        }
        let missing = match (l.tls, auth) {
            (false, false) => "without TLS and without authentication",
            (false, true) => "without TLS, so passwords would cross the network in clear",
            _ => "without authentication",
        };
        Err(invalid(
            &l.key,
            format!(
                "{} is reachable from the network {missing}; listen on 127.0.0.1, configure http.tls and auth.htpasswd, or set privateregistry.insecurenetwork: true to accept the risk",
                l.addr
            ),
        ))
    }
}

impl Limits {
    /// `maxuploadbytes` as the storage layer takes it.
    pub fn upload_limit(&self) -> Option<u64> {
        (self.maxuploadbytes > 0).then_some(self.maxuploadbytes)
    }
}
