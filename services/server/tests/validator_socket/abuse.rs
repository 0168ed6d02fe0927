//! Sockets that cost the hub without doing work: never signing up, flooding pings,
//! and failing signups over and over. Each is closed or refused with a reason, and
//! honest validators beside them are unaffected.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use overlaps_shared::protocol::{ErrorCode, ValidatorMessage};
use overlaps_shared::signing::Keypair;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::common::{Client, Deployment};

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// Another client address: all of 127.0.0.0/8 is loopback on Linux.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[tokio::test]
async fn a_socket_that_never_signs_up_is_closed_at_the_deadline_though_it_answers_pings() {
    let dep = Deployment::new();
    let server = dep.server(
        "s1",
        &[
            ("WS_SIGNUP_DEADLINE_SECONDS", "2"),
            ("WS_HEARTBEAT_SECONDS", "1"),
        ],
    );
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.signup(&Keypair::generate()).await;

    let mut idle = Client::connect(&server.ws_url()).await;
    let opened = Instant::now();
    let mut pings_answered = 0;
    // Read (tungstenite answers each hub ping with a pong) and ping the hub too.
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(10), idle.socket.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Ping(_))) => {
                pings_answered += 1;
                idle.socket
                    .send(Message::Ping(vec![1].into()))
                    .await
                    .unwrap();
            }
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let lived = opened.elapsed();
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(
        frame.reason.contains("no signup within 2 s"),
        "{}",
        frame.reason
    );
    assert!(pings_answered >= 1, "the hub pinged and was answered");
    assert!(
        lived >= Duration::from_millis(1900) && lived < Duration::from_secs(5),
        "{lived:?}"
    );

    // The validator that signed up is past the deadline too, and still served.
    honest.send_text(r#"{"type":"hello"}"#).await;
    assert_eq!(honest.error().await, ErrorCode::UnknownMessage);
}

#[tokio::test]
async fn a_ping_flood_is_closed_like_a_message_flood() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("WS_MAX_MESSAGES_PER_SECOND", "5")]);
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.signup(&Keypair::generate()).await;

    let mut client = Client::connect(&server.ws_url()).await;
    for _ in 0..40 {
        if client
            .socket
            .send(Message::Ping(vec![7].into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut saw_rate_limited = false;
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(10), client.socket.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(text))) => saw_rate_limited |= text.contains("rate_limited"),
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame"),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(saw_rate_limited);
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("rate"), "{}", frame.reason);

    honest.send_text(r#"{"type":"hello"}"#).await;
    assert_eq!(honest.error().await, ErrorCode::UnknownMessage);
}

/// A signup over `client`'s nonce signed by a key other than the one it names.
fn forged_signup(client: &Client) -> ValidatorMessage {
    let ValidatorMessage::Signup {
        public_key,
        payout_address,
        ..
    } = client.signup_message(&Keypair::generate())
    else {
        unreachable!()
    };
    let ValidatorMessage::Signup { signature, .. } = client.signup_message(&Keypair::generate())
    else {
        unreachable!()
    };
    ValidatorMessage::Signup {
        public_key,
        payout_address,
        signature,
    }
}

#[tokio::test]
async fn failed_signups_beyond_the_limit_are_refused_for_that_address_only() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("WS_MAX_FAILED_SIGNUPS_PER_MINUTE", "3")]);
    let url = server.ws_url();
    // An honest validator on the same address, signed up before the abuse.
    let mut honest = Client::connect_from(&url, HERE).await.unwrap();
    honest.signup(&Keypair::generate()).await;

    let mut attacker = Client::connect_from(&url, HERE).await.unwrap();
    for _ in 0..3 {
        let forged = forged_signup(&attacker);
        attacker.send(&forged).await;
        assert_eq!(attacker.error().await, ErrorCode::BadSignature);
    }
    // The fourth failure is refused as over the limit, and the socket closed.
    let forged = forged_signup(&attacker);
    attacker.send(&forged).await;
    assert_eq!(attacker.error().await, ErrorCode::RateLimited);
    let frame = attacker.closed().await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("rate_limited"), "{}", frame.reason);

    // A new connection from that address is refused before any signup.
    match Client::connect_from(&url, HERE).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("rate_limited"), "{body}");
        }
        Err(other) => panic!("expected a 429 refusal, got {other:?}"),
        Ok(_) => panic!("expected a 429 refusal, got a connection"),
    }

    // Another address is unaffected: its failures are its own, and it signs up.
    let mut elsewhere = Client::connect_from(&url, ELSEWHERE).await.unwrap();
    let forged = forged_signup(&elsewhere);
    elsewhere.send(&forged).await;
    assert_eq!(elsewhere.error().await, ErrorCode::BadSignature);
    assert!(elsewhere.signup(&Keypair::generate()).await > 0);

    // The honest socket opened before the block is still served.
    honest.send_text(r#"{"type":"hello"}"#).await;
    assert_eq!(honest.error().await, ErrorCode::UnknownMessage);
    assert_eq!(dep.count("SELECT count(*) FROM validators"), 2);
}
