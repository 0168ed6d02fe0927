//! The SSRF guard: which addresses the network must never be made to reach
//! (loopback, private, link-local, cloud metadata, reserved). The validator applies
//! it to every connection it makes; accounting to every alert it delivers to an
//! owner's Slack or webhook URL (prod); the server to the websites owners register
//! (prod). One copy, so all refuse the same addresses.
//!
//! It is enforced twice: on IP literals in the URL (which no resolver sees), and
//! in the resolver the HTTP client uses for every connection (redirects included),
//! so DNS rebinding cannot slip through.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether checking `ip` is refused.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        // An IPv6 address that carries an IPv4 one reaches that one: judge both.
        IpAddr::V6(v6) => forbidden_v6(v6) || embedded_v4(v6).into_iter().any(forbidden_v4),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254, the cloud metadata service
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside sites), fec0::/10
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
}

/// The IPv4 addresses an IPv6 address leads to: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
/// `2002:AABB:CCDD::/48`, and Teredo `2001:0:SSSS:SSSS::/32` (server, and the client
/// address stored inverted in the last 32 bits).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let seg = ip.segments();
    let at = |i: usize| Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]);
    let mut found = Vec::new();
    if let Some(v4) = ip.to_ipv4_mapped() {
        found.push(v4);
    }
    // IPv4-compatible (deprecated): 96 zero bits then the address (:: and ::1 are
    // judged as IPv6 already).
    if seg[..6].iter().all(|&s| s == 0) {
        found.push(at(12));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1)
    {
        found.push(at(12));
    }
    if seg[0] == 0x2002 {
        found.push(at(2));
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        found.push(at(4));
        let client = at(12);
        found.push(Ipv4Addr::from(!u32::from(client)));
    }
    found
}

/// A name resolved only to refused addresses.
#[derive(Debug)]
pub struct ForbiddenTarget(pub String);

impl fmt::Display for ForbiddenTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} resolves to a private or reserved address", self.0)
    }
}

impl StdError for ForbiddenTarget {}

/// A name that did not resolve.
#[derive(Debug)]
pub struct DnsFailure(pub String);

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dns: {}", self.0)
    }
}

impl StdError for DnsFailure {}

/// Whether `url` names a refused address literally (an IP host, which no resolver
/// sees).
pub fn literal_forbidden(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_forbidden(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_forbidden(ip.into()),
        _ => false,
    }
}

/// Whether `err` (or any error it wraps) is the guard refusing a target.
pub fn is_refusal(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<ForbiddenTarget>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// An HTTP client's resolver that applies the guard to every connection.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// Dev networks reach local targets.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), allow_private).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Resolves `host`, keeping only the addresses the guard allows.
pub async fn resolve(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|err| DnsFailure(format!("{host}: {err}")))?
        .collect();
    if all.is_empty() {
        return Err(Box::new(DnsFailure(format!("{host}: no addresses"))));
    }
    if allow_private {
        return Ok(all);
    }
    // One refused address refuses the name: a mixed answer is how rebinding starts.
    if all.iter().any(|addr| is_forbidden(addr.ip())) {
        return Err(Box::new(ForbiddenTarget(host.to_owned())));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
            // IPv4 inside IPv6: compatible, NAT64 (both prefixes), 6to4, Teredo.
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:7f00:1::1",
            // Teredo client 127.0.0.1 stored inverted: 0x80ff_fffe.
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "fec0::1",
            "feff::1",
            "192.0.0.8",
            "192.0.0.170",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} allowed");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "192.0.1.1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} refused");
        }
    }

    #[tokio::test]
    async fn localhost_is_refused_unless_private_targets_are_allowed() {
        let refused = resolve("localhost", false).await.unwrap_err();
        assert!(refused.is::<ForbiddenTarget>(), "{refused}");
        assert!(!resolve("localhost", true).await.unwrap().is_empty());
        let unknown = resolve("no-such-host.invalid", true).await.unwrap_err();
        assert!(unknown.is::<DnsFailure>(), "{unknown}");
    }
}
