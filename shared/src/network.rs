//! The networks validators connect from, so one party's many keys on one network
//! cannot fill a quorum.
//!
//! A validator's *network* is its address's IPv4 /24 or IPv6 /48 (the usual sizes
//! one organisation holds); the scheduler never puts two validators of one network
//! into a site's quorum, and each round records every candidate's network. The
//! server also limits connections per /24 and per IPv6 /64 (one host's usual
//! share) besides per address. An IPv4-mapped IPv6 address counts as its IPv4.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Prefix length of an IPv4 validator network.
pub const IPV4_NETWORK_PREFIX: u8 = 24;
/// Prefix length of an IPv6 validator network.
pub const IPV6_NETWORK_PREFIX: u8 = 48;
/// Prefix length under which IPv6 connections are counted together.
pub const IPV6_HOST_PREFIX: u8 = 64;

/// `ip` with IPv4-mapped IPv6 addresses turned into IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn truncated(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpNet {
    match canonical(ip) {
        // The prefixes are constants within range, so these cannot fail.
        IpAddr::V4(v4) => Ipv4Net::new(v4, v4_prefix)
            .map(|net| IpNet::V4(net.trunc()))
            .unwrap_or_else(|_| IpNet::from(IpAddr::V4(v4))),
        IpAddr::V6(v6) => Ipv6Net::new(v6, v6_prefix)
            .map(|net| IpNet::V6(net.trunc()))
            .unwrap_or_else(|_| IpNet::from(IpAddr::V6(v6))),
    }
}

/// The validator network of `ip`: its /24 or /48, as CIDR text (`203.0.113.0/24`,
/// `2001:db8:7::/48`). This is what rounds record and quorums are spread over.
pub fn network_of(ip: IpAddr) -> String {
    truncated(ip, IPV4_NETWORK_PREFIX, IPV6_NETWORK_PREFIX).to_string()
}

/// The block connections are counted in besides the exact address: the /24 of an
/// IPv4 address, the /64 of an IPv6 one.
pub fn connection_block(ip: IpAddr) -> IpNet {
    truncated(ip, IPV4_NETWORK_PREFIX, IPV6_HOST_PREFIX)
}

/// A list of proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `TRUSTED_PROXIES` entry that is neither an address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR block")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated addresses or CIDR blocks; empty means none.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's own, unless the peer is a trusted proxy;
    /// then the right-most `X-Forwarded-For` entry that is not itself a trusted
    /// proxy (entries to its left were written by the client and prove nothing).
    /// A trusted peer with no usable header stays the answer.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        for entry in header.rsplit(',').map(str::trim) {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                // A malformed hop: nothing to its left can be believed either.
                return peer;
            };
            let ip = canonical(ip);
            if !self.trusts(ip) {
                return ip;
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_are_the_slash_24_and_the_slash_48() {
        assert_eq!(network_of(ip("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(network_of(ip("127.0.5.1")), "127.0.5.0/24");
        assert_eq!(network_of(ip("2001:db8:7:1:2:3:4:5")), "2001:db8:7::/48");
        // The mapped form of an IPv4 address is the same network.
        assert_eq!(network_of(ip("::ffff:203.0.113.9")), "203.0.113.0/24");
        assert_eq!(
            network_of(ip("203.0.113.1")),
            network_of(ip("203.0.113.254"))
        );
        assert_ne!(network_of(ip("203.0.113.1")), network_of(ip("203.0.114.1")));
    }

    #[test]
    fn connections_are_counted_per_slash_24_and_per_slash_64() {
        assert_eq!(
            connection_block(ip("198.51.100.3")).to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(
            connection_block(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_ne!(
            connection_block(ip("2001:db8:1:2::1")),
            connection_block(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxies: TrustedProxies = "10.0.0.1, 192.168.0.0/16".parse().unwrap();
        // An untrusted peer's header is ignored: any client can write one.
        assert_eq!(
            proxies.client_ip(ip("203.0.113.5"), Some("198.51.100.1")),
            ip("203.0.113.5")
        );
        // Behind the proxy, the right-most hop the proxies did not add is the client.
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), Some("1.2.3.4, 198.51.100.1, 192.168.3.3")),
            ip("198.51.100.1")
        );
        // Without a header, or with a malformed hop, the proxy itself is the answer.
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), Some("1.2.3.4, junk")),
            ip("10.0.0.1")
        );
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
        assert!("10.0.0.1, nonsense".parse::<TrustedProxies>().is_err());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }
}
