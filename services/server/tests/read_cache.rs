//! The API's read caches (`API_READ_CACHE_MS`) through the real server: a kept
//! status is served only to its owner (another owner still gets `not_found`), a
//! revoked key is refused at once, a write through the API is read back at once,
//! a refused write cannot flush the caches, unknown keys and missing rounds are
//! never kept, and what accounting writes shows within the TTL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::Api;
use serde_json::json;

/// Sets the site's settled state as accounting would when closing a round.
fn settle(api: &Api, site: i64, state: &str) {
    api.sql(&format!(
        "INSERT INTO website_status (website_id, state) VALUES ({site}, '{state}') \
         ON CONFLICT (website_id) DO UPDATE SET state = EXCLUDED.state"
    ));
}

async fn state(api: &Api, site: i64, key: &str) -> String {
    let answer = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(key))
        .await;
    answer.expect(200)["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_status_is_the_owners_alone_and_a_write_is_read_back_at_once() {
    let api = Api::start(&[("API_READ_CACHE_MS", "60000")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let (_, bob) = api.owner("bob@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    let path = format!("/api/v1/websites/{site}/status");

    assert_eq!(state(&api, site, &alice).await, "unknown");
    // Accounting settles the site: within the TTL the kept answer is served.
    settle(&api, site, "down");
    assert_eq!(state(&api, site, &alice).await, "unknown", "kept");

    // Another owner probing the kept site gets exactly what a missing site gives.
    let probed = api.get(&path, Some(&bob)).await;
    probed.expect_error(404, "not_found");
    let missing = api.get("/api/v1/websites/999999/status", Some(&bob)).await;
    assert_eq!(probed.json, missing.json);
    // Operators see everyone's.
    assert_eq!(
        state(&api, site, api_support::OPERATOR_KEY).await,
        "unknown"
    );

    // A refused write changes nothing, so it does not flush the caches either.
    api.patch(
        &format!("/api/v1/websites/{site}"),
        Some(&alice),
        json!({"interval_seconds": -1}),
    )
    .await
    .expect_error(422, "validation_failed");
    assert_eq!(state(&api, site, &alice).await, "unknown", "still kept");

    // A write through the API: its author reads the present at once.
    api.patch(
        &format!("/api/v1/websites/{site}"),
        Some(&alice),
        json!({"name": "Shop"}),
    )
    .await
    .expect(200);
    assert_eq!(state(&api, site, &alice).await, "down");

    // A deleted site is gone at once, not served from the cache.
    api.delete(&format!("/api/v1/websites/{site}"), Some(&alice))
        .await
        .expect(204);
    api.get(&path, Some(&alice))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_refused_at_once_and_unknown_keys_are_never_kept() {
    let api = Api::start(&[("API_READ_CACHE_MS", "60000")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = api
        .post("/api/v1/keys", Some(&alice), json!({"name": "ci"}))
        .await;
    let body = created.expect(201).clone();
    let second = body["key"].as_str().unwrap().to_owned();
    let second_id = body["id"].as_i64().unwrap();
    let site = api.website(&alice, "https://shop.example/").await;
    // The second key is now kept as a caller.
    assert_eq!(state(&api, site, &second).await, "unknown");
    assert_eq!(state(&api, site, &second).await, "unknown");

    api.delete(&format!("/api/v1/keys/{second_id}"), Some(&alice))
        .await
        .expect(204);
    api.get("/api/v1/account", Some(&second))
        .await
        .expect_error(401, "unauthorized");

    // A key revoked behind the API's back (another instance, the CLI) is refused
    // once the cache is cleared: here, by any write through this instance.
    let (_, carol) = api.owner("carol@example.com").await;
    api.get("/api/v1/account", Some(&carol)).await.expect(200);
    api.sql(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE user_id = (SELECT id FROM users WHERE email = 'carol@example.com')",
    );
    api.get("/api/v1/account", Some(&carol)).await.expect(200);
    api.post("/api/v1/keys", Some(&alice), json!({"name": "flush"}))
        .await
        .expect(201);
    api.get("/api/v1/account", Some(&carol))
        .await
        .expect_error(401, "unauthorized");

    // An unknown key is looked up each time: it becomes valid the moment it exists.
    let unknown = "ovl_000000000000000000000000000000000000000000000000";
    api.get("/api/v1/account", Some(unknown))
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn rounds_are_kept_but_a_missing_round_is_not_and_everything_expires() {
    let api = Api::start(&[("API_READ_CACHE_MS", "300")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    api.get("/api/v1/rounds/1", None)
        .await
        .expect_error(404, "not_found");
    api.sql(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at) \
         VALUES (1, decode(repeat('01', 32), 'hex'), now(), now() + interval '30 seconds')",
    );
    let round = api.get("/api/v1/rounds/1", None).await;
    assert_eq!(round.expect(200)["number"], 1);
    assert_eq!(round.headers["content-type"], "application/json");
    assert_eq!(api.get("/api/v1/rounds/1", None).await.json, round.json);

    assert_eq!(state(&api, site, &alice).await, "unknown");
    settle(&api, site, "up");
    // Past the TTL, what accounting wrote is served.
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(state(&api, site, &alice).await, "up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_answer_is_refreshed_in_the_background_before_it_expires() {
    // TTL 4 s: past 2 s the first reader still gets the kept answer and starts a
    // refresh; the fresh one is served well before the kept one would expire.
    let api = Api::start(&[("API_READ_CACHE_MS", "4000")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    let started = std::time::Instant::now();
    assert_eq!(state(&api, site, &alice).await, "unknown");
    settle(&api, site, "down");
    // Alice's key is revoked behind the API's back (another instance, the CLI).
    api.sql(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE user_id = (SELECT id FROM users WHERE email = 'alice@example.com')",
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    // Served from the cache, and the refreshes start.
    assert_eq!(
        state(&api, site, api_support::OPERATOR_KEY).await,
        "unknown"
    );
    api.get("/api/v1/account", Some(&alice)).await.expect(200);
    let mut refreshed = (false, false);
    while started.elapsed() < std::time::Duration::from_millis(3_600) && refreshed != (true, true) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        refreshed.0 |= state(&api, site, api_support::OPERATOR_KEY).await == "down";
        refreshed.1 |= api.get("/api/v1/account", Some(&alice)).await.status == 401;
    }
    assert_eq!(
        refreshed,
        (true, true),
        "status and revocation seen within the TTL"
    );
}
