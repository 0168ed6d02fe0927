//! Opening rounds against a real PostgreSQL: seeds from committed seed chains, due
//! sites, and assignments a third party re-derives from the stored public data alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Int2, Int4, Jsonb, Nullable, Text, Timestamptz};
use overlaps_scheduler::canaries::CanaryPolicy;
use overlaps_scheduler::rounds::{
    self, RoundRules, mark_close_enqueued, next_opening, rounds_to_close,
};
use overlaps_shared::admission::AdmissionPolicy;
use overlaps_shared::models::SeedChain;
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::schema::seed_chains;
use overlaps_shared::selection::{self, Candidate, RecordedCandidate};
use overlaps_shared::testing::TestDatabase;

/// Opens a round without canaries (they have tests of their own).
fn open_round(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    length: std::time::Duration,
    hub: &str,
    chain_rounds: u32,
    online: &[OnlineValidator],
) -> overlaps_shared::Result<rounds::OpenedRound> {
    rounds::open_round(
        conn,
        now,
        &rules(length, hub, chain_rounds, CanaryPolicy::none()),
        online,
    )
}

/// The rules of the test hub: no host cap to speak of.
fn rules(length: Duration, hub: &str, chain_rounds: u32, canaries: CanaryPolicy) -> RoundRules {
    RoundRules {
        length,
        hub_id: hub.to_owned(),
        seed_chain_rounds: chain_rounds,
        canaries,
        host_checks_per_minute: 1_000_000,
        admission: AdmissionPolicy::open(),
    }
}

const HUB: &str = "sched-test";
const LENGTH: Duration = Duration::from_secs(30);
/// Short epochs, so a few rounds cross several of them.
const CHAIN: u32 = 4;

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
    #[diesel(sql_type = Nullable<Bytea>)]
    seed_reveal: Option<Vec<u8>>,
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
    id: i64,
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
    diesel::sql_query("SELECT seed, seed_reveal, seed_results_round, candidates, opened_at, degraded FROM rounds WHERE number = $1")
        .bind::<BigInt, _>(number)
        .get_result(conn)
        .unwrap()
}

fn stored_assignments(
    conn: &mut PgConnection,
    number: i64,
) -> BTreeMap<i64, Vec<StoredAssignment>> {
    let rows: Vec<StoredAssignment> = diesel::sql_query(
        "SELECT id, website_id, validator_id, server_instance, due_at FROM check_assignments \
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
    let recorded = RecordedCandidate::parse_all(&round.candidates).unwrap();
    let candidates: Vec<Candidate> = recorded
        .iter()
        .map(RecordedCandidate::as_candidate)
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

/// A seed chain's tip as anyone sees it (the shared model never holds the anchor).
fn tip(chain: &SeedChain) -> [u8; 32] {
    chain.tip.as_slice().try_into().unwrap()
}

fn public_chains(conn: &mut PgConnection) -> Vec<SeedChain> {
    seed_chains::table
        .order(seed_chains::epoch)
        .select(SeedChain::as_select())
        .load(conn)
        .unwrap()
}

fn reveal(conn: &mut PgConnection, number: i64) -> [u8; 32] {
    stored_round(conn, number)
        .seed_reveal
        .unwrap()
        .as_slice()
        .try_into()
        .unwrap()
}

fn seed_of(conn: &mut PgConnection, number: i64) -> [u8; 32] {
    stored_round(conn, number)
        .seed
        .as_slice()
        .try_into()
        .unwrap()
}

fn online(ids: &[(i64, &str)]) -> Vec<OnlineValidator> {
    ids.iter()
        .map(|&(validator_id, i)| OnlineValidator {
            validator_id,
            server_instance: i.into(),
            // Each on a network of its own.
            network: Some(format!(
                "10.{}.{}.0/24",
                validator_id / 256,
                validator_id % 256
            )),
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
    let first = open_round(&mut conn, at(0), LENGTH, HUB, CHAIN, &here).unwrap();
    assert_eq!(first.number, 1);
    // Round 1 reveals the link below epoch 1's tip; its previous seed is the genesis seed.
    let chains = public_chains(&mut conn);
    assert_eq!(
        chains.len(),
        2,
        "epochs 1 and 2 committed with the first round"
    );
    assert_eq!(
        selection::seed_chain_step(&first.seed_reveal),
        tip(&chains[0])
    );
    assert_eq!(
        first.seed,
        selection::round_seed(&selection::genesis_seed(HUB), &first.seed_reveal)
    );
    assert_eq!(reveal(&mut conn, 1), first.seed_reveal);
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
    // Exactly one dispatch per server instance, each for this round and holding
    // exactly the assignments of the validators that instance serves.
    let mut instances: Vec<&str> = first
        .dispatches
        .iter()
        .map(|d| d.server_instance.as_str())
        .collect();
    instances.sort_unstable();
    // The instances serving a chosen validator (the draw depends on the random seed
    // chain: v2 on s2 is left out of both quorums now and then).
    let mut serving: Vec<&str> = stored
        .values()
        .flatten()
        .map(|r| r.server_instance.as_str())
        .collect();
    serving.sort_unstable();
    serving.dedup();
    assert_eq!(instances, serving, "one job per instance");
    for dispatch in &first.dispatches {
        assert_eq!(dispatch.round, first.number);
        let mut got = dispatch.assignment_ids.clone();
        got.sort_unstable();
        let mut want: Vec<i64> = stored
            .values()
            .flatten()
            .filter(|r| r.server_instance == dispatch.server_instance)
            .map(|r| r.id)
            .collect();
        want.sort_unstable();
        assert!(!want.is_empty());
        assert_eq!(got, want, "instance {}", dispatch.server_instance);
    }
    assert_eq!(
        first
            .dispatches
            .iter()
            .map(|d| d.assignment_ids.len())
            .sum::<usize>(),
        4
    );

    // Round 2 reveals the link below round 1's; the 100-second site is not due again yet.
    let second = open_round(&mut conn, at(30), LENGTH, HUB, CHAIN, &here).unwrap();
    assert_eq!(
        selection::seed_chain_step(&second.seed_reveal),
        first.seed_reveal
    );
    assert_eq!(
        second.seed,
        selection::round_seed(&first.seed, &second.seed_reveal)
    );
    assert_eq!(stored_round(&mut conn, 2).seed_results_round, None);
    assert_eq!(second.sites, 1);
    assert!(stored_assignments(&mut conn, 2).contains_key(&every_round));

    // Accounting closes round 1: its results do not enter round 3's seed.
    diesel::sql_query("UPDATE rounds SET closed_at = $1, results_hash = $2 WHERE number = 1")
        .bind::<Timestamptz, _>(at(31))
        .bind::<Bytea, _>(vec![0xab; 32])
        .execute(&mut conn)
        .unwrap();
    let third = open_round(&mut conn, at(60), LENGTH, HUB, CHAIN, &here).unwrap();
    assert_eq!(
        third.seed,
        selection::round_seed(&second.seed, &third.seed_reveal)
    );
    assert_eq!(stored_round(&mut conn, 3).seed_results_round, None);
    let fourth = open_round(&mut conn, at(100), LENGTH, HUB, CHAIN, &here).unwrap();
    assert_eq!(fourth.sites, 2, "the 100-second site is due again");
}

#[test]
fn fewer_validators_online_than_a_quorum_marks_the_round_degraded() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let v1 = validator(&mut conn, 1, 5000);
    website(&mut conn, 30, 3, true);
    let opened = open_round(&mut conn, at(0), LENGTH, HUB, CHAIN, &online(&[(v1, "s1")])).unwrap();
    assert!(opened.degraded);
    assert!(stored_round(&mut conn, 1).degraded);
    assert_eq!(opened.dispatches.len(), 1);
    assert_eq!(opened.dispatches[0].assignment_ids.len(), 1);
    // Nobody online at all: still degraded, nothing assigned.
    let empty = open_round(&mut conn, at(30), LENGTH, HUB, CHAIN, &[]).unwrap();
    assert!(empty.degraded && empty.dispatches.is_empty());
}

#[test]
fn rounds_past_their_deadline_are_handed_to_accounting_once() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    open_round(&mut conn, at(0), LENGTH, HUB, CHAIN, &[]).unwrap();
    open_round(&mut conn, at(30), LENGTH, HUB, CHAIN, &[]).unwrap();
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
    open_round(&mut conn, at(0), LENGTH, HUB, CHAIN, &online(&[(v1, "s1")])).unwrap();
    open_round(
        &mut conn,
        at(30),
        LENGTH,
        HUB,
        CHAIN,
        &online(&[(v1, "s1")]),
    )
    .unwrap();
    assert_eq!(alerts(&mut conn), vec!["degraded:1"], "once when it starts");
    open_round(&mut conn, at(60), LENGTH, HUB, CHAIN, &[]).unwrap();
    open_round(&mut conn, at(90), LENGTH, HUB, CHAIN, &[]).unwrap();
    assert_eq!(alerts(&mut conn), vec!["degraded:1", "no_validators:3"]);
}

/// Opens `n` rounds 30 s apart, starting at `at(start)`, with nobody online.
fn open_rounds(conn: &mut PgConnection, start: i64, n: i64) {
    for i in 0..n {
        open_round(conn, at(start + 30 * i), LENGTH, HUB, CHAIN, &[]).unwrap();
    }
}

#[test]
fn every_seed_rederives_from_public_data_only() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    open_rounds(&mut conn, 0, 10);
    // Epochs of 4 rounds: 1..=4, 5..=8, 9..=12; opening round 9 committed epoch 4.
    let chains = public_chains(&mut conn);
    let layout: Vec<(i64, i64, i32)> = chains
        .iter()
        .map(|c| (c.epoch, c.first_round, c.rounds))
        .collect();
    assert_eq!(layout, vec![(1, 1, 4), (2, 5, 4), (3, 9, 4), (4, 13, 4)]);
    // What a third party does with the tips, the reveals and the hub id alone.
    let mut previous_seed = selection::genesis_seed(HUB);
    let mut previous_reveal = [0u8; 32];
    for number in 1..=10 {
        let chain = chains.iter().find(|c| c.covers(number)).unwrap();
        let reveal = reveal(&mut conn, number);
        let link = if number == chain.first_round {
            tip(chain)
        } else {
            previous_reveal
        };
        let seed = seed_of(&mut conn, number);
        assert_eq!(
            selection::verify_round_seed(&previous_seed, &reveal, &link, &seed),
            Ok(()),
            "round {number}"
        );
        // A reveal from elsewhere does not pass.
        assert!(
            selection::verify_round_seed(&previous_seed, &previous_reveal, &link, &seed).is_err()
        );
        previous_seed = seed;
        previous_reveal = reveal;
    }
}

#[test]
fn the_next_epochs_chain_is_committed_a_whole_epoch_before_its_first_round() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let mut tips_seen: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    for i in 0..13 {
        let number = i + 1;
        let before = public_chains(&mut conn);
        open_round(&mut conn, at(30 * i), LENGTH, HUB, CHAIN, &[]).unwrap();
        let after = public_chains(&mut conn);
        let epoch = after.iter().find(|c| c.covers(number)).unwrap().epoch;
        if number > 1 {
            // The chain this round reveals from was public before it opened.
            assert!(
                before.iter().any(|c| c.covers(number)),
                "round {number}: chain committed only now"
            );
        }
        // Once it exists, the next epoch's chain too.
        assert!(after.iter().any(|c| c.epoch == epoch + 1), "round {number}");
        // A published tip never changes.
        for c in &after {
            let tip = tips_seen.entry(c.epoch).or_insert_with(|| c.tip.clone());
            assert_eq!(*tip, c.tip, "epoch {} tip changed", c.epoch);
        }
    }
    // Each chain from epoch 2 on was committed no later than the first round of
    // the epoch before it opened: a whole epoch ahead.
    let chains = public_chains(&mut conn);
    for pair in chains.windows(2) {
        let previous_first = stored_round(&mut conn, pair[0].first_round).opened_at;
        assert!(
            pair[1].committed_at <= previous_first,
            "epoch {} committed at {} after round {} opened",
            pair[1].epoch,
            pair[1].committed_at,
            pair[0].first_round
        );
        if pair[1].first_round <= 13 {
            let own_first = stored_round(&mut conn, pair[1].first_round).opened_at;
            assert!(pair[1].committed_at < own_first);
        }
    }
    assert_eq!(
        chains.len(),
        5,
        "rounds 1..=13 reach epoch 4; epoch 5 is committed"
    );
}

/// The seeds of rounds 3 and 4 when opened after `results` were stored for rounds
/// 1 and 2, rolled back afterwards so the same rounds can be opened again.
fn seeds_after_results(conn: &mut PgConnection, results: [Option<u8>; 2]) -> [[u8; 32]; 2] {
    let mut seeds = [[0u8; 32]; 2];
    let rolled_back = conn.transaction::<(), diesel::result::Error, _>(|conn| {
        for (round, hash) in [1i64, 2].into_iter().zip(results) {
            diesel::sql_query(
                "UPDATE rounds SET closed_at = CASE WHEN $2::bytea IS NULL THEN NULL ELSE $3 END, \
                 results_hash = $2 WHERE number = $1",
            )
            .bind::<BigInt, _>(round)
            .bind::<Nullable<Bytea>, _>(hash.map(|h| vec![h; 32]))
            .bind::<Timestamptz, _>(at(59))
            .execute(conn)?;
        }
        seeds[0] = open_round(conn, at(60), LENGTH, HUB, CHAIN, &[])
            .unwrap()
            .seed;
        seeds[1] = open_round(conn, at(90), LENGTH, HUB, CHAIN, &[])
            .unwrap()
            .seed;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(rolled_back.is_err());
    seeds
}

#[test]
fn changing_a_closed_rounds_results_does_not_change_any_later_seed() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    open_rounds(&mut conn, 0, 2);
    let second = seed_of(&mut conn, 2);
    // The last validator to answer tries every answer it could give (here: every
    // results hash of rounds 1 and 2, or leaving them open): the seeds of rounds
    // 3 and 4 stay the same.
    let honest = seeds_after_results(&mut conn, [Some(0xab), Some(0xcd)]);
    for results in [
        [Some(0xab), Some(0xce)],
        [Some(0x01), Some(0xcd)],
        [None, None],
        [Some(0xff), None],
    ] {
        assert_eq!(
            seeds_after_results(&mut conn, results),
            honest,
            "{results:?}"
        );
    }
    // Under the old rule the same choice steered the seed: that was the attack.
    assert_ne!(
        selection::legacy_round_seed(&second, &[0xab; 32]),
        selection::legacy_round_seed(&second, &[0x01; 32])
    );
    // Nothing was left behind by the trials: round 3 opens with that same seed.
    let third = open_round(&mut conn, at(60), LENGTH, HUB, CHAIN, &[]).unwrap();
    assert_eq!(third.seed, honest[0]);
}

#[test]
fn a_validator_cannot_compute_the_next_reveal_from_anything_public() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    open_rounds(&mut conn, 0, 2);
    // Round 3 inside epoch 1; round 5 the first of epoch 2 (its tip public since round 1).
    for (next, already_open) in [(3i64, 2i64), (5, 4)] {
        if next == 5 {
            open_round(&mut conn, at(90), LENGTH, HUB, CHAIN, &[]).unwrap(); // round 4
        }
        // Everything public before round `next` opens: every seed and reveal, every
        // committed tip, the genesis seed.
        let mut public: Vec<[u8; 32]> = vec![selection::genesis_seed(HUB)];
        for number in 1..=already_open {
            public.push(seed_of(&mut conn, number));
            public.push(reveal(&mut conn, number));
        }
        public.extend(public_chains(&mut conn).iter().map(tip));
        let previous_seed = seed_of(&mut conn, already_open);

        let opened = open_round(&mut conn, at(30 * already_open), LENGTH, HUB, CHAIN, &[]).unwrap();
        assert_eq!(opened.number, next);
        // The reveal is a preimage of a published value: one step forward from it
        // gives round `next - 1`'s reveal (or the tip) ...
        let link = selection::seed_chain_step(&opened.seed_reveal);
        assert!(public.contains(&link), "round {next}");
        // ... while hashing any published value forward, any number of steps
        // (further than every chain's length), never reaches it.
        for value in &public {
            let mut hashed = *value;
            for steps in 0..=4 * CHAIN {
                assert_ne!(hashed, opened.seed_reveal, "round {next}: {steps} steps");
                hashed = selection::seed_chain_step(&hashed);
            }
        }
        // Nor is the seed what any published value would give as the reveal.
        for value in &public {
            assert_ne!(selection::round_seed(&previous_seed, value), opened.seed);
        }
    }
}

#[test]
fn the_first_round_after_upgrading_starts_the_chain_and_old_rounds_keep_the_old_rule() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    // Two rounds opened by the old scheduler: round 1 took the genesis seed, round 2
    // the old rule with zeros (nothing closed yet).
    let genesis = selection::genesis_seed(HUB);
    let legacy_two = selection::legacy_round_seed(&genesis, &[0; 32]);
    for (number, seed) in [(1i64, genesis), (2, legacy_two)] {
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(number)
        .bind::<Bytea, _>(seed.to_vec())
        .bind::<Timestamptz, _>(at(30 * (number - 1)))
        .bind::<Timestamptz, _>(at(30 * number))
        .execute(&mut conn)
        .unwrap();
    }
    let third = open_round(&mut conn, at(60), LENGTH, HUB, CHAIN, &[]).unwrap();
    assert_eq!(third.number, 3);
    let chains = public_chains(&mut conn);
    let layout: Vec<(i64, i64)> = chains.iter().map(|c| (c.epoch, c.first_round)).collect();
    assert_eq!(layout, vec![(1, 3), (2, 7)], "the chain starts at round 3");
    assert_eq!(
        selection::verify_round_seed(
            &legacy_two,
            &third.seed_reveal,
            &tip(&chains[0]),
            &third.seed
        ),
        Ok(())
    );
    assert_eq!(stored_round(&mut conn, 2).seed_reveal, None);
}

#[derive(QueryableByName, Debug)]
struct CanaryChainRow {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = Int4)]
    rounds: i32,
    #[diesel(sql_type = Bytea)]
    tip: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    anchor: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    committed_at: DateTime<Utc>,
}

#[derive(QueryableByName, Debug)]
struct CanaryRow {
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
}

/// Canaries at rate 100 %: one for every candidate each round, in chains of 3 rounds.
fn every_validator_a_canary(secret: &overlaps_shared::canary::CanarySecret) -> CanaryPolicy {
    use overlaps_scheduler::canaries::CanaryServing;
    use overlaps_shared::canary::CanaryEndpoints;
    CanaryPolicy {
        rate_bp: 10_000,
        chain_rounds: 3,
        serving: Some(CanaryServing {
            secret: secret.clone(),
            endpoints: CanaryEndpoints {
                http: "http://canary.example".parse().unwrap(),
                tls: "https://canary.example:8443".parse().unwrap(),
                refused: "http://canary.example:81".parse().unwrap(),
            },
            timeout_ms: 1000,
        }),
    }
}

#[test]
fn canaries_come_from_key_chains_committed_an_epoch_ahead_beside_real_checks() {
    use overlaps_shared::canary::{self, CANARY_CHAIN_DOMAIN, CanaryMode, CanarySecret};

    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let ids: Vec<i64> = (1..=4).map(|n| validator(&mut conn, n, 5000)).collect();
    website(&mut conn, 30, 2, true);
    let here = online(&ids.iter().map(|&v| (v, "s1")).collect::<Vec<_>>());
    let secret: CanarySecret = "ab".repeat(32).parse().unwrap();
    let policy = every_validator_a_canary(&secret);
    for i in 0..7 {
        let rules = rules(LENGTH, HUB, CHAIN, policy.clone());
        rounds::open_round(&mut conn, at(30 * i), &rules, &here).unwrap();
    }
    let chains: Vec<CanaryChainRow> = diesel::sql_query(
        "SELECT epoch, first_round, rounds, tip, anchor, committed_at FROM canary_chains ORDER BY epoch",
    )
    .load(&mut conn)
    .unwrap();
    // Epochs of 3 rounds: 1-3, 4-6, 7-9, and 10-12 committed when round 7 opened.
    assert_eq!(
        chains
            .iter()
            .map(|c| (c.epoch, c.first_round))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 4), (3, 7), (4, 10)]
    );
    for chain in &chains[1..] {
        // Committed when the previous epoch's first round opened: an epoch ahead.
        let previous_first = stored_round(&mut conn, chain.first_round - 3).opened_at;
        assert_eq!(chain.committed_at, previous_first, "epoch {}", chain.epoch);
    }
    for number in 1..=7i64 {
        let chain = chains
            .iter()
            .find(|c| c.first_round <= number && number < c.first_round + i64::from(c.rounds))
            .unwrap();
        let anchor: [u8; 32] = chain.anchor.as_slice().try_into().unwrap();
        let index = u32::try_from(number - chain.first_round).unwrap();
        let key = canary::round_key(&anchor, 3, index).unwrap();
        // The key hashes to the one before it, the first to the committed tip.
        let previous = if index == 0 {
            chain.tip.clone()
        } else {
            canary::round_key(&anchor, 3, index - 1).unwrap().to_vec()
        };
        assert_eq!(
            overlaps_shared::hash_chain::step(CANARY_CHAIN_DOMAIN, &key).to_vec(),
            previous
        );
        // Every validator has exactly the canary the key gives it, with the mode
        // sealed in its URL, sent at the due time of one of the round's real checks.
        let stored: Vec<CanaryRow> = diesel::sql_query(
            "SELECT c.validator_id, c.mode, c.url, a.due_at FROM canary_assignments c \
             JOIN check_assignments a ON a.id = c.assignment_id WHERE c.round_number = $1 ORDER BY c.validator_id",
        )
        .bind::<BigInt, _>(number)
        .load(&mut conn)
        .unwrap();
        let plan = canary::plan_round(&key, &ids, 10_000);
        assert_eq!(stored.len(), plan.len());
        assert_eq!(plan.len(), ids.len(), "rate 100 %: one each");
        let canary_site = diesel::sql_query("SELECT id FROM websites WHERE canary")
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
        let real_due: Vec<DateTime<Utc>> = stored_assignments(&mut conn, number)
            .into_iter()
            .filter(|(site, _)| *site != canary_site)
            .flat_map(|(_, assigned)| assigned)
            .map(|a| a.due_at)
            .collect();
        assert!(!real_due.is_empty());
        for (row, planned) in stored.iter().zip(&plan) {
            assert_eq!(row.validator_id, planned.validator_id);
            assert_eq!(row.mode, planned.mode.as_str());
            let path = url::Url::parse(&row.url).unwrap().path().to_owned();
            let sealed = secret.mode_of_path(&path);
            assert_eq!(sealed, Some(planned.mode), "{}", row.url);
            if !matches!(planned.mode, CanaryMode::Refused | CanaryMode::BadTls) {
                assert!(row.url.starts_with("http://canary.example/"), "{}", row.url);
            }
            assert!(
                real_due.contains(&row.due_at),
                "round {number}: a canary at its own time"
            );
        }
    }
}

#[derive(QueryableByName)]
struct RecordedCheck {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(embed)]
    check: overlaps_shared::site_check::SiteCheck,
    #[diesel(sql_type = Nullable<Bytea>)]
    spec_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Int4>)]
    max_response_ms: Option<i32>,
}

/// The scheduler records each assignment's spec hash and limit when it opens the
/// round (so the server's dispatch need not write them): they must be those of the
/// check dispatch builds from the same rows, real checks and canaries alike.
#[test]
fn each_assignment_records_the_spec_of_the_check_it_will_be_sent() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let ids: Vec<i64> = (1..=4).map(|n| validator(&mut conn, n, 5000)).collect();
    website(&mut conn, 30, 2, true);
    let asserted = website(&mut conn, 30, 3, true);
    diesel::sql_query(
        "UPDATE websites SET method = 'HEAD', keyword = 'Welcome', timeout_ms = 2500, \
         assertions = '{\"accepted_status\":\"200-299\",\"keyword_absent\":true,\"max_response_ms\":750}' \
         WHERE id = $1",
    )
    .bind::<BigInt, _>(asserted)
    .execute(&mut conn)
    .unwrap();
    let here = online(&ids.iter().map(|&v| (v, "s1")).collect::<Vec<_>>());
    let secret = "cd".repeat(32).parse().unwrap();
    let rules = rules(LENGTH, HUB, CHAIN, every_validator_a_canary(&secret));
    rounds::open_round(&mut conn, at(0), &rules, &here).unwrap();

    // What dispatch reads to build each message.
    let rows: Vec<RecordedCheck> = diesel::sql_query(
        "SELECT a.id, COALESCE(c.url, w.url) AS url, w.method, COALESCE(c.timeout_ms, w.timeout_ms) AS timeout_ms, \
                CASE WHEN c.assignment_id IS NULL THEN w.keyword ELSE c.keyword END AS keyword, \
                CASE WHEN c.assignment_id IS NULL THEN w.assertions ELSE '{}'::jsonb END AS assertions, \
                a.spec_hash, a.max_response_ms \
         FROM check_assignments a JOIN websites w ON w.id = a.website_id \
         LEFT JOIN canary_assignments c ON c.assignment_id = a.id ORDER BY a.id",
    )
    .load(&mut conn)
    .unwrap();
    // 2 + 3 real checks and one canary per validator.
    assert_eq!(rows.len(), 2 + 3 + ids.len());
    let mut limits = BTreeMap::new();
    for row in &rows {
        let check = &row.check;
        assert_eq!(
            row.spec_hash.as_deref(),
            Some(&check.spec_hash()[..]),
            "assignment {} ({})",
            row.id,
            check.url
        );
        assert_eq!(row.max_response_ms, check.recorded().max_response_ms);
        *limits.entry(row.max_response_ms).or_insert(0) += 1;
    }
    // The asserted site's three checks carry its limit; nothing else has one.
    assert_eq!(limits.get(&Some(750)), Some(&3));
    assert_eq!(limits.get(&None), Some(&(2 + ids.len())));
    let hashes: std::collections::BTreeSet<&Vec<u8>> =
        rows.iter().filter_map(|r| r.spec_hash.as_ref()).collect();
    // Two sites, and canaries with their own URLs: never one hash for all.
    assert!(hashes.len() >= 3, "{} distinct spec hashes", hashes.len());
}
