//! The site assertions against real local HTTP servers: each one passing and
//! failing, the response-time limit making a correct answer `degraded`, and a
//! failing assertion winning over slowness.

use std::time::Duration;

use overlaps_shared::check_spec::StatusRange;
use overlaps_shared::protocol::{CheckStatus, FailureReason, ValidateRequest};
use overlaps_shared::testing::HttpTarget;

use super::{Checker, Refused};

fn request(url: &str) -> ValidateRequest {
    ValidateRequest {
        assignment_id: 1,
        round: 1,
        url: url.into(),
        method: "GET".into(),
        timeout_ms: 3000,
        keyword: None,
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
    Checker::new(3, 64 * 1024, true).unwrap()
}

async fn outcome(request: &ValidateRequest) -> (CheckStatus, Option<FailureReason>) {
    let found = checker().check(request).await.unwrap();
    (found.status, found.failure)
}

#[tokio::test]
async fn accepted_status_ranges_replace_the_default() {
    let target = HttpTarget::start(404, "not here").await.unwrap();
    // By default 404 is down.
    assert_eq!(
        outcome(&request(&target.url())).await,
        (CheckStatus::Down, Some(FailureReason::HttpStatus))
    );
    // A site that answers 404 by design (a health check of a deleted page).
    let mut expecting_404 = request(&target.url());
    expecting_404.accepted_status = vec![StatusRange { from: 404, to: 404 }];
    assert_eq!(outcome(&expecting_404).await, (CheckStatus::Up, None));
    // And then a 200 is down for it.
    target.set(200, "back");
    assert_eq!(
        outcome(&expecting_404).await,
        (CheckStatus::Down, Some(FailureReason::HttpStatus))
    );
}

#[tokio::test]
async fn a_keyword_that_must_be_absent_fails_when_present() {
    let target = HttpTarget::start(200, "all good").await.unwrap();
    let mut no_error = request(&target.url());
    no_error.keyword = Some("error".into());
    no_error.keyword_absent = true;
    assert_eq!(outcome(&no_error).await, (CheckStatus::Up, None));
    target.set(200, "database error: connection lost");
    assert_eq!(
        outcome(&no_error).await,
        (CheckStatus::Down, Some(FailureReason::KeywordPresent))
    );
}

#[tokio::test]
async fn a_json_value_must_equal_the_expected_one() {
    let target = HttpTarget::start(
        200,
        r#"{"checks":[{"name":"db","status":"ok"}],"version":3}"#,
    )
    .await
    .unwrap();
    let mut json = request(&target.url());
    json.json_path = Some("$.checks[0].status".into());
    json.json_expected = Some(serde_json::json!("ok"));
    assert_eq!(outcome(&json).await, (CheckStatus::Up, None));
    // A different value, a missing path, a body that is not JSON: all mismatches.
    target.set(200, r#"{"checks":[{"name":"db","status":"failing"}]}"#);
    assert_eq!(
        outcome(&json).await,
        (CheckStatus::Down, Some(FailureReason::JsonMismatch))
    );
    target.set(200, r#"{"checks":[]}"#);
    assert_eq!(
        outcome(&json).await,
        (CheckStatus::Down, Some(FailureReason::JsonMismatch))
    );
    target.set(200, "<html>ok</html>");
    assert_eq!(
        outcome(&json).await,
        (CheckStatus::Down, Some(FailureReason::JsonMismatch))
    );
    // Numbers and objects compare as JSON values, not as text.
    target.set(200, r#"{"version": 3.0, "meta": {"b": 2, "a": 1.0}}"#);
    json.json_path = Some("$.meta".into());
    json.json_expected = Some(serde_json::json!({"a": 1, "b": 2}));
    assert_eq!(outcome(&json).await, (CheckStatus::Up, None));
    json.json_path = Some("$.version".into());
    json.json_expected = Some(serde_json::json!(3));
    assert_eq!(outcome(&json).await, (CheckStatus::Up, None));
}

#[tokio::test]
async fn a_correct_but_slow_answer_is_degraded_and_a_failing_one_stays_down() {
    let slow = HttpTarget::start_delayed(200, r#"{"status":"ok"}"#, Duration::from_millis(400))
        .await
        .unwrap();
    let url = slow.url();
    let mut limited = request(&url);
    limited.max_response_ms = Some(150);
    let found = checker().check(&limited).await.unwrap();
    assert_eq!(
        (found.status, found.failure, found.http_status),
        (
            CheckStatus::Degraded,
            Some(FailureReason::TooSlow),
            Some(200)
        )
    );
    assert!(found.latency_ms > 150, "{}", found.latency_ms);
    // Within the limit: up.
    limited.max_response_ms = Some(2000);
    assert_eq!(outcome(&limited).await, (CheckStatus::Up, None));
    // Slow and failing an assertion: down wins.
    limited.max_response_ms = Some(150);
    limited.json_path = Some("$.status".into());
    limited.json_expected = Some(serde_json::json!("degraded"));
    assert_eq!(
        outcome(&limited).await,
        (CheckStatus::Down, Some(FailureReason::JsonMismatch))
    );
}

#[tokio::test]
async fn an_assertion_outside_the_subset_is_refused_not_checked() {
    let target = HttpTarget::start(200, "{}").await.unwrap();
    let mut wildcard = request(&target.url());
    wildcard.json_path = Some("$.items[*].id".into());
    wildcard.json_expected = Some(serde_json::json!(1));
    assert!(matches!(
        checker().check(&wildcard).await,
        Err(Refused::BadAssertion(_))
    ));
    let mut half = request(&target.url());
    half.json_path = Some("$.a".into());
    assert!(matches!(
        checker().check(&half).await,
        Err(Refused::BadAssertion(_))
    ));
    assert_eq!(target.hits(), 0);
}

#[test]
fn the_spec_hash_covers_every_assertion_the_node_evaluates() {
    let base = request("https://example.com/");
    let mut changed = Vec::new();
    let mut r = base.clone();
    r.keyword = Some("x".into());
    changed.push(r.clone());
    r.keyword_absent = true;
    changed.push(r);
    let mut r = base.clone();
    r.accepted_status = vec![StatusRange { from: 200, to: 200 }];
    changed.push(r);
    let mut r = base.clone();
    r.json_path = Some("$.a".into());
    r.json_expected = Some(serde_json::json!(1));
    changed.push(r);
    let mut r = base.clone();
    r.max_response_ms = Some(10);
    changed.push(r);
    for r in changed {
        assert_ne!(r.spec().hash(), base.spec().hash(), "{r:?}");
    }
    // The assignment id, round and deadline are not part of the spec.
    let mut other = base.clone();
    other.assignment_id = 99;
    other.deadline_ms = 5;
    assert_eq!(other.spec().hash(), base.spec().hash());
}

#[tokio::test]
async fn a_tcp_port_is_up_when_a_connection_completes_and_down_when_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
    let open = request(&format!("tcp://127.0.0.1:{port}"));
    let found = checker().check(&open).await.unwrap();
    assert_eq!(
        (found.status, found.failure, found.http_status),
        (CheckStatus::Up, None, None)
    );
    assert!(accepted.await.unwrap(), "the check really connected");

    let closed_port = overlaps_shared::testing::free_port().unwrap();
    assert_eq!(
        outcome(&request(&format!("tcp://127.0.0.1:{closed_port}"))).await,
        (CheckStatus::Down, Some(FailureReason::Connect))
    );
    assert_eq!(
        outcome(&request("tcp://no-such-host.invalid:5432")).await,
        (CheckStatus::Down, Some(FailureReason::Dns))
    );
    // A name resolved by the system resolver reaches the port too.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    assert_eq!(
        outcome(&request(&format!("tcp://localhost:{port}"))).await,
        (CheckStatus::Up, None)
    );
}

#[tokio::test]
async fn a_tcp_check_guards_private_targets_and_needs_a_port() {
    overlaps_shared::testing::install_tls_provider();
    let guarded = Checker::new(3, 1024, false).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [
        format!("tcp://127.0.0.1:{port}"),
        format!("tcp://localhost:{port}"),
        "tcp://169.254.169.254:80".to_owned(),
        "tcp://[::1]:22".to_owned(),
    ] {
        let refused = guarded.check(&request(&url)).await.unwrap_err();
        assert!(
            matches!(refused, Refused::Forbidden(_)),
            "{url}: {refused:?}"
        );
    }
    let no_port = guarded
        .check(&request("tcp://example.com"))
        .await
        .unwrap_err();
    assert!(matches!(no_port, Refused::BadUrl(..)), "{no_port:?}");
}
