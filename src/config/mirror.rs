//! The pull-through cache's settings: distribution's `proxy:` section (the
//! whole registry mirrors one upstream) and ours, `privateregistry.mirrors`
//! (several upstreams, each under a repository prefix, beside local
//! repositories) with `privateregistry.mirrorcache` for what is kept.

use super::duration::GoDuration;
use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a cached tag is believed without asking the upstream.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Past this, a `ttl` was probably written for registry:2, where it meant
/// how long cached content is kept.
const LONG_TTL: Duration = Duration::from_secs(3600);

/// distribution's `proxy:` section.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(default)]
pub struct Proxy {
    pub remoteurl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
}

/// One entry of `privateregistry.mirrors`.
#[derive(Debug, Default, Deserialize, Serialize, Clone)]
#[serde(default)]
pub struct MirrorEntry {
    /// Repositories `<prefix>/<name>` are `<name>` on the upstream.
    pub prefix: String,
    pub remoteurl: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// Also serve names without the prefix that no local repository has:
    /// Docker's `registry-mirrors` asks for Docker Hub's `library/alpine`.
    pub unprefixed: bool,
}

/// `privateregistry.mirrorcache`: how long cached content stays and how much.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(default)]
pub struct MirrorCache {
    /// Cached repositories not pulled for this long are removed (0: never).
    pub expiry: GoDuration,
    /// Bytes cached repositories may hold; the least recently pulled go
    /// first past it (0: no cap). A number or `10GiB`, `500MB`, ….
    pub maxsize: Size,
}

impl Default for MirrorCache {
    fn default() -> Self {
        MirrorCache {
            expiry: GoDuration(Duration::from_secs(7 * 24 * 3600)),
            maxsize: Size(0),
        }
    }
}

/// A byte count written as a number or with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Result<u64, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let n: f64 = s[..split]
            .parse()
            .map_err(|_| format!("{s:?} is not a size (a number of bytes, or 10GiB, 500MB)"))?;
        let unit: u64 = match s[split..].trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in size {s:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
                ));
            }
        };
        Ok((n * unit as f64) as u64)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(s) => Size::parse(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// An upstream as the cache uses it: validated, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The repository prefix; empty in `proxy:` mode, where every
    /// repository is the upstream's.
    pub prefix: String,
    /// `http(s)://host[:port]`, without a trailing slash.
    pub url: String,
    pub credentials: Option<(String, String)>,
    pub ttl: Duration,
    pub unprefixed: bool,
}

/// What `proxy:` and `privateregistry.mirrors` configure, checked.
pub fn upstreams(
    proxy: Option<&Proxy>,
    mirrors: &[MirrorEntry],
    warnings: &mut Vec<String>,
) -> Result<Vec<Upstream>, ConfigError> {
    if let Some(p) = proxy {
        if !mirrors.is_empty() {
            return Err(invalid(
                "proxy",
                "set together with privateregistry.mirrors: use one (proxy: makes the whole registry one upstream's cache; privateregistry.mirrors puts each upstream under a prefix beside local repositories)",
            ));
        }
        let fields = Fields {
            key: "proxy".into(),
            remoteurl: &p.remoteurl,
            username: &p.username,
            password: &p.password,
            ttl: p.ttl,
        };
        return Ok(vec![fields.upstream(String::new(), false, warnings)?]);
    }
    let mut out: Vec<Upstream> = vec![];
    for (i, m) in mirrors.iter().enumerate() {
        let key = format!("privateregistry.mirrors[{i}]");
        let prefix = check_prefix(&key, &m.prefix)?;
        if let Some(other) = out.iter().find(|o| overlaps(&o.prefix, &prefix)) {
            return Err(invalid(
                &format!("{key}.prefix"),
                format!(
                    "{prefix:?} overlaps the prefix {:?} of another mirror",
                    other.prefix
                ),
            ));
        }
        if m.unprefixed && out.iter().any(|o| o.unprefixed) {
            return Err(invalid(
                &format!("{key}.unprefixed"),
                "only one mirror may serve names without a prefix",
            ));
        }
        let fields = Fields {
            key: key.clone(),
            remoteurl: &m.remoteurl,
            username: &m.username,
            password: &m.password,
            ttl: m.ttl,
        };
        out.push(fields.upstream(prefix, m.unprefixed, warnings)?);
    }
    Ok(out)
}

/// The keys both sections share, with where they came from.
struct Fields<'a> {
    key: String,
    remoteurl: &'a str,
    username: &'a Option<String>,
    password: &'a Option<String>,
    ttl: Option<GoDuration>,
}

impl Fields<'_> {
    fn upstream(
        self,
        prefix: String,
        unprefixed: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Upstream, ConfigError> {
        let key = &self.key;
        let url = check_url(&format!("{key}.remoteurl"), self.remoteurl)?;
        let credentials = match (self.username, self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u.clone(), p.clone())),
            (None, None) => None,
            (Some(_), _) => {
                return Err(invalid(
                    &format!("{key}.password"),
                    "missing: username is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    &format!("{key}.username"),
                    "missing: password is set",
                ));
            }
        };
        if credentials.is_some() && url.starts_with("http://") {
            warnings.push(format!(
                "{key}.remoteurl: {url} is plain HTTP: the upstream's password crosses the network unencrypted"
            ));
        }
        let ttl = self.ttl.map_or(DEFAULT_TTL, |t| t.0);
        if ttl > LONG_TTL {
            warnings.push(format!(
                "{key}.ttl: {}s: cached tags are asked of the upstream again only this often; registry:2 used ttl for how long cached content is kept, which is privateregistry.mirrorcache.expiry here",
                ttl.as_secs()
            ));
        }
        Ok(Upstream {
            prefix,
            url,
            credentials,
            ttl,
            unprefixed,
        })
    }
}

fn check_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            invalid(
                key,
                format!("{url:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"),
            )
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(invalid(
            key,
            format!(
                "{url:?}: expected a scheme and host only (the registry's root, no path or credentials)"
            ),
        ));
    }
    url.parse::<hyper::Uri>()
        .map_err(|e| invalid(key, format!("{url:?}: {e}")))?;
    Ok(url.to_string())
}

fn check_prefix(key: &str, prefix: &str) -> Result<String, ConfigError> {
    let p = prefix.trim().trim_end_matches("/*").trim_end_matches('/');
    let valid = !p.is_empty()
        && p.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        });
    if valid {
        Ok(p.to_string())
    } else {
        Err(invalid(
            &format!("{key}.prefix"),
            format!(
                "{prefix:?}: expected repository name components, like docker.io or mirrors/ghcr"
            ),
        ))
    }
}

/// Whether one prefix contains the other, so a name could belong to both.
fn overlaps(a: &str, b: &str) -> bool {
    let within = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    within(a, b) || within(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefix: &str, url: &str) -> MirrorEntry {
        MirrorEntry {
            prefix: prefix.into(),
            remoteurl: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mirrors_resolve_with_defaults() {
        let mut w = vec![];
        let u = upstreams(
            None,
            &[entry("docker.io/*", "https://registry-1.docker.io/")],
            &mut w,
        )
        .unwrap();
        assert_eq!(u[0].prefix, "docker.io");
        assert_eq!(u[0].url, "https://registry-1.docker.io");
        assert_eq!(u[0].ttl, DEFAULT_TTL);
        assert!(w.is_empty());
    }

    #[test]
    fn mistakes_name_their_key() {
        let mut w = vec![];
        let cases: [(Vec<MirrorEntry>, &str); 4] = [
            (
                vec![entry("docker.io", "ftp://x")],
                "privateregistry.mirrors[0].remoteurl",
            ),
            (
                vec![entry("Bad", "http://x")],
                "privateregistry.mirrors[0].prefix",
            ),
            (
                vec![entry("a", "http://x"), entry("a/b", "http://y")],
                "privateregistry.mirrors[1].prefix",
            ),
            (
                vec![entry("a", "http://x/v2")],
                "privateregistry.mirrors[0].remoteurl",
            ),
        ];
        for (mirrors, key) in cases {
            let e = upstreams(None, &mirrors, &mut w).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        let half = MirrorEntry {
            username: Some("u".into()),
            ..entry("a", "http://x")
        };
        let e = upstreams(None, &[half], &mut w).unwrap_err();
        assert!(
            e.to_string()
                .contains("privateregistry.mirrors[0].password"),
            "{e}"
        );
    }

    #[test]
    fn a_registry2_ttl_warns_what_it_means_here() {
        let p = Proxy {
            remoteurl: "https://registry-1.docker.io".into(),
            ttl: Some(GoDuration(Duration::from_secs(168 * 3600))),
            ..Default::default()
        };
        let mut w = vec![];
        let u = upstreams(Some(&p), &[], &mut w).unwrap();
        assert_eq!(u[0].prefix, "");
        assert!(w[0].contains("mirrorcache.expiry"), "{w:?}");
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(Size::parse("10GiB").unwrap(), 10 << 30);
        assert_eq!(Size::parse("500MB").unwrap(), 500_000_000);
        assert_eq!(Size::parse("42").unwrap(), 42);
        assert!(Size::parse("ten").is_err());
    }
}
