//! A website's settings as the API accepts them: bounds, the URL (http(s),
//! `tcp://host:port` or `dns://name/TYPE`), the method, the keyword and the assertions, and the
//! production guard against private targets.

use std::net::IpAddr;

use overlaps_shared::{dns_check, ssrf};

use super::assertions::{Assertions, AssertionsInput};
use super::errors::ApiError;
use crate::config::{ApiSettings, WebsiteBounds};

/// A website's settings as requested (before validation).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) method: String,
    pub(super) interval_seconds: i32,
    pub(super) timeout_ms: i32,
    pub(super) quorum: i16,
    pub(super) keyword: Option<String>,
    /// The assertions before this request.
    pub(super) assertions: Assertions,
    /// What this request changes in them.
    pub(super) assertions_input: AssertionsInput,
}

/// A website's settings after validation.
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) method: String,
    pub(super) interval_seconds: i32,
    pub(super) timeout_ms: i32,
    pub(super) quorum: i16,
    pub(super) keyword: Option<String>,
    pub(super) assertions: Assertions,
}

fn in_bounds<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: T,
    (min, max): (T, T),
) -> Result<T, ApiError> {
    if value < min || value > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

fn check_url(raw: &str) -> Result<(String, url::Url), ApiError> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(ApiError::invalid(
            "url",
            "url must be at most 2048 characters",
        ));
    }
    if raw
        .get(..dns_check::SCHEME_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(dns_check::SCHEME_PREFIX))
    {
        // A record check is a name and a type: stored as dns://name/TYPE.
        let target = dns_check::DnsTarget::parse(raw)
            .map_err(|err| ApiError::invalid("url", err.to_string()))?;
        let canonical = target.url();
        let parsed = url::Url::parse(&canonical)
            .map_err(|err| ApiError::invalid("url", format!("url is not a valid URL: {err}")))?;
        return Ok((canonical, parsed));
    }
    let parsed = url::Url::parse(raw)
        .map_err(|err| ApiError::invalid("url", format!("url is not a valid URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https" | "tcp") {
        return Err(ApiError::invalid(
            "url",
            "url must start with http://, https://, tcp:// (a TCP port check) or dns:// (a DNS record check)",
        ));
    }
    if parsed.host().is_none() {
        return Err(ApiError::invalid("url", "url must name a host"));
    }
    if parsed.scheme() == "tcp" {
        // A port check is a host and a port, nothing else: stored as tcp://host:port.
        let Some(port) = parsed.port().filter(|p| *p > 0) else {
            return Err(ApiError::invalid(
                "url",
                "a tcp:// url names its port, e.g. tcp://db.example.com:5432",
            ));
        };
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(ApiError::invalid(
                "url",
                "a tcp:// url is only tcp://host:port",
            ));
        }
        let host = parsed.host_str().unwrap_or_default();
        return Ok((format!("tcp://{host}:{port}"), parsed));
    }
    Ok((parsed.to_string(), parsed))
}

impl Settings {
    pub(super) fn validate(self, bounds: &WebsiteBounds) -> Result<(Valid, url::Url), ApiError> {
        let name = self.name.trim().to_owned();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "name",
                "name must be at most 100 printable characters",
            ));
        }
        let (url, parsed) = check_url(&self.url)?;
        let method = self.method.to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "HEAD") {
            return Err(ApiError::invalid("method", "method must be GET or HEAD"));
        }
        let is_tcp = parsed.scheme() == "tcp";
        let dns = match parsed.scheme() {
            "dns" => Some(
                dns_check::DnsTarget::parse(&url)
                    .map_err(|err| ApiError::invalid("url", err.to_string()))?,
            ),
            _ => None,
        };
        if (is_tcp || dns.is_some()) && method != "GET" {
            return Err(ApiError::invalid(
                "method",
                format!(
                    "a {}:// check has no HTTP method (leave method out)",
                    parsed.scheme()
                ),
            ));
        }
        let interval_seconds = in_bounds(
            "interval_seconds",
            self.interval_seconds,
            bounds.interval_seconds,
        )?;
        let timeout_ms = in_bounds("timeout_ms", self.timeout_ms, bounds.timeout_ms)?;
        if i64::from(timeout_ms) >= i64::from(interval_seconds) * 1000 {
            return Err(ApiError::invalid(
                "timeout_ms",
                "timeout_ms must be shorter than the interval",
            ));
        }
        let quorum = in_bounds("quorum", self.quorum, bounds.quorum)?;
        let keyword = self.keyword.filter(|k| !k.is_empty());
        if is_tcp && keyword.is_some() {
            return Err(ApiError::invalid(
                "keyword",
                "a tcp:// check reads no body: no keyword",
            ));
        }
        if keyword
            .as_ref()
            .is_some_and(|k| k.len() > 256 || k.chars().any(char::is_control))
        {
            return Err(ApiError::invalid(
                "keyword",
                "keyword must be at most 256 printable bytes",
            ));
        }
        // For a DNS check the keyword is the expected answer, stored canonical (an
        // address in its standard text, names lower-case without the final dot).
        let keyword = match (&dns, keyword) {
            (Some(target), Some(expected)) => Some(
                dns_check::canonical_expected(target.kind, &expected)
                    .map_err(|err| ApiError::invalid("keyword", err.to_string()))?,
            ),
            (_, keyword) => keyword,
        };
        let assertions = super::assertions::apply(
            self.assertions,
            self.assertions_input,
            keyword.as_deref(),
            &method,
            timeout_ms,
        )?;
        // What the site keeps from before counts too (a URL changed to tcp://).
        if is_tcp || dns.is_some() {
            let field = if assertions.json_path.is_some() {
                Some("json_path")
            } else if assertions.accepted_status != Assertions::default().accepted_status {
                Some("accepted_status")
            } else if assertions.keyword_absent {
                Some("keyword_absent")
            } else {
                None
            };
            if let Some(field) = field {
                let message = if is_tcp {
                    "a tcp:// check has only max_response_ms (no status or body assertions)"
                } else {
                    "a dns:// check has only max_response_ms and the expected answer in keyword (no status or body assertions)"
                };
                return Err(ApiError::invalid(field, message));
            }
        }
        Ok((
            Valid {
                name,
                url,
                method,
                interval_seconds,
                timeout_ms,
                quorum,
                keyword,
                assertions,
            },
            parsed,
        ))
    }
}

/// In production, refuses hosts that are or resolve to private, loopback,
/// link-local or reserved addresses (the validators' SSRF guard, same rules).
pub(super) async fn guard_target(api: &ApiSettings, url: &url::Url) -> Result<(), ApiError> {
    if !api.refuse_private_targets {
        return Ok(());
    }
    let refused = || ApiError::invalid("url", "url points to a private or reserved address");
    if url.scheme() == "dns" {
        // A DNS check connects to nothing; its guard is on the name asked about
        // (internal names reveal internal DNS), not on the answers.
        let internal = dns_check::DnsTarget::parse(url.as_str())
            .map_or(true, |target| dns_check::is_internal_name(&target.name));
        return if internal {
            Err(ApiError::invalid(
                "url",
                "url names an internal DNS name (localhost, a single label, .local, .internal, .localhost, .home.arpa, .localdomain, .lan)",
            ))
        } else {
            Ok(())
        };
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if ssrf::is_forbidden(IpAddr::V4(ip)) => Err(refused()),
        Some(url::Host::Ipv6(ip)) if ssrf::is_forbidden(IpAddr::V6(ip)) => Err(refused()),
        Some(url::Host::Domain(name)) => match ssrf::resolve(name, false).await {
            Ok(_) => Ok(()),
            Err(err) if err.is::<ssrf::ForbiddenTarget>() => Err(refused()),
            Err(_) => Err(ApiError::invalid("url", "url's host does not resolve")),
        },
        _ => Ok(()),
    }
}
