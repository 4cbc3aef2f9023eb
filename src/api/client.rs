//! Who made a request and which origin they addressed, resolved once per
//! request. Behind a reverse proxy the TCP peer is the proxy, so the client's
//! address, scheme and host come from its `X-Forwarded-*` headers — but only
//! when the peer is in `privateregistry.trustedproxies`: anyone else could
//! write those headers to forge their address in the access log, escape the
//! login throttle, or point our URLs at another host.

use crate::config::proxies::{KEY, TrustedProxies};
use hyper::HeaderMap;
use hyper::http::request::Parts;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FOR: &str = "x-forwarded-for";
const PROTO: &str = "x-forwarded-proto";
const HOST: &str = "x-forwarded-host";

/// The caller as far as we can tell, kept in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer, or behind a trusted proxy the client it names.
    pub ip: IpAddr,
    /// `https` or `http`, as the client spoke to us or to the proxy.
    pub scheme: &'static str,
    /// `host[:port]` the client addressed, if known.
    pub host: Option<String>,
    /// Whether a trusted proxy told us the scheme or host: then the public
    /// origin is known even where we would otherwise answer with paths.
    pub forwarded: bool,
}

impl Client {
    /// Resolves the caller of `req`, which arrived from `peer`; `tls` says
    /// whether it came over TLS.
    pub fn resolve(req: &Parts, peer: IpAddr, tls: bool, trusted: &TrustedProxies) -> Client {
        let h = &req.headers;
        let own_host = first(h, "host")
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .filter(|v| valid_host(v))
            .map(str::to_string);
        let own_scheme = if tls { "https" } else { "http" };
        if !trusted.trusts(peer) {
            warn_untrusted(h, peer);
            return Client {
                ip: peer,
                scheme: own_scheme,
                host: own_host,
                forwarded: false,
            };
        }
        let scheme = first(h, PROTO).and_then(scheme);
        let host = first(h, HOST).filter(|v| valid_host(v)).map(str::to_string);
        Client {
            ip: forwarded_for(&hops(h), peer, trusted),
            forwarded: scheme.is_some() || host.is_some(),
            scheme: scheme.unwrap_or(own_scheme),
            host: host.or(own_host),
        }
    }

    /// The client of a request [`super::handle`] has resolved.
    pub fn of(req: &Parts) -> &Client {
        req.extensions
            .get::<Client>()
            .expect("api::handle resolves the client first")
    }

    /// `path` as an absolute URL at the origin the client addressed.
    pub fn url(&self, path: &str) -> Option<String> {
        let host = self.host.as_ref()?;
        Some(format!("{}://{host}{path}", self.scheme))
    }
}

/// The first value of header `name` (proxies append to a list; the first is
/// what the client-facing proxy saw).
fn first<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = h.get(name)?.to_str().ok()?;
    let v = v.split(',').next()?.trim();
    (!v.is_empty()).then_some(v)
}

fn scheme(v: &str) -> Option<&'static str> {
    if v.eq_ignore_ascii_case("https") {
        Some("https")
    } else if v.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// A plausible `host[:port]`: it goes into `Location` headers and pages.
fn valid_host(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// Every `X-Forwarded-For` entry, left (furthest) to right (nearest).
fn hops(h: &HeaderMap) -> Vec<&str> {
    h.get_all(FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// Walks the hops from the nearest while the address in hand is a trusted
/// proxy: the first untrusted one is the client. An entry we cannot read
/// stops the walk at the last address we could.
pub fn forwarded_for(hops: &[&str], peer: IpAddr, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer;
    for hop in hops.iter().rev() {
        if !trusted.trusts(client) {
            break;
        }
        match address(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// An entry: an address, possibly bracketed or with a port.
fn address(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// A peer we do not trust sent forwarding headers: either a proxy the
/// operator forgot to list or a client forging them. Said at most once a
/// minute, so a flood of forged requests cannot flood the log.
fn warn_untrusted(h: &HeaderMap, peer: IpAddr) {
    const EVERY: Duration = Duration::from_secs(60);
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let Some(name) = [FOR, PROTO, HOST].into_iter().find(|n| h.contains_key(*n)) else {
        return;
    };
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|t| t.elapsed() < EVERY) {
        return;
    }
    *last = Some(Instant::now());
    log::warn!(
        "request from {peer} carries {name}: ignored, since {peer} is not in {KEY}; if it is your reverse proxy, add it there (said at most once a minute)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let e: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&e).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().uri("/v2/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8", "::1"]);
        let proxy = ip("10.0.0.5");
        let at = |hops: &[&str]| forwarded_for(hops, proxy, &t);
        assert_eq!(at(&[]), proxy, "no header: the proxy itself");
        assert_eq!(at(&["192.0.2.7"]), ip("192.0.2.7"));
        // A client's forged entry sits left of what our proxy appended.
        assert_eq!(at(&["203.0.113.1", "192.0.2.7"]), ip("192.0.2.7"));
        // Two proxies of ours: the one before the nearest is skipped too.
        assert_eq!(at(&["192.0.2.7", "10.1.1.1"]), ip("192.0.2.7"));
        assert_eq!(at(&["10.2.2.2", "10.1.1.1"]), ip("10.2.2.2"), "all ours");
        assert_eq!(at(&["garbage", "10.1.1.1"]), ip("10.1.1.1"), "unreadable");
        assert_eq!(at(&["192.0.2.7:5123"]), ip("192.0.2.7"));
        assert_eq!(at(&["[2001:db8::7]:443"]), ip("2001:db8::7"));
        assert_eq!(at(&["[2001:db8::7]"]), ip("2001:db8::7"));
        assert_eq!(at(&["2001:db8::7"]), ip("2001:db8::7"));
        let stranger = ip("192.0.2.99");
        assert_eq!(forwarded_for(&["10.9.9.9"], stranger, &t), stranger);
    }

    #[test]
    fn a_trusted_proxy_gives_address_scheme_and_host() {
        let t = trusted(&["127.0.0.1"]);
        let p = parts(&[
            ("Host", "node1:5000"),
            ("X-Forwarded-For", "198.51.100.1, 127.0.0.3"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Proto", "HTTPS, http"),
            ("X-Forwarded-Host", "registry.example.com:8443, node1"),
        ]);
        let c = Client::resolve(&p, ip("127.0.0.1"), false, &t);
        assert_eq!(c.ip, ip("127.0.0.3"));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("registry.example.com:8443"));
        assert!(c.forwarded);
        assert_eq!(
            c.url("/v2/x").as_deref(),
            Some("https://registry.example.com:8443/v2/x")
        );
        // Only the scheme forwarded: the Host header the proxy passed on.
        let p = parts(&[
            ("Host", "registry.example.com"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let c = Client::resolve(&p, ip("127.0.0.1"), false, &t);
        assert_eq!(c.url("/").as_deref(), Some("https://registry.example.com/"));
        assert!(c.forwarded);
    }

    #[test]
    fn anyone_else_s_forwarding_headers_are_ignored() {
        let t = trusted(&["127.0.0.1"]);
        let forged = parts(&[
            ("Host", "127.0.0.1:5000"),
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
        ]);
        let c = Client::resolve(&forged, ip("127.0.0.2"), false, &t);
        let expected = Client {
            ip: ip("127.0.0.2"),
            scheme: "http",
            host: Some("127.0.0.1:5000".into()),
            forwarded: false,
        };
        assert_eq!(c, expected);
        let c = Client::resolve(&forged, ip("127.0.0.2"), false, &TrustedProxies::default());
        assert_eq!(c, expected, "nothing is trusted by default");
        assert_eq!(
            Client::resolve(&forged, ip("127.0.0.2"), true, &t).scheme,
            "https"
        );
    }

    #[test]
    fn unusable_forwarded_values_fall_back_to_the_connection() {
        let t = trusted(&["127.0.0.1"]);
        let p = parts(&[
            ("Host", "node1:5000"),
            ("X-Forwarded-Proto", "gopher"),
            ("X-Forwarded-Host", "a b\"<script>"),
        ]);
        let c = Client::resolve(&p, ip("127.0.0.1"), true, &t);
        assert_eq!((c.scheme, c.host.as_deref()), ("https", Some("node1:5000")));
        assert!(!c.forwarded);
        assert_eq!(
            Client::resolve(&parts(&[]), ip("127.0.0.1"), false, &t).url("/"),
            None
        );
    }
}
