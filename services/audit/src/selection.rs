//! Re-deriving who had to check each site: for every round of the eon, the draw
//! from the round's seed over the candidates it recorded (each admitted validator
//! with its weight and network) must give exactly the validators assigned — a
//! draw that never puts two validators of one network together.
//!
//! Rounds opened before rounds recorded their candidates hold `[]`; those before
//! the first round that recorded any are skipped (nothing to draw from), while a
//! later round with assignments and `[]` is a mismatch.
//!
//! A round records no per-site quorum, so the draw is re-derived for as many
//! validators as were assigned: a hub that assigned the right first ones but too
//! few is not caught here (the round's `degraded` flag and the site's quorum are
//! public beside it).

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Jsonb};
use overlaps_shared::selection::{self, Candidate, RecordedCandidate};
use serde_json::json;

use crate::audit::{AuditError, AuditReport, Mismatch};

#[derive(QueryableByName)]
struct RoundDraw {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = Bytea)]
    seed: Vec<u8>,
    #[diesel(sql_type = Jsonb)]
    candidates: serde_json::Value,
}

#[derive(QueryableByName)]
struct Assigned {
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
}

/// Checks every round from `first` to `last`: each site's assigned validators are
/// the draw over the round's recorded candidates, of distinct networks.
pub fn check_selection(
    conn: &mut PgConnection,
    first: i64,
    last: i64,
    report: &mut AuditReport,
) -> Result<(), AuditError> {
    let rounds: Vec<RoundDraw> = diesel::sql_query(
        "SELECT number, seed, candidates FROM rounds WHERE number BETWEEN $1 AND $2          AND number >= (SELECT coalesce(min(number), 9223372036854775807) FROM rounds                         WHERE candidates <> '[]'::jsonb)          ORDER BY number",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    // Canary assignments follow their own public plan (checked by `canaries`).
    let assigned: Vec<Assigned> = diesel::sql_query(
        "SELECT a.round_number, a.website_id, a.validator_id FROM check_assignments a \
         JOIN websites w ON w.id = a.website_id AND NOT w.canary \
         WHERE a.round_number BETWEEN $1 AND $2",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    let mut by_round: BTreeMap<i64, BTreeMap<i64, Vec<i64>>> = BTreeMap::new();
    for a in assigned {
        by_round
            .entry(a.round_number)
            .or_default()
            .entry(a.website_id)
            .or_default()
            .push(a.validator_id);
    }
    for round in rounds {
        let sites = by_round.remove(&round.number).unwrap_or_default();
        let (Ok(seed), Some(recorded)) = (
            <[u8; 32]>::try_from(round.seed.as_slice()),
            RecordedCandidate::parse_all(&round.candidates),
        ) else {
            report.mismatches.push(Mismatch::new(
                "selection_record",
                json!({ "round": round.number, "reason": "the seed or the candidates are malformed" }),
            ));
            continue;
        };
        let candidates: Vec<Candidate<'_>> = recorded
            .iter()
            .map(RecordedCandidate::as_candidate)
            .collect();
        for (site, mut validators) in sites {
            report.checked.selections += 1;
            validators.sort_unstable();
            let mut expected =
                selection::choose_validators(&seed, site, &candidates, validators.len());
            expected.sort_unstable();
            if expected != validators {
                report.mismatches.push(Mismatch::new(
                    "selection",
                    json!({ "round": round.number, "website": site,
                            "expected": expected, "assigned": validators }),
                ));
            }
        }
    }
    Ok(())
}
