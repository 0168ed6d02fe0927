//! Re-deriving an eon from stored data alone: every round's seed (from the previous
//! seed and its seed-chain reveal, the reveal against the previous one or the
//! chain's committed tip), who was drawn for each site, every tick signature, each round's
//! majority, results hash and link in the hash chain, the credits, every
//! validator's cumulative reward, the payout leaves, the Merkle root and tree,
//! and the root the chain holds. Each disagreement is a [`Mismatch`] naming the
//! exact rows involved.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Int4, Jsonb, Nullable, SmallInt, Text};
use overlaps_shared::eth::{Address, U256};
use overlaps_shared::ledger::{self, RoundAnswer};
use overlaps_shared::merkle::{self, RewardTree};
use overlaps_shared::models::Tick;
use overlaps_shared::money::{self, BadAmount};
use overlaps_shared::schema::ticks;
use overlaps_shared::signing::{self, PublicKey};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::AuditPolicy;

/// Why an eon could not be audited at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No such eon (or no root commitment for it).
    #[error("eon {0} is not closed")]
    UnknownEon(i64),
    /// A stored amount is not an integer amount.
    #[error(transparent)]
    Amount(#[from] BadAmount),
    /// A query failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    /// Raising the operator alert failed.
    #[error(transparent)]
    Alert(#[from] overlaps_shared::Error),
}

/// One disagreement between stored data and its re-derivation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// What disagrees: `round_missing`, `seed`, `seed_reveal`, `seed_commitment`,
    /// `results_hash`, `chain_hash`, `tick_signature`, `credit`, `cumulative`,
    /// `leaf`, `root`, `total`, `tree`, `onchain_root`, `selection`,
    /// `selection_record`, `canary_commitment`,
    /// `canary_key`, `canary_schedule`, `canary_verdict`, `canary_forfeit`, …
    pub kind: &'static str,
    /// The ids and values involved.
    pub details: Value,
}

impl Mismatch {
    /// A mismatch of `kind` with its details.
    pub(crate) fn new(kind: &'static str, details: Value) -> Self {
        Mismatch { kind, details }
    }
}

/// What was re-derived, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Rounds of the eon.
    pub rounds: usize,
    /// Round seeds re-derived from public inputs (previous seed, reveal, tips).
    pub seeds: usize,
    /// Assignments settled again.
    pub assignments: usize,
    /// Sites of rounds whose assigned validators were drawn again from the
    /// round's recorded candidates.
    pub selections: usize,
    /// Tick signatures verified.
    pub signatures: usize,
    /// Credit rows compared.
    pub credits: usize,
    /// Canary assignments re-derived and judged again.
    pub canaries: usize,
    /// Validators whose cumulative reward was recomputed.
    pub validators: usize,
    /// Payout leaves compared.
    pub leaves: usize,
    /// Stored chunks of tree layers compared (proofs are cut from them).
    pub tree_chunks: usize,
    /// The on-chain root: `matches`, `differs` or `not_yet_onchain`.
    pub onchain: &'static str,
}

/// The audit of one eon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The eon.
    pub eon: i64,
    /// No mismatch.
    pub ok: bool,
    /// What was checked.
    pub checked: Checked,
    /// Every disagreement found.
    pub mismatches: Vec<Mismatch>,
}

impl AuditReport {
    /// The mismatches of one kind.
    pub fn of_kind(&self, kind: &str) -> Vec<&Mismatch> {
        self.mismatches.iter().filter(|m| m.kind == kind).collect()
    }
}

#[derive(QueryableByName)]
struct EonRow {
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = BigInt)]
    last_round: i64,
    #[diesel(sql_type = Bytea)]
    root: Vec<u8>,
    #[diesel(sql_type = Text)]
    total: String,
    #[diesel(sql_type = Nullable<Bytea>)]
    onchain_root: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct RoundRow {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Bool)]
    closed: bool,
    #[diesel(sql_type = Nullable<Bytea>)]
    results_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    chain_hash: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct AnswerRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

#[derive(QueryableByName)]
struct CreditRow {
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    amount: String,
}

#[derive(QueryableByName)]
struct SumRow {
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    amount: String,
}

#[derive(QueryableByName)]
struct RewardRow {
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    payout_address: Option<Vec<u8>>,
    #[diesel(sql_type = Text)]
    cumulative: String,
    #[diesel(sql_type = Text)]
    attributed: String,
}

#[derive(QueryableByName)]
struct LeafRow {
    #[diesel(sql_type = Bytea)]
    payout_address: Vec<u8>,
    #[diesel(sql_type = Text)]
    cumulative: String,
}

#[derive(QueryableByName)]
struct NodesRow {
    #[diesel(sql_type = SmallInt)]
    layer: i16,
    #[diesel(sql_type = Int4)]
    chunk: i32,
    #[diesel(sql_type = Bytea)]
    hashes: Vec<u8>,
}

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bytea)]
    public_key: Vec<u8>,
}

pub(crate) fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Audits eon `eon` from one consistent snapshot of the database.
pub fn audit_eon(
    conn: &mut PgConnection,
    eon: i64,
    policy: &AuditPolicy,
) -> Result<AuditReport, AuditError> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|conn| {
            let row = diesel::sql_query(
                "SELECT e.first_round, e.last_round, c.root, c.total::text AS total, c.onchain_root \
                 FROM eons e JOIN root_commitments c ON c.eon = e.number WHERE e.number = $1",
            )
            .bind::<BigInt, _>(eon)
            .get_result::<EonRow>(conn)
            .optional()?
            .ok_or(AuditError::UnknownEon(eon))?;
            let mut report = AuditReport {
                eon,
                ok: true,
                checked: Checked::default(),
                mismatches: Vec::new(),
            };
            crate::seeds::check_seeds(
                conn,
                row.first_round,
                row.last_round,
                &policy.hub_id,
                &mut report,
            )?;
            crate::selection::check_selection(conn, row.first_round, row.last_round, &mut report)?;
            let expected_credits = check_rounds(conn, &row, policy, &mut report)?;
            check_credits(conn, &row, expected_credits, &mut report)?;
            check_rewards(conn, eon, &row, &mut report)?;
            report.ok = report.mismatches.is_empty();
            Ok(report)
        })
}

/// Rounds, their answers and signatures, results hashes and chain links; returns
/// the credits the rounds imply, per (round, validator).
fn check_rounds(
    conn: &mut PgConnection,
    eon: &EonRow,
    policy: &AuditPolicy,
    report: &mut AuditReport,
) -> Result<BTreeMap<(i64, i64), U256>, AuditError> {
    let rounds: Vec<RoundRow> = diesel::sql_query(
        "SELECT number, closed_at IS NOT NULL AS closed, results_hash, chain_hash FROM rounds \
         WHERE number BETWEEN $1 AND $2 ORDER BY number",
    )
    .bind::<BigInt, _>(eon.first_round - 1)
    .bind::<BigInt, _>(eon.last_round)
    .load(conn)?;
    let rounds: BTreeMap<i64, RoundRow> = rounds.into_iter().map(|r| (r.number, r)).collect();
    let answers: Vec<AnswerRow> = diesel::sql_query(
        "SELECT a.id, a.round_number, a.website_id, a.validator_id, t.status \
         FROM check_assignments a JOIN websites w ON w.id = a.website_id AND NOT w.canary \
         LEFT JOIN ticks t ON t.assignment_id = a.id AND t.validator_id = a.validator_id \
         WHERE a.round_number BETWEEN $1 AND $2",
    )
    .bind::<BigInt, _>(eon.first_round)
    .bind::<BigInt, _>(eon.last_round)
    .load(conn)?;
    report.checked.assignments = answers.len();
    let mut by_round: BTreeMap<i64, Vec<RoundAnswer>> = BTreeMap::new();
    for a in answers {
        by_round
            .entry(a.round_number)
            .or_default()
            .push(RoundAnswer {
                assignment_id: a.id,
                website_id: a.website_id,
                validator_id: a.validator_id,
                status: a.status,
            });
    }

    let mut credits = BTreeMap::new();
    for number in eon.first_round..=eon.last_round {
        let Some(round) = rounds.get(&number) else {
            report
                .mismatches
                .push(Mismatch::new("round_missing", json!({ "round": number })));
            continue;
        };
        report.checked.rounds += 1;
        if !round.closed {
            report
                .mismatches
                .push(Mismatch::new("round_open", json!({ "round": number })));
            continue;
        }
        let outcome =
            ledger::settle_round(number, by_round.get(&number).map_or(&[], Vec::as_slice));
        if round.results_hash.as_deref() != Some(&outcome.results_hash[..]) {
            report.mismatches.push(Mismatch::new(
                "results_hash",
                json!({
                    "round": number,
                    "expected": hex0x(&outcome.results_hash),
                    "stored": round.results_hash.as_deref().map(hex0x),
                }),
            ));
        }
        // The link from the stored previous hash (the first round links to zeros).
        let previous = match rounds.get(&(number - 1)) {
            Some(prev) => prev.chain_hash.clone(),
            None if number == 1 => None,
            // A missing round inside the eon is already reported.
            None if number > eon.first_round => continue,
            None => {
                report.mismatches.push(Mismatch::new(
                    "round_missing",
                    json!({ "round": number - 1 }),
                ));
                continue;
            }
        };
        if let Some(stored_results) = round
            .results_hash
            .as_deref()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        {
            let link = ledger::chain_hash(previous.as_deref(), &stored_results);
            if round.chain_hash.as_deref() != Some(&link[..]) {
                report.mismatches.push(Mismatch::new(
                    "chain_hash",
                    json!({ "round": number, "expected": hex0x(&link), "stored": round.chain_hash.as_deref().map(hex0x) }),
                ));
            }
        }
        for (&validator, tally) in &outcome.tallies {
            if tally.agreed > 0 {
                let amount = policy
                    .reward_per_check
                    .saturating_mul(U256::from(tally.agreed));
                credits.insert((number, validator), amount);
            }
        }
    }
    // Canaries are judged by their revealed known answers, not by majority.
    crate::canaries::check_canaries(
        conn,
        eon.first_round,
        eon.last_round,
        policy.reward_per_check,
        &mut credits,
        report,
    )?;
    check_signatures(conn, eon, policy, report)?;
    Ok(credits)
}

/// Verifies every stored tick of the eon's rounds against its validator's key.
fn check_signatures(
    conn: &mut PgConnection,
    eon: &EonRow,
    policy: &AuditPolicy,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let keys: Vec<KeyRow> =
        diesel::sql_query("SELECT id, public_key FROM validators").load(conn)?;
    let keys: HashMap<i64, Option<PublicKey>> = keys
        .into_iter()
        .map(|k| (k.id, PublicKey::from_bytes(&k.public_key).ok()))
        .collect();
    let stored: Vec<Tick> = ticks::table
        .filter(ticks::round_number.between(eon.first_round, eon.last_round))
        .select(Tick::as_select())
        .load(conn)?;
    for tick in &stored {
        let message = signing::result_bytes(&policy.hub_id, &tick.signed_fields());
        let verified = keys
            .get(&tick.validator_id)
            .and_then(Option::as_ref)
            .is_some_and(|key| key.verify(&message, &tick.signature).is_ok());
        if verified {
            report.checked.signatures += 1;
        } else {
            report.mismatches.push(Mismatch::new(
                "tick_signature",
                json!({ "assignment_id": tick.assignment_id, "round": tick.round_number, "validator_id": tick.validator_id }),
            ));
        }
    }
    Ok(())
}

/// Compares stored credits with those the rounds imply.
fn check_credits(
    conn: &mut PgConnection,
    eon: &EonRow,
    mut expected: BTreeMap<(i64, i64), U256>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let stored: Vec<CreditRow> = diesel::sql_query(
        "SELECT round_number, validator_id, amount::text AS amount FROM validator_credits \
         WHERE round_number BETWEEN $1 AND $2",
    )
    .bind::<BigInt, _>(eon.first_round)
    .bind::<BigInt, _>(eon.last_round)
    .load(conn)?;
    report.checked.credits = stored.len();
    for credit in stored {
        let amount = money::parse(&credit.amount)?;
        let key = (credit.round_number, credit.validator_id);
        let should = expected.remove(&key).unwrap_or_default();
        if should != amount {
            report
                .mismatches
                .push(credit_mismatch(key, should, Some(amount)));
        }
    }
    for (key, should) in expected {
        report.mismatches.push(credit_mismatch(key, should, None));
    }
    Ok(())
}

fn credit_mismatch(
    (round, validator): (i64, i64),
    expected: U256,
    stored: Option<U256>,
) -> Mismatch {
    Mismatch::new(
        "credit",
        json!({
            "round": round, "validator_id": validator,
            "expected": expected.to_string(), "stored": stored.map(|s| s.to_string()),
        }),
    )
}

/// Cumulative rewards from every credit ever; the payout leaves, root, total and
/// tree layers from the stored rewards.
fn check_rewards(
    conn: &mut PgConnection,
    eon: i64,
    row: &EonRow,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let sums: Vec<SumRow> = diesel::sql_query(
        "SELECT validator_id, sum(amount)::text AS amount FROM validator_credits \
         WHERE round_number <= $1 GROUP BY validator_id",
    )
    .bind::<BigInt, _>(row.last_round)
    .load(conn)?;
    let mut earned: BTreeMap<i64, U256> = BTreeMap::new();
    for sum in sums {
        earned.insert(sum.validator_id, money::parse(&sum.amount)?);
    }
    let rewards = load_rewards(conn, eon)?;
    let previous: HashMap<i64, U256> = load_rewards(conn, eon - 1)?
        .into_iter()
        .map(|r| Ok((r.validator_id, money::parse(&r.attributed)?)))
        .collect::<Result<_, BadAmount>>()?;

    // The leaves carried over from the previous eon, plus what each validator's
    // address is owed from its recomputed cumulative reward.
    let mut leaves: BTreeMap<Address, U256> = BTreeMap::new();
    for leaf in load_leaves(conn, eon - 1)? {
        leaves.insert(
            Address::from_slice(&leaf.payout_address),
            money::parse(&leaf.cumulative)?,
        );
    }
    for reward in &rewards {
        let cumulative = earned.remove(&reward.validator_id).unwrap_or_default();
        let stored = money::parse(&reward.cumulative)?;
        report.checked.validators += 1;
        if cumulative != stored {
            report.mismatches.push(Mismatch::new(
                "cumulative",
                json!({ "validator_id": reward.validator_id, "expected": cumulative.to_string(), "stored": stored.to_string() }),
            ));
        }
        // The tree is re-derived from the stored rewards (checked just above), so
        // one changed credit is named once, not again as every leaf above it.
        if let Some(address) = reward.payout_address.as_deref().filter(|a| a.len() == 20) {
            let already = previous
                .get(&reward.validator_id)
                .copied()
                .unwrap_or_default();
            let entry = leaves.entry(Address::from_slice(address)).or_default();
            *entry = entry.saturating_add(stored.saturating_sub(already));
        }
    }
    for (validator, cumulative) in earned {
        report.mismatches.push(Mismatch::new(
            "reward_missing",
            json!({ "validator_id": validator, "expected": cumulative.to_string() }),
        ));
    }

    let expected_leaves =
        merkle::leaf_hashes(&leaves.iter().map(|(a, c)| (*a, *c)).collect::<Vec<_>>());
    let tree = RewardTree::build(&expected_leaves);
    let root = tree.root();
    let total = leaves
        .values()
        .fold(U256::zero(), |s, c| s.saturating_add(*c));
    if row.root != root {
        report.mismatches.push(Mismatch::new(
            "root",
            json!({ "expected": hex0x(&root), "stored": hex0x(&row.root) }),
        ));
    }
    let stored_total = money::parse(&row.total)?;
    if stored_total != total {
        report.mismatches.push(Mismatch::new(
            "total",
            json!({ "expected": total.to_string(), "stored": stored_total.to_string() }),
        ));
    }
    for leaf in load_leaves(conn, eon)? {
        report.checked.leaves += 1;
        let address = Address::from_slice(&leaf.payout_address);
        let cumulative = money::parse(&leaf.cumulative)?;
        let should = leaves.remove(&address).unwrap_or_default();
        if should != cumulative {
            report.mismatches.push(Mismatch::new(
                "leaf",
                json!({ "payout_address": hex0x(address.as_bytes()), "expected": should.to_string(), "stored": cumulative.to_string() }),
            ));
        }
    }
    check_tree(conn, eon, &tree, report)?;
    for (address, should) in leaves {
        report.mismatches.push(Mismatch::new(
            "leaf",
            json!({ "payout_address": hex0x(address.as_bytes()), "expected": should.to_string(), "stored": null }),
        ));
    }
    report.checked.onchain = match &row.onchain_root {
        None => "not_yet_onchain",
        Some(onchain) if *onchain == row.root => "matches",
        Some(onchain) => {
            report.mismatches.push(Mismatch::new(
                "onchain_root",
                json!({ "stored": hex0x(&row.root), "onchain": hex0x(onchain) }),
            ));
            "differs"
        }
    };
    Ok(())
}

/// Every stored chunk of the eon's tree layers must equal the re-derived tree's:
/// proofs are cut from them, so one changed node would make proofs fail.
fn check_tree(
    conn: &mut PgConnection,
    eon: i64,
    tree: &RewardTree,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let stored: Vec<NodesRow> = diesel::sql_query(
        "SELECT layer, chunk, hashes FROM merkle_nodes WHERE eon = $1 ORDER BY layer, chunk",
    )
    .bind::<BigInt, _>(eon)
    .load(conn)?;
    let mut stored: BTreeMap<(i16, i32), Vec<u8>> = stored
        .into_iter()
        .map(|row| ((row.layer, row.chunk), row.hashes))
        .collect();
    for (layer, chunk, hashes) in tree.chunks() {
        let key = (
            i16::try_from(layer).unwrap_or(i16::MAX),
            i32::try_from(chunk).unwrap_or(i32::MAX),
        );
        match stored.remove(&key) {
            Some(found) if found == hashes => report.checked.tree_chunks += 1,
            found => report.mismatches.push(Mismatch::new(
                "tree",
                json!({ "layer": layer, "chunk": chunk, "stored": found.is_some() }),
            )),
        }
    }
    for (layer, chunk) in stored.into_keys() {
        report.mismatches.push(Mismatch::new(
            "tree",
            json!({ "layer": layer, "chunk": chunk, "expected": null }),
        ));
    }
    Ok(())
}

fn load_rewards(conn: &mut PgConnection, eon: i64) -> Result<Vec<RewardRow>, AuditError> {
    Ok(diesel::sql_query(
        "SELECT validator_id, payout_address, cumulative::text AS cumulative, attributed::text AS attributed \
         FROM validator_rewards WHERE eon = $1 ORDER BY validator_id",
    )
    .bind::<BigInt, _>(eon)
    .load(conn)?)
}

fn load_leaves(conn: &mut PgConnection, eon: i64) -> Result<Vec<LeafRow>, AuditError> {
    Ok(diesel::sql_query(
        "SELECT leaf_index, payout_address, cumulative::text AS cumulative \
         FROM merkle_leaves WHERE eon = $1 ORDER BY leaf_index",
    )
    .bind::<BigInt, _>(eon)
    .load(conn)?)
}

/// Stores (or replaces) the eon's report; a report with mismatches raises an
/// operator alert, once per distinct set of mismatches.
pub fn store_report(conn: &mut PgConnection, report: &AuditReport) -> Result<(), AuditError> {
    let checked = serde_json::to_value(&report.checked).unwrap_or(Value::Null);
    let mismatches = serde_json::to_value(&report.mismatches).unwrap_or(Value::Null);
    conn.transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO audit_reports (eon, ok, checked, mismatches) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (eon) DO UPDATE SET ok = EXCLUDED.ok, checked = EXCLUDED.checked, \
             mismatches = EXCLUDED.mismatches, created_at = now()",
        )
        .bind::<BigInt, _>(report.eon)
        .bind::<Bool, _>(report.ok)
        .bind::<Jsonb, _>(&checked)
        .bind::<Jsonb, _>(&mismatches)
        .execute(conn)?;
        if !report.ok {
            let digest = hex::encode(&overlaps_shared::eth::keccak256(mismatches.to_string())[..8]);
            let kinds: std::collections::BTreeSet<&str> =
                report.mismatches.iter().map(|m| m.kind).collect();
            overlaps_shared::operator_alert::raise(
                conn,
                &format!("audit:{}:{digest}", report.eon),
                &format!(
                    "audit of eon {} found {} mismatches ({}); see /api/v1/eons/{}/audit",
                    report.eon,
                    report.mismatches.len(),
                    kinds.into_iter().collect::<Vec<_>>().join(", "),
                    report.eon
                ),
            )?;
        }
        Ok(())
    })
}
