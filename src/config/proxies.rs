//! `privateregistry.trustedproxies`: the reverse proxies whose
//! `X-Forwarded-*` headers we believe. Anyone can send those headers, so
//! they count only on a connection from one of these addresses; the default
//! is none. Entries are addresses or CIDR blocks, parsed here by hand.

use super::{ConfigError, invalid};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const KEY: &str = "privateregistry.trustedproxies";

/// An address block: `10.0.0.0/8`, `::1/128`, or a bare address (one host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let base = canonical(base);
        let max = bits(base);
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("prefix length {p:?} is not a number from 0 to {max}")
                })?,
            };
        let cidr = Cidr { base, prefix };
        let network = cidr.network(base);
        if network != base {
            return Err(format!(
                "{text:?} has host bits set; the block is {network}/{prefix}"
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        bits(ip) == bits(self.base) && self.network(ip) == self.base
    }

    /// `ip` with the bits past the prefix cleared.
    fn network(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4) & mask32(self.prefix)).into(),
            IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & mask128(self.prefix)).into(),
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; they match IPv4 entries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The configured proxies, parsed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses every entry; each mistake names its entry's key.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, ConfigError> {
        let mut blocks = vec![];
        let mut errors = vec![];
        for (i, e) in entries.iter().enumerate() {
            match Cidr::parse(e) {
                Ok(c) => blocks.push(c),
                Err(why) => errors.push(Err(invalid(
                    &format!("{KEY}[{i}]"),
                    format!("expected an address or a CIDR block such as 10.0.0.0/8: {why}"),
                ))),
            }
        }
        super::all(errors)?;
        Ok(TrustedProxies(blocks))
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("::a00:1")), "IPv6 is not IPv4");
        let c = Cidr::parse("192.168.1.128/25").unwrap();
        assert!(c.contains(ip("192.168.1.200")));
        assert!(!c.contains(ip("192.168.1.127")));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
    }

    #[test]
    fn a_bare_address_is_one_host_and_zero_is_everything() {
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse(" ::1 ").unwrap();
        assert!(v6.contains(ip("::1")) && !v6.contains(ip("::2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(
            Cidr::parse("::ffff:10.0.0.1")
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (text, says) in [
            ("10.0.0.1/8", "host bits set; the block is 10.0.0.0/8"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/", "prefix length \"\""),
            ("10.0.0.0/-1", "prefix length"),
            ("proxy.example.com", "not an IPv4 or IPv6 address"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"),
        ] {
            let e = Cidr::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn errors_name_each_entry() {
        let entries = ["127.0.0.1", "nope", "10.0.0.1/8"].map(String::from);
        let e = TrustedProxies::parse(&entries).unwrap_err().to_string();
        assert!(
            e.contains("privateregistry.trustedproxies[1]: expected"),
            "{e}"
        );
        assert!(
            e.contains("privateregistry.trustedproxies[2]: expected"),
            "{e}"
        );
        let ok = TrustedProxies::parse(&entries[..1]).unwrap();
        assert!(ok.trusts(ip("127.0.0.1")) && !ok.trusts(ip("127.0.0.2")));
        assert!(TrustedProxies::default().is_empty());
    }
}
