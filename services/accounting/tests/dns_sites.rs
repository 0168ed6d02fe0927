//! A DNS record site through a real PostgreSQL: two validators sign `down` with
//! `dns_mismatch` (the expected answer is not among the records), a cheater signs
//! `up` (as a node that never resolved, or ignored the expected answer, would). The
//! majority decides: the incident opens with cause `dns_mismatch` and the alert
//! names the missing answer; the cheater is credited nothing for those rounds and
//! loses reputation, the honest validators are credited for every check.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Timestamptz};
use overlaps_accounting::alerts::message::describe_evidence;
use overlaps_accounting::close::close_round;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::testing::TestDatabase;

#[test]
fn a_validator_signing_up_for_a_missing_dns_answer_is_outvoted_and_earns_nothing() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('o@x.io') RETURNING id")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    let site = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, keyword, interval_seconds, timeout_ms, quorum) \
         VALUES ($1, 'Mail', 'dns://example.com/MX', '10 mx1.example.com', 30, 3000, 3) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let validators = [1u8, 2, 3].map(|n| {
        diesel::sql_query(
            "INSERT INTO validators (public_key, reputation) VALUES ($1, 5000) RETURNING id",
        )
        .bind::<Bytea, _>(vec![n; 32])
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
    });
    let start = Utc::now() - Duration::minutes(30);
    for n in 1..=2i64 {
        let opened = start + Duration::seconds(30 * n);
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(n)
        .bind::<Bytea, _>(vec![n as u8; 32])
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .execute(&mut conn)
        .unwrap();
        // Validators 1 and 2 are honest; validator 3 claims the site is up.
        for (i, validator) in validators.into_iter().enumerate() {
            let honest = i < 2;
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, \
                 due_at, deadline_at, state, spec_hash) \
                 VALUES ($1, $2, $3, 's1', $4, $5, 'answered', $6) RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(site)
            .bind::<BigInt, _>(validator)
            .bind::<Timestamptz, _>(opened)
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .bind::<Bytea, _>(vec![7u8; 32])
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            let now = Utc::now();
            diesel::insert_into(ticks::table)
                .values(&Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: site,
                    validator_id: validator,
                    status: if honest { "down" } else { "up" }.into(),
                    http_status: None,
                    latency_ms: 25,
                    failure: honest.then(|| "dns_mismatch".to_owned()),
                    tls_expires_at: None,
                    checked_at: now,
                    received_at: now,
                    signature: vec![1; 64],
                    protocol_version: 2,
                    spec_hash: Some(vec![7; 32]),
                })
                .execute(&mut conn)
                .unwrap();
        }
    }
    let now = Utc::now();
    close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    let second = close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    assert_eq!(
        second.incidents_opened.len(),
        1,
        "the majority's down is confirmed"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM website_status WHERE state = 'down'"
        ),
        1
    );

    #[derive(QueryableByName)]
    struct Incident {
        #[diesel(sql_type = diesel::sql_types::Text)]
        cause: String,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        evidence: serde_json::Value,
    }
    let incident: Incident = diesel::sql_query("SELECT cause, evidence FROM incidents")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(incident.cause, "dns_mismatch");
    let described = describe_evidence(
        &incident.evidence,
        &incident.cause,
        Some("10 mx1.example.com"),
    )
    .unwrap();
    assert!(
        described
            .summary
            .contains("DNS answer '10 mx1.example.com' missing"),
        "{}",
        described.summary
    );

    let [honest, _, cheater] = validators;
    let credited = |conn: &mut PgConnection, validator: i64| {
        count(
            conn,
            &format!(
                "SELECT coalesce(sum(checks), 0) FROM validator_credits WHERE validator_id = {validator}"
            ),
        )
    };
    assert_eq!(credited(&mut conn, cheater), 0, "the cheater earns nothing");
    assert_eq!(credited(&mut conn, honest), 2);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT checks_agreed FROM validators WHERE id = {cheater}")
        ),
        0
    );
    assert!(
        count(
            &mut conn,
            &format!("SELECT reputation FROM validators WHERE id = {cheater}")
        ) < 5000,
        "and loses reputation"
    );
}
