//! The `degraded` state through a real PostgreSQL: a degraded majority is
//! confirmed like down, opens an incident with cause `degraded` and alerts whose
//! evidence reads the latency against the limit; recovery resolves it; uptime
//! counts degraded results apart; a validator that signed `up` against the
//! degraded majority earns nothing for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Timestamptz};
use overlaps_accounting::alerts::message::{Alert, describe_evidence};
use overlaps_accounting::close::close_round;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::testing::TestDatabase;

struct World {
    db: TestDatabase,
    site: i64,
    validators: [i64; 3],
    start: DateTime<Utc>,
}

fn world() -> World {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('o@x.io') RETURNING id")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    let site = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, assertions) \
         VALUES ($1, 'Shop', 'https://shop.example/', 30, 5000, 3, '{\"max_response_ms\": 1000}') RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    diesel::sql_query(
        "INSERT INTO alert_channels (owner_id, kind, target) VALUES ($1, 'slack', 'http://127.0.0.1:1/hook')",
    )
    .bind::<BigInt, _>(owner)
    .execute(&mut conn)
    .unwrap();
    let validators = [1u8, 2, 3].map(|n| {
        diesel::sql_query(
            "INSERT INTO validators (public_key, reputation) VALUES ($1, 5000) RETURNING id",
        )
        .bind::<Bytea, _>(vec![n; 32])
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
    });
    World {
        db,
        site,
        validators,
        start: Utc::now() - Duration::minutes(30),
    }
}

impl World {
    /// Round `n` where validator i answered `answers[i]` (status, latency).
    fn round(&self, n: i64, answers: [(&str, i32); 3]) {
        let mut conn = self.db.connect().unwrap();
        let opened = self.start + Duration::seconds(30 * n);
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(n)
        .bind::<Bytea, _>(vec![n as u8; 32])
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .execute(&mut conn)
        .unwrap();
        for (i, (status, latency)) in answers.into_iter().enumerate() {
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, \
                 due_at, deadline_at, state, spec_hash, max_response_ms) \
                 VALUES ($1, $2, $3, 's1', $4, $5, 'answered', $6, 1000) RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(self.site)
            .bind::<BigInt, _>(self.validators[i])
            .bind::<Timestamptz, _>(opened)
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .bind::<Bytea, _>(vec![9u8; 32])
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            let now = Utc::now();
            diesel::insert_into(ticks::table)
                .values(&Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: self.site,
                    validator_id: self.validators[i],
                    status: status.into(),
                    http_status: Some(200),
                    latency_ms: latency,
                    failure: (status == "degraded").then(|| "too_slow".to_owned()),
                    tls_expires_at: None,
                    checked_at: now,
                    received_at: now,
                    signature: vec![1; 64],
                    protocol_version: 2,
                    spec_hash: Some(vec![9; 32]),
                })
                .execute(&mut conn)
                .unwrap();
        }
    }
}

#[test]
fn a_degraded_majority_is_alerted_like_down_and_counted_apart() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    let [_, _, lazy] = w.validators;
    // Validator 3 signs `up` with a latency of 300 ms while the others measure ~1.8 s.
    let slow = [("degraded", 1840), ("degraded", 1790), ("up", 300)];
    w.round(1, slow);
    w.round(2, slow);
    w.round(3, [("up", 200), ("up", 210), ("up", 190)]);
    let now = Utc::now();

    let first = close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    assert_eq!((first.degraded, first.incidents_opened.len()), (1, 0));
    let second = close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    assert_eq!(second.incidents_opened.len(), 1, "confirmed like down");
    assert_eq!(second.alerts.len(), 1);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM website_status WHERE state = 'degraded'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM incidents WHERE cause = 'degraded' AND resolved_at IS NULL"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox WHERE kind = 'incident_opened' \
             AND payload->>'state' = 'degraded' AND payload->>'cause' = 'degraded'"
        ),
        1
    );

    // The alert reads the evidence stored with the incident.
    #[derive(QueryableByName)]
    struct Evidence {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        evidence: serde_json::Value,
    }
    let stored: Evidence = diesel::sql_query("SELECT evidence FROM incidents")
        .get_result(&mut conn)
        .unwrap();
    let described = describe_evidence(&stored.evidence, "degraded", None).unwrap();
    assert_eq!(
        described.summary,
        "2 of 3 validators: response 1,840 ms over the 1,000 ms limit"
    );
    let alert = Alert {
        kind: "incident_opened".into(),
        name: Some("Shop".into()),
        state: Some("degraded".into()),
        cause: Some("degraded".into()),
        evidence: Some(described.summary),
        failure: Some(described.failure),
        ..Alert::default()
    };
    let message = alert.message("https://hub.example", None);
    assert_eq!(
        message.title,
        "DEGRADED: Shop (response 1,840 ms over the 1,000 ms limit)"
    );
    assert!(
        message.text.starts_with("Shop is degraded"),
        "{}",
        message.text
    );

    // Recovery resolves it.
    let third = close_round(&mut conn, 3, now, &policy()).unwrap().unwrap();
    assert_eq!(third.incidents_resolved, second.incidents_opened);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM website_status WHERE state = 'up'"
        ),
        1
    );

    // Rollups: degraded apart from up and down.
    assert_eq!(
        count(
            &mut conn,
            "SELECT sum(degraded_checks) FROM website_hourly_rollups"
        ),
        4
    );
    assert_eq!(
        count(&mut conn, "SELECT sum(up) FROM website_hourly_rollups"),
        5
    );
    assert_eq!(
        count(&mut conn, "SELECT sum(down) FROM website_hourly_rollups"),
        0
    );
    assert_eq!(
        count(&mut conn, "SELECT sum(checks) FROM website_hourly_rollups"),
        9
    );

    // The validator that signed `up` against the degraded majority was credited
    // only for the round it agreed with.
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT coalesce(sum(checks), 0) FROM validator_credits WHERE validator_id = {lazy}"
            )
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT checks_agreed FROM validators WHERE id = {lazy}")
        ),
        1
    );
}
