//! Presence through the real server binary: the instance refreshes all of its
//! validators at once every heartbeat, so a connected validator outlives its TTL;
//! one whose presence lapsed while connected is announced again; one that left
//! drops out and no refresh brings it back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Deployment};
use futures::StreamExt;
use overlaps_shared::presence::{OnlineValidator, Presence};
use overlaps_shared::signing::Keypair;

/// Keeps reading the socket so that the client answers the hub's pings.
fn keep_answering(client: Client) -> tokio::task::JoinHandle<()> {
    let mut socket = client.socket;
    tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} })
}

async fn online_entry(presence: &Presence, id: i64) -> Option<OnlineValidator> {
    presence
        .online()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.validator_id == id)
}

/// Waits up to `within` for `id`'s presence to be `wanted` (online or not).
async fn wait_for(presence: &Presence, id: i64, wanted: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if online_entry(presence, id).await.is_some() == wanted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn connected_validators_outlive_their_ttl_a_lapse_is_announced_again_and_a_leaver_stays_gone()
{
    let dep = Deployment::new();
    let server = dep.server(
        "s1",
        &[("WS_HEARTBEAT_SECONDS", "1"), ("PRESENCE_TTL_SECONDS", "2")],
    );
    let presence = Presence::new(dep.redis.connect().await.unwrap(), dep.redis.keys());
    let mut a = Client::connect(&server.ws_url()).await;
    let mut b = Client::connect(&server.ws_url()).await;
    let a_id = a.signup(&Keypair::generate()).await;
    let b_id = b.signup(&Keypair::generate()).await;
    let _a = keep_answering(a);
    let b = keep_answering(b);

    // Several TTLs later both are still online, on this instance.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for id in [a_id, b_id] {
        let entry = online_entry(&presence, id).await;
        assert_eq!(
            entry.map(|v| v.server_instance).as_deref(),
            Some("s1"),
            "validator {id} dropped out while connected"
        );
    }

    // A lapse while connected (as when Redis was unreachable past the TTL): the
    // instance announces it again, with its network.
    assert!(presence.withdraw(a_id, "s1").await.unwrap());
    assert!(wait_for(&presence, a_id, true, Duration::from_secs(4)).await);
    let entry = online_entry(&presence, a_id).await.unwrap();
    assert_eq!(entry.network.as_deref(), Some("127.0.0.0/24"));

    // b leaves: it drops out at once, and stays out through several refreshes.
    b.abort();
    assert!(wait_for(&presence, b_id, false, Duration::from_secs(4)).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        online_entry(&presence, b_id).await.is_none(),
        "a refresh revived a leaver"
    );
    assert!(online_entry(&presence, a_id).await.is_some());
}
