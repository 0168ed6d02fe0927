//! End to end with every real process: scheduler, server, accounting and three
//! validator nodes. A local site goes down: an incident opens after the configured
//! confirmations and a Slack message and an e-mail arrive; it comes back: the
//! incident is resolved and both channels are told.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use overlaps_shared::testing::e2e::{
    DEV_PAYOUT, scalar as count, spawn_binary as spawn, spawn_hub_server, start_validator,
};
use overlaps_shared::testing::{
    HttpSink, HttpTarget, SmtpSink, TestDatabase, TestRedis, service_env, wait_until,
};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_an_incident_with_alerts_and_recovery_resolves_it() {
    overlaps_shared::testing::install_tls_provider();
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let slack = HttpSink::start().await.unwrap();
    let smtp = SmtpSink::start().unwrap();
    let site = HttpTarget::start(200, "all healthy").await.unwrap();

    let mut env = service_env(&db, &redis);
    env.extend(
        [
            ("HUB_ID", "e2e-rounds"),
            ("ROUND_SECONDS", "2"),
            ("SCHEDULER_LOCK_TTL_SECONDS", "3"),
            ("CONFIRMATIONS_DOWN", "2"),
            ("CONFIRMATIONS_UP", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env.push(("SMTP_URL".into(), smtp.url()));
    let (_server, bind) = spawn_hub_server(&env);
    let _accounting = spawn("accounting", &[], &env);

    // The owner, the site and two channels: Slack and e-mail.
    let mut conn = db.connect().unwrap();
    let owner =
        diesel::sql_query("INSERT INTO users (email) VALUES ('owner@shop.example') RETURNING id")
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
    let website = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, keyword) \
         VALUES ($1, 'Shop', $2, 2, 800, 3, 'healthy') RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Text, _>(site.url())
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    for (kind, target) in [
        ("slack", slack.url()),
        ("email", "owner@shop.example".to_owned()),
    ] {
        diesel::sql_query(
            "INSERT INTO alert_channels (owner_id, kind, target) VALUES ($1, $2, $3)",
        )
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(kind)
        .bind::<Text, _>(target)
        .execute(&mut conn)
        .unwrap();
    }

    // Three validator nodes, then the scheduler.
    let hub = format!("ws://{bind}/ws/validator");
    let nodes: Vec<_> = (0..3)
        .map(|_| start_validator(&hub, DEV_PAYOUT, &[]))
        .collect();
    wait_until(
        "three validators signed up",
        Duration::from_secs(20),
        || count(&db, "SELECT count(*) FROM validators") == 3,
    )
    .await;
    let _scheduler = spawn("scheduler", &[], &env);

    let state = |db: &TestDatabase| {
        diesel::sql_query("SELECT coalesce((SELECT state FROM website_status WHERE website_id = $1), 'none') AS s")
            .bind::<BigInt, _>(website)
            .get_result::<StateRow>(&mut db.connect().unwrap())
            .unwrap()
            .s
    };
    wait_until("the site up", Duration::from_secs(30), || {
        state(&db) == "up"
    })
    .await;

    // Down: the keyword disappears behind a 503.
    site.set(503, "maintenance");
    wait_until("an open incident", Duration::from_secs(30), || {
        count(&db, &format!("SELECT count(*) FROM incidents WHERE website_id = {website} AND resolved_at IS NULL")) == 1
    })
    .await;
    assert_eq!(state(&db), "down");
    let opened_round = count(&db, "SELECT opened_round FROM incidents");
    let first_down = count(
        &db,
        &format!(
            "SELECT min(round_number) FROM ticks WHERE website_id = {website} AND status = 'down'"
        ),
    );
    assert!(
        opened_round > first_down,
        "confirmed over two rounds ({first_down} -> {opened_round})"
    );
    wait_until(
        "a Slack message and an e-mail about the outage",
        Duration::from_secs(30),
        || {
            slack
                .received()
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains("DOWN: Shop"))
                && smtp
                    .messages()
                    .iter()
                    .any(|m| m.contains("Subject: DOWN: Shop"))
        },
    )
    .await;

    // Back up: resolved, and both channels are told.
    site.set(200, "all healthy");
    wait_until("the incident resolved", Duration::from_secs(30), || {
        count(
            &db,
            "SELECT count(*) FROM incidents WHERE resolved_at IS NOT NULL",
        ) == 1
    })
    .await;
    wait_until(
        "a Slack message and an e-mail about the recovery",
        Duration::from_secs(30),
        || {
            slack
                .received()
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains("RECOVERED: Shop"))
                && smtp
                    .messages()
                    .iter()
                    .any(|m| m.contains("Subject: RECOVERED: Shop"))
        },
    )
    .await;
    // Each alert went out once per channel.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM alert_outbox WHERE state = 'sent'"
        ),
        4
    );
    assert_eq!(slack.received().len(), 2);
    assert!(count(&db, "SELECT count(*) FROM validator_credits") > 0);
    drop(nodes);
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    s: String,
}
