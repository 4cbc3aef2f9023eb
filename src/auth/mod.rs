//! Authentication and authorisation: who is calling (HTTP Basic checked
//! against an htpasswd file) and what they may do (the access rules).
//! The HTTP layer asks these questions; it never reads the files itself.

pub mod access;
pub mod cache;
pub mod htpasswd;
pub mod throttle;
pub mod users;

use crate::config::Config;
use access::Policy;
use base64::Engine;
use cache::CredentialCache;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use throttle::{Reached, Throttle};
use users::{Users, UsersError};

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No authentication is configured: everything is allowed.
    Open,
    /// Authentication is configured and the request carries no credentials.
    Anonymous,
    User(String),
}

impl Caller {
    /// The user field of the access log.
    pub fn log_name(&self) -> &str {
        match self {
            Caller::User(u) => u,
            _ => "-",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Wrong user, wrong password, or an unreadable `Authorization` header.
    Invalid,
    /// Too many failures from this client; retry after this long.
    Throttled(Duration),
}

pub struct Authenticator {
    pub realm: String,
    pub policy: Policy,
    users: Users,
    cache: CredentialCache,
    throttle: Throttle,
    /// bcrypt runs on tokio's blocking pool, which file I/O shares; at most
    /// one verification per core keeps a login flood from starving storage.
    bcrypt_slots: tokio::sync::Semaphore,
}

impl Authenticator {
    /// `None` when the configuration has no `auth` section.
    pub fn from_config(c: &Config) -> Result<Option<Arc<Authenticator>>, UsersError> {
        let Some(h) = c.auth.as_ref().and_then(|a| a.htpasswd.as_ref()) else {
            return Ok(None);
        };
        let t = &c.privateregistry.auth;
        Ok(Some(Arc::new(Authenticator {
            realm: h.realm.clone(),
            policy: Policy::from_config(c.privateregistry.access.as_ref()),
            users: Users::load(&h.path)?,
            cache: CredentialCache::new(t.cachettl.0, t.cachesize),
            throttle: Throttle::new(t.maxfailures, t.maxaddressfailures, t.failurewindow.0),
            bcrypt_slots: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        })))
    }

    /// Identifies the caller from the `Authorization` header's value.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        ip: IpAddr,
    ) -> Result<Caller, AuthError> {
        let Some(value) = authorization else {
            return Ok(Caller::Anonymous);
        };
        let credentials = basic_credentials(value);
        // containers/image (skopeo, podman) answers a challenge with an empty
        // login when it has no credentials: that is an anonymous request.
        if credentials
            .as_ref()
            .is_some_and(|(u, p)| u.is_empty() && p.is_empty())
        {
            return Ok(Caller::Anonymous);
        }
        let Some((user, password)) = credentials else {
            self.throttle.check(ip, "").map_err(AuthError::Throttled)?;
            return Err(self.failed(ip, "", "(unreadable Authorization header)"));
        };
        self.throttle
            .check(ip, &user)
            .map_err(AuthError::Throttled)?;
        let table = self.users.table();
        let cached = self.cache.contains(&user, &password, table.generation);
        crate::metrics::credential_cache(cached);
        if cached {
            return Ok(Caller::User(user));
        }
        let (hash, exists) = table.lookup(&user);
        let (hash, pw) = (hash.to_string(), password.clone());
        let slot = self.bcrypt_slots.acquire().await;
        let ok = tokio::task::spawn_blocking(move || htpasswd::verify(&hash, &pw))
            .await
            .unwrap_or(false);
        drop(slot);
        if ok && exists {
            self.cache.insert(&user, &password, table.generation);
            Ok(Caller::User(user))
        } else {
            Err(self.failed(ip, &user, &format!("{user:?}")))
        }
    }

    /// `shown` is how the log names the user.
    fn failed(&self, ip: IpAddr, user: &str, shown: &str) -> AuthError {
        log::warn!("auth: failed login for user {shown} from {ip}");
        let secs = self.throttle.window().as_secs();
        match self.throttle.fail(ip, user) {
            Reached::User(n) => log::warn!(
                "auth: {n} failed logins for user {shown} from {ip}; answering 429 for that user from there until its {secs}s window ends"
            ),
            Reached::Address(n) => log::warn!(
                "auth: {n} failed logins from {ip}; answering 429 to every login from there until its {secs}s window ends"
            ),
            Reached::None => {}
        }
        AuthError::Invalid
    }

    /// Re-reads the htpasswd file if it changed (blocking: bcrypt).
    pub fn reload_if_changed(&self) {
        self.users.reload_if_changed();
    }
}

/// `Basic base64(user:password)`; the scheme is case-insensitive.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            basic_credentials("Basic YWxpY2U6cDpzcw=="),
            Some(("alice".into(), "p:ss".into()))
        );
        assert_eq!(
            basic_credentials("basic  YWxpY2U6cA=="),
            Some(("alice".into(), "p".into()))
        );
        assert_eq!(basic_credentials("Basic YWxpY2U="), None, "no colon");
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }
}
