//! Discord, Telegram, Teams, PagerDuty, ntfy, Mattermost and Pushover channels
//! through the real server binary: each created with its documented body, its
//! credential never returned (only a hint) nor logged, reminders set and
//! cleared, a test alert queued; every bad field a 422 naming it with nothing
//! stored; the owner's time zone set and refused when unknown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::Api;
use serde_json::{Value, json};

const TELEGRAM_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const PUSHOVER_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const PUSHOVER_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const NTFY_TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

#[tokio::test(flavor = "multi_thread")]
async fn provider_channels_are_created_tested_and_keep_their_credentials() {
    let mut api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = [
        (
            json!({"kind": "discord", "target": "https://discord.com/api/webhooks/1/abc"}),
            None,
        ),
        (
            json!({"kind": "telegram", "target": "-1001234567890", "secret": TELEGRAM_TOKEN}),
            Some("…saw0"),
        ),
        (
            json!({"kind": "teams", "target": "https://example.webhook.office.com/webhookb2/x"}),
            None,
        ),
        (
            json!({"kind": "pagerduty", "secret": ROUTING_KEY, "reminder_minutes": 30, "reminder_max": 4}),
            Some("…cdef"),
        ),
        (
            json!({"kind": "ntfy", "target": "https://ntfy.sh/my-sites"}),
            None,
        ),
        (
            json!({"kind": "ntfy", "target": "https://ntfy.example/alerts", "secret": NTFY_TOKEN}),
            Some("…NIz2"),
        ),
        (
            json!({"kind": "mattermost", "target": "https://chat.example.com/hooks/xyz"}),
            None,
        ),
        (
            json!({"kind": "pushover", "target": PUSHOVER_USER, "secret": PUSHOVER_TOKEN, "reminder_minutes": 5}),
            Some("…nyUi"),
        ),
    ];
    for (body, hint) in created {
        let answer = api
            .post("/api/v1/channels", Some(&alice), body.clone())
            .await;
        let channel = answer.expect(201).clone();
        let kind = body["kind"].as_str().unwrap();
        assert_eq!(channel["kind"], kind);
        // A credential the owner gave is never sent back, only its last characters.
        assert_eq!(channel["secret"], Value::Null, "{kind}");
        assert_eq!(channel["has_secret"], hint.is_some(), "{kind}");
        match hint {
            Some(hint) => {
                assert_eq!(channel["secret_hint"], hint, "{kind}");
            }
            None => assert_eq!(channel["secret_hint"], Value::Null),
        }
        let id = channel["id"].as_i64().unwrap();
        let read = api
            .get(&format!("/api/v1/channels/{id}"), Some(&alice))
            .await;
        let read = read.expect(200).to_string();
        for secret in [TELEGRAM_TOKEN, ROUTING_KEY, PUSHOVER_TOKEN, NTFY_TOKEN] {
            assert!(!read.contains(secret), "{kind}: {read}");
        }
        // The test alert is queued like any other channel's.
        let test = api
            .post(
                &format!("/api/v1/channels/{id}/test"),
                Some(&alice),
                json!({}),
            )
            .await;
        assert!(test.expect(202)["outbox_id"].is_i64());
    }
    let pagerduty = api.id("SELECT id FROM alert_channels WHERE kind = 'pagerduty'");
    assert_eq!(
        api.text(&format!(
            "SELECT target FROM alert_channels WHERE id = {pagerduty}"
        )),
        "events-v2"
    );
    assert_eq!(
        api.count("SELECT count(*) FROM alert_channels WHERE kind = 'pushover' AND reminder_minutes = 5 AND reminder_max = 3"),
        1,
        "reminder_max defaults to 3"
    );

    // Reminders changed, then cleared with null; a credential replaced.
    let path = format!("/api/v1/channels/{pagerduty}");
    let changed = api
        .patch(
            &path,
            Some(&alice),
            json!({"reminder_minutes": 15, "secret": "fedcba9876543210fedcba9876543210"}),
        )
        .await;
    let changed = changed.expect(200).clone();
    assert_eq!(
        (
            changed["reminder_minutes"].as_i64(),
            changed["reminder_max"].as_i64()
        ),
        (Some(15), Some(4))
    );
    assert_eq!(changed["secret_hint"], "…3210");
    let cleared = api
        .patch(&path, Some(&alice), json!({"reminder_minutes": null}))
        .await;
    let cleared = cleared.expect(200).clone();
    assert_eq!(
        (
            cleared["reminder_minutes"].clone(),
            cleared["reminder_max"].clone()
        ),
        (Value::Null, Value::Null)
    );
    for (body, field) in [
        (json!({"reminder_minutes": 0}), "reminder_minutes"),
        (json!({"reminder_max": 5}), "reminder_max"),
        (json!({"secret": "not-a-routing-key"}), "secret"),
        (json!({"target": "https://elsewhere.example/"}), "target"),
    ] {
        let answer = api.patch(&path, Some(&alice), body.clone()).await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }

    // No credential reached the server's log.
    let log = api.server.process.output().join("\n");
    assert!(!log.is_empty(), "the server logs something");
    for secret in [
        TELEGRAM_TOKEN,
        ROUTING_KEY,
        PUSHOVER_TOKEN,
        NTFY_TOKEN,
        "fedcba9876543210fedcba9876543210",
    ] {
        assert!(!log.contains(secret), "a credential was logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_provider_configs_are_refused_field_by_field_and_store_nothing() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let url = "https://hooks.example/x";
    for (body, field) in [
        (json!({"kind": "signal", "target": url}), "kind"),
        (json!({"kind": "discord"}), "target"),
        (
            json!({"kind": "discord", "target": "discord.com/api/webhooks/1/x"}),
            "target",
        ),
        (
            json!({"kind": "discord", "target": url, "secret": "0123456789abcdef"}),
            "secret",
        ),
        (
            json!({"kind": "teams", "target": "ftp://example.com/x"}),
            "target",
        ),
        (
            json!({"kind": "mattermost", "target": "not a url"}),
            "target",
        ),
        (json!({"kind": "ntfy", "target": "ntfy.sh/topic"}), "target"),
        (
            json!({"kind": "ntfy", "target": url, "secret": "has spaces in it"}),
            "secret",
        ),
        (
            json!({"kind": "telegram", "target": "-100123", "secret": "not-a-token"}),
            "secret",
        ),
        (json!({"kind": "telegram", "target": "-100123"}), "secret"),
        (
            json!({"kind": "telegram", "target": "my chat", "secret": TELEGRAM_TOKEN}),
            "target",
        ),
        (json!({"kind": "pagerduty"}), "secret"),
        (json!({"kind": "pagerduty", "secret": "short"}), "secret"),
        (
            json!({"kind": "pagerduty", "target": url, "secret": ROUTING_KEY}),
            "target",
        ),
        (
            json!({"kind": "pushover", "target": PUSHOVER_USER}),
            "secret",
        ),
        (
            json!({"kind": "pushover", "target": "someone", "secret": PUSHOVER_TOKEN}),
            "target",
        ),
        (
            json!({"kind": "pushover", "target": PUSHOVER_USER, "secret": "abc"}),
            "secret",
        ),
        (
            json!({"kind": "slack", "target": url, "reminder_minutes": 0}),
            "reminder_minutes",
        ),
        (
            json!({"kind": "slack", "target": url, "reminder_minutes": 20_000}),
            "reminder_minutes",
        ),
        (
            json!({"kind": "slack", "target": url, "reminder_minutes": 5, "reminder_max": 0}),
            "reminder_max",
        ),
        (
            json!({"kind": "slack", "target": url, "reminder_max": 3}),
            "reminder_max",
        ),
    ] {
        let answer = api
            .post("/api/v1/channels", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
        // A refused credential is not echoed back.
        for secret in [TELEGRAM_TOKEN, ROUTING_KEY, PUSHOVER_TOKEN, "not-a-token"] {
            assert!(!answer.text.contains(secret), "{body}: {}", answer.text);
        }
    }
    assert_eq!(
        api.count("SELECT count(*) FROM alert_channels"),
        0,
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_has_an_iana_time_zone() {
    let api = Api::start(&[]);
    let created = api
        .post(
            "/api/v1/accounts",
            None,
            json!({"email": "tz@example.com", "time_zone": "Europe/Berlin"}),
        )
        .await;
    let created = created.expect(201).clone();
    assert_eq!(created["account"]["time_zone"], "Europe/Berlin");
    let key = created["api_key"]["key"].as_str().unwrap().to_owned();
    let answer = api
        .post(
            "/api/v1/accounts",
            None,
            json!({"email": "bad@example.com", "time_zone": "Mars/Olympus"}),
        )
        .await;
    answer.expect_error(422, "validation_failed");
    assert_eq!(answer.json["details"]["field"], "time_zone");
    assert_eq!(
        api.count("SELECT count(*) FROM users WHERE email = 'bad@example.com'"),
        0
    );

    let moved = api
        .patch(
            "/api/v1/account",
            Some(&key),
            json!({"time_zone": "America/New_York"}),
        )
        .await;
    assert_eq!(moved.expect(200)["time_zone"], "America/New_York");
    let bad = api
        .patch(
            "/api/v1/account",
            Some(&key),
            json!({"time_zone": "EST5EDT/Nowhere"}),
        )
        .await;
    bad.expect_error(422, "validation_failed");
    let cleared = api
        .patch("/api/v1/account", Some(&key), json!({"time_zone": null}))
        .await;
    assert_eq!(cleared.expect(200)["time_zone"], Value::Null);
    assert_eq!(
        api.get("/api/v1/account", Some(&key)).await.expect(200)["time_zone"],
        Value::Null
    );
}
