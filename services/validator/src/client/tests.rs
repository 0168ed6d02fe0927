//! The node against a stand-in hub: results answered `unavailable` are resent with backoff, and unacknowledged ones after reconnecting.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use overlaps_shared::protocol::{HubMessage, ValidateRequest, ValidatorMessage};
use overlaps_shared::signing::{Keypair, PayoutAddress};
use overlaps_shared::testing::HttpTarget;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::Node;
use crate::check::Checker;
use crate::receipts::ReceiptJournal;

type Peer = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn send(peer: &mut Peer, msg: &HubMessage) {
    peer.send(Message::text(serde_json::to_string(msg).unwrap()))
        .await
        .unwrap();
}

async fn recv(peer: &mut Peer) -> ValidatorMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), peer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Plays the hub's side of a signup on a fresh connection.
async fn accept_signup(listener: &TcpListener) -> Peer {
    let (stream, _) = listener.accept().await.unwrap();
    let mut peer = tokio_tungstenite::accept_async(stream).await.unwrap();
    let hello = HubMessage::Hello {
        protocol: "overlaps/v2".into(),
        hub_id: "hub".into(),
        nonce: hex::encode([9u8; 32]),
    };
    send(&mut peer, &hello).await;
    assert!(matches!(
        recv(&mut peer).await,
        ValidatorMessage::Signup { .. }
    ));
    send(&mut peer, &HubMessage::SignedUp { validator_id: 1 }).await;
    peer
}

fn validate(id: i64, url: &str) -> HubMessage {
    HubMessage::Validate(ValidateRequest {
        assignment_id: id,
        round: 1,
        url: url.into(),
        method: "GET".into(),
        timeout_ms: 2000,
        keyword: None,
        keyword_absent: false,
        accepted_status: Vec::new(),
        json_path: None,
        json_expected: None,
        max_response_ms: None,
        deadline_ms: i64::MAX,
    })
}

/// A node connecting to a scripted hub on `listener`, with a fresh receipt file.
fn start_node(
    listener: &TcpListener,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
    Arc<Mutex<ReceiptJournal>>,
    std::path::PathBuf,
) {
    overlaps_shared::testing::install_tls_provider();
    let url = url::Url::parse(&format!(
        "ws://{}/ws/validator",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let payout: PayoutAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        .parse()
        .unwrap();
    let receipts_path = std::env::temp_dir().join(format!(
        "overlaps-client-receipts-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let receipts = Arc::new(Mutex::new(
        ReceiptJournal::open(&receipts_path, &payout.to_string()).unwrap(),
    ));
    let node = Node {
        hub_url: url,
        key: Keypair::generate(),
        payout,
        checker: Checker::new(3, 1024, true).unwrap(),
        max_concurrent_checks: 4,
        receipts: Arc::clone(&receipts),
        source_address: None,
    };
    let (stop, stopped) = watch::channel(false);
    (
        stop,
        tokio::spawn(node.run(stopped)),
        receipts,
        receipts_path,
    )
}

#[tokio::test]
async fn an_unavailable_result_is_resent_with_backoff_while_its_deadline_allows() {
    let target = HttpTarget::start(200, "ok").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, running, _receipts, receipts_path) = start_node(&listener);
    let mut hub = accept_signup(&listener).await;
    let unavailable = |id| HubMessage::Error {
        code: overlaps_shared::protocol::ErrorCode::Unavailable,
        message: "not stored; resend later".into(),
        assignment_id: Some(id),
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 10_000;
    let mut request = validate(7, &target.url());
    if let HubMessage::Validate(v) = &mut request {
        v.deadline_ms = deadline;
    }
    send(&mut hub, &request).await;
    let ValidatorMessage::Result(original) = recv(&mut hub).await else {
        panic!("expected a result")
    };
    // Twice not stored: resent on the same connection each time, unchanged.
    for _ in 0..2 {
        let refused_at = std::time::Instant::now();
        send(&mut hub, &unavailable(7)).await;
        let ValidatorMessage::Result(resent) = recv(&mut hub).await else {
            panic!("expected the resend")
        };
        assert_eq!(resent, original);
        assert!(
            refused_at.elapsed() >= Duration::from_millis(90),
            "a backoff before resending"
        );
        assert!(
            refused_at.elapsed() < Duration::from_secs(2),
            "resent before the deadline"
        );
    }
    send(
        &mut hub,
        &HubMessage::Ack {
            assignment_ids: vec![7],
        },
    )
    .await;

    // Past (or too close to) its deadline, a result is not resent.
    let mut late = validate(8, &target.url());
    if let HubMessage::Validate(v) = &mut late {
        v.deadline_ms = chrono::Utc::now().timestamp_millis() + 50;
    }
    send(&mut hub, &late).await;
    let ValidatorMessage::Result(last) = recv(&mut hub).await else {
        panic!("expected a result")
    };
    assert_eq!(last.assignment_id, 8);
    send(&mut hub, &unavailable(8)).await;
    let quiet = tokio::time::timeout(Duration::from_millis(600), hub.next()).await;
    assert!(quiet.is_err(), "resent past its deadline: {quiet:?}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_file(&receipts_path);
}

#[tokio::test]
async fn unacknowledged_results_are_resent_after_reconnecting_and_acked_ones_are_not() {
    let target = HttpTarget::start(200, "ok").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, running, receipts, receipts_path) = start_node(&listener);

    // First connection: a check is asked for, answered, and the hub vanishes before acking.
    let mut first = accept_signup(&listener).await;
    send(&mut first, &validate(7, &target.url())).await;
    let ValidatorMessage::Result(original) = recv(&mut first).await else {
        panic!("expected a result")
    };
    assert_eq!(original.assignment_id, 7);
    drop(first);

    // Second connection: the same signed result comes again, unprompted.
    let mut second = accept_signup(&listener).await;
    let ValidatorMessage::Result(resent) = recv(&mut second).await else {
        panic!("expected the resend")
    };
    assert_eq!(resent, original);
    send(
        &mut second,
        &HubMessage::Ack {
            assignment_ids: vec![7],
        },
    )
    .await;
    send(&mut second, &validate(8, &target.url())).await;
    let ValidatorMessage::Result(next) = recv(&mut second).await else {
        panic!("expected a result")
    };
    assert_eq!(next.assignment_id, 8);
    send(
        &mut second,
        &HubMessage::Ack {
            assignment_ids: vec![8],
        },
    )
    .await;
    drop(second);

    // Third connection: everything was acknowledged, so nothing is resent.
    let mut third = accept_signup(&listener).await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), third.next()).await;
    assert!(quiet.is_err(), "resent an acknowledged result: {quiet:?}");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.hits(), 2);
    // Both acknowledged results are on record, with their round and signature.
    let recorded = receipts.lock().unwrap().unsettled_through(i64::MAX);
    let ids: Vec<(i64, i64)> = recorded
        .iter()
        .map(|r| (r.round, r.assignment_id))
        .collect();
    assert_eq!(ids, vec![(1, 7), (1, 8)]);
    assert_eq!(recorded[0].signature, original.signature);
    // Bound to the hub and the id it gave the key at signup.
    let bound = receipts.lock().unwrap().start().hub.clone().unwrap();
    assert_eq!((bound.hub_id.as_str(), bound.validator_id), ("hub", 1));
    std::fs::remove_file(&receipts_path).unwrap();
}
