//! Reminders while a site stays down: due every `reminder_minutes` after the
//! incident opened, at most `reminder_max`, each queued once whatever the number
//! of sweeps (or accounting restarts: the dedup key names incident, channel and
//! reminder number), delivered through the real delivery, and stopped by the
//! recovery (a queued one is cancelled, not failed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Nullable, Text, Timestamptz};
use overlaps_accounting::alerts::channels::Sender;
use overlaps_accounting::alerts::{Delivered, OperatorChannels, deliver, reminders};
use overlaps_shared::testing::{HttpSink, TestDatabase, install_tls_provider};

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// A site of a new owner, down since `opened`, and channels of the owner: Slack
/// with reminders every 10 min (at most 3), Slack without reminders, and a
/// disabled one with reminders.
fn setup(db: &TestDatabase, sink: &HttpSink, opened: DateTime<Utc>) -> (i64, i64) {
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('o@x.io') RETURNING id")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    let site = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum) \
         VALUES ($1, 'Shop', 'https://shop.example/', 60, 5000, 3) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    diesel::sql_query(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at) \
         VALUES (1, decode(repeat('01', 32), 'hex'), $1 - interval '1 minute', $1)",
    )
    .bind::<Timestamptz, _>(opened)
    .execute(&mut conn)
    .unwrap();
    let incident = diesel::sql_query(
        "INSERT INTO incidents (website_id, opened_at, opened_round, cause, evidence) \
         VALUES ($1, $2, 1, 'timeout', '[]') RETURNING id",
    )
    .bind::<BigInt, _>(site)
    .bind::<Timestamptz, _>(opened)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let mut channel = |minutes: Option<i32>, max: Option<i32>, enabled: bool| {
        diesel::sql_query(
            "INSERT INTO alert_channels (owner_id, kind, target, reminder_minutes, reminder_max, enabled) \
             VALUES ($1, 'slack', $2, $3, $4, $5) RETURNING id",
        )
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(sink.url())
        .bind::<Nullable<Int4>, _>(minutes)
        .bind::<Nullable<Int4>, _>(max)
        .bind::<diesel::sql_types::Bool, _>(enabled)
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
    };
    let reminding = channel(Some(10), Some(3), true);
    channel(None, None, true);
    channel(Some(10), Some(3), false);
    (incident, reminding)
}

fn dedup_keys(db: &TestDatabase) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = Text)]
        dedup_key: String,
    }
    diesel::sql_query(
        "SELECT dedup_key FROM alert_outbox WHERE kind = 'incident_reminder' ORDER BY id",
    )
    .load::<Key>(&mut db.connect().unwrap())
    .unwrap()
    .into_iter()
    .map(|k| k.dedup_key)
    .collect()
}

#[tokio::test]
async fn reminders_repeat_every_n_minutes_at_most_m_times_and_stop_at_recovery() {
    install_tls_provider();
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let sender = Sender::new(
        None,
        "Overlaps <a@overlaps.test>",
        "http://127.0.0.1:8080",
        true,
    )
    .unwrap();
    let none = OperatorChannels::default();
    let opened = Utc::now() - Duration::minutes(15);
    let (incident, channel) = setup(&db, &sink, opened);
    let mut conn = db.connect().unwrap();

    // Before the first interval has passed: nothing.
    assert!(
        reminders::queue_due(&mut conn, opened + Duration::minutes(9))
            .unwrap()
            .is_empty()
    );
    // 15 min in: reminder 1, once however many sweeps (or restarted processes) ask.
    let first = reminders::queue_due(&mut conn, opened + Duration::minutes(15)).unwrap();
    assert_eq!(first.len(), 1, "only the enabled channel with reminders");
    for _ in 0..3 {
        assert!(
            reminders::queue_due(&mut db.connect().unwrap(), opened + Duration::minutes(19))
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        dedup_keys(&db),
        [format!("incident_reminder:{incident}:{channel}:1")]
    );

    assert_eq!(
        deliver(&pool, &sender, &none, first[0]).await.unwrap(),
        Delivered::Sent
    );
    let body: serde_json::Value = serde_json::from_slice(&sink.received()[0].body).unwrap();
    let shown = body.to_string();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("STILL DOWN: Shop (timed out)"),
        "{shown}"
    );
    assert!(shown.contains("1 of 3"), "{shown}");

    // Accounting was away from minute 19 to minute 45: only the latest due
    // reminder (4 would be due, capped at 3) goes out, never a burst.
    let late = reminders::queue_due(&mut conn, opened + Duration::minutes(45)).unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(
        dedup_keys(&db).last().unwrap(),
        &format!("incident_reminder:{incident}:{channel}:3")
    );
    // Never more than reminder_max.
    assert!(
        reminders::queue_due(&mut conn, opened + Duration::hours(10))
            .unwrap()
            .is_empty()
    );
    assert_eq!(dedup_keys(&db).len(), 2);

    // The site recovers before reminder 3 is delivered: it is cancelled, not
    // sent, not a failure, and the operator hears nothing.
    diesel::sql_query("UPDATE incidents SET resolved_at = now(), resolved_round = 1 WHERE id = $1")
        .bind::<BigInt, _>(incident)
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        deliver(&pool, &sender, &none, late[0]).await.unwrap(),
        Delivered::Cancelled
    );
    assert_eq!(sink.received().len(), 1);
    let state: Id = diesel::sql_query(
        "SELECT count(*)::bigint AS id FROM alert_outbox WHERE state = 'cancelled' AND id = $1",
    )
    .bind::<BigInt, _>(late[0])
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(state.id, 1);
    let operator: Id = diesel::sql_query(
        "SELECT count(*)::bigint AS id FROM alert_outbox WHERE kind = 'operator'",
    )
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(operator.id, 0);
    // Resolved: no more reminders.
    assert!(
        reminders::queue_due(&mut conn, opened + Duration::days(2))
            .unwrap()
            .is_empty()
    );
}
