//! Closing rounds against a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Int4, Text, Timestamptz};
use overlaps_accounting::close::{CloseError, close_round, close_rounds_through};
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::testing::TestDatabase;
use sha3::{Digest, Keccak256};

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
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) VALUES ($1, 'https://shop.example/', 30, 1000, 3) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    for (kind, target) in [
        ("slack", "http://127.0.0.1:1/hook"),
        ("email", "ops@example.com"),
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
    // An e-mail address that never confirmed its channel: it gets no alert.
    diesel::sql_query(
        "INSERT INTO alert_channels (owner_id, kind, target, confirmed_at) \
         VALUES ($1, 'email', 'stranger@example.org', NULL)",
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
    /// Round `n` (30 s long, long past) where validator i answered `statuses[i]`
    /// (`None`: never answered).
    fn round(&self, n: i64, statuses: [Option<&str>; 3]) {
        self.round_at(
            n,
            self.start + Duration::seconds(30 * n),
            None,
            40,
            statuses,
        );
    }

    /// Round `n` opened at `opened`, its results received at `received` (`None`:
    /// now), validator i's latency `latency + i` ms.
    fn round_at(
        &self,
        n: i64,
        opened: DateTime<Utc>,
        received: Option<DateTime<Utc>>,
        latency: i32,
        statuses: [Option<&str>; 3],
    ) {
        let mut conn = self.db.connect().unwrap();
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(n)
        .bind::<Bytea, _>(vec![n as u8; 32])
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .execute(&mut conn)
        .unwrap();
        for (i, status) in statuses.iter().enumerate() {
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state) \
                 VALUES ($1, $2, $3, 's1', $4, $5, $6) RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(self.site)
            .bind::<BigInt, _>(self.validators[i])
            .bind::<Timestamptz, _>(opened)
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .bind::<Text, _>(if status.is_some() { "answered" } else { "pending" })
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            if let Some(status) = status {
                let now = received.unwrap_or_else(Utc::now);
                diesel::insert_into(ticks::table)
                    .values(&Tick {
                        assignment_id: assignment,
                        round_number: n,
                        website_id: self.site,
                        validator_id: self.validators[i],
                        status: (*status).into(),
                        http_status: (*status == "up").then_some(200),
                        latency_ms: latency + i as i32,
                        failure: (*status == "down").then(|| "connect".to_owned()),
                        tls_expires_at: None,
                        checked_at: now,
                        received_at: now,
                        signature: vec![1; 64],
                        protocol_version: 1,
                        spec_hash: None,
                    })
                    .execute(&mut conn)
                    .unwrap();
            }
        }
    }

    fn state(&self) -> (String, Option<String>, i32) {
        #[derive(QueryableByName)]
        struct S {
            #[diesel(sql_type = Text)]
            state: String,
            #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
            pending_state: Option<String>,
            #[diesel(sql_type = Int4)]
            pending_count: i32,
        }
        let s: S = diesel::sql_query(
            "SELECT state, pending_state, pending_count FROM website_status WHERE website_id = $1",
        )
        .bind::<BigInt, _>(self.site)
        .get_result(&mut self.db.connect().unwrap())
        .unwrap();
        (s.state, s.pending_state, s.pending_count)
    }
}

#[test]
fn a_confirmed_outage_opens_an_incident_with_alerts_and_recovery_resolves_it() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    let [v1, v2, v3] = w.validators;
    let down = [Some("down"), Some("down"), Some("up")];
    w.round(1, down);
    w.round(2, down);
    w.round(3, [Some("up"), Some("up"), None]);
    let now = Utc::now();

    let first = close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    assert_eq!(
        (first.down, first.incidents_opened.len()),
        (1, 0),
        "one down round is not enough"
    );
    assert_eq!(w.state(), ("unknown".into(), Some("down".into()), 1));

    let second = close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    assert_eq!(second.incidents_opened.len(), 1);
    assert_eq!(second.alerts.len(), 2, "one alert per confirmed channel");
    assert_eq!(w.state(), ("down".into(), None, 0));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM incidents WHERE cause = 'connect' AND resolved_at IS NULL AND opened_round = 2"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM incidents WHERE jsonb_array_length(evidence) = 3"
        ),
        1
    );

    let third = close_round(&mut conn, 3, now, &policy()).unwrap().unwrap();
    assert_eq!(third.incidents_resolved, second.incidents_opened);
    assert_eq!(third.alerts.len(), 2);
    assert_eq!(w.state().0, "up");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox WHERE state = 'pending'"
        ),
        4
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT dedup_key) FROM alert_outbox"
        ),
        4
    );

    // Credits: v1 and v2 agreed three times, v3 once (round 3 missed, rounds 1-2 against).
    let credited = |v: i64| {
        count(
            &mut w.db.connect().unwrap(),
            &format!("SELECT (credited / 1000000000000)::bigint FROM validators WHERE id = {v}"),
        )
    };
    assert_eq!((credited(v1), credited(v2), credited(v3)), (3, 3, 0));
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT checks_missed FROM validators WHERE id = {v3}")
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT reputation FROM validators WHERE id = {v3}")
        ),
        5000 - 150
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT reputation FROM validators WHERE id = {v1}")
        ),
        5000 + 30
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM check_assignments WHERE state = 'missed'"
        ),
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT sum(checks) FROM website_hourly_rollups"),
        8
    );

    // Closing again changes nothing.
    let before = count(&mut conn, "SELECT count(*) FROM validator_credits")
        + count(&mut conn, "SELECT count(*) FROM alert_outbox");
    assert_eq!(close_round(&mut conn, 3, now, &policy()).unwrap(), None);
    assert!(
        close_rounds_through(&mut conn, 3, now, &policy())
            .unwrap()
            .is_empty()
    );
    let after = count(&mut conn, "SELECT count(*) FROM validator_credits")
        + count(&mut conn, "SELECT count(*) FROM alert_outbox");
    assert_eq!(before, after);
}

#[test]
fn the_rounds_form_a_hash_chain_closed_in_order() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    for n in 1..=3 {
        w.round(n, [Some("up"), Some("up"), Some("up")]);
    }
    let now = Utc::now();
    assert!(matches!(
        close_round(&mut conn, 2, now, &policy()),
        Err(CloseError::PreviousOpen(2, 1))
    ));
    // Closing through round 3 closes 1, 2, 3 in order.
    let closed = close_rounds_through(&mut conn, 3, now, &policy()).unwrap();
    assert_eq!(
        closed.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    #[derive(QueryableByName)]
    struct Hashes {
        #[diesel(sql_type = Bytea)]
        results_hash: Vec<u8>,
        #[diesel(sql_type = Bytea)]
        chain_hash: Vec<u8>,
    }
    let rows: Vec<Hashes> =
        diesel::sql_query("SELECT results_hash, chain_hash FROM rounds ORDER BY number")
            .load(&mut conn)
            .unwrap();
    let mut previous = vec![0u8; 32];
    for row in &rows {
        let expected: [u8; 32] = Keccak256::new()
            .chain_update(&previous)
            .chain_update(&row.results_hash)
            .finalize()
            .into();
        assert_eq!(row.chain_hash, expected.to_vec());
        previous = row.chain_hash.clone();
    }
    assert_ne!(
        rows[0].results_hash, rows[1].results_hash,
        "the round number is in the results hash"
    );
}

#[test]
fn a_round_before_its_deadline_or_unknown_is_not_closed() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    w.round(1, [Some("up"), None, None]);
    let early = w.start + Duration::seconds(45);
    assert!(matches!(
        close_round(&mut conn, 1, early, &policy()),
        Err(CloseError::NotDue(1))
    ));
    assert!(matches!(
        close_round(&mut conn, 9, Utc::now(), &policy()),
        Err(CloseError::UnknownRound(9))
    ));
    // One result against two missing: up is the majority of what was received.
    let closed = close_round(&mut conn, 1, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert_eq!(closed.up, 1);
}

#[test]
fn latency_rolls_up_into_the_hour_its_round_opened_in_not_the_hour_it_arrived() {
    // A round opened at hh:59:50 is answered after the hour turned; its latency
    // belongs to hh (beside its up/down counts), and the next hour holds only its own.
    let w = world();
    let mut conn = w.db.connect().unwrap();
    let now = Utc::now();
    let hour = DateTime::from_timestamp((now.timestamp() / 3600 - 3) * 3600, 0).unwrap();
    let next = hour + Duration::hours(1);
    let up = Some("up");
    w.round_at(
        1,
        hour + Duration::seconds(3590),
        Some(next + Duration::seconds(5)),
        40,
        [up, up, up],
    );
    w.round_at(
        2,
        next + Duration::seconds(20),
        Some(next + Duration::seconds(25)),
        300,
        [up, up, up],
    );
    close_rounds_through(&mut conn, 2, now, &policy()).unwrap();
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Rollup {
        #[diesel(sql_type = Timestamptz)]
        hour: DateTime<Utc>,
        #[diesel(sql_type = Int4)]
        checks: i32,
        #[diesel(sql_type = diesel::sql_types::Nullable<Int4>)]
        latency_p50_ms: Option<i32>,
        #[diesel(sql_type = diesel::sql_types::Nullable<Int4>)]
        latency_p99_ms: Option<i32>,
    }
    let rollups: Vec<Rollup> = diesel::sql_query(
        "SELECT hour, checks, latency_p50_ms, latency_p99_ms FROM website_hourly_rollups \
         WHERE website_id = $1 ORDER BY hour",
    )
    .bind::<BigInt, _>(w.site)
    .load(&mut conn)
    .unwrap();
    let rollup = |hour, p50, p99| Rollup {
        hour,
        checks: 3,
        latency_p50_ms: Some(p50),
        latency_p99_ms: Some(p99),
    };
    assert_eq!(rollups, [rollup(hour, 41, 42), rollup(next, 301, 302)]);
}

#[test]
fn a_split_quorum_is_unknown_and_moves_nothing() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    w.round(1, [Some("up"), Some("down"), None]);
    let closed = close_round(&mut conn, 1, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert_eq!(closed.unknown, 1);
    assert_eq!(w.state(), ("unknown".into(), None, 0));
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM validator_credits"),
        0
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT unknown_rounds FROM website_hourly_rollups"
        ),
        1
    );
}

#[test]
fn a_certificate_close_to_expiry_is_alerted_once_per_certificate() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    w.round(1, [Some("up"), Some("up"), Some("up")]);
    w.round(2, [Some("up"), Some("up"), Some("up")]);
    let soon = Utc::now() + Duration::days(5);
    diesel::sql_query("UPDATE ticks SET tls_expires_at = $1")
        .bind::<Timestamptz, _>(soon)
        .execute(&mut conn)
        .unwrap();
    let first = close_round(&mut conn, 1, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert_eq!(first.alerts.len(), 2, "one per channel");
    let second = close_round(&mut conn, 2, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert!(
        second.alerts.is_empty(),
        "the same certificate is not alerted twice"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox WHERE kind = 'tls_expiring' AND payload->>'cause' LIKE 'certificate expires%'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM website_status WHERE tls_expires_at IS NOT NULL"
        ),
        1
    );
}

impl World {
    /// Commits a canary chain over rounds 1..=10 (rate 100 %) and returns its anchor.
    fn canary_chain(&self) -> [u8; 32] {
        let anchor = [5u8; 32];
        let tip = overlaps_shared::hash_chain::tip(
            overlaps_shared::canary::CANARY_CHAIN_DOMAIN,
            &anchor,
            10,
        );
        diesel::sql_query(
            "INSERT INTO canary_chains (epoch, first_round, rounds, rate_bp, tip, anchor) VALUES (1, 1, 10, 10000, $1, $2)",
        )
        .bind::<Bytea, _>(tip.to_vec())
        .bind::<Bytea, _>(anchor.to_vec())
        .execute(&mut self.db.connect().unwrap())
        .unwrap();
        anchor
    }

    /// A canary of `mode` for validator `i` in round `n`, answered `status` (or missed).
    fn canary(&self, n: i64, i: usize, mode: &str, status: Option<&str>) {
        let mut conn = self.db.connect().unwrap();
        diesel::sql_query(
            "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum, enabled, canary) \
             SELECT owner_id, 'http://canary.invalid/', 2147483647, 10000, 1, FALSE, TRUE FROM websites WHERE id = $1 \
             ON CONFLICT (canary) WHERE canary DO NOTHING",
        )
        .bind::<BigInt, _>(self.site)
        .execute(&mut conn)
        .unwrap();
        let opened = self.start + Duration::seconds(30 * n);
        let assignment = diesel::sql_query(
            "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state) \
             SELECT $1, id, $2, 's1', $3, $4, $5 FROM websites WHERE canary RETURNING id",
        )
        .bind::<BigInt, _>(n)
        .bind::<BigInt, _>(self.validators[i])
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .bind::<Text, _>(if status.is_some() { "answered" } else { "pending" })
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
        diesel::sql_query(
            "INSERT INTO canary_assignments (assignment_id, round_number, validator_id, mode, url, timeout_ms) \
             VALUES ($1, $2, $3, $4, 'http://127.0.0.1:9/status/00', 1000)",
        )
        .bind::<BigInt, _>(assignment)
        .bind::<BigInt, _>(n)
        .bind::<BigInt, _>(self.validators[i])
        .bind::<Text, _>(mode)
        .execute(&mut conn)
        .unwrap();
        if let Some(status) = status {
            let now = Utc::now();
            diesel::insert_into(ticks::table)
                .values(&Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: count(&mut conn, "SELECT id FROM websites WHERE canary"),
                    validator_id: self.validators[i],
                    status: status.into(),
                    http_status: (status == "up").then_some(200),
                    latency_ms: 30,
                    failure: (status == "down").then(|| "http_status".to_owned()),
                    tls_expires_at: None,
                    checked_at: now,
                    received_at: now,
                    signature: vec![1; 64],
                    protocol_version: 1,
                    spec_hash: None,
                })
                .execute(&mut conn)
                .unwrap();
        }
    }
}

#[test]
fn canaries_are_judged_by_their_known_answer_and_a_wrong_one_forfeits_the_eon_so_far() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    let [v1, v2, v3] = w.validators;
    let anchor = w.canary_chain();
    let now = Utc::now();
    w.round(1, [Some("up"); 3]);
    close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    // Round 2: every real answer agrees; v1 passes a 503 canary, v2 calls it up
    // without checking, v3 never answers its canary.
    w.round(2, [Some("up"); 3]);
    w.canary(2, 0, "server_error", Some("down"));
    w.canary(2, 1, "server_error", Some("up"));
    w.canary(2, 2, "ok", None);
    let summary = close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    assert_eq!((summary.canaries_passed, summary.canaries_failed), (1, 1));

    // The round's key is revealed, and it is the chain's second value.
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Nullable<Bytea>)]
        canary_key: Option<Vec<u8>>,
    }
    let key = diesel::sql_query("SELECT canary_key FROM rounds WHERE number = 2")
        .get_result::<Key>(&mut conn)
        .unwrap()
        .canary_key;
    assert_eq!(
        key,
        overlaps_shared::canary::round_key(&anchor, 10, 1).map(|k| k.to_vec())
    );

    let credits = |conn: &mut PgConnection, v: i64| {
        count(
            conn,
            &format!(
                "SELECT COALESCE(sum(amount), 0) / 1000000000000 FROM validator_credits WHERE validator_id = {v}"
            ),
        )
    };
    // v1: one real check in each round plus the canary.
    assert_eq!(credits(&mut conn, v1), 3);
    // v2: both rounds' credits taken back, and recorded on the canary.
    assert_eq!(credits(&mut conn, v2), 0);
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT forfeited / 1000000000000 FROM canary_assignments WHERE validator_id = {v2}"
            )
        ),
        2
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT credited FROM validators WHERE id = {v2}")
        ),
        0
    );
    // v3: its real checks earn, the missed canary counts as a miss.
    assert_eq!(credits(&mut conn, v3), 2);
    let reputation = |conn: &mut PgConnection, v: i64| {
        count(
            conn,
            &format!("SELECT reputation FROM validators WHERE id = {v}"),
        )
    };
    assert_eq!(reputation(&mut conn, v1), 5000 + 10 + 2 * 10);
    assert_eq!(
        reputation(&mut conn, v2),
        (5000 + 10 + 10) / 2,
        "half the reputation"
    );
    assert_eq!(reputation(&mut conn, v3), 5000 + 10 + 10 - 50);
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT checks_missed FROM validators WHERE id = {v3}")
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM canary_assignments WHERE outcome IS NULL"
        ),
        0
    );

    // The canary site is never a site: no status, rollup, incident or alert.
    for table in ["website_status", "website_hourly_rollups", "incidents"] {
        assert_eq!(
            count(
                &mut conn,
                &format!(
                    "SELECT count(*) FROM {table} t JOIN websites w ON w.id = t.website_id AND w.canary"
                )
            ),
            0,
            "{table}"
        );
    }

    // After the forfeit the validator earns again.
    w.round(3, [Some("up"); 3]);
    close_round(&mut conn, 3, now, &policy()).unwrap().unwrap();
    assert_eq!(credits(&mut conn, v2), 1);
    // Closing again changes nothing.
    assert!(close_round(&mut conn, 2, now, &policy()).unwrap().is_none());
    assert_eq!(credits(&mut conn, v2), 1);
}

#[test]
fn one_validator_alone_can_neither_raise_nor_hide_a_certificate_alert() {
    let w = world();
    let mut conn = w.db.connect().unwrap();
    let [v1, v2, v3] = w.validators;
    w.round(1, [Some("up"), Some("up"), Some("up")]);
    w.round(2, [Some("up"), Some("up"), Some("up")]);
    let (soon, later) = (
        Utc::now() + Duration::days(3),
        Utc::now() + Duration::days(300),
    );
    let expiry = |round: i64, validator: i64, at: DateTime<Utc>| {
        diesel::sql_query(
            "UPDATE ticks SET tls_expires_at = $3 WHERE round_number = $1 AND validator_id = $2",
        )
        .bind::<BigInt, _>(round)
        .bind::<BigInt, _>(validator)
        .bind::<Timestamptz, _>(at)
        .execute(&mut w.db.connect().unwrap())
        .unwrap();
    };
    // Round 1: one validator claims the certificate expires in three days.
    expiry(1, v1, soon);
    expiry(1, v2, later);
    expiry(1, v3, later);
    let first = close_round(&mut conn, 1, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert!(first.alerts.is_empty(), "one validator raised an alert");
    // Round 2: two of three see it expire soon; the third says otherwise.
    expiry(2, v1, soon);
    expiry(2, v2, soon);
    expiry(2, v3, later);
    let second = close_round(&mut conn, 2, Utc::now(), &policy())
        .unwrap()
        .unwrap();
    assert_eq!(
        second.alerts.len(),
        2,
        "the majority's expiry is alerted, one per channel"
    );
}
