//! The HTTP check against real local servers: status, keyword, slow bodies,
//! TLS expiry and failures, redirects, and the private-target guard.

use std::time::Duration;

use overlaps_shared::testing::HttpTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn request(url: &str, timeout_ms: u32, keyword: Option<&str>) -> ValidateRequest {
    ValidateRequest {
        assignment_id: 1,
        round: 1,
        url: url.into(),
        method: "GET".into(),
        timeout_ms,
        keyword: keyword.map(str::to_owned),
        keyword_absent: false,
        accepted_status: Vec::new(),
        json_path: None,
        json_expected: None,
        max_response_ms: None,
        deadline_ms: 0,
    }
}

fn checker() -> Checker {
    overlaps_shared::testing::install_tls_provider();
    Checker::new(3, 1024, true).unwrap()
}

/// A raw server: for every connection, writes `parts` with `pause` between them.
async fn raw_server(parts: Vec<String>, pause: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                for part in parts {
                    if stream.write_all(part.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn an_answering_site_is_up_and_a_failing_one_down_with_its_status() {
    let ok = HttpTarget::start(200, "service healthy").await.unwrap();
    let outcome = checker()
        .check(&request(&ok.url(), 2000, Some("healthy")))
        .await
        .unwrap();
    assert_eq!(
        (outcome.status, outcome.http_status, outcome.failure),
        (CheckStatus::Up, Some(200), None)
    );
    let failing = HttpTarget::start(502, "bad gateway").await.unwrap();
    let outcome = checker()
        .check(&request(&failing.url(), 2000, None))
        .await
        .unwrap();
    assert_eq!(
        (outcome.status, outcome.http_status, outcome.failure),
        (
            CheckStatus::Down,
            Some(502),
            Some(FailureReason::HttpStatus)
        )
    );
}

#[tokio::test]
async fn the_keyword_must_be_in_the_scanned_part_of_the_body() {
    let far = format!("{}needle", "x".repeat(4096));
    let target = HttpTarget::start(200, &far).await.unwrap();
    // The scan stops at 1 KiB: a keyword beyond it counts as missing.
    let outcome = checker()
        .check(&request(&target.url(), 2000, Some("needle")))
        .await
        .unwrap();
    assert_eq!(outcome.failure, Some(FailureReason::KeywordMissing));
    target.set(200, "a needle early on");
    let outcome = checker()
        .check(&request(&target.url(), 2000, Some("needle")))
        .await
        .unwrap();
    assert_eq!(outcome.status, CheckStatus::Up);
    // HEAD has no body: the keyword is not asked for.
    let mut head = request(&target.url(), 2000, Some("absent"));
    head.method = "HEAD".into();
    assert_eq!(
        checker().check(&head).await.unwrap().status,
        CheckStatus::Up
    );
}

#[tokio::test]
async fn a_slow_drip_body_hits_the_overall_timeout() {
    let mut parts = vec!["HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n".to_owned()];
    parts.extend((0..100).map(|_| "x".to_owned()));
    let url = raw_server(parts, Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let outcome = checker()
        .check(&request(&url, 600, Some("never")))
        .await
        .unwrap();
    assert_eq!(outcome.failure, Some(FailureReason::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// An HTTPS server on localhost with a self-signed certificate valid until `not_after`.
async fn https_server(not_after: (i32, u8, u8)) -> (String, reqwest::Certificate) {
    use std::sync::Arc;
    overlaps_shared::testing::install_tls_provider();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (
        format!("https://localhost:{port}/"),
        reqwest::Certificate::from_der(&der).unwrap(),
    )
}

#[tokio::test]
async fn https_checks_report_the_certificate_expiry() {
    let (url, root) = https_server((2031, 5, 17)).await;
    let trusting = Checker::trusting(3, 1024, true, vec![root]).unwrap();
    let outcome = trusting.check(&request(&url, 3000, None)).await.unwrap();
    assert_eq!(
        (outcome.status, outcome.http_status),
        (CheckStatus::Up, Some(200))
    );
    let expected = chrono::NaiveDate::from_ymd_opt(2031, 5, 17)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(outcome.tls_expires_at_ms, Some(expected.timestamp_millis()));
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    let (url, _) = https_server((2031, 5, 17)).await;
    let outcome = checker().check(&request(&url, 3000, None)).await.unwrap();
    assert_eq!(
        (outcome.status, outcome.failure),
        (CheckStatus::Down, Some(FailureReason::Tls))
    );
}

#[tokio::test]
async fn a_redirect_loop_is_cut_after_the_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let reply = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://{addr}/again\r\ncontent-length: 0\r\n\r\n"
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    let outcome = checker()
        .check(&request(&format!("http://{addr}/"), 2000, None))
        .await
        .unwrap();
    assert_eq!(outcome.failure, Some(FailureReason::RedirectLoop));
}

#[tokio::test]
async fn unreachable_and_unresolvable_sites_are_down_with_typed_reasons() {
    let port = overlaps_shared::testing::free_port().unwrap();
    let refused = checker()
        .check(&request(&format!("http://127.0.0.1:{port}/"), 2000, None))
        .await
        .unwrap();
    assert_eq!(refused.failure, Some(FailureReason::Connect));
    let unknown = checker()
        .check(&request("http://no-such-host.invalid/", 2000, None))
        .await
        .unwrap();
    assert_eq!(unknown.failure, Some(FailureReason::Dns));
}

#[tokio::test]
async fn private_targets_and_bad_urls_are_refused_not_checked() {
    overlaps_shared::testing::install_tls_provider();
    let guarded = Checker::new(3, 1024, false).unwrap();
    let target = HttpTarget::start(200, "ok").await.unwrap();
    for url in [
        target.url(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://localhost/".into(),
        "http://[::1]/".into(),
    ] {
        let refused = guarded.check(&request(&url, 1000, None)).await.unwrap_err();
        assert!(
            matches!(refused, Refused::Forbidden(_)),
            "{url}: {refused:?}"
        );
    }
    assert_eq!(target.hits(), 0);
    for url in ["ftp://example.com/", "not a url", "http://"] {
        let refused = guarded.check(&request(url, 1000, None)).await.unwrap_err();
        assert!(matches!(refused, Refused::BadUrl(..)), "{url}: {refused:?}");
    }
    let mut post = request("https://example.com/", 1000, None);
    post.method = "POST".into();
    assert!(matches!(
        guarded.check(&post).await.unwrap_err(),
        Refused::Method(_)
    ));
}
