//! The security sections: distribution's `http.tls` and `auth`, and our own
//! access rules and authentication tuning under `privateregistry`.

use super::duration::GoDuration;
use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `http.tls`, as distribution spells it.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Tls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clientcas: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimumtls: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphersuites: Option<Value>,
    #[serde(skip_serializing)]
    pub letsencrypt: Option<Value>,
}

/// The lowest protocol version a listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinTls {
    V12,
    V13,
}

impl Tls {
    pub fn validate(&self, warnings: &mut Vec<String>) -> Result<MinTls, ConfigError> {
        if self.letsencrypt.is_some() {
            return Err(invalid(
                "http.tls.letsencrypt",
                "ACME is not supported; use certificate and key (certbot renewals are picked up automatically)",
            ));
        }
        let files = [
            ("http.tls.certificate", &self.certificate),
            ("http.tls.key", &self.key),
        ];
        super::all(files.map(|(key, path)| {
            if path.as_os_str().is_empty() {
                Err(invalid(key, "missing: give the path of a PEM file"))
            } else {
                Ok(())
            }
        }))?;
        if self.ciphersuites.is_some() {
            warnings.push(
                "http.tls.ciphersuites: ignored; only modern AEAD suites with forward secrecy are offered"
                    .into(),
            );
        }
        match self.minimumtls.as_deref() {
            None | Some("tls1.2") => Ok(MinTls::V12),
            Some("tls1.3") => Ok(MinTls::V13),
            Some(v @ ("tls1.0" | "tls1.1")) => Err(invalid(
                "http.tls.minimumtls",
                format!("{v} is insecure and not offered; use tls1.2 or tls1.3"),
            )),
            Some(v) => Err(invalid(
                "http.tls.minimumtls",
                format!("expected tls1.2 or tls1.3, got {v:?}"),
            )),
        }
    }
}

/// `auth`: distribution's providers. Only htpasswd is implemented; the
/// others are refused by name rather than served without authentication.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<Htpasswd>,
    #[serde(skip_serializing)]
    pub token: Option<Value>,
    #[serde(skip_serializing)]
    pub silly: Option<Value>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Htpasswd {
    pub realm: String,
    pub path: PathBuf,
}

impl Auth {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (kind, v) in [("token", &self.token), ("silly", &self.silly)] {
            if v.is_some() {
                return Err(invalid(
                    &format!("auth.{kind}"),
                    "not supported; use auth.htpasswd",
                ));
            }
        }
        let Some(h) = &self.htpasswd else {
            return Err(invalid("auth", "empty: configure auth.htpasswd"));
        };
        if h.path.as_os_str().is_empty() {
            return Err(invalid(
                "auth.htpasswd.path",
                "missing: give the htpasswd file",
            ));
        }
        if h.realm.is_empty()
            || h.realm.contains(['"', '\\'])
            || h.realm.chars().any(char::is_control)
        {
            return Err(invalid(
                "auth.htpasswd.realm",
                "expected a non-empty name without quotes, backslashes or control characters",
            ));
        }
        Ok(())
    }
}

/// What a rule grants on a repository.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

/// `privateregistry.access`: without it every authenticated user may do
/// everything (distribution's htpasswd behaviour); with it, only what a rule grants.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Access {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Rule {
    /// Name patterns; `*` matches any run of characters, `/` included.
    pub repositories: Vec<String>,
    /// User names; `*` is every authenticated user.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Callers without credentials.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    pub allow: Vec<Action>,
}

impl Access {
    pub fn validate(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        let checked: Vec<_> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| self.validate_rule(i, r, warnings))
            .collect();
        super::all(checked)
    }

    fn validate_rule(
        &self,
        i: usize,
        r: &Rule,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        {
            let key = |k: &str| format!("privateregistry.access.rules[{i}].{k}");
            if r.repositories.is_empty() {
                return Err(invalid(
                    &key("repositories"),
                    "missing: list name patterns such as team/* or *",
                ));
            }
            if let Some(p) = r.repositories.iter().find(|p| !valid_pattern(p)) {
                return Err(invalid(
                    &key("repositories"),
                    format!("{p:?} is not a pattern of lowercase name characters, '/' and '*'"),
                ));
            }
            if r.allow.is_empty() {
                return Err(invalid(
                    &key("allow"),
                    "missing: list of pull, push, delete",
                ));
            }
            if r.users.is_empty() && r.groups.is_empty() && !r.anonymous {
                return Err(invalid(
                    &key("users"),
                    "the rule names nobody: give users, groups or anonymous: true",
                ));
            }
            if let Some(g) = r.groups.iter().find(|g| !self.groups.contains_key(*g)) {
                return Err(invalid(
                    &key("groups"),
                    format!("group {g:?} is not defined under privateregistry.access.groups"),
                ));
            }
            if r.anonymous && r.allow.iter().any(|a| *a != Action::Pull) {
                warnings.push(format!(
                    "{}: anonymous callers may change repositories {:?}",
                    key("allow"),
                    r.repositories
                ));
            }
        }
        Ok(())
    }
}

fn valid_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' | b'*'))
}

/// `privateregistry.auth`: how credentials are checked.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct AuthTuning {
    /// How long a verified user+password pair skips bcrypt.
    pub cachettl: GoDuration,
    /// How many verified pairs are remembered.
    pub cachesize: usize,
    /// Failed logins for one user from one address allowed per
    /// `failurewindow`; then that user gets 429 from that address.
    pub maxfailures: u32,
    /// Failed logins from one address, all users together, per
    /// `failurewindow`; then every login from it gets 429. Never below
    /// `maxfailures`, so raising that alone still works as it did.
    pub maxaddressfailures: u32,
    pub failurewindow: GoDuration,
    /// bcrypt cost for `private-registry htpasswd add`.
    pub bcryptcost: u32,
}

impl Default for AuthTuning {
    fn default() -> Self {
        AuthTuning {
            cachettl: GoDuration(Duration::from_secs(300)),
            cachesize: 4096,
            maxfailures: 10,
            maxaddressfailures: 100,
            failurewindow: GoDuration(Duration::from_secs(60)),
            bcryptcost: 12,
        }
    }
}

impl AuthTuning {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(10..=31).contains(&self.bcryptcost) {
            return Err(invalid(
                "privateregistry.auth.bcryptcost",
                format!("expected 10 to 31, got {}", self.bcryptcost),
            ));
        }
        if self.maxfailures == 0 {
            return Err(invalid(
                "privateregistry.auth.maxfailures",
                "expected a positive number",
            ));
        }
        Ok(())
    }
}
