//! One website check: HTTP(S) GET or HEAD under a hard overall timeout (slow bodies
//! included), bounded redirects, the site's assertions (accepted status codes, a
//! keyword present or absent in the scanned part of the body, a JSON value, a
//! response-time limit that makes a correct answer `degraded`) and the TLS
//! certificate's expiry. TCP port checks live in `check/tcp.rs`, DNS record checks
//! in `check/dns.rs`.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use overlaps_shared::check_spec::{self, CheckSpec, PathStep};
use overlaps_shared::dns_check;
use overlaps_shared::protocol::{CheckStatus, FailureReason, ValidateRequest};

use overlaps_shared::ssrf::{self as guard, DnsFailure, ForbiddenTarget, GuardedResolver};

/// What a check found (unsigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Up or down.
    pub status: CheckStatus,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// Milliseconds to the response headers (or the failure).
    pub latency_ms: u32,
    /// Why it is down.
    pub failure: Option<FailureReason>,
    /// TLS certificate expiry, Unix milliseconds.
    pub tls_expires_at_ms: Option<i64>,
    /// When the check started, Unix milliseconds.
    pub checked_at_ms: i64,
}

/// A check this validator refuses to run (no result is sent).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not an absolute http(s) URL with a host.
    #[error("bad url {0:?}: {1}")]
    BadUrl(String, String),
    /// The target is a private or reserved address.
    #[error("{0}")]
    Forbidden(String),
    /// Neither GET nor HEAD.
    #[error("unsupported method {0:?}")]
    Method(String),
    /// An assertion this node cannot evaluate (a JSONPath outside the subset, a
    /// path without its expected value).
    #[error("bad assertion: {0}")]
    BadAssertion(String),
    /// This node cannot run the check at all (no DNS resolver configuration): the
    /// node's fault, not the site's, so it sends no result.
    #[error("cannot check: {0}")]
    Unavailable(String),
}

/// The body assertions of one check, parsed.
struct BodyRules<'a> {
    keyword: Option<(&'a str, bool)>,
    json: Option<(Vec<PathStep>, serde_json::Value)>,
}

impl BodyRules<'_> {
    fn any(&self) -> bool {
        self.keyword.is_some() || self.json.is_some()
    }
}

/// Redirect chain longer than allowed.
#[derive(Debug)]
struct TooManyRedirects;

impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many redirects")
    }
}

impl StdError for TooManyRedirects {}

/// Runs checks with one shared HTTP client.
#[derive(Debug, Clone)]
pub struct Checker {
    client: reqwest::Client,
    keyword_scan_bytes: usize,
    allow_private: bool,
    /// The DNS server `dns://` checks ask (the system's resolvers when `None`).
    dns_server: Option<std::net::SocketAddr>,
}

impl Checker {
    /// A checker following at most `max_redirects` and scanning `keyword_scan_bytes`.
    pub fn new(
        max_redirects: u32,
        keyword_scan_bytes: usize,
        allow_private: bool,
    ) -> Result<Self, reqwest::Error> {
        Self::trusting(max_redirects, keyword_scan_bytes, allow_private, Vec::new())
    }

    /// Like [`Checker::new`], also trusting `extra_roots` besides the system's roots.
    pub fn trusting(
        max_redirects: u32,
        keyword_scan_bytes: usize,
        allow_private: bool,
        extra_roots: Vec<reqwest::Certificate>,
    ) -> Result<Self, reqwest::Error> {
        let max = usize::try_from(max_redirects).unwrap_or(usize::MAX);
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(TooManyRedirects);
            }
            // IP literals bypass the resolver: guard them here.
            if !allow_private && guard::literal_forbidden(attempt.url()) {
                let target = attempt.url().to_string();
                return attempt.error(ForbiddenTarget(target));
            }
            attempt.follow()
        });
        let mut builder = reqwest::Client::builder();
        for root in extra_roots {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .redirect(policy)
            .dns_resolver(GuardedResolver { allow_private })
            .tls_info(true)
            .user_agent(concat!("overlaps-validator/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(4)
            .build()?;
        Ok(Checker {
            client,
            keyword_scan_bytes,
            allow_private,
            dns_server: None,
        })
    }

    /// The same checker, asking `server` in `dns://` checks instead of the
    /// system's resolvers (`--dns-server`; tests point it at a local server).
    pub fn with_dns_server(mut self, server: Option<std::net::SocketAddr>) -> Self {
        self.dns_server = server;
        self
    }

    /// Checks one site as `request` asks.
    pub async fn check(&self, request: &ValidateRequest) -> Result<CheckOutcome, Refused> {
        if request
            .url
            .get(..dns_check::SCHEME_PREFIX.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(dns_check::SCHEME_PREFIX))
        {
            return self.check_dns(request).await;
        }
        let url = self.admit(request)?;
        if url.scheme() == "tcp" {
            return self.check_tcp(request, &url).await;
        }
        let method = match request.method.as_str() {
            "GET" => reqwest::Method::GET,
            "HEAD" => reqwest::Method::HEAD,
            other => return Err(Refused::Method(other.to_owned())),
        };
        if request.json_path.is_some() != request.json_expected.is_some() {
            return Err(Refused::BadAssertion(
                "json_path and json_expected come together".into(),
            ));
        }
        let spec = request.spec();
        // A body is read only for GET: HEAD has none, so body assertions do not apply.
        let is_get = method == reqwest::Method::GET;
        let json = match (&request.json_path, &request.json_expected) {
            (Some(path), Some(expected)) if is_get => Some((
                check_spec::parse_json_path(path)
                    .map_err(|e| Refused::BadAssertion(e.to_string()))?,
                expected.clone(),
            )),
            _ => None,
        };
        let rules = BodyRules {
            keyword: request
                .keyword
                .as_deref()
                .filter(|_| is_get)
                .map(|k| (k, request.keyword_absent)),
            json,
        };
        let checked_at_ms = chrono::Utc::now().timestamp_millis();
        let started = Instant::now();
        let timeout = Duration::from_millis(u64::from(request.timeout_ms.max(1)));
        let run = self.fetch(url, method, &spec, &rules, started);
        let found = match tokio::time::timeout(timeout, run).await {
            Ok(found) => found,
            Err(_) => Err(Failure::Reason(FailureReason::Timeout, None)),
        };
        let latency =
            |at: Instant| u32::try_from(at.duration_since(started).as_millis()).unwrap_or(u32::MAX);
        match found {
            Ok(found) => {
                let latency_ms = latency(found.headers_at);
                // Every assertion passed; only the time limit can still fault it.
                let slow = spec.max_response_ms.is_some_and(|limit| latency_ms > limit);
                Ok(CheckOutcome {
                    status: if slow {
                        CheckStatus::Degraded
                    } else {
                        CheckStatus::Up
                    },
                    http_status: Some(found.http_status),
                    latency_ms,
                    failure: slow.then_some(FailureReason::TooSlow),
                    tls_expires_at_ms: found.tls_expires_at_ms,
                    checked_at_ms,
                })
            }
            Err(Failure::Reason(reason, response)) => Ok(CheckOutcome {
                status: CheckStatus::Down,
                http_status: response.as_ref().map(|r| r.http_status),
                latency_ms: response
                    .as_ref()
                    .map_or_else(|| latency(Instant::now()), |r| latency(r.headers_at)),
                failure: Some(reason),
                tls_expires_at_ms: response.and_then(|r| r.tls_expires_at_ms),
                checked_at_ms,
            }),
            Err(Failure::Forbidden(target)) => Err(Refused::Forbidden(target)),
        }
    }

    /// Parses the URL and applies the guard to IP literals and resolved names.
    fn admit(&self, request: &ValidateRequest) -> Result<reqwest::Url, Refused> {
        let bad = |why: &str| Refused::BadUrl(request.url.clone(), why.to_owned());
        let url = reqwest::Url::parse(&request.url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https" | "tcp") {
            return Err(bad("only http, https and tcp are checked"));
        }
        if url.scheme() == "tcp" && url.port().is_none() {
            return Err(bad("a tcp target names its port"));
        }
        let Some(host) = url.host_str() else {
            return Err(bad("no host"));
        };
        if !self.allow_private && guard::literal_forbidden(&url) {
            return Err(Refused::Forbidden(format!(
                "{host} is a private or reserved address"
            )));
        }
        Ok(url)
    }

    async fn fetch(
        &self,
        url: reqwest::Url,
        method: reqwest::Method,
        spec: &CheckSpec,
        rules: &BodyRules<'_>,
        started: Instant,
    ) -> Result<Response, Failure> {
        let response = self
            .client
            .request(method, url)
            .send()
            .await
            .map_err(classify)?;
        let found = Response {
            http_status: response.status().as_u16(),
            headers_at: Instant::now().max(started),
            tls_expires_at_ms: tls_expiry(&response),
        };
        let status = response.status().as_u16();
        if !spec.accepted_status.iter().any(|r| r.contains(status)) {
            return Err(Failure::Reason(FailureReason::HttpStatus, Some(found)));
        }
        if !rules.any() {
            return Ok(found);
        }
        // A keyword that must be present, alone, ends the read once found (a page
        // that keeps streaming after it is up); anything else needs the scanned part.
        let stop_at = match rules {
            BodyRules {
                keyword: Some((keyword, false)),
                json: None,
            } => Some(keyword.as_bytes()),
            _ => None,
        };
        let body = self.read_body(response, stop_at).await.map_err(classify)?;
        if let Some((keyword, absent)) = rules.keyword {
            let needle = keyword.as_bytes();
            let present = body.windows(needle.len().max(1)).any(|w| w == needle);
            match (present, absent) {
                (false, false) => {
                    return Err(Failure::Reason(FailureReason::KeywordMissing, Some(found)));
                }
                (true, true) => {
                    return Err(Failure::Reason(FailureReason::KeywordPresent, Some(found)));
                }
                _ => {}
            }
        }
        if let Some((path, expected)) = &rules.json {
            let matches = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .is_some_and(|document| {
                    check_spec::select(&document, path)
                        .is_some_and(|found| check_spec::json_equal(found, expected))
                });
            if !matches {
                return Err(Failure::Reason(FailureReason::JsonMismatch, Some(found)));
            }
        }
        Ok(found)
    }

    /// Reads at most `keyword_scan_bytes` of the body (the part assertions see: a
    /// longer JSON document is cut, so it does not parse and fails its assertion).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        stop_at: Option<&[u8]>,
    ) -> Result<Vec<u8>, reqwest::Error> {
        let mut seen: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = self.keyword_scan_bytes.saturating_sub(seen.len());
            seen.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let found = stop_at
                .is_some_and(|needle| seen.windows(needle.len().max(1)).any(|w| w == needle));
            if found || seen.len() >= self.keyword_scan_bytes {
                break;
            }
        }
        Ok(seen)
    }
}

/// What arrived before the check was decided.
#[derive(Debug, Clone)]
struct Response {
    http_status: u16,
    headers_at: Instant,
    tls_expires_at_ms: Option<i64>,
}

enum Failure {
    Reason(FailureReason, Option<Response>),
    Forbidden(String),
}

/// Maps a client error to a typed failure by walking its causes.
fn classify(err: reqwest::Error) -> Failure {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(current) = cause {
        if let Some(forbidden) = current.downcast_ref::<ForbiddenTarget>() {
            return Failure::Forbidden(forbidden.to_string());
        }
        if current.is::<DnsFailure>() {
            return Failure::Reason(FailureReason::Dns, None);
        }
        if current.is::<TooManyRedirects>() {
            return Failure::Reason(FailureReason::RedirectLoop, None);
        }
        if current.is::<rustls::Error>() {
            return Failure::Reason(FailureReason::Tls, None);
        }
        cause = current.source();
    }
    if err.is_timeout() {
        Failure::Reason(FailureReason::Timeout, None)
    } else if err.is_redirect() {
        Failure::Reason(FailureReason::RedirectLoop, None)
    } else if err.to_string().contains("certificate")
        || format!("{err:?}").contains("InvalidCertificate")
    {
        Failure::Reason(FailureReason::Tls, None)
    } else {
        Failure::Reason(FailureReason::Connect, None)
    }
}

/// The leaf certificate's `notAfter`, for HTTPS responses.
fn tls_expiry(response: &reqwest::Response) -> Option<i64> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>()?;
    let der = info.peer_certificate()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp().saturating_mul(1000))
}

mod dns;
mod tcp;

#[cfg(test)]
mod assertions_tests;

#[cfg(test)]
mod dns_tests;

#[cfg(test)]
mod tests;
