//! Closing eons from real stored, signed ticks; proofs (cut from the stored tree) checked by an independent
//! Keccak implementation; the audit finds nothing on honest data and names exactly
//! what a tamperer changed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeSet;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use overlaps_accounting::close::close_rounds_through;
use overlaps_accounting::config::ClosePolicy;
use overlaps_accounting::eon::{close_eon, store_missing_trees};
use overlaps_audit::audit::{AuditReport, audit_eon, store_report};
use overlaps_audit::config::AuditPolicy;
use overlaps_shared::eth::U256;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::selection;
use overlaps_shared::signing::{self, Keypair};
use overlaps_shared::testing::TestDatabase;
use serde_json::json;
use sha3::{Digest, Keccak256};

const HUB: &str = "eon-test-hub";
const REWARD: i64 = 1_000;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn close_policy() -> ClosePolicy {
    ClosePolicy {
        reward_per_check: BigDecimal::from(REWARD),
        confirmations_down: 2,
        confirmations_up: 1,
        reputation_gain: 10,
        reputation_loss: 50,
        tls_warning_days: 14,
        canary_penalty_bp: 5_000,
    }
}

fn audit_policy() -> AuditPolicy {
    AuditPolicy {
        hub_id: HUB.into(),
        reward_per_check: U256::from(REWARD),
    }
}

/// Four validators with real keys: 0 and 2 share payout address A, 1 has B, 3 has none.
struct World {
    db: TestDatabase,
    sites: [i64; 2],
    keys: Vec<Keypair>,
    validators: Vec<i64>,
    start: DateTime<Utc>,
    /// Rounds `1..=legacy_rounds` were opened under the old seed rule.
    legacy_rounds: i64,
}

/// Rounds per seed epoch in these tests: eon 1 (rounds 1..=3) spans two epochs.
const CHAIN_ROUNDS: u32 = 2;

/// The (test-known) anchor of seed epoch `epoch`.
fn anchor(epoch: i64) -> [u8; 32] {
    [0x40 + epoch as u8; 32]
}

#[derive(QueryableByName)]
struct SeedOf {
    #[diesel(sql_type = Bytea)]
    seed: Vec<u8>,
}

#[derive(QueryableByName)]
struct Closed {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Bytea)]
    results_hash: Vec<u8>,
}

const ADDRESS_A: [u8; 20] = [0xaa; 20];
const ADDRESS_B: [u8; 20] = [0xbb; 20];

fn world() -> World {
    world_with(0)
}

/// A world whose first `legacy_rounds` rounds predate seed chains; the chains
/// (three epochs of [`CHAIN_ROUNDS`]) start right after them, all committed before
/// the first round opens, as the scheduler does.
fn world_with(legacy_rounds: i64) -> World {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('o@x.io') RETURNING id")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    let sites = ["https://a.example/", "https://b.example/"].map(|url| {
        diesel::sql_query(
            "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) VALUES ($1, $2, 30, 1000, 3) RETURNING id",
        )
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(url)
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id
    });
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate()).collect();
    let addresses = [Some(ADDRESS_A), Some(ADDRESS_B), Some(ADDRESS_A), None];
    let validators = keys
        .iter()
        .zip(addresses)
        .map(|(key, address)| {
            diesel::sql_query(
                "INSERT INTO validators (public_key, payout_address, reputation) VALUES ($1, $2, 5000) RETURNING id",
            )
            .bind::<Bytea, _>(key.public_key().to_bytes().to_vec())
            .bind::<Nullable<Bytea>, _>(address.map(|a| a.to_vec()))
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id
        })
        .collect();
    let start = Utc::now() - Duration::hours(1);
    for epoch in 1..=3i64 {
        diesel::sql_query(
            "INSERT INTO seed_chains (epoch, first_round, rounds, tip, anchor, committed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind::<BigInt, _>(epoch)
        .bind::<BigInt, _>(legacy_rounds + 1 + (epoch - 1) * i64::from(CHAIN_ROUNDS))
        .bind::<diesel::sql_types::Int4, _>(CHAIN_ROUNDS as i32)
        .bind::<Bytea, _>(selection::seed_chain_tip(&anchor(epoch), CHAIN_ROUNDS).to_vec())
        .bind::<Bytea, _>(anchor(epoch).to_vec())
        .bind::<Timestamptz, _>(start)
        .execute(&mut conn)
        .unwrap();
    }
    World {
        db,
        sites,
        keys,
        validators,
        start,
        legacy_rounds,
    }
}

impl World {
    /// Round `n`: for each site, validators `0..3` or `1..4` answer `statuses`,
    /// each result signed by the validator's own key. The round records no
    /// candidates (as before rounds recorded them), so its draw is not audited.
    fn round(&self, n: i64, statuses: [Option<&str>; 3]) {
        self.round_with(n, statuses, None);
    }

    /// Round `n` recording `candidates` (`[[id, weight], …]`): each site's three
    /// validators are then the ones the draw over them gives, as the scheduler does.
    fn round_with(
        &self,
        n: i64,
        statuses: [Option<&str>; 3],
        candidates: Option<&serde_json::Value>,
    ) {
        let mut conn = self.db.connect().unwrap();
        let opened = self.start + Duration::seconds(30 * n);
        let genesis = selection::genesis_seed(HUB);
        let previous: [u8; 32] = if n == 1 {
            genesis
        } else {
            diesel::sql_query("SELECT seed FROM rounds WHERE number = $1")
                .bind::<BigInt, _>(n - 1)
                .get_result::<SeedOf>(&mut conn)
                .unwrap()
                .seed
                .try_into()
                .unwrap()
        };
        // The seed as the scheduler of the time made it.
        let (seed, reveal, results_round) = if n <= self.legacy_rounds {
            let closed = diesel::sql_query(
                "SELECT number, results_hash FROM rounds WHERE closed_at IS NOT NULL \
                 AND results_hash IS NOT NULL ORDER BY number DESC LIMIT 1",
            )
            .get_result::<Closed>(&mut conn)
            .optional()
            .unwrap();
            let results: [u8; 32] = closed
                .as_ref()
                .map_or([0; 32], |c| c.results_hash.clone().try_into().unwrap());
            let seed = if n == 1 {
                genesis
            } else {
                selection::legacy_round_seed(&previous, &results)
            };
            (seed, None, closed.map(|c| c.number))
        } else {
            let i = (n - self.legacy_rounds - 1) as u32;
            let epoch = i64::from(i / CHAIN_ROUNDS) + 1;
            let reveal =
                selection::seed_chain_reveal(&anchor(epoch), CHAIN_ROUNDS, i % CHAIN_ROUNDS)
                    .unwrap();
            (
                selection::round_seed(&previous, &reveal),
                Some(reveal),
                None,
            )
        };
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, seed_reveal, seed_results_round, opened_at, deadline_at, candidates) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind::<BigInt, _>(n)
        .bind::<Bytea, _>(seed.to_vec())
        .bind::<Nullable<Bytea>, _>(reveal.map(|r| r.to_vec()))
        .bind::<Nullable<BigInt>, _>(results_round)
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .bind::<diesel::sql_types::Jsonb, _>(candidates.cloned().unwrap_or_else(|| json!([])))
        .execute(&mut conn)
        .unwrap();
        for (s, &site) in self.sites.iter().enumerate() {
            // Site 0: validators 0..3, site 1: validators 1..4; or as drawn.
            let chosen: Vec<usize> = match candidates {
                None => (s..s + 3).collect(),
                Some(recorded) => {
                    let recorded = selection::RecordedCandidate::parse_all(recorded).unwrap();
                    let pool: Vec<selection::Candidate<'_>> = recorded
                        .iter()
                        .map(selection::RecordedCandidate::as_candidate)
                        .collect();
                    selection::choose_validators(&seed, site, &pool, 3)
                        .iter()
                        .map(|id| self.validators.iter().position(|v| v == id).unwrap())
                        .collect()
                }
            };
            for (i, status) in statuses.iter().enumerate() {
                let v = chosen[i];
                let assignment = diesel::sql_query(
                    "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state) \
                     VALUES ($1, $2, $3, 's1', $4, $5, $6) RETURNING id",
                )
                .bind::<BigInt, _>(n)
                .bind::<BigInt, _>(site)
                .bind::<BigInt, _>(self.validators[v])
                .bind::<Timestamptz, _>(opened)
                .bind::<Timestamptz, _>(opened + Duration::seconds(30))
                .bind::<Text, _>(if status.is_some() { "answered" } else { "pending" })
                .get_result::<Id>(&mut conn)
                .unwrap()
                .id;
                let Some(status) = status else { continue };
                let now = Utc::now();
                let mut tick = Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: site,
                    validator_id: self.validators[v],
                    status: (*status).into(),
                    http_status: (*status == "up").then_some(200),
                    latency_ms: 40 + i as i32,
                    failure: (*status == "down").then(|| "connect".to_owned()),
                    tls_expires_at: None,
                    checked_at: now,
                    received_at: now,
                    signature: Vec::new(),
                    // The first result of each site was stored before overlaps/v2
                    // (layout v1): the audit verifies both layouts side by side.
                    protocol_version: if i == 0 { 1 } else { 2 },
                    spec_hash: (i != 0).then(|| vec![5; 32]),
                };
                let message = signing::result_bytes(HUB, &tick.signed_fields());
                tick.signature = self.keys[v].sign(&message).to_vec();
                diesel::insert_into(ticks::table)
                    .values(&tick)
                    .execute(&mut conn)
                    .unwrap();
            }
        }
    }

    fn close_rounds(&self) {
        let mut conn = self.db.connect().unwrap();
        close_rounds_through(&mut conn, i64::MAX, Utc::now(), &close_policy()).unwrap();
    }

    /// Three honest rounds (one with a dissenter, one with a missed check), closed, and eon 1.
    fn first_eon() -> World {
        let w = world();
        w.round(1, [Some("up"), Some("up"), Some("up")]);
        w.round(2, [Some("up"), Some("down"), Some("up")]);
        w.round(3, [Some("down"), Some("down"), None]);
        w.close_rounds();
        let summary = close_eon(
            &mut w.db.connect().unwrap(),
            &mut w.db.connect().unwrap(),
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!((summary.first_round, summary.last_round), (1, 3));
        w
    }

    fn audit(&self, eon: i64) -> AuditReport {
        audit_eon(&mut self.db.connect().unwrap(), eon, &audit_policy()).unwrap()
    }

    fn exec(&self, sql: &str) {
        diesel::sql_query(sql)
            .execute(&mut self.db.connect().unwrap())
            .unwrap();
    }
}

#[derive(QueryableByName, Debug)]
struct LeafRow {
    #[diesel(sql_type = Bytea)]
    payout_address: Vec<u8>,
    #[diesel(sql_type = Text)]
    cumulative: String,
}

fn leaves(conn: &mut PgConnection, eon: i64) -> Vec<LeafRow> {
    diesel::sql_query(
        "SELECT payout_address, cumulative::text AS cumulative FROM merkle_leaves WHERE eon = $1 ORDER BY leaf_index",
    )
    .bind::<BigInt, _>(eon)
    .load(conn)
    .unwrap()
}

/// Leaf `index`'s proof cut from the stored layers with OpenZeppelin's odd-node rule
/// written out here: the sibling on each layer below the root, where there is one.
fn stored_proof(conn: &mut PgConnection, eon: i64, index: usize) -> Vec<u8> {
    #[derive(QueryableByName)]
    struct Layer {
        #[diesel(sql_type = Bytea)]
        hashes: Vec<u8>,
    }
    let layers: Vec<Layer> = diesel::sql_query(
        "SELECT string_agg(hashes, ''::bytea ORDER BY chunk) AS hashes FROM merkle_nodes \
         WHERE eon = $1 GROUP BY layer ORDER BY layer",
    )
    .bind::<BigInt, _>(eon)
    .load(conn)
    .unwrap();
    let (mut proof, mut node) = (Vec::new(), index);
    for layer in layers.iter().map(|l| &l.hashes).filter(|h| h.len() > 32) {
        let sibling = node ^ 1;
        if let Some(hash) = layer.get(sibling * 32..sibling * 32 + 32) {
            proof.extend_from_slice(hash);
        }
        node /= 2;
    }
    proof
}

fn stored_root(conn: &mut PgConnection, eon: i64) -> (Vec<u8>, String, i32, i32) {
    #[derive(QueryableByName)]
    struct Root {
        #[diesel(sql_type = Bytea)]
        root: Vec<u8>,
        #[diesel(sql_type = Text)]
        total: String,
        #[diesel(sql_type = diesel::sql_types::Int4)]
        leaf_count: i32,
        #[diesel(sql_type = diesel::sql_types::Int4)]
        excluded_count: i32,
    }
    let r: Root = diesel::sql_query(
        "SELECT root, total::text AS total, leaf_count, excluded_count FROM root_commitments WHERE eon = $1",
    )
    .bind::<BigInt, _>(eon)
    .get_result(conn)
    .unwrap();
    (r.root, r.total, r.leaf_count, r.excluded_count)
}

/// OpenZeppelin's leaf and `processProof`, written out from the Solidity source
/// with the `sha3` crate: no code shared with the tree builder.
fn independent_root(address: &[u8], cumulative: &str, proof: &[u8]) -> Vec<u8> {
    let mut encoded = vec![0u8; 12];
    encoded.extend_from_slice(address);
    let amount: u128 = cumulative.parse().unwrap();
    encoded.extend_from_slice(&[0u8; 16]);
    encoded.extend_from_slice(&amount.to_be_bytes());
    let inner = Keccak256::digest(&encoded);
    let mut node = Keccak256::digest(inner).to_vec();
    for sibling in proof.chunks(32) {
        let (a, b) = if node.as_slice() < sibling {
            (node.as_slice(), sibling)
        } else {
            (sibling, node.as_slice())
        };
        node = Keccak256::new()
            .chain_update(a)
            .chain_update(b)
            .finalize()
            .to_vec();
    }
    node
}

fn kinds(report: &AuditReport) -> BTreeSet<&'static str> {
    report.mismatches.iter().map(|m| m.kind).collect()
}

#[test]
fn an_eon_closes_from_stored_ticks_and_every_proof_verifies_independently() {
    let w = World::first_eon();
    let mut conn = w.db.connect().unwrap();
    // Credits per validator (each agreeing result earns REWARD):
    //   round 1: site 0 v0 v1 v2 up; site 1 v1 v2 v3 up          -> v0 1, v1 2, v2 2, v3 1
    //   round 2: site 0 v0 up v1 down v2 up; site 1 v1 up v2 down v3 up -> v0 1, v2 1, v1 1, v3 1
    //   round 3: site 0 v0 down v1 down (v2 missed); site 1 v1 v2 down (v3 missed) -> v0 1, v1 2, v2 1
    // v0 = 3, v1 = 5, v2 = 4, v3 = 2 (no address: excluded).
    let (root, total, leaf_count, excluded) = stored_root(&mut conn, 1);
    assert_eq!(leaf_count, 2);
    assert_eq!(excluded, 1);
    let stored = leaves(&mut conn, 1);
    let by_address: Vec<(Vec<u8>, String)> = stored
        .iter()
        .map(|l| (l.payout_address.clone(), l.cumulative.clone()))
        .collect();
    assert_eq!(
        by_address,
        vec![
            (ADDRESS_A.to_vec(), (7 * REWARD).to_string()),
            (ADDRESS_B.to_vec(), (5 * REWARD).to_string()),
        ]
    );
    assert_eq!(total, (12 * REWARD).to_string());
    for (index, leaf) in stored.iter().enumerate() {
        let proof = stored_proof(&mut conn, 1, index);
        assert_eq!(proof.len(), 32, "one sibling in a tree of two");
        assert_eq!(
            independent_root(&leaf.payout_address, &leaf.cumulative, &proof),
            root
        );
    }
    // A proof does not carry another amount to the root.
    let inflated = (7 * REWARD + 1).to_string();
    assert_ne!(
        independent_root(&ADDRESS_A, &inflated, &stored_proof(&mut conn, 1, 0)),
        root
    );

    // Closing again changes nothing; the next eon cannot skip ahead.
    assert!(
        close_eon(&mut conn, &mut w.db.connect().unwrap(), 1)
            .unwrap()
            .is_none()
    );
    assert!(close_eon(&mut conn, &mut w.db.connect().unwrap(), 3).is_err());
    assert!(
        close_eon(&mut conn, &mut w.db.connect().unwrap(), 2).is_err(),
        "no round closed since eon 1"
    );
    let report = w.audit(1);
    assert!(report.ok, "{:?}", report.mismatches);
    assert_eq!(report.checked.rounds, 3);
    assert_eq!(report.checked.seeds, 3);
    assert_eq!(report.checked.signatures, 16);
    assert_eq!(report.checked.leaves, 2);
    // Layer 0 (two leaves) and the root's layer.
    assert_eq!(report.checked.tree_chunks, 2);
    assert_eq!(report.checked.onchain, "not_yet_onchain");
}

/// The first eon's three rounds, closed, without the eon.
fn rounds_of_the_first_eon() -> World {
    let w = world();
    w.round(1, [Some("up"), Some("up"), Some("up")]);
    w.round(2, [Some("up"), Some("down"), Some("up")]);
    w.round(3, [Some("down"), Some("down"), None]);
    w.close_rounds();
    w
}

fn staged_rewards_exist(conn: &mut PgConnection) -> bool {
    count_of(
        conn,
        "SELECT count(*) AS n FROM pg_class WHERE relname = 'validator_rewards_incoming'",
    ) > 0
}

#[test]
fn a_close_that_fails_after_its_rewards_were_staged_stores_nothing_and_keeps_no_staged_table() {
    let w = rounds_of_the_first_eon();
    // Another session holds the leaves' DEFAULT partition, so the leaves' attach
    // waits past the closing session's lock timeout while the rewards are staged.
    let mut blocker = w.db.connect().unwrap();
    w.exec("SELECT 1"); // the database is ready
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query("LOCK TABLE merkle_leaves_default IN ACCESS SHARE MODE")
        .execute(&mut blocker)
        .unwrap();
    let mut conn = w.db.connect().unwrap();
    let mut staging = w.db.connect().unwrap();
    diesel::sql_query("SET lock_timeout = '300ms'")
        .execute(&mut conn)
        .unwrap();
    assert!(close_eon(&mut conn, &mut staging, 1).is_err());
    assert!(
        !staged_rewards_exist(&mut conn),
        "the staged rewards were kept"
    );
    assert_eq!(count_of(&mut conn, "SELECT count(*) AS n FROM eons"), 0);
    assert_eq!(
        count_of(&mut conn, "SELECT count(*) AS n FROM validator_rewards"),
        0
    );
    assert_eq!(
        count_of(&mut conn, "SELECT count(*) AS n FROM merkle_leaves"),
        0
    );

    diesel::sql_query("ROLLBACK").execute(&mut blocker).unwrap();
    let summary = close_eon(&mut conn, &mut staging, 1).unwrap().unwrap();
    assert_eq!(summary.leaves, 2);
    assert!(w.audit(1).ok);
}

#[test]
fn rewards_staged_by_a_killed_close_are_replaced_never_attached() {
    let w = rounds_of_the_first_eon();
    // What a close killed after staging leaves behind, here with a forged reward:
    // the next close must compute its own, not adopt these rows.
    w.exec(
        "CREATE TABLE validator_rewards_incoming \
         (LIKE validator_rewards INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    );
    w.exec(&format!(
        "INSERT INTO validator_rewards_incoming (eon, validator_id, earned, cumulative, attributed) \
         VALUES (1, {}, 1000000000000000000000, 1000000000000000000000, 0)",
        w.validators[3]
    ));
    let mut conn = w.db.connect().unwrap();
    close_eon(&mut conn, &mut w.db.connect().unwrap(), 1)
        .unwrap()
        .unwrap();
    assert!(!staged_rewards_exist(&mut conn));
    // v3's reward is what its credits add up to, not the forged amount.
    let v3 = w.validators[3];
    let earned = count_of(
        &mut conn,
        &format!(
            "SELECT earned::bigint AS n FROM validator_rewards WHERE eon = 1 AND validator_id = {v3}"
        ),
    );
    let credited = count_of(
        &mut conn,
        &format!(
            "SELECT sum(amount)::bigint AS n FROM validator_credits WHERE validator_id = {v3}"
        ),
    );
    assert_eq!(earned, credited);
    assert!(earned > 0 && earned < 100 * REWARD);
    assert!(w.audit(1).ok);
}

#[test]
fn a_close_loads_the_validators_on_both_sides_of_its_split_once_each() {
    let w = rounds_of_the_first_eon();
    let mut conn = w.db.connect().unwrap();
    // The load reads the ids in two halves, split at the midpoint of the lowest and
    // the highest id: a validator far above the rest is alone in the upper half,
    // and two more sit on either side of the split.
    let (lowest, highest) = (w.validators[0], 1_000_000_000_i64);
    let middle = lowest + (highest - lowest) / 2;
    for (id, amount) in [(middle, 11), (middle + 1, 13), (highest, 17)] {
        w.exec(&format!(
            "INSERT INTO validators (id, public_key, payout_address) \
             VALUES ({id}, decode(lpad(to_hex({id}), 64, '0'), 'hex'), decode(lpad(to_hex({id}), 40, '0'), 'hex'))"
        ));
        w.exec(&format!(
            "INSERT INTO validator_credits (round_number, validator_id, checks, amount) \
             VALUES (1, {id}, 1, {})",
            amount * REWARD
        ));
    }
    let summary = close_eon(&mut conn, &mut w.db.connect().unwrap(), 1)
        .unwrap()
        .unwrap();

    let credited =
        "SELECT validator_id, sum(amount) AS amount FROM validator_credits GROUP BY validator_id";
    let expected = count_of(&mut conn, &format!("SELECT count(*) FROM ({credited}) c"));
    assert_eq!(
        count_of(
            &mut conn,
            "SELECT count(*) FROM validator_rewards WHERE eon = 1"
        ),
        expected,
        "one reward row per credited validator"
    );
    assert_eq!(
        count_of(
            &mut conn,
            &format!(
                "SELECT count(*) FROM validator_rewards r JOIN ({credited}) c USING (validator_id) \
                 WHERE r.eon = 1 AND r.earned = c.amount AND r.cumulative = c.amount"
            )
        ),
        expected,
        "every reward is what its validator was credited"
    );
    // The three have an address each, so each is a leaf of its own, holding its credit.
    assert_eq!(summary.leaves, 2 + 3);
    let ours: Vec<String> = leaves(&mut conn, 1)
        .into_iter()
        .filter(|l| l.payout_address != ADDRESS_A && l.payout_address != ADDRESS_B)
        .map(|l| l.cumulative)
        .collect();
    assert_eq!(ours, [11, 13, 17].map(|n| (n * REWARD).to_string()));
    let everything = count_of(
        &mut conn,
        "SELECT sum(c.amount) FROM validator_credits c JOIN validators v ON v.id = c.validator_id \
         WHERE v.payout_address IS NOT NULL",
    );
    assert_eq!(summary.total, U256::from(everything));
}

#[test]
fn later_eons_carry_leaves_and_attribute_only_new_earnings_to_a_changed_address() {
    let w = World::first_eon();
    let mut conn = w.db.connect().unwrap();
    // v0 moves from A to D; v3 gets its first address C and is owed everything it accrued.
    let (c, d) = ([0xcc; 20], [0xdd; 20]);
    for (v, address) in [(0, d), (3, c)] {
        diesel::sql_query("UPDATE validators SET payout_address = $2 WHERE id = $1")
            .bind::<BigInt, _>(w.validators[v])
            .bind::<Bytea, _>(address.to_vec())
            .execute(&mut conn)
            .unwrap();
    }
    w.round(4, [Some("up"), Some("up"), Some("up")]); // v0 1, v1 2, v2 2, v3 1
    w.close_rounds();
    close_eon(&mut conn, &mut w.db.connect().unwrap(), 2)
        .unwrap()
        .unwrap();
    let amounts: Vec<(Vec<u8>, String)> = leaves(&mut conn, 2)
        .into_iter()
        .map(|l| (l.payout_address, l.cumulative))
        .collect();
    assert_eq!(
        amounts,
        vec![
            // A keeps v0's old 3 and gets v2's new 2 (v2 still uses A): 7 + 2.
            (ADDRESS_A.to_vec(), (9 * REWARD).to_string()),
            (ADDRESS_B.to_vec(), (7 * REWARD).to_string()),
            (c.to_vec(), (3 * REWARD).to_string()),
            (d.to_vec(), REWARD.to_string()),
        ]
    );
    let (_, total, _, excluded) = stored_root(&mut conn, 2);
    assert_eq!(total, (20 * REWARD).to_string(), "every credit, paid once");
    assert_eq!(excluded, 0);
    let report = w.audit(2);
    assert!(report.ok, "{:?}", report.mismatches);
}

#[test]
fn a_tampered_tick_status_is_named_by_its_signature_and_round() {
    let w = World::first_eon();
    let mut conn = w.db.connect().unwrap();
    let tampered = diesel::sql_query(
        "UPDATE ticks SET status = 'up', failure = NULL WHERE round_number = 3 AND validator_id = $1 \
         AND website_id = $2 RETURNING assignment_id AS id",
    )
    .bind::<BigInt, _>(w.validators[0])
    .bind::<BigInt, _>(w.sites[0])
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let report = w.audit(1);
    assert!(!report.ok);
    assert_eq!(
        report.of_kind("tick_signature")[0].details,
        json!({ "assignment_id": tampered, "round": 3, "validator_id": w.validators[0] })
    );
    assert_eq!(report.of_kind("tick_signature").len(), 1);
    assert_eq!(report.of_kind("results_hash").len(), 1);
    assert_eq!(report.of_kind("results_hash")[0].details["round"], 3);
    for m in &report.mismatches {
        if m.kind == "credit" {
            assert_eq!(m.details["round"], 3);
        }
    }
    // The credits of round 3 it implies differ too; nothing outside round 3 is named.
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["tick_signature", "results_hash", "credit"]),
        "{:?}",
        report.mismatches
    );
}

#[test]
fn a_tampered_credit_is_named_by_round_and_validator() {
    let w = World::first_eon();
    w.exec(&format!(
        "UPDATE validator_credits SET amount = amount * 10 WHERE round_number = 2 AND validator_id = {}",
        w.validators[1]
    ));
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["credit", "cumulative"]),
        "{:?}",
        report.mismatches
    );
    let credit = &report.of_kind("credit")[0].details;
    assert_eq!(credit["round"], 2);
    assert_eq!(credit["validator_id"], w.validators[1]);
    assert_eq!(credit["expected"], REWARD.to_string());
    assert_eq!(credit["stored"], (10 * REWARD).to_string());
    assert_eq!(
        report.of_kind("cumulative")[0].details["validator_id"],
        w.validators[1]
    );
}

#[test]
fn a_tampered_root_is_named_and_reported_to_the_operator() {
    let w = World::first_eon();
    w.exec("UPDATE root_commitments SET root = '\\x0000000000000000000000000000000000000000000000000000000000000001' WHERE eon = 1");
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["root"]),
        "{:?}",
        report.mismatches
    );
    let mut conn = w.db.connect().unwrap();
    store_report(&mut conn, &report).unwrap();
    store_report(&mut conn, &report).unwrap(); // the same findings alert once
    #[derive(QueryableByName)]
    struct Alert {
        #[diesel(sql_type = Text)]
        cause: String,
    }
    let alerts: Vec<Alert> = diesel::sql_query(
        "SELECT payload->>'cause' AS cause FROM alert_outbox WHERE kind = 'operator'",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].cause.contains("eon 1") && alerts[0].cause.contains("root"));
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ok: bool,
    }
    let stored: Stored = diesel::sql_query("SELECT ok FROM audit_reports WHERE eon = 1")
        .get_result(&mut conn)
        .unwrap();
    assert!(!stored.ok);
}

#[test]
fn a_tampered_tree_node_is_named_by_layer_and_chunk() {
    let w = World::first_eon();
    // Flip the first byte of the first leaf hash: every proof through it would fail.
    w.exec(
        "UPDATE merkle_nodes SET hashes = overlay(hashes PLACING '\\xff'::bytea FROM 1 FOR 1) \
         WHERE eon = 1 AND layer = 0 AND chunk = 0",
    );
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["tree"]),
        "{:?}",
        report.mismatches
    );
    assert_eq!(report.of_kind("tree")[0].details["layer"], json!(0));
    assert_eq!(report.of_kind("tree")[0].details["chunk"], json!(0));
}

#[test]
fn trees_of_eons_closed_before_trees_were_stored_are_rebuilt_from_their_leaves() {
    let w = World::first_eon();
    let mut conn = w.db.connect().unwrap();
    w.exec("DELETE FROM merkle_nodes WHERE eon = 1");
    assert!(kinds(&w.audit(1)).contains("tree"));
    assert_eq!(store_missing_trees(&mut conn).unwrap().stored, vec![1]);
    let report = w.audit(1);
    assert!(report.ok, "{:?}", report.mismatches);
    assert_eq!(
        store_missing_trees(&mut conn).unwrap(),
        Default::default(),
        "once"
    );

    // Leaves that do not lead to the committed root are not made into a tree.
    w.exec("DELETE FROM merkle_nodes WHERE eon = 1");
    w.exec("UPDATE merkle_leaves SET cumulative = cumulative + 1 WHERE eon = 1 AND leaf_index = 0");
    assert_eq!(store_missing_trees(&mut conn).unwrap().refused, vec![1]);
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let left: Count = diesel::sql_query("SELECT count(*) AS n FROM merkle_nodes WHERE eon = 1")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(left.n, 0);
}

#[test]
fn a_deleted_round_is_named() {
    let w = World::first_eon();
    w.exec("DELETE FROM rounds WHERE number = 2");
    let report = w.audit(1);
    let missing: Vec<_> = report
        .of_kind("round_missing")
        .iter()
        .map(|m| m.details["round"].clone())
        .collect();
    assert_eq!(missing, vec![json!(2)]);
    // Its credits went with it, so the sums no longer match what was committed.
    assert!(kinds(&report).contains("cumulative"));
    assert!(report.of_kind("results_hash").is_empty());
}

#[test]
fn a_differing_onchain_root_is_a_mismatch() {
    let w = World::first_eon();
    w.exec("UPDATE root_commitments SET onchain_root = '\\x00000000000000000000000000000000000000000000000000000000000000ff', onchain_block = 7 WHERE eon = 1");
    let report = w.audit(1);
    assert_eq!(kinds(&report), BTreeSet::from(["onchain_root"]));
    assert_eq!(report.checked.onchain, "differs");
    w.exec("UPDATE root_commitments SET onchain_root = root WHERE eon = 1");
    assert_eq!(w.audit(1).checked.onchain, "matches");
}

/// Rounds 1..=3 with a canary for every validator (a chain at rate 100 %, the
/// modes its keys give), answered rightly except validator 1 in round 2, closed
/// into eon 1.
fn canary_eon() -> World {
    use overlaps_shared::canary::{self, CANARY_CHAIN_DOMAIN};
    let w = world();
    let anchor = [9u8; 32];
    let tip = overlaps_shared::hash_chain::tip(CANARY_CHAIN_DOMAIN, &anchor, 10);
    let mut conn = w.db.connect().unwrap();
    diesel::sql_query(
        "INSERT INTO canary_chains (epoch, first_round, rounds, rate_bp, tip, anchor, committed_at) \
         VALUES (1, 1, 10, 10000, $1, $2, $3)",
    )
    .bind::<Bytea, _>(tip.to_vec())
    .bind::<Bytea, _>(anchor.to_vec())
    .bind::<Timestamptz, _>(w.start)
    .execute(&mut conn)
    .unwrap();
    w.exec(
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum, enabled, canary) \
         SELECT owner_id, 'http://canary.invalid/', 2147483647, 10000, 1, FALSE, TRUE FROM websites LIMIT 1",
    );
    let candidates = serde_json::Value::from(
        w.validators
            .iter()
            .map(|v| json!([v, 5000]))
            .collect::<Vec<_>>(),
    );
    for n in 1..=3i64 {
        w.round_with(n, [Some("up"), Some("up"), Some("up")], Some(&candidates));
        let key = canary::round_key(&anchor, 10, u32::try_from(n - 1).unwrap()).unwrap();
        for plan in canary::plan_round(&key, &w.validators, 10_000) {
            let v = w
                .validators
                .iter()
                .position(|id| *id == plan.validator_id)
                .unwrap();
            let mut status = plan.expected_status();
            if n == 2 && v == 1 {
                status = if status == "up" { "down" } else { "up" };
            }
            let opened = w.start + Duration::seconds(30 * n);
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state) \
                 SELECT $1, id, $2, 's1', $3, $4, 'answered' FROM websites WHERE canary RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(plan.validator_id)
            .bind::<Timestamptz, _>(opened)
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            diesel::sql_query(
                "INSERT INTO canary_assignments (assignment_id, round_number, validator_id, mode, url, timeout_ms) \
                 VALUES ($1, $2, $3, $4, 'http://127.0.0.1:9/shop/00', 1000)",
            )
            .bind::<BigInt, _>(assignment)
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(plan.validator_id)
            .bind::<Text, _>(plan.mode.as_str())
            .execute(&mut conn)
            .unwrap();
            let now = Utc::now();
            let mut tick = Tick {
                assignment_id: assignment,
                round_number: n,
                website_id: count_of(&mut conn, "SELECT id FROM websites WHERE canary"),
                validator_id: plan.validator_id,
                status: status.into(),
                http_status: (status == "up").then_some(200),
                latency_ms: 25,
                failure: (status == "down").then(|| "http_status".to_owned()),
                tls_expires_at: None,
                checked_at: now,
                received_at: now,
                signature: Vec::new(),
                protocol_version: 2,
                spec_hash: Some(vec![5; 32]),
            };
            tick.signature = w.keys[v]
                .sign(&signing::result_bytes(HUB, &tick.signed_fields()))
                .to_vec();
            diesel::insert_into(ticks::table)
                .values(&tick)
                .execute(&mut conn)
                .unwrap();
        }
    }
    w.close_rounds();
    close_eon(&mut conn, &mut w.db.connect().unwrap(), 1)
        .unwrap()
        .unwrap();
    w
}

fn count_of(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT ({sql})::bigint AS id"))
        .get_result::<Id>(conn)
        .unwrap()
        .id
}

#[test]
fn canaries_are_re_derived_from_the_revealed_keys_and_each_tampering_is_named() {
    let w = canary_eon();
    let clean = w.audit(1);
    assert!(clean.ok, "{:?}", clean.mismatches);
    assert_eq!(clean.checked.canaries, 12);
    let mut conn = w.db.connect().unwrap();
    let failed = count_of(
        &mut conn,
        "SELECT count(*) FROM canary_assignments WHERE outcome = 'failed'",
    );
    assert_eq!(failed, 1, "the one wrong answer failed");
    assert!(
        count_of(
            &mut conn,
            "SELECT forfeited FROM canary_assignments WHERE outcome = 'failed'"
        ) > 0
    );

    // Each tampering, then undone: the audit names exactly it.
    let cases = [
        (
            "canary_schedule",
            "UPDATE canary_assignments SET mode = CASE WHEN mode = 'ok' THEN 'timeout' ELSE 'ok' END \
             WHERE assignment_id = (SELECT min(assignment_id) FROM canary_assignments WHERE round_number = 1)",
            "UPDATE canary_assignments SET mode = CASE WHEN mode = 'ok' THEN 'timeout' ELSE 'ok' END \
             WHERE assignment_id = (SELECT min(assignment_id) FROM canary_assignments WHERE round_number = 1)",
        ),
        (
            "canary_verdict",
            "UPDATE canary_assignments SET outcome = 'passed' WHERE outcome = 'failed'",
            "UPDATE canary_assignments SET outcome = 'failed' WHERE round_number = 2 AND forfeited > 0",
        ),
        (
            "canary_forfeit",
            "UPDATE canary_assignments SET forfeited = forfeited - 1 WHERE outcome = 'failed'",
            "UPDATE canary_assignments SET forfeited = forfeited + 1 WHERE outcome = 'failed'",
        ),
        (
            "canary_key",
            "UPDATE rounds SET canary_key = decode(repeat('ab', 32), 'hex') WHERE number = 2",
            "",
        ),
        (
            "canary_commitment",
            "UPDATE canary_chains SET committed_at = now() WHERE epoch = 1",
            "",
        ),
    ];
    let key2: Vec<u8> = {
        #[derive(QueryableByName)]
        struct Key {
            #[diesel(sql_type = Bytea)]
            canary_key: Vec<u8>,
        }
        diesel::sql_query("SELECT canary_key FROM rounds WHERE number = 2")
            .get_result::<Key>(&mut conn)
            .unwrap()
            .canary_key
    };
    for (kind, tamper, undo) in cases {
        w.exec(tamper);
        let report = w.audit(1);
        assert!(!report.ok, "{kind} went unnoticed");
        assert!(
            kinds(&report).contains(kind),
            "{kind}: {:?}",
            report.mismatches
        );
        if undo.is_empty() {
            diesel::sql_query("UPDATE rounds SET canary_key = $1 WHERE number = 2")
                .bind::<Bytea, _>(&key2)
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query("UPDATE canary_chains SET committed_at = $1 WHERE epoch = 1")
                .bind::<Timestamptz, _>(w.start)
                .execute(&mut conn)
                .unwrap();
        } else {
            w.exec(undo);
        }
        assert!(w.audit(1).ok, "undoing {kind}");
    }
}

fn rounds_named(report: &AuditReport, kind: &str) -> Vec<serde_json::Value> {
    report
        .of_kind(kind)
        .iter()
        .map(|m| m.details["round"].clone())
        .collect()
}

#[test]
fn a_tampered_seed_reveal_is_named_by_its_round() {
    // Eon 1: round 1 reveals epoch 1's h1, round 2 its anchor, round 3 epoch 2's h1.
    let w = World::first_eon();
    w.exec("UPDATE rounds SET seed_reveal = decode(repeat('00', 32), 'hex') WHERE number = 2");
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["seed_reveal", "seed"]),
        "{:?}",
        report.mismatches
    );
    // The reveal no longer hashes to round 1's, and the stored seed no longer
    // follows from it; round 3 starts epoch 2 and is checked against its tip.
    assert_eq!(rounds_named(&report, "seed_reveal"), vec![json!(2)]);
    assert_eq!(
        report.of_kind("seed_reveal")[0].details["against"],
        "previous_reveal"
    );
    assert_eq!(rounds_named(&report, "seed"), vec![json!(2)]);

    // A round inside an epoch that reveals nothing (back to the old rule) is named too.
    let w = World::first_eon();
    w.exec("UPDATE rounds SET seed_reveal = NULL WHERE number = 3");
    let report = w.audit(1);
    assert_eq!(kinds(&report), BTreeSet::from(["seed_reveal"]));
    assert_eq!(
        report.of_kind("seed_reveal")[0].details,
        json!({ "round": 3, "epoch": 2, "stored": null })
    );
}

#[test]
fn a_tampered_seed_is_named_with_the_round_that_builds_on_it() {
    let w = World::first_eon();
    w.exec("UPDATE rounds SET seed = decode(repeat('ee', 32), 'hex') WHERE number = 2");
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["seed"]),
        "{:?}",
        report.mismatches
    );
    // Round 2's seed does not follow from round 1's and its reveal; round 3's is
    // derived from the stored (changed) one, so it no longer follows either.
    assert_eq!(rounds_named(&report, "seed"), vec![json!(2), json!(3)]);
    let ours = format!("0x{}", "ee".repeat(32));
    assert_eq!(report.of_kind("seed")[0].details["stored"], json!(ours));
}

#[test]
fn a_tampered_tip_or_a_late_commitment_is_named_by_its_epoch() {
    let w = World::first_eon();
    w.exec("UPDATE seed_chains SET tip = decode(repeat('11', 32), 'hex') WHERE epoch = 2");
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["seed_reveal"]),
        "{:?}",
        report.mismatches
    );
    let details = &report.of_kind("seed_reveal")[0].details;
    assert_eq!(
        (
            details["round"].clone(),
            details["epoch"].clone(),
            details["against"].clone()
        ),
        (json!(3), json!(2), json!("tip"))
    );

    // Epoch 2 committed after epoch 1's first round opened, though still before
    // its own: not a whole epoch ahead.
    let w = World::first_eon();
    w.exec(
        "UPDATE seed_chains SET committed_at = (SELECT opened_at + interval '1 second' FROM rounds WHERE number = 1) WHERE epoch = 2",
    );
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["seed_commitment"]),
        "{:?}",
        report.mismatches
    );
    let late = report.of_kind("seed_commitment");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].details["epoch"], 2);
    assert_eq!(late[0].details["due_by"], "previous_epoch_first_round");
    // After its own first round opened: named for both.
    w.exec(
        "UPDATE seed_chains SET committed_at = (SELECT opened_at + interval '1 second' FROM rounds WHERE number = 3) WHERE epoch = 2",
    );
    let due: BTreeSet<String> = w
        .audit(1)
        .of_kind("seed_commitment")
        .iter()
        .map(|m| m.details["due_by"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        due,
        BTreeSet::from([
            "own_first_round".to_owned(),
            "previous_epoch_first_round".to_owned()
        ])
    );
}

#[test]
fn rounds_before_seed_chains_are_audited_by_the_old_rule_and_later_ones_by_the_new() {
    // Rounds 1 and 2 by the old scheduler; round 2 closed before round 3 opened,
    // so round 3's old-rule seed took its results hash; seed chains start at round 4.
    let w = world_with(3);
    w.round(1, [Some("up"), Some("up"), Some("up")]);
    w.round(2, [Some("up"), Some("down"), Some("up")]);
    w.close_rounds();
    w.round(3, [Some("down"), Some("down"), None]);
    w.round(4, [Some("up"), Some("up"), Some("up")]);
    w.round(5, [Some("up"), Some("up"), Some("up")]);
    w.close_rounds();
    let mut conn = w.db.connect().unwrap();
    close_eon(&mut conn, &mut w.db.connect().unwrap(), 1)
        .unwrap()
        .unwrap();
    let report = w.audit(1);
    assert!(report.ok, "{:?}", report.mismatches);
    assert_eq!(report.checked.seeds, 5);

    // An old-rule seed that does not follow from the closed round it names.
    w.exec("UPDATE rounds SET seed_results_round = 1 WHERE number = 3");
    let report = w.audit(1);
    assert_eq!(
        kinds(&report),
        BTreeSet::from(["seed"]),
        "{:?}",
        report.mismatches
    );
    assert_eq!(rounds_named(&report, "seed"), vec![json!(3)]);
    assert_eq!(report.of_kind("seed")[0].details["rule"], "legacy");
}
