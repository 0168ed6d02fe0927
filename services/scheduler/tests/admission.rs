//! Admission, warm-up and network spread as the scheduler applies them, played by
//! the cheaters they are for: a key with no stake, a stake from someone else's
//! address, a stake that unbonded, ten keys on one /24, a key swapped for a fresh
//! one. Rounds are opened by the real `open_round` on a real database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Int2, Int4, Jsonb, Nullable, Text, Timestamptz};
use overlaps_scheduler::canaries::CanaryPolicy;
use overlaps_scheduler::rounds::{self, RoundRules};
use overlaps_shared::admission::{AdmissionMode, AdmissionPolicy};
use overlaps_shared::eth::U256;
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::selection::RecordedCandidate;
use overlaps_shared::testing::TestDatabase;

const ETH: u64 = 1_000_000_000_000_000_000;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Assigned {
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
}

#[derive(QueryableByName)]
struct Candidates {
    #[diesel(sql_type = Jsonb)]
    candidates: serde_json::Value,
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_000 + seconds, 0).unwrap()
}

fn rules(admission: AdmissionPolicy) -> RoundRules {
    RoundRules {
        length: Duration::from_secs(30),
        hub_id: "admission-test".into(),
        seed_chain_rounds: 64,
        canaries: CanaryPolicy::none(),
        host_checks_per_minute: 1_000_000,
        admission,
    }
}

fn policy(mode: AdmissionMode) -> AdmissionPolicy {
    AdmissionPolicy {
        mode,
        min_stake: U256::from(ETH),
        full_weight_stake: U256::from(ETH) * 10,
        ..AdmissionPolicy::open()
    }
}

/// Validator `n` with payout address `0xnn…nn`, reputation and agreed checks.
fn validator(conn: &mut PgConnection, n: u8, reputation: i32, agreed: i64) -> i64 {
    diesel::sql_query(
        "INSERT INTO validators (public_key, payout_address, reputation, checks_done, checks_agreed) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind::<Bytea, _>(vec![n; 32])
    .bind::<Bytea, _>(vec![n; 20])
    .bind::<Int4, _>(reputation)
    .bind::<BigInt, _>(agreed)
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

/// The chain service's record of a stake on key `n` from address `staker`.
fn stake(
    conn: &mut PgConnection,
    n: u8,
    staker: u8,
    wei: U256,
    unbonding_until: Option<DateTime<Utc>>,
) {
    diesel::sql_query(
        "INSERT INTO validator_stakes (public_key, staker, amount, unbonding_until, block_number) \
         VALUES ($1, $2, $3::numeric, $4, 1) \
         ON CONFLICT (public_key, staker) DO UPDATE SET amount = EXCLUDED.amount, \
         unbonding_until = EXCLUDED.unbonding_until",
    )
    .bind::<Bytea, _>(vec![n; 32])
    .bind::<Bytea, _>(vec![staker; 20])
    .bind::<Text, _>(wei.to_string())
    .bind::<Nullable<Timestamptz>, _>(unbonding_until)
    .execute(conn)
    .unwrap();
}

fn websites(conn: &mut PgConnection, count: usize, quorum: i16) -> Vec<i64> {
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('a@x.io') RETURNING id")
        .get_result::<Id>(conn)
        .unwrap()
        .id;
    (0..count)
        .map(|i| {
            diesel::sql_query(
                "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) \
                 VALUES ($1, $2, 30, 1000, $3) RETURNING id",
            )
            .bind::<BigInt, _>(owner)
            .bind::<Text, _>(format!("https://site-{i}.example/"))
            .bind::<Int2, _>(quorum)
            .get_result::<Id>(conn)
            .unwrap()
            .id
        })
        .collect()
}

fn online(ids: &[(i64, &str)]) -> Vec<OnlineValidator> {
    ids.iter()
        .map(|&(validator_id, network)| OnlineValidator {
            validator_id,
            server_instance: "s1".into(),
            network: Some(network.into()),
        })
        .collect()
}

/// Per site, who round `round` assigned.
fn assigned(conn: &mut PgConnection, round: i64) -> BTreeMap<i64, BTreeSet<i64>> {
    let rows: Vec<Assigned> = diesel::sql_query(
        "SELECT website_id, validator_id FROM check_assignments WHERE round_number = $1",
    )
    .bind::<BigInt, _>(round)
    .load(conn)
    .unwrap();
    let mut sites: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for row in rows {
        sites
            .entry(row.website_id)
            .or_default()
            .insert(row.validator_id);
    }
    sites
}

fn recorded(conn: &mut PgConnection, round: i64) -> Vec<RecordedCandidate> {
    let row: Candidates = diesel::sql_query("SELECT candidates FROM rounds WHERE number = $1")
        .bind::<BigInt, _>(round)
        .get_result(conn)
        .unwrap();
    RecordedCandidate::parse_all(&row.candidates).unwrap()
}

fn everyone_assigned(conn: &mut PgConnection, round: i64) -> BTreeSet<i64> {
    assigned(conn, round).into_values().flatten().collect()
}

#[test]
fn only_keys_staked_from_their_payout_address_are_assigned_under_stake_admission() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let staked: Vec<i64> = (1..=3).map(|n| validator(&mut conn, n, 5000, 0)).collect();
    for n in 1..=3 {
        stake(&mut conn, n, n, U256::from(ETH), None);
    }
    let unstaked = validator(&mut conn, 4, 5000, 0);
    let borrowed = validator(&mut conn, 5, 5000, 0);
    let short = validator(&mut conn, 6, 5000, 0);
    // Someone else's stake on key 5 does not count for it; key 6 stakes too little.
    stake(&mut conn, 5, 0xee, U256::from(ETH) * 5, None);
    stake(&mut conn, 6, 6, U256::from(ETH) - U256::one(), None);
    websites(&mut conn, 4, 3);
    let networks: Vec<String> = (1..=6).map(|n| format!("10.0.{n}.0/24")).collect();
    let ids = [staked[0], staked[1], staked[2], unstaked, borrowed, short];
    let all: Vec<(i64, &str)> = ids
        .iter()
        .zip(&networks)
        .map(|(&id, n)| (id, n.as_str()))
        .collect();
    let rules = rules(policy(AdmissionMode::Stake));

    for round in 1..=5 {
        let opened = rounds::open_round(&mut conn, at(30 * round), &rules, &online(&all)).unwrap();
        assert!(
            !opened.degraded,
            "three staked validators fill every quorum of 3"
        );
        assert_eq!(
            everyone_assigned(&mut conn, round),
            staked.iter().copied().collect()
        );
        let listed: Vec<i64> = recorded(&mut conn, round)
            .iter()
            .map(|c| c.validator_id)
            .collect();
        assert_eq!(listed, staked, "the round records only admitted candidates");
    }

    // The unstaked key stakes (the chain service records it after confirmations):
    // admitted at the next round, without reconnecting.
    stake(&mut conn, 4, 4, U256::from(ETH), None);
    rounds::open_round(&mut conn, at(30 * 6), &rules, &online(&all)).unwrap();
    let listed: BTreeSet<i64> = recorded(&mut conn, 6)
        .iter()
        .map(|c| c.validator_id)
        .collect();
    assert!(listed.contains(&unstaked));
    assert!(!listed.contains(&borrowed) && !listed.contains(&short));

    // It asks to unstake: still admitted while unbonding, gone once unbonding ends.
    stake(&mut conn, 4, 4, U256::from(ETH), Some(at(30 * 8)));
    rounds::open_round(&mut conn, at(30 * 7), &rules, &online(&all)).unwrap();
    assert!(
        recorded(&mut conn, 7)
            .iter()
            .any(|c| c.validator_id == unstaked)
    );
    rounds::open_round(&mut conn, at(30 * 8), &rules, &online(&all)).unwrap();
    assert!(
        !recorded(&mut conn, 8)
            .iter()
            .any(|c| c.validator_id == unstaked)
    );
    assert!(!everyone_assigned(&mut conn, 8).contains(&unstaked));
}

#[test]
fn allowlist_admission_assigns_only_listed_keys_and_open_admits_all() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let ids: Vec<i64> = (1..=4).map(|n| validator(&mut conn, n, 5000, 0)).collect();
    for n in [1u8, 3] {
        diesel::sql_query("INSERT INTO validator_allowlist (public_key) VALUES ($1)")
            .bind::<Bytea, _>(vec![n; 32])
            .execute(&mut conn)
            .unwrap();
    }
    websites(&mut conn, 3, 3);
    let networks: Vec<String> = (1..=4).map(|n| format!("10.0.{n}.0/24")).collect();
    let all: Vec<(i64, &str)> = ids
        .iter()
        .zip(&networks)
        .map(|(&id, n)| (id, n.as_str()))
        .collect();
    let opened = rounds::open_round(
        &mut conn,
        at(30),
        &rules(policy(AdmissionMode::Allowlist)),
        &online(&all),
    )
    .unwrap();
    assert!(opened.degraded, "two listed keys cannot fill a quorum of 3");
    assert_eq!(
        everyone_assigned(&mut conn, 1),
        BTreeSet::from([ids[0], ids[2]])
    );
    rounds::open_round(
        &mut conn,
        at(60),
        &rules(policy(AdmissionMode::Open)),
        &online(&all),
    )
    .unwrap();
    assert_eq!(recorded(&mut conn, 2).len(), 4);
}

#[test]
fn ten_keys_on_one_network_never_share_a_quorum() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    // One party: ten keys on one /24, established and heavy. Five others, each alone.
    let crowd: Vec<i64> = (1..=10)
        .map(|n| validator(&mut conn, n, 10_000, 100_000))
        .collect();
    let others: Vec<i64> = (11..=15)
        .map(|n| validator(&mut conn, n, 5000, 100_000))
        .collect();
    let sites = websites(&mut conn, 30, 3);
    let other_networks: Vec<String> = (11..=15).map(|n| format!("2001:db8:{n}::/48")).collect();
    let mut all: Vec<(i64, &str)> = crowd.iter().map(|&id| (id, "198.51.100.0/24")).collect();
    all.extend(
        others
            .iter()
            .zip(&other_networks)
            .map(|(&id, n)| (id, n.as_str())),
    );
    let rules = rules(policy(AdmissionMode::Open));
    let mut crowd_seats = 0;
    for round in 1..=20 {
        let opened = rounds::open_round(&mut conn, at(30 * round), &rules, &online(&all)).unwrap();
        assert!(!opened.degraded);
        let by_site = assigned(&mut conn, round);
        assert_eq!(by_site.len(), sites.len());
        for (site, validators) in by_site {
            assert_eq!(validators.len(), 3);
            let from_crowd = validators.iter().filter(|v| crowd.contains(v)).count();
            assert!(from_crowd <= 1, "round {round} site {site}: {validators:?}");
            crowd_seats += from_crowd;
        }
        // The round records each candidate's network: the spread is public.
        let networks: BTreeSet<String> = recorded(&mut conn, round)
            .into_iter()
            .filter_map(|c| c.network)
            .collect();
        assert_eq!(networks.len(), 6);
    }
    // Heavy as it is, the crowd gets at most one seat in each of 600 quorums.
    assert!(crowd_seats <= 600 && crowd_seats > 300, "{crowd_seats}");

    // Only the crowd online: one seat per site, and the round says it is degraded.
    let crowd_only: Vec<(i64, &str)> = crowd.iter().map(|&id| (id, "198.51.100.0/24")).collect();
    let opened = rounds::open_round(&mut conn, at(30 * 21), &rules, &online(&crowd_only)).unwrap();
    assert!(opened.degraded);
    assert!(assigned(&mut conn, 21).values().all(|v| v.len() == 1));
}

#[test]
fn a_fresh_key_weighs_less_than_an_established_one_and_no_more_than_a_bad_one() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let established = validator(&mut conn, 1, 8000, 5000);
    let fresh = validator(&mut conn, 2, 5000, 0);
    // A key whose liar's record took its reputation to nothing.
    let bad = validator(&mut conn, 3, 0, 40);
    let halfway = validator(&mut conn, 4, 9000, 500);
    for n in 1..=4 {
        stake(&mut conn, n, n, U256::from(ETH) * 10, None);
    }
    websites(&mut conn, 1, 3);
    let networks: Vec<String> = (1..=4).map(|n| format!("10.0.{n}.0/24")).collect();
    let ids = [established, fresh, bad, halfway];
    let all: Vec<(i64, &str)> = ids
        .iter()
        .zip(&networks)
        .map(|(&id, n)| (id, n.as_str()))
        .collect();
    rounds::open_round(
        &mut conn,
        at(30),
        &rules(policy(AdmissionMode::Stake)),
        &online(&all),
    )
    .unwrap();
    let weight: BTreeMap<i64, u32> = recorded(&mut conn, 1)
        .into_iter()
        .map(|c| (c.validator_id, c.weight))
        .collect();
    assert_eq!(weight[&fresh], 100, "a fresh key starts at the floor");
    assert_eq!(weight[&established], 8000);
    assert_eq!(weight[&halfway], 100 + 9900 / 2);
    assert!(weight[&fresh] < weight[&established]);
    // Replacing the bad key by a fresh one gains nothing.
    assert!(weight[&fresh] <= weight[&bad]);

    // Under stake, the weight is capped by the stake: one tenth of full weight at 1 ETH.
    stake(&mut conn, 1, 1, U256::from(ETH), None);
    rounds::open_round(
        &mut conn,
        at(60),
        &rules(policy(AdmissionMode::Stake)),
        &online(&all),
    )
    .unwrap();
    let weight: BTreeMap<i64, u32> = recorded(&mut conn, 2)
        .into_iter()
        .map(|c| (c.validator_id, c.weight))
        .collect();
    assert_eq!(weight[&established], 1000);
}
