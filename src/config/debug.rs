//! `http.debug`, as distribution spells it: a second, plain-HTTP listener for
//! operators, serving Prometheus metrics (`prometheus.enabled`, at
//! `prometheus.path`) and `/debug/health`. It has no authentication, so an
//! address off the loopback interface needs `privateregistry.insecurenetwork`.

use super::listeners::parse_addr;
use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Debug {
    /// Empty: no debug listener.
    pub addr: String,
    pub prometheus: Prometheus,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Prometheus {
    pub enabled: bool,
    pub path: String,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus {
            enabled: false,
            path: "/metrics".into(),
        }
    }
}

/// The debug listener as it takes effect.
#[derive(Clone, Debug, PartialEq)]
pub struct DebugListener {
    pub addr: SocketAddr,
    /// Where metrics are served, if they are.
    pub metrics_path: Option<String>,
}

impl Debug {
    /// The listener this asks for, checked; `None` without an address.
    pub fn listener(
        &self,
        insecure_network: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Option<DebugListener>, ConfigError> {
        if self.addr.is_empty() {
            return Ok(None);
        }
        // distribution's documentation writes `localhost:5001`.
        let spelled = match self.addr.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => self.addr.clone(),
        };
        let addr = parse_addr("http.debug.addr", &spelled)?;
        if !addr.ip().is_loopback() {
            if !insecure_network {
                return Err(invalid(
                    "http.debug.addr",
                    format!(
                        "{addr} is reachable from the network, and the debug listener has neither TLS nor authentication; listen on 127.0.0.1 (and scrape through a tunnel or a local agent), or set privateregistry.insecurenetwork: true to accept the risk"
                    ),
                ));
            }
            warnings.push(format!(
                "http.debug.addr: INSECURE: metrics on {addr} are reachable from the network without TLS or authentication (privateregistry.insecurenetwork)"
            ));
        }
        let p = &self.prometheus;
        if p.enabled && (!p.path.starts_with('/') || p.path == super::DEBUG_HEALTH_PATH) {
            return Err(invalid(
                "http.debug.prometheus.path",
                format!(
                    "expected a path starting with / other than {}, got {:?}",
                    super::DEBUG_HEALTH_PATH,
                    p.path
                ),
            ));
        }
        Ok(Some(DebugListener {
            addr,
            metrics_path: p.enabled.then(|| p.path.clone()),
        }))
    }
}
