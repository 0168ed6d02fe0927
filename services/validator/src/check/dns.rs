//! DNS record checks (`dns://name/TYPE`): up when the name has at least one record
//! of the type (and the expected answer, the request's `keyword`, is among them);
//! degraded when the answer came after `max_response_ms`. The resolver is the
//! system's, or the one `--dns-server` names.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use overlaps_shared::dns_check::{self, Answer, DnsTarget, RecordKind};
use overlaps_shared::protocol::{CheckStatus, FailureReason, ValidateRequest};

use super::{CheckOutcome, Checker, Refused};

/// Builds a resolver for one check: no cache (each check asks afresh, as the
/// monitored answer is what the world sees now) and no hosts file (a local
/// `/etc/hosts` entry says nothing about the site's DNS).
fn resolver(server: Option<SocketAddr>, timeout: Duration) -> Result<TokioResolver, NetError> {
    let mut builder = match server {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                addr.ip(),
                true,
                vec![udp, tcp],
            )]);
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio()?,
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = timeout;
    options.attempts = 1;
    builder.build()
}

fn record_type(kind: RecordKind) -> RecordType {
    match kind {
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
        RecordKind::Cname => RecordType::CNAME,
        RecordKind::Mx => RecordType::MX,
        RecordKind::Txt => RecordType::TXT,
        RecordKind::Ns => RecordType::NS,
    }
}

/// A record's canonical text (see `dns_check`), if it is of the asked kind: a
/// lookup of a name behind a CNAME also returns the CNAME, which is not an answer.
fn answer(kind: RecordKind, data: &RData) -> Option<Answer> {
    let name = |n: &hickory_resolver::proto::rr::Name| {
        let text = n.to_ascii().to_ascii_lowercase();
        text.strip_suffix('.').unwrap_or(&text).to_owned()
    };
    match (kind, data) {
        (RecordKind::A, RData::A(a)) => Some(a.0.to_string()),
        (RecordKind::Aaaa, RData::AAAA(a)) => Some(a.0.to_string()),
        (RecordKind::Cname, RData::CNAME(c)) => Some(name(&c.0)),
        (RecordKind::Ns, RData::NS(n)) => Some(name(&n.0)),
        (RecordKind::Mx, RData::MX(mx)) => {
            Some(format!("{} {}", mx.preference, name(&mx.exchange)))
        }
        (RecordKind::Txt, RData::TXT(txt)) => Some(
            txt.txt_data
                .iter()
                .map(|part| String::from_utf8_lossy(part))
                .collect::<String>(),
        ),
        _ => None,
    }
}

impl Checker {
    /// A DNS record check. Refused (no result) for a name that is internal
    /// (`localhost`, one label, `.local`, `.internal`, …) unless private targets are
    /// allowed, and for an expected answer that does not fit the type.
    pub(super) async fn check_dns(
        &self,
        request: &ValidateRequest,
    ) -> Result<CheckOutcome, Refused> {
        let bad = |why: String| Refused::BadUrl(request.url.clone(), why);
        let target = DnsTarget::parse(&request.url).map_err(|e| bad(e.to_string()))?;
        if !self.allow_private && dns_check::is_internal_name(&target.name) {
            return Err(Refused::Forbidden(format!(
                "{} is an internal name",
                target.name
            )));
        }
        if request.keyword_absent {
            return Err(Refused::BadAssertion(
                "a dns check has no keyword_absent".into(),
            ));
        }
        let expected = request
            .keyword
            .as_deref()
            .map(|text| dns_check::canonical_expected(target.kind, text))
            .transpose()
            .map_err(|e| Refused::BadAssertion(e.to_string()))?;
        let timeout = Duration::from_millis(u64::from(request.timeout_ms.max(1)));
        let resolver = resolver(self.dns_server, timeout)
            .map_err(|e| Refused::Unavailable(format!("no DNS resolver: {e}")))?;
        let checked_at_ms = chrono::Utc::now().timestamp_millis();
        let started = Instant::now();
        // Fully qualified (trailing dot): never completed with the node's search domains.
        let fqdn = format!("{}.", target.name);
        let lookup = resolver.lookup(fqdn.as_str(), record_type(target.kind));
        let found = tokio::time::timeout(timeout, lookup).await;
        let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let failure = match found {
            Err(_) | Ok(Err(NetError::Timeout)) => Some(FailureReason::Timeout),
            Ok(Err(_)) => Some(FailureReason::Dns),
            Ok(Ok(lookup)) => {
                let answers: Vec<Answer> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| answer(target.kind, &record.data))
                    .collect();
                if answers.is_empty() {
                    Some(FailureReason::Dns)
                } else if expected
                    .as_deref()
                    .is_some_and(|e| !dns_check::expected_among(target.kind, e, &answers))
                {
                    Some(FailureReason::DnsMismatch)
                } else {
                    None
                }
            }
        };
        let (status, failure) = match failure {
            Some(reason) => (CheckStatus::Down, Some(reason)),
            None if request
                .max_response_ms
                .is_some_and(|limit| latency_ms > limit) =>
            {
                (CheckStatus::Degraded, Some(FailureReason::TooSlow))
            }
            None => (CheckStatus::Up, None),
        };
        Ok(CheckOutcome {
            status,
            http_status: None,
            latency_ms,
            failure,
            tls_expires_at_ms: None,
            checked_at_ms,
        })
    }
}
