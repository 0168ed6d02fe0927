//! TCP port checks (`tcp://host:port`): up when a connection completes within the
//! timeout; the name is resolved through the guard, as for HTTP.

use std::time::{Duration, Instant};

use overlaps_shared::protocol::{CheckStatus, FailureReason, ValidateRequest};
use overlaps_shared::ssrf as guard;

use super::{CheckOutcome, Checker, Failure, Refused};

impl Checker {
    /// A TCP check: up when a connection to `host:port` completes within the
    /// timeout (degraded when that took longer than `max_response_ms`). Names are
    /// resolved through the guard, so a private target is refused like for HTTP.
    pub(super) async fn check_tcp(
        &self,
        request: &ValidateRequest,
        url: &reqwest::Url,
    ) -> Result<CheckOutcome, Refused> {
        let port = url.port().unwrap_or(0);
        let checked_at_ms = chrono::Utc::now().timestamp_millis();
        let started = Instant::now();
        let timeout = Duration::from_millis(u64::from(request.timeout_ms.max(1)));
        let allow_private = self.allow_private;
        let host = url.host().map(|h| h.to_owned());
        let connect = async move {
            let addrs: Vec<std::net::SocketAddr> = match host {
                Some(url::Host::Ipv4(ip)) => vec![(ip, port).into()],
                Some(url::Host::Ipv6(ip)) => vec![(ip, port).into()],
                Some(url::Host::Domain(name)) => match guard::resolve(&name, allow_private).await {
                    Ok(addrs) => addrs
                        .into_iter()
                        .map(|a| std::net::SocketAddr::new(a.ip(), port))
                        .collect(),
                    Err(err) if guard::is_refusal(err.as_ref()) => {
                        return Err(Failure::Forbidden(err.to_string()));
                    }
                    Err(_) => return Err(Failure::Reason(FailureReason::Dns, None)),
                },
                None => return Err(Failure::Reason(FailureReason::Dns, None)),
            };
            for addr in addrs {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Ok(());
                }
            }
            Err(Failure::Reason(FailureReason::Connect, None))
        };
        let found = match tokio::time::timeout(timeout, connect).await {
            Ok(found) => found,
            Err(_) => Err(Failure::Reason(FailureReason::Timeout, None)),
        };
        let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let (status, failure) = match found {
            Ok(())
                if request
                    .max_response_ms
                    .is_some_and(|limit| latency_ms > limit) =>
            {
                (CheckStatus::Degraded, Some(FailureReason::TooSlow))
            }
            Ok(()) => (CheckStatus::Up, None),
            Err(Failure::Reason(reason, _)) => (CheckStatus::Down, Some(reason)),
            Err(Failure::Forbidden(target)) => return Err(Refused::Forbidden(target)),
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
