//! Re-deriving an eon's canaries from public data: each round's revealed canary
//! key against the chain committed before it, the canaries the key gives among
//! the round's candidates (who, which mode), each verdict from the stored signed
//! answer, and what passes earned and failures forfeited.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Int4, Jsonb, Nullable, Text, Timestamptz};
use overlaps_shared::canary::{self, CANARY_CHAIN_DOMAIN, CanaryMode, CanaryOutcome};
use overlaps_shared::eth::U256;
use overlaps_shared::hash_chain;
use overlaps_shared::money;
use overlaps_shared::selection::RecordedCandidate;
use serde_json::json;

use crate::audit::{AuditError, AuditReport, Mismatch, hex0x};

#[derive(QueryableByName)]
struct RoundKey {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Jsonb)]
    candidates: serde_json::Value,
    #[diesel(sql_type = Nullable<Bytea>)]
    canary_key: Option<Vec<u8>>,
}

#[derive(QueryableByName)]
struct Chain {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = Int4)]
    rounds: i32,
    #[diesel(sql_type = Int4)]
    rate_bp: i32,
    #[diesel(sql_type = Bytea)]
    tip: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    committed_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_opened_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    previous_first_opened_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct CanaryRow {
    #[diesel(sql_type = BigInt)]
    assignment_id: i64,
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    mode: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    forfeited: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

fn key32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// Checks the canaries of rounds `first..=last` and folds what they earned and
/// forfeited into `credits` (per round and validator, from the real checks).
pub fn check_canaries(
    conn: &mut PgConnection,
    first: i64,
    last: i64,
    reward_per_check: U256,
    credits: &mut BTreeMap<(i64, i64), U256>,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let chains: Vec<Chain> = diesel::sql_query(
        "SELECT c.epoch, c.first_round, c.rounds, c.rate_bp, c.tip, c.committed_at, \
                r.opened_at AS first_opened_at, p.opened_at AS previous_first_opened_at \
         FROM canary_chains c LEFT JOIN rounds r ON r.number = c.first_round \
         LEFT JOIN canary_chains pc ON pc.epoch = c.epoch - 1 \
         LEFT JOIN rounds p ON p.number = pc.first_round \
         WHERE c.first_round <= $2 AND c.first_round + c.rounds > $1 ORDER BY c.epoch",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    if chains.is_empty() {
        return Ok(());
    }
    for chain in &chains {
        // A chain is committed when the previous epoch opened, so before any
        // of its own rounds; the very first chain comes with its first round.
        let deadline = chain.previous_first_opened_at.or(chain.first_opened_at);
        let late = deadline.is_some_and(|at| chain.committed_at > at);
        if late {
            report.mismatches.push(Mismatch::new(
                "canary_commitment",
                json!({ "epoch": chain.epoch, "committed_at": chain.committed_at, "due_by": deadline }),
            ));
        }
    }
    let keys: BTreeMap<i64, RoundKey> = diesel::sql_query(
        "SELECT number, candidates, canary_key FROM rounds \
         WHERE number BETWEEN $1 AND $2 ORDER BY number",
    )
    .bind::<BigInt, _>(first - 1)
    .bind::<BigInt, _>(last)
    .load::<RoundKey>(conn)?
    .into_iter()
    .map(|r| (r.number, r))
    .collect();
    let rows: Vec<CanaryRow> = diesel::sql_query(
        "SELECT a.id AS assignment_id, a.round_number, a.validator_id, c.mode, c.outcome, \
                c.forfeited::text AS forfeited, t.status \
         FROM check_assignments a JOIN websites w ON w.id = a.website_id AND w.canary \
         LEFT JOIN canary_assignments c ON c.assignment_id = a.id \
         LEFT JOIN ticks t ON t.assignment_id = a.id AND t.validator_id = a.validator_id \
         WHERE a.round_number BETWEEN $1 AND $2 ORDER BY a.round_number, a.id",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    let mut stored: BTreeMap<i64, Vec<CanaryRow>> = BTreeMap::new();
    for row in rows {
        stored.entry(row.round_number).or_default().push(row);
    }

    for number in first..=last {
        let Some(chain) = chains
            .iter()
            .find(|c| c.first_round <= number && number < c.first_round + i64::from(c.rounds))
        else {
            continue;
        };
        let Some(round) = keys.get(&number) else {
            continue; // A missing round is reported by the round checks.
        };
        let Some(key) = round.canary_key.as_deref().and_then(key32) else {
            report.mismatches.push(Mismatch::new(
                "canary_key",
                json!({ "round": number, "reason": "not revealed" }),
            ));
            continue;
        };
        let previous = if number == chain.first_round {
            key32(&chain.tip)
        } else {
            keys.get(&(number - 1))
                .and_then(|r| r.canary_key.as_deref())
                .and_then(key32)
        };
        if previous.is_none_or(|p| !hash_chain::follows(CANARY_CHAIN_DOMAIN, &key, &p)) {
            report.mismatches.push(Mismatch::new(
                "canary_key",
                json!({ "round": number, "epoch": chain.epoch, "key": hex0x(&key),
                        "reason": "does not hash to the previous round's key or the chain's tip" }),
            ));
        }
        let candidates: Vec<i64> = RecordedCandidate::parse_all(&round.candidates)
            .map(|all| all.iter().map(|c| c.validator_id).collect())
            .unwrap_or_default();
        let plan: HashMap<i64, CanaryMode> =
            canary::plan_round(&key, &candidates, u32::try_from(chain.rate_bp).unwrap_or(0))
                .into_iter()
                .map(|p| (p.validator_id, p.mode))
                .collect();
        let rows = stored.remove(&number).unwrap_or_default();
        report.checked.canaries += rows.len();
        let mut seen = Vec::new();
        for row in &rows {
            seen.push(row.validator_id);
            let expected = plan.get(&row.validator_id).copied();
            let stored_mode = row.mode.as_deref().and_then(CanaryMode::parse);
            if expected.is_none() || expected != stored_mode {
                report.mismatches.push(Mismatch::new(
                    "canary_schedule",
                    json!({ "round": number, "assignment_id": row.assignment_id, "validator_id": row.validator_id,
                            "expected": expected.map(CanaryMode::as_str), "stored": row.mode }),
                ));
                continue;
            }
            let Some(mode) = expected else { continue };
            let outcome = canary::judge(mode, row.status.as_deref());
            if row.outcome.as_deref() != Some(outcome.as_str()) {
                report.mismatches.push(Mismatch::new(
                    "canary_verdict",
                    json!({ "round": number, "assignment_id": row.assignment_id,
                            "expected": outcome.as_str(), "stored": row.outcome }),
                ));
            }
            match outcome {
                CanaryOutcome::Passed => {
                    let credit = credits.entry((number, row.validator_id)).or_default();
                    *credit = credit.saturating_add(reward_per_check);
                }
                CanaryOutcome::Failed => {
                    // Everything this validator earned in the eon so far is taken back.
                    let mut taken = U256::zero();
                    for ((_, _), amount) in credits
                        .range_mut((first, row.validator_id)..=(number, row.validator_id))
                        .filter(|((_, v), _)| *v == row.validator_id)
                    {
                        taken = taken.saturating_add(*amount);
                        *amount = U256::zero();
                    }
                    let recorded = row.forfeited.as_deref().map(money::parse).transpose()?;
                    if recorded != Some(taken) {
                        report.mismatches.push(Mismatch::new(
                            "canary_forfeit",
                            json!({ "round": number, "assignment_id": row.assignment_id,
                                    "validator_id": row.validator_id, "expected": taken.to_string(),
                                    "stored": row.forfeited }),
                        ));
                    }
                }
                CanaryOutcome::Missed => {}
            }
        }
        for (validator, mode) in &plan {
            if !seen.contains(validator) {
                report.mismatches.push(Mismatch::new(
                    "canary_schedule",
                    json!({ "round": number, "validator_id": validator,
                            "expected": mode.as_str(), "stored": null }),
                ));
            }
        }
    }
    Ok(())
}
