//! DNS record checks against a real local DNS server (`testing::TestDnsServer`):
//! every record type matching and mismatching its expected answer, NXDOMAIN and a
//! name without records of the type, a slow answer (degraded) and no answer in
//! time (timeout), and the guard refusing internal names.

use std::time::Duration;

use overlaps_shared::protocol::{CheckStatus, FailureReason, ValidateRequest};
use overlaps_shared::testing::{DNS_SLOW_NAME, TestDnsServer};

use super::{Checker, Refused};

fn request(url: &str, expected: Option<&str>) -> ValidateRequest {
    ValidateRequest {
        assignment_id: 1,
        round: 1,
        url: url.into(),
        method: "GET".into(),
        timeout_ms: 3000,
        keyword: expected.map(str::to_owned),
        keyword_absent: false,
        accepted_status: Vec::new(),
        json_path: None,
        json_expected: None,
        max_response_ms: None,
        deadline_ms: 0,
    }
}

fn checker(server: &TestDnsServer, allow_private: bool) -> Checker {
    overlaps_shared::testing::install_tls_provider();
    Checker::new(3, 1024, allow_private)
        .unwrap()
        .with_dns_server(Some(server.addr()))
}

async fn outcome(
    server: &TestDnsServer,
    request: &ValidateRequest,
) -> (CheckStatus, Option<FailureReason>) {
    let found = checker(server, false).check(request).await.unwrap();
    assert_eq!(found.http_status, None);
    (found.status, found.failure)
}

#[tokio::test]
async fn every_record_type_matches_its_expected_answer() {
    let dns = TestDnsServer::start(Duration::ZERO).await.unwrap();
    let up = (CheckStatus::Up, None);
    for (url, expected) in [
        ("dns://www.example.test/A", None),
        ("dns://www.example.test/A", Some("192.0.2.11")),
        ("dns://WWW.Example.Test./a", Some("192.0.2.10")),
        ("dns://www.example.test/AAAA", Some("2001:DB8:0:0::10")),
        ("dns://alias.example.test/CNAME", Some("WWW.example.test.")),
        ("dns://example.test/MX", Some("mx2.example.test")),
        ("dns://example.test/MX", Some("20 mx2.example.test")),
        ("dns://example.test/TXT", Some("v=spf1 -all")),
        ("dns://example.test/NS", Some("ns1.example.test")),
        // An answer in a private range is evaluated like any other (the owner may
        // expect one); only internal names are refused.
        ("dns://private.example.test/A", Some("10.0.0.5")),
    ] {
        assert_eq!(
            outcome(&dns, &request(url, expected)).await,
            up,
            "{url} {expected:?}"
        );
    }
}

#[tokio::test]
async fn an_answer_other_than_the_expected_one_is_dns_mismatch() {
    let dns = TestDnsServer::start(Duration::ZERO).await.unwrap();
    let mismatch = (CheckStatus::Down, Some(FailureReason::DnsMismatch));
    for (url, expected) in [
        ("dns://www.example.test/A", "192.0.2.99"),
        ("dns://www.example.test/AAAA", "2001:db8::11"),
        ("dns://alias.example.test/CNAME", "other.example.test"),
        ("dns://example.test/MX", "10 mx2.example.test"),
        ("dns://example.test/MX", "mx3.example.test"),
        ("dns://example.test/TXT", "v=spf1"),
        ("dns://example.test/NS", "ns2.example.test"),
    ] {
        assert_eq!(
            outcome(&dns, &request(url, Some(expected))).await,
            mismatch,
            "{url} {expected}"
        );
    }
}

#[tokio::test]
async fn nxdomain_and_no_records_of_the_type_are_dns() {
    let dns = TestDnsServer::start(Duration::ZERO).await.unwrap();
    let down = (CheckStatus::Down, Some(FailureReason::Dns));
    for (url, expected) in [
        ("dns://nope.example.test/A", "192.0.2.10"),
        ("dns://www.example.test/MX", "mx1.example.test"),
        ("dns://example.test/A", "192.0.2.10"),
    ] {
        assert_eq!(outcome(&dns, &request(url, None)).await, down, "{url}");
        // An expected answer changes nothing: there is nothing to compare.
        assert_eq!(
            outcome(&dns, &request(url, Some(expected))).await,
            down,
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_slow_answer_is_degraded_and_none_in_time_is_timeout() {
    let dns = TestDnsServer::start(Duration::from_millis(400))
        .await
        .unwrap();
    let url = format!("dns://{DNS_SLOW_NAME}/A");
    let slow = ValidateRequest {
        max_response_ms: Some(100),
        ..request(&url, Some("192.0.2.20"))
    };
    let found = checker(&dns, false).check(&slow).await.unwrap();
    assert_eq!(
        (found.status, found.failure),
        (CheckStatus::Degraded, Some(FailureReason::TooSlow))
    );
    assert!(found.latency_ms > 100, "{found:?}");
    // A wrong answer is down however slow (down wins).
    let wrong = ValidateRequest {
        keyword: Some("192.0.2.21".into()),
        ..slow.clone()
    };
    assert_eq!(
        outcome(&dns, &wrong).await,
        (CheckStatus::Down, Some(FailureReason::DnsMismatch))
    );
    let within = ValidateRequest {
        max_response_ms: Some(2000),
        ..slow.clone()
    };
    assert_eq!(outcome(&dns, &within).await, (CheckStatus::Up, None));
    let short = ValidateRequest {
        timeout_ms: 150,
        max_response_ms: None,
        ..slow
    };
    assert_eq!(
        outcome(&dns, &short).await,
        (CheckStatus::Down, Some(FailureReason::Timeout))
    );
}

#[tokio::test]
async fn internal_names_and_unusable_expectations_are_refused() {
    let dns = TestDnsServer::start(Duration::ZERO).await.unwrap();
    for url in [
        "dns://localhost/A",
        "dns://db/A",
        "dns://x.localhost/A",
        "dns://printer.local/A",
        "dns://api.internal/AAAA",
    ] {
        let refused = checker(&dns, false).check(&request(url, None)).await;
        assert!(
            matches!(refused, Err(Refused::Forbidden(_))),
            "{url}: {refused:?}"
        );
        // Allowed on a dev network: checked like any name (a result, not refused;
        // the resolver answers `localhost` itself, this server knows the others not).
        let allowed = checker(&dns, true)
            .check(&request(url, None))
            .await
            .unwrap();
        assert_ne!(allowed.status, CheckStatus::Degraded, "{url}");
    }
    let bad = checker(&dns, false)
        .check(&request("dns://www.example.test/A", Some("not-an-ip")))
        .await;
    assert!(matches!(bad, Err(Refused::BadAssertion(_))), "{bad:?}");
    let absent = ValidateRequest {
        keyword_absent: true,
        ..request("dns://www.example.test/A", Some("192.0.2.10"))
    };
    let refused = checker(&dns, false).check(&absent).await;
    assert!(
        matches!(refused, Err(Refused::BadAssertion(_))),
        "{refused:?}"
    );
    let bad_url = checker(&dns, false)
        .check(&request("dns://www.example.test/SRV", None))
        .await;
    assert!(matches!(bad_url, Err(Refused::BadUrl(..))), "{bad_url:?}");
}
