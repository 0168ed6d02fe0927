//! The `accounting` binary delivers provider alerts on its own: started with
//! `TELEGRAM_API_URL`, `PAGERDUTY_EVENTS_URL` and `PUSHOVER_API_URL` pointing at
//! a local sink, it picks up pending outbox rows in its sweep, queues the
//! reminder due for an open incident, and sends each once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use overlaps_shared::testing::{
    HttpSink, TestDatabase, TestRedis, service_env, spawn_ready, wait_until,
};

#[tokio::test(flavor = "multi_thread")]
async fn accounting_sends_to_the_configured_provider_endpoints_and_reminds() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let sink = HttpSink::start().await.unwrap();
    let base = sink.url().trim_end_matches("/hook").to_owned();
    db.connect()
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO users (id, email, time_zone) VALUES (1, 'o@x.io', 'Asia/Tokyo'); \
             INSERT INTO websites (id, owner_id, name, url, interval_seconds, timeout_ms, quorum) \
               VALUES (1, 1, 'Shop', 'https://shop.example/', 60, 5000, 3); \
             INSERT INTO rounds (number, seed, opened_at, deadline_at) \
               VALUES (1, decode(repeat('01', 32), 'hex'), now() - interval '20 minutes', now() - interval '19 minutes'); \
             INSERT INTO incidents (id, website_id, opened_at, opened_round, cause, evidence) \
               VALUES (1, 1, now() - interval '12 minutes', 1, 'timeout', '[]'); \
             INSERT INTO alert_channels (id, owner_id, kind, target, secret, reminder_minutes, reminder_max) VALUES \
               (1, 1, 'telegram', '-100123', '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0', NULL, NULL), \
               (2, 1, 'pagerduty', 'events-v2', '0123456789abcdef0123456789abcdef', NULL, NULL), \
               (3, 1, 'pushover', 'uQiRzpo4DXghDmr9QzzfQu27cmVRsG', 'azGDORePK8gMaC0QOYAMyEEuzJnyUi', NULL, NULL), \
               (4, 1, 'discord', '{hook}', NULL, 10, 2); \
             INSERT INTO alert_outbox (channel_id, incident_id, kind, dedup_key, payload) \
               SELECT c, 1, 'incident_opened', 'incident_opened:1:' || c, \
                      jsonb_build_object('website_id', 1, 'url', 'https://shop.example/', 'name', 'Shop', \
                                         'state', 'down', 'cause', 'timeout', 'at', now() - interval '12 minutes', \
                                         'incident_id', 1) \
               FROM generate_series(1, 3) c;",
            hook = sink.url()
        ))
        .unwrap();
    let mut env = service_env(&db, &redis);
    env.extend([
        ("TELEGRAM_API_URL".to_owned(), base.clone()),
        (
            "PAGERDUTY_EVENTS_URL".to_owned(),
            format!("{base}/v2/enqueue"),
        ),
        (
            "PUSHOVER_API_URL".to_owned(),
            format!("{base}/1/messages.json"),
        ),
    ]);
    let mut accounting = spawn_ready(env!("CARGO_BIN_EXE_accounting"), &[], &env);
    // The sweep runs every 10 s: three alerts and Discord's first reminder.
    wait_until("four deliveries", Duration::from_secs(40), || {
        sink.received().len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = sink.received();
    let mut lines: Vec<String> = received
        .iter()
        .map(|r| r.request_line.split(' ').nth(1).unwrap().to_owned())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "/1/messages.json",
            "/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0/sendMessage",
            "/hook",
            "/v2/enqueue",
        ]
    );
    let reminder = received
        .iter()
        .find(|r| r.request_line.contains("/hook "))
        .unwrap();
    let body = String::from_utf8_lossy(&reminder.body);
    assert!(
        body.contains("STILL DOWN: Shop (timed out)") && body.contains("1 of 2"),
        "{body}"
    );
    assert!(body.contains("JST, Asia/Tokyo"), "the owner's zone: {body}");
    let log = accounting.output().join("\n");
    for secret in [
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
        "0123456789abcdef0123456789abcdef",
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    ] {
        assert!(!log.contains(secret), "a credential was logged");
    }
    accounting.terminate(Duration::from_secs(10)).unwrap();
}
