//! Admission and networks through the real server binary: a key with no stake (or
//! someone else's) is told `not_admitted` and stays connected; the network each
//! validator connects from is recorded for the scheduler; connections are limited
//! per /24 as well as per address; only a trusted proxy may name the client; the
//! operator's allowlist and each validator's standing through the API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod api_support;
mod common;

use std::net::IpAddr;
use std::time::Duration;

use api_support::{Api, OPERATOR_KEY};
use common::{Client, Deployment, PAYOUT};
use overlaps_shared::presence::Presence;
use overlaps_shared::protocol::{ErrorCode, HubMessage};
use overlaps_shared::signing::{Keypair, PayoutAddress};
use reqwest::Method;
use serde_json::json;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Records a stake on `key` from `staker`, as the chain service does from final events.
fn stake(dep: &Deployment, key: &Keypair, staker: &str, wei: &str) {
    let staker: PayoutAddress = staker.parse().unwrap();
    let mut conn = dep.conn();
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO validator_stakes (public_key, staker, amount, block_number) \
             VALUES ('\\x{}', '\\x{}', {wei}, 1) \
             ON CONFLICT (public_key, staker) DO UPDATE SET amount = EXCLUDED.amount",
            hex::encode(key.public_key().to_bytes()),
            hex::encode(staker.as_bytes()),
        )),
        &mut conn,
    )
    .unwrap();
}

/// Connects, signs `key` up and returns what follows `signed_up` (see
/// [`admission_notice`]).
async fn notice_at_signup(url: &str, key: &Keypair) -> Option<String> {
    // The previous connection of this key may still hold its session for a moment.
    for _ in 0..100 {
        let mut client = Client::connect(url).await;
        let signup = client.signup_message(key);
        client.send(&signup).await;
        match client.recv().await {
            HubMessage::SignedUp { .. } => return admission_notice(&mut client).await,
            HubMessage::Error {
                code: ErrorCode::KeyInUse,
                ..
            } => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected signed_up, got {other:?}"),
        }
    }
    panic!("the key's previous session was never released")
}

/// What the hub sends right after `signed_up`: a `not_admitted` error, or nothing
/// within a second (admitted keys get nothing until they are assigned work).
async fn admission_notice(client: &mut Client) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(1), client.recv()).await {
        Ok(HubMessage::Error {
            code: ErrorCode::NotAdmitted,
            message,
            assignment_id: None,
        }) => Some(message),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_its_own_stake_is_told_not_admitted_and_stays_connected() {
    let dep = Deployment::new();
    let server = dep.server(
        "s1",
        &[("VALIDATOR_ADMISSION", "stake"), ("MIN_STAKE_WEI", "1000")],
    );
    let key = Keypair::generate();

    let mut client = Client::connect(&server.ws_url()).await;
    client.signup(&key).await;
    let notice = admission_notice(&mut client)
        .await
        .expect("a not_admitted notice");
    assert!(
        notice.contains("no stake") && notice.contains(PAYOUT),
        "{notice}"
    );
    // The connection is still served: a result for an unknown assignment gets its error.
    client
        .send_result(common::signed_result(
            &key,
            999_999,
            overlaps_shared::protocol::CheckStatus::Up,
        ))
        .await;
    assert_eq!(client.error().await, ErrorCode::UnknownAssignment);
    drop(client);

    // A stake from someone else's address does not count for the key.
    stake(
        &dep,
        &key,
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "5000",
    );
    let notice = notice_at_signup(&server.ws_url(), &key)
        .await
        .expect("a not_admitted notice");
    assert!(notice.contains("not from its payout address"), "{notice}");

    // Too little from its own payout address: still not admitted.
    stake(&dep, &key, PAYOUT, "999");
    let notice = notice_at_signup(&server.ws_url(), &key)
        .await
        .expect("a not_admitted notice");
    assert!(notice.contains("below the minimum"), "{notice}");

    // Enough from its own payout address: admitted, no notice.
    stake(&dep, &key, PAYOUT, "1000");
    assert_eq!(notice_at_signup(&server.ws_url(), &key).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_validators_network_is_recorded_and_connections_are_limited_per_slash_24() {
    let dep = Deployment::new();
    let server = dep.server(
        "s1",
        &[
            ("WS_MAX_CONNECTIONS_PER_IP", "8"),
            ("WS_MAX_CONNECTIONS_PER_NETWORK", "2"),
        ],
    );
    let presence = Presence::new(dep.redis.connect().await.unwrap(), dep.redis.keys());
    let mut a = Client::connect_from(&server.ws_url(), ip("127.0.31.1"))
        .await
        .unwrap();
    let mut b = Client::connect_from(&server.ws_url(), ip("127.0.31.2"))
        .await
        .unwrap();
    let a_id = a.signup(&Keypair::generate()).await;
    let b_id = b.signup(&Keypair::generate()).await;
    // A third address of the same /24 is refused; another /24 is not.
    match Client::connect_from(&server.ws_url(), ip("127.0.31.3")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(
                body.contains("too_many_connections") && body.contains("per network"),
                "{body}"
            );
        }
        Err(other) => panic!("expected a 429 refusal, got {other:?}"),
        Ok(_) => panic!("a third connection from one /24 was accepted"),
    }
    let mut c = Client::connect_from(&server.ws_url(), ip("127.0.32.1"))
        .await
        .unwrap();
    let c_id = c.signup(&Keypair::generate()).await;

    let network = networks(&presence).await;
    let network = |id: i64| network.get(&id).cloned().flatten();
    assert_eq!(network(a_id).as_deref(), Some("127.0.31.0/24"));
    assert_eq!(network(b_id).as_deref(), Some("127.0.31.0/24"));
    assert_eq!(network(c_id).as_deref(), Some("127.0.32.0/24"));

    // A freed slot of the /24 is reusable.
    drop(a);
    let mut reconnected = false;
    for _ in 0..50 {
        if Client::connect_from(&server.ws_url(), ip("127.0.31.3"))
            .await
            .is_ok()
        {
            reconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reconnected);
}

/// Each online validator's recorded network, by id.
async fn networks(presence: &Presence) -> std::collections::HashMap<i64, Option<String>> {
    presence
        .online()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.validator_id, v.network))
        .collect()
}

/// Connects from `local` with an `X-Forwarded-For` header; signs up a fresh key.
async fn signup_forwarded(url: &str, local: &str, forwarded_for: &str) -> (Client, i64) {
    let mut client = Client::connect_with(url, ip(local), &[("X-Forwarded-For", forwarded_for)])
        .await
        .unwrap();
    let id = client.signup(&Keypair::generate()).await;
    (client, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_trusted_proxy_may_name_the_clients_network() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[("TRUSTED_PROXIES", "127.0.41.0/24")]);
    let presence = Presence::new(dep.redis.connect().await.unwrap(), dep.redis.keys());
    // Through the proxy: the client it names.
    let (_proxied_socket, proxied) =
        signup_forwarded(&server.ws_url(), "127.0.41.1", "10.9.9.9, 203.0.113.77").await;
    // Not a proxy: its own header is ignored (any client can write one).
    let (_spoofer_socket, spoofer) =
        signup_forwarded(&server.ws_url(), "127.0.42.1", "198.51.100.1").await;
    let network = networks(&presence).await;
    let network = |id: i64| network.get(&id).cloned().flatten();
    assert_eq!(network(proxied).as_deref(), Some("203.0.113.0/24"));
    assert_eq!(network(spoofer).as_deref(), Some("127.0.42.0/24"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_keeps_the_allowlist_and_everyone_sees_each_validators_standing() {
    let api = Api::start(&[("VALIDATOR_ADMISSION", "allowlist")]);
    let (_, owner) = api.owner("owner@example.com").await;
    let rule = api.get("/api/v1/admission", None).await;
    assert_eq!(rule.expect(200)["mode"], "allowlist");

    let mut client = Client::connect(&api.server.ws_url()).await;
    let key = Keypair::generate();
    let validator_id = client.signup(&key).await;
    let notice = admission_notice(&mut client)
        .await
        .expect("a not_admitted notice");
    assert!(notice.contains("allowlist"), "{notice}");
    let standing = api
        .get(&format!("/api/v1/validators/{validator_id}"), None)
        .await;
    assert_eq!(standing.expect(200)["admission"]["admitted"], false);
    assert_eq!(standing.json["admission"]["selection_weight"], 0);

    let hex_key = hex::encode(key.public_key().to_bytes());
    let path = format!("/api/v1/admission/allowlist/{hex_key}");
    let body = json!({"note": "eu-west probe"});
    // Owners may not list keys; malformed keys and notes are refused.
    api.call(Method::PUT, &path, Some(&owner), Some(body.clone()))
        .await
        .expect_error(403, "forbidden");
    // A NUL byte, which PostgreSQL text cannot hold, is refused before it gets there.
    let bad = [
        (
            "/api/v1/admission/allowlist/abc",
            body.clone(),
            422,
            "validation_failed",
        ),
        (
            path.as_str(),
            json!({"note": "x".repeat(201)}),
            422,
            "validation_failed",
        ),
        (
            path.as_str(),
            json!({"note": "nul\u{0}byte"}),
            422,
            "validation_failed",
        ),
        (path.as_str(), json!({"nope": 1}), 400, "malformed_json"),
    ];
    for (target, bad_body, status, code) in bad {
        api.call(Method::PUT, target, Some(OPERATOR_KEY), Some(bad_body))
            .await
            .expect_error(status, code);
    }
    api.get("/api/v1/admission/allowlist", Some(&owner))
        .await
        .expect_error(403, "forbidden");

    let listed = api
        .call(Method::PUT, &path, Some(OPERATOR_KEY), Some(body))
        .await;
    assert_eq!(listed.expect(200)["public_key"], hex_key);
    assert_eq!(listed.json["note"], "eu-west probe");
    let list = api
        .get("/api/v1/admission/allowlist", Some(OPERATOR_KEY))
        .await;
    assert_eq!(list.expect(200).as_array().unwrap().len(), 1);
    let standing = api
        .get(&format!("/api/v1/validators/{validator_id}"), None)
        .await;
    assert_eq!(standing.expect(200)["admission"]["admitted"], true);
    assert_eq!(
        standing.json["admission"]["selection_weight"], 100,
        "a fresh key weighs the floor"
    );

    api.delete(&path, Some(OPERATOR_KEY)).await.expect(204);
    api.delete(&path, Some(OPERATOR_KEY))
        .await
        .expect_error(404, "not_found");
    let standing = api
        .get(&format!("/api/v1/validators/{validator_id}"), None)
        .await;
    assert_eq!(standing.expect(200)["admission"]["admitted"], false);
}
