//! Alert delivery from the outbox to real local sinks: an HTTP server recording
//! requests (Slack, webhook) and aiosmtpd (e-mail).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use overlaps_accounting::alerts::channels::{Sender, webhook_signature};
use overlaps_accounting::alerts::{Delivered, OperatorChannels, deliver};
use overlaps_shared::testing::{HttpSink, SmtpSink, TestDatabase, install_tls_provider};

/// An incident-opened alert for a site, queued for one channel.
fn queued(db: &TestDatabase, kind: &str, target: &str, secret: Option<&str>) -> i64 {
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query(
        "INSERT INTO users (email) VALUES ('o-' || gen_random_uuid() || '@x.io') RETURNING id",
    )
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let channel = diesel::sql_query("INSERT INTO alert_channels (owner_id, kind, target, secret) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(kind)
        .bind::<Text, _>(target)
        .bind::<Nullable<Text>, _>(secret)
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, kind, dedup_key, payload) VALUES ($1, 'incident_opened', 'k' || $1, \
         jsonb_build_object('website_id', 7, 'url', 'https://shop.example/', 'name', 'Shop', 'state', 'down', \
                            'cause', 'connect', 'at', '2026-11-21T12:00:00Z', 'incident_id', 3)) RETURNING id",
    )
    .bind::<BigInt, _>(channel)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id
}

fn sender(smtp: Option<&str>) -> Sender {
    install_tls_provider();
    Sender::new(
        smtp,
        "Overlaps <alerts@overlaps.test>",
        "http://127.0.0.1:8080",
        true,
    )
    .unwrap()
}

#[tokio::test]
async fn a_slack_alert_is_a_block_kit_message_delivered_once() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let id = queued(&db, "slack", &sink.url(), None);
    let sender = sender(None);
    assert_eq!(
        deliver(&pool, &sender, &OperatorChannels::default(), id)
            .await
            .unwrap(),
        Delivered::Sent
    );
    assert_eq!(
        deliver(&pool, &sender, &OperatorChannels::default(), id)
            .await
            .unwrap(),
        Delivered::Skipped
    );
    let received = sink.received();
    assert_eq!(received.len(), 1, "delivered at most once");
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["blocks"][0]["type"], "header");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("DOWN: Shop (connection refused or unreachable)"),
        "{body}"
    );
    let fields = body["blocks"][1]["fields"].to_string();
    assert!(
        fields.contains("https://shop.example/") && fields.contains("/api/v1/websites/7/incidents"),
        "{fields}"
    );
    assert_eq!(outbox_state(&db, id), ("sent".into(), 1));
}

#[tokio::test]
async fn a_webhook_body_is_signed_with_the_channel_secret() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let id = queued(&db, "webhook", &sink.url(), Some("s3cret"));
    assert_eq!(
        deliver(&pool, &sender(None), &OperatorChannels::default(), id)
            .await
            .unwrap(),
        Delivered::Sent
    );
    let request = &sink.received()[0];
    let signature = request.header("x-overlaps-signature").unwrap();
    // `t=<unix seconds>,v1=<hex HMAC-SHA256("<t>." || body)>`, checked with an HMAC
    // computed here, not by the code under test.
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap();
    let t: i64 = t.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - t).abs() < 60,
        "a fresh timestamp"
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(b"s3cret").unwrap();
    hmac::Mac::update(&mut mac, format!("{t}.").as_bytes());
    hmac::Mac::update(&mut mac, &request.body);
    assert_eq!(v1, hex::encode(hmac::Mac::finalize(mac).into_bytes()));
    assert_eq!(
        Some(signature.to_owned()),
        webhook_signature("s3cret", t, &request.body)
    );
    // Another secret, or the same body at another time, signs differently: a
    // captured delivery cannot be passed off as a new one.
    assert_ne!(
        Some(signature.to_owned()),
        webhook_signature("other", t, &request.body)
    );
    assert_ne!(
        Some(signature.to_owned()),
        webhook_signature("s3cret", t + 600, &request.body)
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["state"].as_str()),
        (Some("incident_opened"), Some("down"))
    );
}

#[tokio::test]
async fn an_email_alert_arrives_with_text_and_html_parts() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let smtp = SmtpSink::start().unwrap();
    let id = queued(&db, "email", "owner@shop.example", None);
    let sender = sender(Some(&smtp.url()));
    assert_eq!(
        deliver(&pool, &sender, &OperatorChannels::default(), id)
            .await
            .unwrap(),
        Delivered::Sent
    );
    let mut messages = smtp.messages();
    for _ in 0..50 {
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        messages = smtp.messages();
    }
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert!(
        mail.contains("Subject: DOWN: Shop (connection refused or unreachable)"),
        "{mail}"
    );
    assert!(mail.contains("To: owner@shop.example"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
}

#[tokio::test]
async fn temporary_failures_back_off_and_permanent_ones_are_recorded_and_reported() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let sender = sender(None);
    let none = OperatorChannels::default();

    sink.respond_with(503);
    let flaky = queued(&db, "slack", &sink.url(), None);
    let Delivered::Retry(at) = deliver(&pool, &sender, &none, flaky).await.unwrap() else {
        panic!("expected a retry")
    };
    assert!(at > chrono::Utc::now() + chrono::Duration::seconds(20));
    assert_eq!(outbox_state(&db, flaky), ("pending".into(), 1));
    // Not due yet: a second delivery does nothing.
    assert_eq!(
        deliver(&pool, &sender, &none, flaky).await.unwrap(),
        Delivered::Skipped
    );

    sink.respond_with(404);
    let broken = queued(&db, "slack", &sink.url(), None);
    assert!(matches!(
        deliver(&pool, &sender, &none, broken).await.unwrap(),
        Delivered::Failed(_)
    ));
    assert_eq!(outbox_state(&db, broken).0, "failed");
    // The operator hears about it through an operator alert, delivered to the hook.
    let operator_alert = diesel::sql_query("SELECT id FROM alert_outbox WHERE kind = 'operator'")
        .get_result::<Id>(&mut db.connect().unwrap())
        .unwrap()
        .id;
    sink.respond_with(200);
    let operator = OperatorChannels {
        slack_hook: Some(sink.url()),
        email: None,
    };
    assert_eq!(
        deliver(&pool, &sender, &operator, operator_alert)
            .await
            .unwrap(),
        Delivered::Sent
    );
    let last = sink.received().pop().unwrap();
    assert!(String::from_utf8_lossy(&last.body).contains("could not be delivered"));
}

#[tokio::test]
async fn in_production_an_owner_target_on_a_private_address_is_never_contacted() {
    install_tls_provider();
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let guarded = Sender::new(
        None,
        "Overlaps <alerts@overlaps.test>",
        "http://127.0.0.1:8080",
        false,
    )
    .unwrap();
    // The sink listens on 127.0.0.1: by IP literal, and by a name resolving there.
    let by_name = sink.url().replace("127.0.0.1", "localhost");
    for (kind, target) in [
        ("webhook", sink.url()),
        ("slack", sink.url()),
        ("webhook", by_name),
    ] {
        let id = queued(&db, kind, &target, Some("s3cret"));
        let outcome = deliver(&pool, &guarded, &OperatorChannels::default(), id).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            outbox_state(&db, id).0,
            "failed",
            "{kind} {target}: a permanent failure, not retried"
        );
    }
    assert!(
        sink.received().is_empty(),
        "the guard let a request through"
    );
}

/// Waits for at least `n` messages in the sink.
async fn mails(smtp: &SmtpSink, n: usize) -> Vec<String> {
    let mut messages = smtp.messages();
    for _ in 0..100 {
        if messages.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        messages = smtp.messages();
    }
    messages
}

#[tokio::test]
async fn an_unconfirmed_address_gets_its_confirmation_link_and_nothing_else() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let smtp = SmtpSink::start().unwrap();
    let sender = sender(Some(&smtp.url()));
    // An incident alert for an e-mail channel whose address has not confirmed (as
    // the API leaves it), and the confirmation request beside it.
    let alert = queued(&db, "email", "stranger@victim.example", None);
    let mut conn = db.connect().unwrap();
    let channel = diesel::sql_query(
        "UPDATE alert_channels SET confirmed_at = NULL, confirmation_hash = sha256('t'::bytea), \
         confirmation_expires_at = now() + interval '1 day' \
         WHERE id = (SELECT channel_id FROM alert_outbox WHERE id = $1) RETURNING id",
    )
    .bind::<BigInt, _>(alert)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let token = "ab".repeat(32);
    let confirm = diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, kind, dedup_key, payload) VALUES \
         ($1, 'channel_confirmation', 'c' || $1, jsonb_build_object('kind', 'channel_confirmation', 'confirmation_token', $2::text)) \
         RETURNING id",
    )
    .bind::<BigInt, _>(channel)
    .bind::<Text, _>(&token)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;

    let refused = deliver(&pool, &sender, &OperatorChannels::default(), alert)
        .await
        .unwrap();
    assert!(
        matches!(&refused, Delivered::Failed(why) if why.contains("not confirmed")),
        "{refused:?}"
    );
    assert_eq!(
        deliver(&pool, &sender, &OperatorChannels::default(), confirm)
            .await
            .unwrap(),
        Delivered::Sent
    );
    let messages = mails(&smtp, 1).await;
    assert_eq!(messages.len(), 1, "only the confirmation request went out");
    let mail = &messages[0];
    assert!(
        mail.contains("Subject: Confirm Overlaps alerts to this address"),
        "{mail}"
    );
    // The link as the mail carries it (quoted-printable may fold long lines).
    let unfolded = mail.replace("=\r\n", "").replace("=\n", "");
    assert!(
        unfolded.contains(&format!(
            "http://127.0.0.1:8080/api/v1/channel-confirmations/{token}"
        )),
        "{mail}"
    );
    // Once sent, the token is no longer kept in the outbox.
    assert_eq!(
        diesel::sql_query(
            "SELECT count(*)::bigint AS id FROM alert_outbox WHERE payload ? 'confirmation_token'"
        )
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id,
        0
    );
    // A confirmation request for an address that already agreed is not sent.
    diesel::sql_query("UPDATE alert_channels SET confirmed_at = now() WHERE id = $1")
        .bind::<BigInt, _>(channel)
        .execute(&mut conn)
        .unwrap();
    let again = diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, kind, dedup_key, payload) VALUES \
         ($1, 'channel_confirmation', 'c2' || $1, '{\"kind\": \"channel_confirmation\"}') RETURNING id",
    )
    .bind::<BigInt, _>(channel)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    assert!(matches!(
        deliver(&pool, &sender, &OperatorChannels::default(), again)
            .await
            .unwrap(),
        Delivered::Failed(_)
    ));
    assert_eq!(smtp.messages().len(), 1);
    // Withheld on purpose: nothing for the operator to act on.
    assert_eq!(
        diesel::sql_query(
            "SELECT count(*)::bigint AS id FROM alert_outbox WHERE kind = 'operator'"
        )
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id,
        0
    );
}
