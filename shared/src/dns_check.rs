//! DNS record checks (`dns://name/TYPE`): the target's syntax and canonical URL,
//! the canonical form of the expected answer (the site's `keyword`), how answers
//! are compared, and which names count as internal. Shared by the API (validation,
//! the production guard) and the validator (evaluation, its guard), so both read a
//! target and an expected answer the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The URL scheme of a DNS record check.
pub const SCHEME_PREFIX: &str = "dns://";
/// Longest accepted name, in bytes (RFC 1035's 255 octets on the wire).
pub const MAX_NAME_BYTES: usize = 253;

/// A record type a DNS check may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Mail exchange (preference and exchange name).
    Mx,
    /// Text strings.
    Txt,
    /// Name server.
    Ns,
}

impl RecordKind {
    /// Every kind, as written in URLs.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::A,
        RecordKind::Aaaa,
        RecordKind::Cname,
        RecordKind::Mx,
        RecordKind::Txt,
        RecordKind::Ns,
    ];

    /// The type's name (`A`, `AAAA`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Cname => "CNAME",
            RecordKind::Mx => "MX",
            RecordKind::Txt => "TXT",
            RecordKind::Ns => "NS",
        }
    }

    /// Parses a type name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
    }
}

/// Why a DNS target or expected answer is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsSpecError {
    /// Not `dns://name/TYPE`.
    #[error("a dns:// url is dns://name/TYPE, e.g. dns://example.com/A")]
    Shape,
    /// The name is not a valid DNS name.
    #[error("{0}")]
    Name(String),
    /// The type is not one of the supported six.
    #[error("record type {0:?} is not one of A, AAAA, CNAME, MX, TXT, NS")]
    Type(String),
    /// The expected answer does not fit the record type.
    #[error("{0}")]
    Expected(String),
}

/// A parsed `dns://name/TYPE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// The name, lower-case, without a trailing dot.
    pub name: String,
    /// The record type asked for.
    pub kind: RecordKind,
}

impl DnsTarget {
    /// Parses `dns://name/TYPE` (scheme, name and type in any case; one trailing
    /// dot on the name allowed).
    pub fn parse(url: &str) -> Result<Self, DnsSpecError> {
        let head = url.get(..SCHEME_PREFIX.len()).ok_or(DnsSpecError::Shape)?;
        if !head.eq_ignore_ascii_case(SCHEME_PREFIX) {
            return Err(DnsSpecError::Shape);
        }
        let rest = &url[SCHEME_PREFIX.len()..];
        let (name, kind) = rest.split_once('/').ok_or(DnsSpecError::Shape)?;
        let kind = RecordKind::parse(kind).ok_or_else(|| DnsSpecError::Type(kind.to_owned()))?;
        let name = canonical_name(name).map_err(DnsSpecError::Name)?;
        if name.parse::<IpAddr>().is_ok() {
            return Err(DnsSpecError::Name(
                "a dns:// url names a DNS name, not an IP address".into(),
            ));
        }
        Ok(DnsTarget { name, kind })
    }

    /// The canonical URL (`dns://name/TYPE`), as stored and sent.
    pub fn url(&self) -> String {
        format!("{SCHEME_PREFIX}{}/{}", self.name, self.kind.as_str())
    }
}

/// A DNS name, lower-case and without the trailing dot, or why it is not one:
/// 1 to 253 bytes, labels of 1 to 63 ASCII letters, digits, `-` (not first or
/// last) and `_` (as in `_dmarc`).
pub fn canonical_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a DNS name is 1 to {MAX_NAME_BYTES} bytes (got {})",
            name.len()
        ));
    }
    for label in name.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "{name:?} is not a DNS name (labels of 1 to 63 letters, digits, '-' or '_')"
            ));
        }
    }
    Ok(name)
}

/// The canonical text of an expected answer: A/AAAA as the address's standard
/// text, CNAME/NS as a canonical name, MX as `exchange` or `preference exchange`,
/// TXT unchanged (the record's strings joined).
pub fn canonical_expected(kind: RecordKind, text: &str) -> Result<String, DnsSpecError> {
    let bad = |why: String| DnsSpecError::Expected(why);
    let text = text.trim();
    match kind {
        RecordKind::A => text
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| bad(format!("{text:?} is not an IPv4 address (an A record)"))),
        RecordKind::Aaaa => text
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| bad(format!("{text:?} is not an IPv6 address (an AAAA record)"))),
        RecordKind::Cname | RecordKind::Ns => canonical_name(text).map_err(bad),
        RecordKind::Mx => {
            let (preference, exchange) = match text.split_once(char::is_whitespace) {
                Some((preference, exchange)) => {
                    let preference: u16 = preference.parse().map_err(|_| {
                        bad(format!(
                            "an MX answer is \"exchange\" or \"preference exchange\", got {text:?}"
                        ))
                    })?;
                    (Some(preference), exchange.trim())
                }
                None => (None, text),
            };
            let exchange = canonical_name(exchange).map_err(bad)?;
            Ok(match preference {
                Some(preference) => format!("{preference} {exchange}"),
                None => exchange,
            })
        }
        RecordKind::Txt if text.is_empty() => Err(bad("a TXT answer may not be empty".into())),
        RecordKind::Txt => Ok(text.to_owned()),
    }
}

/// One answer as the validator read it, in the canonical forms above (MX always
/// as `preference exchange`).
pub type Answer = String;

/// Whether `expected` (canonical) is among `answers` (canonical, of the asked type).
/// An MX expectation without a preference matches any preference.
pub fn expected_among(kind: RecordKind, expected: &str, answers: &[Answer]) -> bool {
    answers.iter().any(|answer| match kind {
        RecordKind::A | RecordKind::Aaaa => {
            matches!((expected.parse::<IpAddr>(), answer.parse::<IpAddr>()), (Ok(a), Ok(b)) if a == b)
        }
        RecordKind::Mx if !expected.contains(' ') => answer
            .split_once(' ')
            .is_some_and(|(_, exchange)| exchange.eq_ignore_ascii_case(expected)),
        RecordKind::Txt => answer == expected,
        _ => answer.eq_ignore_ascii_case(expected),
    })
}

/// Whether `name` (canonical) is an internal name a DNS check may not ask about
/// unless private targets are allowed: `localhost`, a single label (resolved
/// through search domains, i.e. the local network), or under `.localhost`,
/// `.local` (mDNS), `.internal`, `.home.arpa` (RFC 8375), `.localdomain`, `.lan`.
pub fn is_internal_name(name: &str) -> bool {
    const SUFFIXES: [&str; 6] = [
        "localhost",
        "local",
        "internal",
        "home.arpa",
        "localdomain",
        "lan",
    ];
    !name.contains('.')
        || SUFFIXES.iter().any(|suffix| {
            name == *suffix
                || name
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_to_one_canonical_url() {
        let t = DnsTarget::parse("DNS://Example.COM./aaaa").unwrap();
        assert_eq!(t.url(), "dns://example.com/AAAA");
        assert_eq!(
            DnsTarget::parse("dns://_dmarc.example.com/TXT")
                .unwrap()
                .kind,
            RecordKind::Txt
        );
        let long = format!("dns://{}.com/A", "a".repeat(250));
        for bad in [
            "dns://example.com",
            "dns://example.com/SRV",
            "dns:///A",
            "dns://-bad.example/A",
            "dns://a..b/A",
            "dns://10.0.0.1/A",
            "dns://exa mple.com/A",
            "dns://example.com/A/x",
            long.as_str(),
            "http://example.com/A",
        ] {
            assert!(DnsTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expected_answers_are_canonical_and_compare_by_kind() {
        use RecordKind::*;
        assert_eq!(
            canonical_expected(Aaaa, "2001:DB8:0::1").unwrap(),
            "2001:db8::1"
        );
        assert_eq!(
            canonical_expected(Mx, "10  MX.Example.com.").unwrap(),
            "10 mx.example.com"
        );
        assert_eq!(
            canonical_expected(Cname, "Web.Example.").unwrap(),
            "web.example"
        );
        assert!(canonical_expected(A, "::1").is_err());
        assert!(canonical_expected(Mx, "ten mx.example.com").is_err());
        let mx = vec![
            "10 mx1.example.com".to_owned(),
            "20 mx2.example.com".to_owned(),
        ];
        assert!(expected_among(Mx, "mx2.example.com", &mx));
        assert!(expected_among(Mx, "20 mx2.example.com", &mx));
        assert!(!expected_among(Mx, "10 mx2.example.com", &mx));
        assert!(expected_among(A, "192.0.2.1", &["192.0.2.1".to_owned()]));
        assert!(!expected_among(Txt, "v=spf1", &["V=SPF1".to_owned()]));
    }

    #[test]
    fn internal_names_are_recognised() {
        for name in [
            "localhost",
            "db",
            "x.localhost",
            "printer.local",
            "api.internal",
            "nas.home.arpa",
        ] {
            assert!(is_internal_name(name), "{name}");
        }
        for name in [
            "example.com",
            "local.example.com",
            "internal.example.org",
            "mylan.com",
        ] {
            assert!(!is_internal_name(name), "{name}");
        }
    }
}
