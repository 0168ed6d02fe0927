//! Opening rounds against a real PostgreSQL: the seed chain, due sites, and
//! assignments a third party re-derives from the stored public data alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Int2, Int4, Jsonb, Nullable, Text, Timestamptz};
use overlaps_scheduler::canaries::CanaryPolicy;
use overlaps_scheduler::rounds::{mark_close_enqueued, next_opening, open_round, rounds_to_close};
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::selection::{self, Candidate};
use overlaps_shared::testing::TestDatabase;

const HUB: &str = "sched-test";
const LENGTH: Duration = Duration::from_secs(30);

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn validator(conn: &mut PgConnection, n: u8, reputation: i32) -> i64 {
    diesel::sql_query(
        "INSERT INTO validators (public_key, reputation) VALUES ($1, $2) RETURNING id",
    )
    .bind::<Bytea, _>(vec![n; 32])
    .bind::<Int4, _>(reputation)
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

fn website(conn: &mut PgConnection, interval: i32, quorum: i16, enabled: bool) -> i64 {
    let owner = diesel::sql_query(
        "INSERT INTO users (email) VALUES ('s-' || gen_random_uuid() || '@x.io') RETURNING id",
    )
    .get_result::<Id>(conn)
    .unwrap()
    .id;
    diesel::sql_query(
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum, enabled) \
         VALUES ($1, 'https://example.com/', $2, 1000, $3, $4) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Int4, _>(interval)
    .bind::<Int2, _>(quorum)
    .bind::<Bool, _>(enabled)
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

#[derive(QueryableByName, Debug)]
struct StoredRound {
    #[diesel(sql_type = Bytea)]
    seed: Vec<u8>,
    #[diesel(sql_type = Nullable<BigInt>)]
    seed_results_round: Option<i64>,
    #[diesel(sql_type = Jsonb)]
    candidates: serde_json::Value,
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Bool)]
    degraded: bool,
}

#[derive(QueryableByName, Debug)]
struct StoredAssignment {
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    server_instance: String,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
}

fn stored_round(conn: &mut PgConnection, number: i64) -> StoredRound {
    diesel::sql_query("SELECT seed, seed_results_round, candidates, opened_at, degraded FROM rounds WHERE number = $1")
        .bind::<BigInt, _>(number)
        .get_result(conn)
        .unwrap()
}

fn stored_assignments(
    conn: &mut PgConnection,
    number: i64,
) -> BTreeMap<i64, Vec<StoredAssignment>> {
    let rows: Vec<StoredAssignment> = diesel::sql_query(
        "SELECT website_id, validator_id, server_instance, due_at FROM check_assignments \
         WHERE round_number = $1 ORDER BY website_id, id",
    )
    .bind::<BigInt, _>(number)
    .load(conn)
    .unwrap();
    let mut by_site: BTreeMap<i64, Vec<StoredAssignment>> = BTreeMap::new();
    for row in rows {
        by_site.entry(row.website_id).or_default().push(row);
    }
    by_site
}

/// What a third party does: from `rounds` (seed, candidates) and the sites' quorum,
/// derive who had to check each site, and when.
fn rederive(
    conn: &mut PgConnection,
    number: i64,
    sites: &[(i64, usize)],
) -> BTreeMap<i64, (Vec<i64>, DateTime<Utc>)> {
    let round = stored_round(conn, number);
    let seed: [u8; 32] = round.seed.as_slice().try_into().unwrap();
    let candidates: Vec<Candidate> = round
        .candidates
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| Candidate {
            validator_id: pair[0].as_i64().unwrap(),
            weight: pair[1].as_u64().unwrap() as u32,
        })
        .collect();
    sites
        .iter()
        .map(|&(site, quorum)| {
            let chosen = selection::choose_validators(&seed, site, &candidates, quorum);
            let due = round.opened_at
                + chrono::Duration::from_std(selection::due_offset(&seed, site, LENGTH / 2))
                    .unwrap();
            (site, (chosen, due))
        })
        .collect()
}

fn online(ids: &[(i64, &str)]) -> Vec<OnlineValidator> {
    ids.iter()
        .map(|&(validator_id, i)| OnlineValidator {
            validator_id,
            server_instance: i.into(),
        })
        .collect()
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_000 + seconds, 0).unwrap()
}

#[test]
fn rounds_chain_their_seeds_and_assignments_rederive_from_stored_public_data() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let v1 = validator(&mut conn, 1, 9000);
    let v2 = validator(&mut conn, 2, 5000);
    let v3 = validator(&mut conn, 3, 1000);
    let every_round = website(&mut conn, 30, 2, true);
    let slow = website(&mut conn, 100, 2, true);
    let disabled = website(&mut conn, 30, 2, false);
    let here = online(&[(v1, "s1"), (v2, "s2"), (v3, "s1")]);

    assert_eq!(next_opening(&mut conn, LENGTH).unwrap(), None);
    let first = open_round(&mut conn, at(0), LENGTH, HUB, &here, &CanaryPolicy::none()).unwrap();
    assert_eq!(first.number, 1);
    assert_eq!(first.seed, selection::genesis_seed(HUB));
    assert!(!first.degraded);
    assert_eq!(first.sites, 2);
    assert_eq!(first.deadline_at, at(30));
    assert_eq!(next_opening(&mut conn, LENGTH).unwrap(), Some(at(30)));

    let stored = stored_assignments(&mut conn, 1);
    assert!(!stored.contains_key(&disabled));
    let derived = rederive(&mut conn, 1, &[(every_round, 2), (slow, 2)]);
    for (site, (validators, due)) in &derived {
        let rows = &stored[site];
        let mut got: Vec<i64> = rows.iter().map(|r| r.validator_id).collect();
        let mut want = validators.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "site {site}");
        assert!(
            rows.iter()
                .all(|r| r.due_at == *due && r.due_at >= at(0) && r.due_at < at(15))
        );
        for r in rows {
            let expected = if r.validator_id == v2 { "s2" } else { "s1" };
            assert_eq!(r.server_instance, expected);
        }
    }
    // One dispatch per server instance, covering every assignment.
    let per_instance: Vec<(&str, usize)> = first
        .dispatches
        .iter()
        .map(|d| (d.server_instance.as_str(), d.assignment_ids.len()))
        .collect();
    assert_eq!(per_instance.iter().map(|(_, n)| n).sum::<usize>(), 4);
    assert!(per_instance.iter().all(|(i, _)| *i == "s1" || *i == "s2"));

    // Round 2: no round closed yet, so zeros stand in for the results hash; the
    // 100-second site is not due again yet.
    let second = open_round(&mut conn, at(30), LENGTH, HUB, &here, &CanaryPolicy::none()).unwrap();
    assert_eq!(
        second.seed,
        selection::next_round_seed(&first.seed, &[0; 32])
    );
    assert_eq!(stored_round(&mut conn, 2).seed_results_round, None);
    assert_eq!(second.sites, 1);
    assert!(stored_assignments(&mut conn, 2).contains_key(&every_round));

    // Accounting closes round 1: round 3's seed takes its results hash.
    diesel::sql_query("UPDATE rounds SET closed_at = $1, results_hash = $2 WHERE number = 1")
        .bind::<Timestamptz, _>(at(31))
        .bind::<Bytea, _>(vec![0xab; 32])
        .execute(&mut conn)
        .unwrap();
    let third = open_round(&mut conn, at(60), LENGTH, HUB, &here, &CanaryPolicy::none()).unwrap();
    assert_eq!(
        third.seed,
        selection::next_round_seed(&second.seed, &[0xab; 32])
    );
    assert_eq!(stored_round(&mut conn, 3).seed_results_round, Some(1));
    let fourth = open_round(
        &mut conn,
        at(100),
        LENGTH,
        HUB,
        &here,
        &CanaryPolicy::none(),
    )
    .unwrap();
    assert_eq!(fourth.sites, 2, "the 100-second site is due again");
}

#[test]
fn fewer_validators_online_than_a_quorum_marks_the_round_degraded() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let v1 = validator(&mut conn, 1, 5000);
    website(&mut conn, 30, 3, true);
    let opened = open_round(
        &mut conn,
        at(0),
        LENGTH,
        HUB,
        &online(&[(v1, "s1")]),
        &CanaryPolicy::none(),
    )
    .unwrap();
    assert!(opened.degraded);
    assert!(stored_round(&mut conn, 1).degraded);
    assert_eq!(opened.dispatches.len(), 1);
    assert_eq!(opened.dispatches[0].assignment_ids.len(), 1);
    // Nobody online at all: still degraded, nothing assigned.
    let empty = open_round(&mut conn, at(30), LENGTH, HUB, &[], &CanaryPolicy::none()).unwrap();
    assert!(empty.degraded && empty.dispatches.is_empty());
}

#[test]
fn rounds_past_their_deadline_are_handed_to_accounting_once() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    open_round(&mut conn, at(0), LENGTH, HUB, &[], &CanaryPolicy::none()).unwrap();
    open_round(&mut conn, at(30), LENGTH, HUB, &[], &CanaryPolicy::none()).unwrap();
    assert!(rounds_to_close(&mut conn, at(29)).unwrap().is_empty());
    assert_eq!(rounds_to_close(&mut conn, at(30)).unwrap(), vec![1]);
    mark_close_enqueued(&mut conn, 1).unwrap();
    assert_eq!(rounds_to_close(&mut conn, at(61)).unwrap(), vec![2]);
}

#[test]
fn the_operator_is_alerted_when_rounds_degrade_or_nobody_is_online_not_every_round() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let v1 = validator(&mut conn, 1, 5000);
    website(&mut conn, 30, 2, true);
    let alerts = |conn: &mut PgConnection| -> Vec<String> {
        #[derive(QueryableByName)]
        struct Key {
            #[diesel(sql_type = Text)]
            dedup_key: String,
        }
        diesel::sql_query("SELECT dedup_key FROM alert_outbox WHERE kind = 'operator' ORDER BY id")
            .load::<Key>(conn)
            .unwrap()
            .into_iter()
            .map(|k| k.dedup_key)
            .collect()
    };
    open_round(
        &mut conn,
        at(0),
        LENGTH,
        HUB,
        &online(&[(v1, "s1")]),
        &CanaryPolicy::none(),
    )
    .unwrap();
    open_round(
        &mut conn,
        at(30),
        LENGTH,
        HUB,
        &online(&[(v1, "s1")]),
        &CanaryPolicy::none(),
    )
    .unwrap();
    assert_eq!(alerts(&mut conn), vec!["degraded:1"], "once when it starts");
    open_round(&mut conn, at(60), LENGTH, HUB, &[], &CanaryPolicy::none()).unwrap();
    open_round(&mut conn, at(90), LENGTH, HUB, &[], &CanaryPolicy::none()).unwrap();
    assert_eq!(alerts(&mut conn), vec!["degraded:1", "no_validators:3"]);
}
