//! The validator WebSocket through a real server binary: signup, dispatch, results,
//! and every kind of bad input. Each refusal is a clear error, the connection is
//! handled (kept or closed with a reason), and nothing stored is lost or corrupted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

#[path = "validator_socket/abuse.rs"]
mod abuse;
mod common;
#[path = "validator_socket/forged.rs"]
mod forged;
#[path = "validator_socket/poisoned.rs"]
mod poisoned;

use std::time::Duration;

use chrono::Utc;
use common::{Client, Deployment, signed_result};
use overlaps_shared::protocol::{CheckStatus, ErrorCode, HubMessage, ValidatorMessage};
use overlaps_shared::signing::Keypair;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A signed-up validator with one dispatched assignment it has received.
async fn assigned(
    dep: &Deployment,
    server: &common::Server,
    deadline_in: chrono::Duration,
) -> (Client, Keypair, i64, i64) {
    let key = Keypair::generate();
    let mut client = Client::connect(&server.ws_url()).await;
    let validator_id = client.signup(&key).await;
    let site = dep.website("https://example.com/");
    let deadline = Utc::now() + deadline_in;
    let round = 1 + dep.count("SELECT count(*) FROM rounds");
    dep.round(round, deadline);
    let assignment = dep.assign(round, site, validator_id, &server.instance, deadline);
    dep.dispatch(&server.instance, round, vec![assignment])
        .await;
    match client.recv().await {
        HubMessage::Validate(request) => {
            assert_eq!(request.assignment_id, assignment);
            assert_eq!(request.url, "https://example.com/");
            assert_eq!(request.deadline_ms, deadline.timestamp_millis());
        }
        other => panic!("expected validate, got {other:?}"),
    }
    (client, key, validator_id, assignment)
}

#[tokio::test]
async fn a_signed_result_is_stored_once_and_acknowledged_even_when_resent() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let (mut client, key, validator_id, assignment) =
        assigned(&dep, &server, chrono::Duration::seconds(30)).await;

    let result = signed_result(&key, assignment, CheckStatus::Up);
    client.send_result(result.clone()).await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
    assert_eq!(dep.assignment_state(assignment), "answered");

    // The same signed result again (as after a lost ack): acknowledged, stored once.
    client.send_result(result.clone()).await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
    assert_eq!(dep.count("SELECT count(*) FROM ticks"), 1);
    let stored = dep.count(&format!(
        "SELECT count(*) FROM ticks WHERE assignment_id = {assignment} AND validator_id = {validator_id} \
         AND status = 'up' AND http_status = 200 AND latency_ms = 42"
    ));
    assert_eq!(stored, 1);

    // A different result for the same assignment is refused; the first one stays.
    let other = signed_result(&key, assignment, CheckStatus::Down);
    client.send_result(other).await;
    assert_eq!(client.error().await, ErrorCode::AlreadyAnswered);
    assert_eq!(
        dep.count("SELECT count(*) FROM ticks WHERE status = 'up'"),
        1
    );
    assert_eq!(dep.count("SELECT count(*) FROM ticks"), 1);
}

#[tokio::test]
async fn malformed_unknown_and_binary_frames_get_errors_and_the_connection_lives_on() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let mut client = Client::connect(&server.ws_url()).await;

    client.send_text("{not json").await;
    assert_eq!(client.error().await, ErrorCode::MalformedJson);
    client
        .send_text(r#"{"type":"result","assignment_id":"seven"}"#)
        .await;
    assert_eq!(client.error().await, ErrorCode::MalformedJson);
    client.send_text(r#"{"type":"steal_rewards"}"#).await;
    assert_eq!(client.error().await, ErrorCode::UnknownMessage);
    use futures::SinkExt;
    client
        .socket
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    assert_eq!(client.error().await, ErrorCode::BinaryNotSupported);

    // Still usable: a proper signup works on the same connection.
    let key = Keypair::generate();
    assert!(client.signup(&key).await > 0);
    assert_eq!(dep.count("SELECT count(*) FROM validators"), 1);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_with_a_reason() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("WS_MAX_FRAME_BYTES", "1024")]);
    let mut client = Client::connect(&server.ws_url()).await;
    client
        .send_text(&format!(
            r#"{{"type":"signup","public_key":"{}"}}"#,
            "a".repeat(4096)
        ))
        .await;
    let frame = client.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Size);
    assert!(frame.reason.contains("1024"), "{}", frame.reason);
    // The server is fine: others still connect.
    Client::connect(&server.ws_url()).await;
}

#[tokio::test]
async fn bad_signups_are_refused_with_their_reason() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let key = Keypair::generate();
    let mut client = Client::connect(&server.ws_url()).await;
    let good = client.signup_message(&key);
    let ValidatorMessage::Signup {
        public_key,
        payout_address,
        signature,
    } = good.clone()
    else {
        unreachable!()
    };

    let cases = [
        // Signed by another key.
        (
            ValidatorMessage::Signup {
                public_key: public_key.clone(),
                payout_address: payout_address.clone(),
                signature: client.signup_message(&Keypair::generate()).signature_of(),
            },
            ErrorCode::BadSignature,
        ),
        (
            ValidatorMessage::Signup {
                public_key: "abcd".into(),
                payout_address: payout_address.clone(),
                signature: signature.clone(),
            },
            ErrorCode::BadKey,
        ),
        (
            ValidatorMessage::Signup {
                public_key: "01".repeat(32).replacen("01", "00", 31),
                payout_address: payout_address.clone(),
                signature: signature.clone(),
            },
            ErrorCode::BadKey,
        ),
        (
            ValidatorMessage::Signup {
                public_key: public_key.clone(),
                payout_address: payout_address.to_lowercase(),
                signature: signature.clone(),
            },
            ErrorCode::BadPayoutAddress,
        ),
        (
            ValidatorMessage::Signup {
                public_key: public_key.clone(),
                payout_address: "0x1234".into(),
                signature: signature.clone(),
            },
            ErrorCode::BadPayoutAddress,
        ),
        (
            ValidatorMessage::Signup {
                public_key: public_key.clone(),
                payout_address: payout_address.clone(),
                signature: "zz".into(),
            },
            ErrorCode::BadSignature,
        ),
    ];
    for (msg, code) in cases {
        client.send(&msg).await;
        assert_eq!(client.error().await, code, "{msg:?}");
    }
    assert_eq!(dep.count("SELECT count(*) FROM validators"), 0);

    // A result before signup.
    client
        .send_result(signed_result(&key, 1, CheckStatus::Up))
        .await;
    assert_eq!(client.error().await, ErrorCode::NotSignedUp);

    // The genuine signup still works, once.
    client.send(&good).await;
    assert!(matches!(client.recv().await, HubMessage::SignedUp { .. }));
    client.send(&good).await;
    assert_eq!(client.error().await, ErrorCode::AlreadySignedUp);
}

/// Helper: the signature field of a signup message.
trait SignatureOf {
    fn signature_of(&self) -> String;
}

impl SignatureOf for ValidatorMessage {
    fn signature_of(&self) -> String {
        match self {
            ValidatorMessage::Signup { signature, .. } => signature.clone(),
            ValidatorMessage::Result(r) => r.signature.clone(),
        }
    }
}

#[tokio::test]
async fn a_captured_signup_replayed_on_a_new_connection_is_refused() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let key = Keypair::generate();
    let first = Client::connect(&server.ws_url()).await;
    let captured = first.signup_message(&key);
    drop(first);
    let mut second = Client::connect(&server.ws_url()).await;
    second.send(&captured).await;
    assert_eq!(second.error().await, ErrorCode::BadSignature);
    assert_eq!(dep.count("SELECT count(*) FROM validators"), 0);
}

#[tokio::test]
async fn a_key_with_a_live_session_cannot_sign_up_again_anywhere() {
    let dep = Deployment::new();
    let one = dep.server("s1", &[]);
    let two = dep.server("s2", &[]);
    let key = Keypair::generate();
    let mut first = Client::connect(&one.ws_url()).await;
    first.signup(&key).await;
    for server in [&one, &two] {
        let mut again = Client::connect(&server.ws_url()).await;
        let msg = again.signup_message(&key);
        again.send(&msg).await;
        assert_eq!(again.error().await, ErrorCode::KeyInUse);
        let frame = again.closed().await.expect("closed with a reason");
        assert_eq!(frame.code, CloseCode::Policy);
    }
    // Once the first session ends, the key signs up again (here, on the other instance).
    drop(first);
    let mut later = Client::connect(&two.ws_url()).await;
    let mut signed_up = None;
    for _ in 0..50 {
        let msg = later.signup_message(&key);
        later.send(&msg).await;
        match later.recv().await {
            HubMessage::SignedUp { validator_id } => {
                signed_up = Some(validator_id);
                break;
            }
            HubMessage::Error {
                code: ErrorCode::KeyInUse,
                ..
            } => {
                later = Client::connect(&two.ws_url()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(signed_up.is_some());
    assert_eq!(dep.count("SELECT count(*) FROM validators"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_server_tells_validators_to_reconnect_and_frees_their_keys_at_once() {
    let dep = Deployment::new();
    let mut one = dep.server("s1", &[]);
    let key = Keypair::generate();
    let mut client = Client::connect(&one.ws_url()).await;
    let validator_id = client.signup(&key).await;
    // A pending assignment on the stopping instance is released as missed.
    let site = dep.website("https://example.com/");
    let deadline = Utc::now() + chrono::Duration::seconds(60);
    dep.round(1, deadline);
    let assignment = dep.assign(1, site, validator_id, &one.instance, deadline);

    one.process.signal("TERM").unwrap();
    let frame = client.closed().await.expect("closed with a reason");
    assert_eq!(frame.code, CloseCode::Restart, "{frame:?}");
    let exited = tokio::task::block_in_place(|| one.process.wait_exit(Duration::from_secs(15)));
    assert!(
        matches!(exited, Ok(Some(status)) if status.success()),
        "{exited:?}"
    );
    assert_eq!(dep.assignment_state(assignment), "missed");

    // The key's session lock went with the connection: a new instance takes it on the
    // first try, not `key_in_use` until the lock's 30 s expire.
    let two = dep.server("s2", &[]);
    let mut again = Client::connect(&two.ws_url()).await;
    assert_eq!(again.signup(&key).await, validator_id);
}

#[tokio::test]
async fn results_for_unknown_foreign_or_tampered_assignments_are_refused() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let (mut client, key, _, assignment) =
        assigned(&dep, &server, chrono::Duration::seconds(30)).await;

    // Another validator's assignment.
    let other_key = Keypair::generate();
    let mut other = Client::connect(&server.ws_url()).await;
    other.signup(&other_key).await;
    other
        .send_result(signed_result(&other_key, assignment, CheckStatus::Down))
        .await;
    assert_eq!(other.error().await, ErrorCode::NotYourAssignment);

    // An assignment that does not exist.
    client
        .send_result(signed_result(&key, 999_999, CheckStatus::Up))
        .await;
    assert_eq!(client.error().await, ErrorCode::UnknownAssignment);

    // A field changed after signing.
    let mut tampered = signed_result(&key, assignment, CheckStatus::Up);
    tampered.latency_ms += 1;
    client.send_result(tampered).await;
    assert_eq!(client.error().await, ErrorCode::BadSignature);

    // Signed by someone else's key.
    let forged = signed_result(&other_key, assignment, CheckStatus::Up);
    client.send_result(forged).await;
    assert_eq!(client.error().await, ErrorCode::BadSignature);

    // A garbage signature, and contradictory fields.
    let mut garbage = signed_result(&key, assignment, CheckStatus::Up);
    garbage.signature = "00".into();
    client.send_result(garbage).await;
    assert_eq!(client.error().await, ErrorCode::BadSignature);
    let mut contradictory = signed_result(&key, assignment, CheckStatus::Up);
    contradictory.failure = Some(overlaps_shared::protocol::FailureReason::Dns);
    client.send_result(contradictory).await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);

    assert_eq!(dep.count("SELECT count(*) FROM ticks"), 0);
    assert_eq!(dep.assignment_state(assignment), "pending");

    // The genuine result still lands.
    client
        .send_result(signed_result(&key, assignment, CheckStatus::Up))
        .await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
    assert_eq!(dep.count("SELECT count(*) FROM ticks"), 1);
}

#[tokio::test]
async fn a_late_result_is_refused_and_the_assignment_recorded_as_missed() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let (mut client, key, _, assignment) =
        assigned(&dep, &server, chrono::Duration::milliseconds(700)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(dep.assignment_state(assignment), "missed");
    client
        .send_result(signed_result(&key, assignment, CheckStatus::Up))
        .await;
    assert_eq!(client.error().await, ErrorCode::DeadlinePassed);
    assert_eq!(dep.count("SELECT count(*) FROM ticks"), 0);
}

#[tokio::test]
async fn a_disconnect_releases_pending_assignments_as_missed() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let (client, _, validator_id, assignment) =
        assigned(&dep, &server, chrono::Duration::seconds(60)).await;
    drop(client);
    let mut state = String::new();
    for _ in 0..50 {
        state = dep.assignment_state(assignment);
        if state == "missed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "missed");
    // An assignment dispatched to a validator that is not connected is missed at once.
    let site = dep.website("https://example.org/");
    let deadline = Utc::now() + chrono::Duration::seconds(60);
    dep.round(2, deadline);
    let orphan = dep.assign(2, site, validator_id, "s1", deadline);
    dep.dispatch("s1", 2, vec![orphan]).await;
    for _ in 0..50 {
        if dep.assignment_state(orphan) == "missed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dep.assignment_state(orphan), "missed");
}

#[tokio::test]
async fn a_flood_beyond_the_rate_limit_is_disconnected_with_a_reason() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("WS_MAX_MESSAGES_PER_SECOND", "5")]);
    let mut client = Client::connect(&server.ws_url()).await;
    for _ in 0..40 {
        client.send_text("{}").await;
    }
    let mut saw_rate_limited = false;
    let frame = loop {
        use futures::StreamExt;
        match tokio::time::timeout(Duration::from_secs(10), client.socket.next())
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                if text.contains("rate_limited") {
                    saw_rate_limited = true;
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(saw_rate_limited);
    let frame = frame.expect("close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("rate"), "{}", frame.reason);
}

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("WS_MAX_CONNECTIONS_PER_IP", "2")]);
    let _a = Client::connect(&server.ws_url()).await;
    let _b = Client::connect(&server.ws_url()).await;
    let third = tokio_tungstenite::connect_async(server.ws_url()).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("too_many_connections"), "{body}");
        }
        other => panic!("expected a 429 refusal, got {other:?}"),
    }
    drop(_a);
    // A freed slot is reusable.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(server.ws_url())
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
}

/// A validator about to cheat and three honest ones, each [`assigned`] one check
/// due within a minute on `server`.
async fn a_cheater_and_three_honest(
    dep: &Deployment,
    server: &common::Server,
) -> (
    (Client, Keypair, i64, i64),
    Vec<(Client, Keypair, i64, i64)>,
) {
    let cheater = assigned(dep, server, chrono::Duration::seconds(60)).await;
    let mut honest = Vec::new();
    for _ in 0..3 {
        honest.push(assigned(dep, server, chrono::Duration::seconds(60)).await);
    }
    (cheater, honest)
}

/// Each of `honest` sends its genuine result after `after` (beside whatever else
/// is sent at that moment); each is acknowledged and its assignment answered.
async fn answer_honestly(
    dep: &Deployment,
    honest: Vec<(Client, Keypair, i64, i64)>,
    after: Duration,
) {
    let mut answers = Vec::new();
    for (mut client, key, _, assignment) in honest {
        answers.push(tokio::spawn(async move {
            tokio::time::sleep(after).await;
            client
                .send_result(signed_result(&key, assignment, CheckStatus::Up))
                .await;
            (client.recv().await, assignment)
        }));
    }
    for answer in answers {
        let (reply, assignment) = answer.await.unwrap();
        assert_eq!(
            reply,
            HubMessage::Ack {
                assignment_ids: vec![assignment]
            }
        );
        assert_eq!(dep.assignment_state(assignment), "answered");
    }
}
