//! Re-deriving an eon's round seeds from public data: under seed chains, each
//! reveal against the previous one (or the committed tip), each seed from the
//! previous seed and the reveal, and each chain's commitment before its rounds;
//! rounds opened before seed chains by the old rule.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, Timestamptz};
use overlaps_shared::models::SeedChain;
use overlaps_shared::schema::seed_chains;
use overlaps_shared::selection;
use serde_json::json;

use crate::audit::{AuditError, AuditReport, Mismatch, hex0x};

#[derive(QueryableByName)]
struct SeedRow {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Bytea)]
    seed: Vec<u8>,
    #[diesel(sql_type = Nullable<Bytea>)]
    seed_reveal: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    seed_results_round: Option<i64>,
    /// The results hash of `seed_results_round` (old rule only).
    #[diesel(sql_type = Nullable<Bytea>)]
    seed_results_hash: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct OpenedRow {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
}

fn to32(bytes: &[u8]) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).ok()
}

/// Every round seed of the eon, from public inputs only: under seed chains, the
/// reveal hashes to the previous round's reveal (the chain's tip at its first
/// round), the seed is `round_seed(previous seed, reveal)`, and each chain was
/// committed before its first round opened — and before the previous epoch's
/// first round, since the scheduler commits every chain a whole epoch ahead.
/// Rounds opened before seed chains (no reveal, none covered by a chain) are
/// checked by the old rule. A missing round is reported by `check_rounds`.
pub fn check_seeds(
    conn: &mut PgConnection,
    first_round: i64,
    last_round: i64,
    hub_id: &str,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rounds: BTreeMap<i64, SeedRow> = diesel::sql_query(
        "SELECT r.number, r.seed, r.seed_reveal, r.seed_results_round, \
         s.results_hash AS seed_results_hash \
         FROM rounds r LEFT JOIN rounds s ON s.number = r.seed_results_round \
         WHERE r.number BETWEEN $1 AND $2 ORDER BY r.number",
    )
    .bind::<BigInt, _>(first_round - 1)
    .bind::<BigInt, _>(last_round)
    .load::<SeedRow>(conn)?
    .into_iter()
    .map(|r| (r.number, r))
    .collect();
    // The public model: the audit never reads anchors.
    let chains: Vec<SeedChain> = seed_chains::table
        .filter(seed_chains::first_round.le(last_round))
        .order(seed_chains::epoch)
        .select(SeedChain::as_select())
        .load(conn)?;
    let chain_of = |number: i64| chains.iter().find(|c| c.covers(number));
    let mut epochs_used = std::collections::BTreeSet::new();
    for number in first_round..=last_round {
        let Some(round) = rounds.get(&number) else {
            continue;
        };
        let Some(stored_seed) = to32(&round.seed) else {
            report.mismatches.push(Mismatch::new(
                "seed",
                json!({ "round": number, "stored": hex0x(&round.seed) }),
            ));
            continue;
        };
        let previous = rounds.get(&(number - 1));
        let previous_seed = match previous {
            _ if number == 1 => Some(selection::genesis_seed(hub_id)),
            Some(prev) => to32(&prev.seed),
            // A missing round is named by `check_rounds`; this link cannot be checked.
            None => continue,
        };
        let chain = chain_of(number);
        let Some(reveal) = round.seed_reveal.as_deref() else {
            // Once seed chains started, every later round must reveal its link: a
            // round without one would go back to the steerable old rule.
            if let Some(chain) = chains.iter().rev().find(|c| c.first_round <= number) {
                report.mismatches.push(Mismatch::new(
                    "seed_reveal",
                    json!({ "round": number, "epoch": chain.epoch, "stored": null }),
                ));
                continue;
            }
            check_legacy_seed(number, round, previous_seed, stored_seed, report);
            continue;
        };
        let Some(chain) = chain else {
            report.mismatches.push(Mismatch::new(
                "seed_commitment",
                json!({ "round": number, "epoch": null, "reason": "no committed seed chain covers the round" }),
            ));
            continue;
        };
        epochs_used.insert(chain.epoch);
        // What the reveal must hash to: the tip at the epoch's first round, else
        // the previous round's reveal.
        let (previous_link, against) = if number == chain.first_round {
            (to32(&chain.tip), "tip")
        } else {
            (
                previous
                    .and_then(|p| p.seed_reveal.as_deref())
                    .and_then(to32),
                "previous_reveal",
            )
        };
        let (Some(reveal32), Some(previous_link), Some(previous_seed)) =
            (to32(reveal), previous_link, previous_seed)
        else {
            report.mismatches.push(Mismatch::new(
                "seed_reveal",
                json!({ "round": number, "epoch": chain.epoch, "against": against, "stored": hex0x(reveal) }),
            ));
            continue;
        };
        report.checked.seeds += 1;
        // Both parts are checked, so a changed reveal and a changed seed are each named.
        if selection::verify_reveal(&reveal32, &previous_link).is_err() {
            report.mismatches.push(Mismatch::new(
                "seed_reveal",
                json!({
                    "round": number, "epoch": chain.epoch, "against": against,
                    "stored": hex0x(&reveal32), "hashes_to": hex0x(&selection::seed_chain_step(&reveal32)),
                    "expected": hex0x(&previous_link),
                }),
            ));
        }
        let expected = selection::round_seed(&previous_seed, &reveal32);
        if expected != stored_seed {
            report.mismatches.push(Mismatch::new(
                "seed",
                json!({ "round": number, "expected": hex0x(&expected), "stored": hex0x(&stored_seed) }),
            ));
        }
    }
    check_commitments(conn, &chains, &epochs_used, report)
}

/// A round opened before seed chains: `legacy_round_seed(previous seed, results
/// hash of the closed round it names)` (zeros when it names none); round 1 was
/// the genesis seed itself.
fn check_legacy_seed(
    number: i64,
    round: &SeedRow,
    previous_seed: Option<[u8; 32]>,
    stored: [u8; 32],
    report: &mut AuditReport,
) {
    let results_hash = match (round.seed_results_round, round.seed_results_hash.as_deref()) {
        (None, _) => Some([0u8; 32]),
        (Some(used), Some(hash)) if used < number => to32(hash),
        _ => None,
    };
    let expected = match (number, previous_seed, results_hash) {
        (1, Some(genesis), _) => Some(genesis),
        (_, Some(previous), Some(results)) => {
            Some(selection::legacy_round_seed(&previous, &results))
        }
        _ => None,
    };
    report.checked.seeds += 1;
    if expected != Some(stored) {
        report.mismatches.push(Mismatch::new(
            "seed",
            json!({
                "round": number, "rule": "legacy", "seed_results_round": round.seed_results_round,
                "expected": expected.as_ref().map(|e| hex0x(e)), "stored": hex0x(&stored),
            }),
        ));
    }
}

/// Each chain the eon's rounds revealed from was committed before its first round
/// opened, and (from the second epoch on) before the previous epoch's first round.
fn check_commitments(
    conn: &mut PgConnection,
    chains: &[SeedChain],
    epochs: &std::collections::BTreeSet<i64>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let firsts: Vec<i64> = chains.iter().map(|c| c.first_round).collect();
    let opened: HashMap<i64, DateTime<Utc>> =
        diesel::sql_query("SELECT number, opened_at FROM rounds WHERE number = ANY($1)")
            .bind::<diesel::sql_types::Array<BigInt>, _>(&firsts)
            .load::<OpenedRow>(conn)?
            .into_iter()
            .map(|r| (r.number, r.opened_at))
            .collect();
    for chain in chains.iter().filter(|c| epochs.contains(&c.epoch)) {
        let own = opened.get(&chain.first_round);
        let previous_epoch = chains
            .iter()
            .find(|c| c.epoch == chain.epoch - 1)
            .and_then(|c| opened.get(&c.first_round));
        for (deadline, what) in [
            (own, "own_first_round"),
            (previous_epoch, "previous_epoch_first_round"),
        ] {
            if let Some(deadline) = deadline.filter(|at| chain.committed_at > **at) {
                report.mismatches.push(Mismatch::new(
                    "seed_commitment",
                    json!({
                        "epoch": chain.epoch, "first_round": chain.first_round,
                        "committed_at": chain.committed_at, "due_by": what, "opened_at": deadline,
                    }),
                ));
            }
        }
    }
    Ok(())
}
