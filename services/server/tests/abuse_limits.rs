//! Abuse limits through the real server binary: per-account quotas (sites and
//! checks a day) that the operator sets per account, held under concurrent
//! requests; and e-mail channels that receive nothing until their address
//! confirms through the link it was sent; and the API's own database pool.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::{Api, OPERATOR_KEY};
use serde_json::{Value, json};

async fn add_site(api: &Api, key: &str, body: Value) -> api_support::Answer {
    api.post("/api/v1/websites", Some(key), body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_cannot_take_more_sites_or_checks_than_its_quota() {
    let api = Api::start(&[
        ("ACCOUNT_MAX_SITES", "3"),
        ("ACCOUNT_MAX_CHECKS_PER_DAY", "20000"),
    ]);
    let (alice_id, alice) = api.owner("alice@example.com").await;
    let (bob_id, bob) = api.owner("bob@example.com").await;
    let site = |n: u32| json!({"url": format!("https://example.com/{n}"), "interval_seconds": 60, "quorum": 3});

    // 3 × 3 × 1440 = 12,960 checks a day: within both limits.
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            add_site(&api, &alice, site(n)).await.expect(201)["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let fourth = add_site(&api, &alice, site(3)).await;
    fourth.expect_error(403, "quota_exceeded");
    assert!(
        fourth.json["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 websites"),
        "{}",
        fourth.text
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM websites WHERE owner_id = {alice_id}"
        )),
        3
    );

    let quota = api
        .get(&format!("/api/v1/accounts/{alice_id}/quota"), Some(&alice))
        .await;
    let quota = quota.expect(200).clone();
    assert_eq!(quota["max_sites"], 3);
    assert_eq!(quota["max_checks_per_day"], 20000);
    assert_eq!(quota["sites"], 3);
    assert_eq!(quota["checks_per_day"], 12960);
    assert_eq!(quota["custom"], false);

    // Checks a day: quorum 7 on one site makes 8,640 + 10,080 = 18,720 (allowed);
    // quorum 9 would make 21,600 (refused, nothing changed).
    let first = ids[0];
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"quorum": 7}),
    )
    .await
    .expect(200);
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"quorum": 9}),
    )
    .await
    .expect_error(403, "quota_exceeded");
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"interval_seconds": 30}),
    )
    .await
    .expect_error(403, "quota_exceeded");
    assert_eq!(
        api.count(&format!(
            "SELECT quorum::bigint FROM websites WHERE id = {first}"
        )),
        7
    );
    // A disabled site asks for nothing; enabling it again is checked.
    api.post(
        &format!("/api/v1/websites/{}/disable", ids[1]),
        Some(&alice),
        json!({}),
    )
    .await
    .expect(200);
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"quorum": 9}),
    )
    .await
    .expect(200);
    api.post(
        &format!("/api/v1/websites/{}/enable", ids[1]),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(403, "quota_exceeded");

    // Only the operator sets an account's own quota; owners see only their own.
    let raise = json!({"max_sites": 5, "max_checks_per_day": 100000});
    api.call(
        reqwest::Method::PUT,
        &format!("/api/v1/accounts/{alice_id}/quota"),
        Some(&alice),
        Some(raise.clone()),
    )
    .await
    .expect_error(403, "forbidden");
    api.get(&format!("/api/v1/accounts/{bob_id}/quota"), Some(&alice))
        .await
        .expect_error(404, "not_found");
    for (body, field) in [
        (json!({"max_sites": -1}), "max_sites"),
        (
            json!({"max_checks_per_day": 1_000_000_000_001_i64}),
            "max_checks_per_day",
        ),
    ] {
        let answer = api
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/accounts/{alice_id}/quota"),
                Some(OPERATOR_KEY),
                Some(body),
            )
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field);
    }
    api.call(
        reqwest::Method::PUT,
        "/api/v1/accounts/999999/quota",
        Some(OPERATOR_KEY),
        Some(raise.clone()),
    )
    .await
    .expect_error(404, "not_found");
    let raised = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/accounts/{alice_id}/quota"),
            Some(OPERATOR_KEY),
            Some(raise),
        )
        .await;
    assert_eq!(raised.expect(200)["custom"], true);
    api.post(
        &format!("/api/v1/websites/{}/enable", ids[1]),
        Some(&alice),
        json!({}),
    )
    .await
    .expect(200);
    add_site(&api, &alice, site(3)).await.expect(201);

    // Lowered below what the account uses: existing sites run on, changes that ask
    // for no more still work, anything that asks for more is refused.
    api.call(
        reqwest::Method::PUT,
        &format!("/api/v1/accounts/{alice_id}/quota"),
        Some(OPERATOR_KEY),
        Some(json!({"max_sites": 1, "max_checks_per_day": 1000})),
    )
    .await
    .expect(200);
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"name": "renamed", "quorum": 5}),
    )
    .await
    .expect(200);
    api.patch(
        &format!("/api/v1/websites/{first}"),
        Some(&alice),
        json!({"quorum": 6}),
    )
    .await
    .expect_error(403, "quota_exceeded");
    add_site(&api, &alice, site(9))
        .await
        .expect_error(403, "quota_exceeded");
    // Back to the defaults with nulls.
    let reset = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/accounts/{alice_id}/quota"),
            Some(OPERATOR_KEY),
            Some(json!({})),
        )
        .await;
    let reset = reset.expect(200).clone();
    assert_eq!(
        (reset["max_sites"].clone(), reset["custom"].clone()),
        (json!(3), json!(false))
    );

    // Operators have no quota.
    let operator_quota = api.get("/api/v1/account", Some(OPERATOR_KEY)).await;
    let operator_id = operator_quota.expect(200)["id"].as_i64().unwrap();
    let quota = api
        .get(
            &format!("/api/v1/accounts/{operator_id}/quota"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(quota.expect(200)["max_sites"], Value::Null);
    for n in 0..5 {
        add_site(&api, OPERATOR_KEY, site(100 + n))
            .await
            .expect(201);
    }
    // Bob was never touched by any of it.
    add_site(&api, &bob, site(0)).await.expect(201);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_cannot_slip_past_the_quota() {
    let api = Api::start(&[("ACCOUNT_MAX_SITES", "5")]);
    let (mallory_id, mallory) = api.owner("mallory@example.com").await;
    let (carol_id, carol) = api.owner("carol@example.com").await;
    // Twenty requests at once from Mallory, five from Carol beside them.
    let mut tasks = Vec::new();
    for (n, key) in (0..25).map(|n| {
        (
            n,
            if n < 20 {
                mallory.clone()
            } else {
                carol.clone()
            },
        )
    }) {
        let url = api.url("/api/v1/websites");
        let http = api.http.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"url": format!("https://example.net/{n}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 201 || s == 403),
        "{statuses:?}"
    );
    assert!(
        statuses[20..].iter().all(|&s| s == 201),
        "Carol lost a site: {statuses:?}"
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM websites WHERE owner_id = {mallory_id}"
        )),
        5
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM websites WHERE owner_id = {carol_id}"
        )),
        5
    );
}

/// The confirmation token an outbox row carries (as accounting would mail it).
fn pending_token(api: &Api, channel: i64) -> String {
    api.text(&format!(
        "SELECT payload->>'confirmation_token' FROM alert_outbox \
         WHERE channel_id = {channel} AND kind = 'channel_confirmation' ORDER BY id DESC LIMIT 1"
    ))
}

async fn page(api: &Api, method: reqwest::Method, token: &str) -> (u16, String) {
    let res = api
        .http
        .request(
            method,
            api.url(&format!("/api/v1/channel-confirmations/{token}")),
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/html"), "{token}: {kind}");
    (status, res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_channel_receives_nothing_until_its_address_confirms() {
    let api = Api::start(&[
        ("EMAIL_CONFIRMATION_MAX_PENDING", "2"),
        ("EMAIL_CONFIRMATIONS_PER_HOUR", "6"),
        ("API_TEST_ALERT_SECONDS", "60"),
    ]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "email", "target": "victim@example.org"}),
        )
        .await;
    let channel = created.expect(201)["id"].as_i64().unwrap();
    assert_eq!(created.json["confirmed_at"], Value::Null);
    // One confirmation request queued; only the token's hash is on the channel.
    let token = pending_token(&api, channel);
    assert_eq!(token.len(), 64);
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM alert_channels WHERE id = {channel} AND confirmation_hash = sha256('{token}'::bytea)"
        )),
        1
    );
    // The owner cannot use it to send anything else.
    api.post(
        &format!("/api/v1/channels/{channel}/test"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(409, "channel_unconfirmed");

    // Wrong, malformed and oversized tokens find nothing.
    for bad in [
        "0".repeat(64),
        "zz".repeat(32),
        "x".repeat(3000),
        "%00%0a".into(),
    ] {
        assert_eq!(page(&api, reqwest::Method::GET, &bad).await.0, 404, "{bad}");
        assert_eq!(
            page(&api, reqwest::Method::POST, &bad).await.0,
            404,
            "{bad}"
        );
    }
    // The link's page asks; opening it confirms nothing (mail scanners follow links).
    let (status, html) = page(&api, reqwest::Method::GET, &token).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("victim@example.org") && html.contains("<form method=\"post\""),
        "{html}"
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM alert_channels WHERE id = {channel} AND confirmed_at IS NULL"
        )),
        1
    );
    // The button confirms, once.
    let (status, html) = page(&api, reqwest::Method::POST, &token).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(page(&api, reqwest::Method::POST, &token).await.0, 404);
    let shown = api
        .get(&format!("/api/v1/channels/{channel}"), Some(&alice))
        .await;
    assert!(shown.expect(200)["confirmed_at"].is_string());
    api.post(
        &format!("/api/v1/channels/{channel}/test"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect(202);

    // A new address must confirm again; the old confirmation does not carry over.
    let moved = api
        .patch(
            &format!("/api/v1/channels/{channel}"),
            Some(&alice),
            json!({"target": "other@example.org"}),
        )
        .await;
    assert_eq!(moved.expect(200)["confirmed_at"], Value::Null);
    let first_link = pending_token(&api, channel);
    assert_ne!(first_link, token);
    // Resending makes a new link and kills the old one; a second resend at once is refused.
    api.post(
        &format!("/api/v1/channels/{channel}/confirmation"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect(202);
    api.post(
        &format!("/api/v1/channels/{channel}/confirmation"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(429, "rate_limited");
    let second_link = pending_token(&api, channel);
    assert_eq!(page(&api, reqwest::Method::POST, &first_link).await.0, 404);
    // An expired link does nothing.
    api.sql(&format!("UPDATE alert_channels SET confirmation_expires_at = now() - interval '1 second' WHERE id = {channel}"));
    assert_eq!(page(&api, reqwest::Method::POST, &second_link).await.0, 404);

    // Slack and webhook channels need no confirmation; a confirmed e-mail channel
    // has nothing to resend.
    let slack = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "slack", "target": "https://hooks.slack.com/services/T/B/X"}),
        )
        .await;
    let slack = slack.expect(201).clone();
    assert!(slack["confirmed_at"].is_string());
    api.post(
        &format!("/api/v1/channels/{}/confirmation", slack["id"]),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(409, "already_confirmed");

    // At most two addresses may await confirmation at once (the expired one does not count).
    for n in 0..2 {
        api.post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "email", "target": format!("x{n}@example.org")}),
        )
        .await
        .expect(201);
    }
    let third = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "email", "target": "x3@example.org"}),
        )
        .await;
    third.expect_error(403, "quota_exceeded");
    assert_eq!(
        api.count("SELECT count(*) FROM alert_channels WHERE target = 'x3@example.org'"),
        0
    );
    // Deleting channels frees confirmation slots but not the hourly allowance of
    // messages: six went out (create, readdress, resend, two creates, the refused
    // third), so a seventh address is not mailed.
    for id in api.get("/api/v1/channels", Some(&alice)).await.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect::<Vec<_>>()
    {
        api.delete(&format!("/api/v1/channels/{id}"), Some(&alice))
            .await
            .expect(204);
    }
    let mails_before =
        api.count("SELECT count(*) FROM alert_outbox WHERE kind = 'channel_confirmation'");
    api.post(
        "/api/v1/channels",
        Some(&alice),
        json!({"kind": "email", "target": "x7@example.org"}),
    )
    .await
    .expect_error(429, "rate_limited");
    assert_eq!(
        api.count("SELECT count(*) FROM alert_outbox WHERE kind = 'channel_confirmation'"),
        mails_before
    );
    // Another owner is not held back by Alice's.
    let (_, bob) = api.owner("bob@example.com").await;
    api.post(
        "/api/v1/channels",
        Some(&bob),
        json!({"kind": "email", "target": "bob@example.org"}),
    )
    .await
    .expect(201);
}

/// The HTTP API has a database pool of its own: API requests stuck on the database
/// (here each waits on a lock, as a flood of slow reads would queue) hold none of
/// the connections a validator signs up and its results are stored with. With one
/// shared pool, the stuck requests took every connection and the result waited.
#[tokio::test(flavor = "multi_thread")]
async fn api_requests_stuck_on_the_database_do_not_stop_results_being_stored() {
    use diesel::RunQueryDsl;
    use overlaps_shared::protocol::{CheckResult, CheckStatus, HubMessage};
    use overlaps_shared::signing::Keypair;

    let api = Api::start(&[("API_DATABASE_POOL_SIZE", "2"), ("DATABASE_POOL_SIZE", "3")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = add_site(&api, &alice, json!({"url": "https://example.com/"}))
        .await
        .expect(201)["id"]
        .as_i64()
        .unwrap();

    // Every authenticated request now waits on this lock, holding an API connection.
    let mut locker = api.conn();
    diesel::sql_query("BEGIN").execute(&mut locker).unwrap();
    diesel::sql_query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .unwrap();
    let stuck: Vec<_> = (0..6)
        .map(|_| {
            let request = api
                .http
                .get(api.url("/api/v1/websites"))
                .bearer_auth(&alice);
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    // Both API connections wait on the lock (the other requests wait for them).
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock'";
    for _ in 0..100 {
        if api.deployment.count(waiting) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(api.deployment.count(waiting), 2, "the API pool is held");

    // A validator signs up, is sent a check and its result is stored meanwhile.
    let key = Keypair::generate();
    let mut client = common::Client::connect(&api.server.ws_url()).await;
    let validator_id = client.signup(&key).await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(30);
    let dep = &api.deployment;
    dep.round(1, deadline);
    let assignment = dep.assign(1, site, validator_id, &api.server.instance, deadline);
    dep.dispatch(&api.server.instance, 1, vec![assignment])
        .await;
    let request = match client.recv().await {
        HubMessage::Validate(request) => request,
        other => panic!("expected validate, got {other:?}"),
    };
    let result = CheckResult {
        assignment_id: assignment,
        status: CheckStatus::Up,
        http_status: Some(200),
        latency_ms: 20,
        failure: None,
        tls_expires_at_ms: None,
        checked_at_ms: chrono::Utc::now().timestamp_millis(),
        spec_hash: hex::encode(request.spec().hash()),
        signature: String::new(),
    };
    client.send_result(result.sign(common::HUB_ID, &key)).await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
    assert!(
        stuck.iter().all(|task| !task.is_finished()),
        "the API requests were still stuck when the result was stored"
    );

    // Released, every stuck request is answered.
    diesel::sql_query("ROLLBACK").execute(&mut locker).unwrap();
    for task in stuck {
        assert_eq!(task.await.unwrap().as_u16(), 200);
    }
}
