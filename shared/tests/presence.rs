//! Presence against a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use overlaps_shared::presence::{OnlineValidator, Presence};
use overlaps_shared::testing::TestRedis;

/// Validator `id` on `instance`, from the network `10.0.<id>.0/24`.
fn online(id: i64, instance: &str) -> OnlineValidator {
    OnlineValidator {
        validator_id: id,
        server_instance: instance.into(),
        network: Some(net(id)),
    }
}

fn net(id: i64) -> String {
    format!("10.0.{id}.0/24")
}

#[tokio::test]
async fn announced_validators_are_online_with_their_instance_until_withdrawn() {
    let redis = TestRedis::new().unwrap();
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    presence
        .announce(2, "s2", &net(2), Duration::from_secs(30))
        .await
        .unwrap();
    presence
        .announce(1, "s1", &net(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        presence.online().await.unwrap(),
        vec![online(1, "s1"), online(2, "s2")]
    );

    // Only the instance holding the socket can withdraw it (a reconnect elsewhere wins).
    presence
        .announce(1, "s3", &net(1), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!presence.withdraw(1, "s1").await.unwrap());
    assert_eq!(presence.online().await.unwrap()[0], online(1, "s3"));
    assert!(presence.withdraw(1, "s3").await.unwrap());
    assert_eq!(presence.online().await.unwrap(), vec![online(2, "s2")]);
}

#[tokio::test]
async fn presence_expires_when_not_refreshed_and_leaves_no_keys_behind() {
    let redis = TestRedis::new().unwrap();
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    presence
        .announce(7, "dead", &net(7), Duration::from_millis(200))
        .await
        .unwrap();
    presence
        .announce(8, "alive", &net(8), Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(presence.online().await.unwrap(), vec![online(8, "alive")]);
    presence.withdraw(8, "alive").await.unwrap();
    assert!(presence.online().await.unwrap().is_empty());
    assert!(
        redis.existing_keys().unwrap().is_empty(),
        "{:?}",
        redis.existing_keys()
    );
}

async fn is_online(presence: &Presence, id: i64) -> bool {
    presence
        .online()
        .await
        .unwrap()
        .iter()
        .any(|v| v.validator_id == id)
}

#[tokio::test]
async fn a_refresh_keeps_the_online_online_and_names_the_others_without_reviving_them() {
    let redis = TestRedis::new().unwrap();
    let presence = Presence::new(redis.connect().await.unwrap(), redis.keys());
    // Long enough to announce them all on a loaded machine, short enough to wait out.
    let short = Duration::from_secs(2);
    // More than one call's worth, so the chunks are exercised.
    let ids: Vec<i64> = (1..=2_500).collect();
    for &id in &ids {
        presence
            .announce(id, "s1", &net(id % 250), short)
            .await
            .unwrap();
    }
    // 7 is withdrawn; 8 reconnected to s2, whose mapping a refresh from s1 must keep.
    assert!(presence.withdraw(7, "s1").await.unwrap());
    presence.announce(8, "s2", &net(8), short).await.unwrap();
    let missing = presence
        .refresh(&ids, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(missing, vec![7]);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let online = presence.online().await.unwrap();
    assert_eq!(
        online.len(),
        ids.len() - 1,
        "the refresh outlived the short TTL"
    );
    assert!(
        online.iter().all(|v| v.validator_id != 7),
        "a withdrawn validator came back"
    );
    let eight = online.iter().find(|v| v.validator_id == 8).unwrap();
    assert_eq!(eight.server_instance, "s2");

    // Once expired and pruned, a refresh does not bring a validator back either.
    presence
        .announce(9_000, "s1", &net(9), Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!is_online(&presence, 9_000).await);
    assert_eq!(
        presence
            .refresh(&[9_000], Duration::from_secs(30))
            .await
            .unwrap(),
        vec![9_000]
    );
    assert!(!is_online(&presence, 9_000).await);
    assert!(
        presence
            .refresh(&[], Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}
