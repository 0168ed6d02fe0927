//! Settling a round's canaries when it closes: the round's canary key is revealed
//! (stored in `rounds.canary_key`, public from then on), each canary answer is
//! judged against the mode its key gave, and a wrong one forfeits what its
//! validator earned in the eon so far and a share of its reputation.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text};
use overlaps_shared::canary::{self, CanaryMode, CanaryOutcome};

use crate::close::CloseError;

/// A round's canaries as judged at its close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryTally {
    /// Per validator: canaries passed, failed, missed.
    pub by_validator: BTreeMap<i64, (i64, i64, i64)>,
}

impl CanaryTally {
    /// Canaries `validator` answered rightly.
    pub fn passed(&self, validator: i64) -> i64 {
        self.by_validator.get(&validator).map_or(0, |t| t.0)
    }

    /// Canaries `validator` answered wrongly.
    pub fn failed(&self, validator: i64) -> i64 {
        self.by_validator.get(&validator).map_or(0, |t| t.1)
    }

    /// Canaries `validator` did not answer.
    pub fn missed(&self, validator: i64) -> i64 {
        self.by_validator.get(&validator).map_or(0, |t| t.2)
    }
}

#[derive(QueryableByName)]
struct ChainRow {
    #[diesel(sql_type = BigInt)]
    first_round: i64,
    #[diesel(sql_type = Int4)]
    rounds: i32,
    #[diesel(sql_type = Bytea)]
    anchor: Vec<u8>,
}

#[derive(QueryableByName)]
struct CanaryAnswer {
    #[diesel(sql_type = BigInt)]
    assignment_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

#[derive(QueryableByName)]
struct Amount {
    #[diesel(sql_type = Text)]
    amount: String,
}

/// The id of the canary website row, if canaries ever ran.
pub fn canary_site(conn: &mut PgConnection) -> QueryResult<Option<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    Ok(diesel::sql_query("SELECT id FROM websites WHERE canary")
        .get_result::<Id>(conn)
        .optional()?
        .map(|s| s.id))
}

/// Reveals `round`'s canary key (when a chain governs it) and judges its canary
/// answers. Called inside the closing transaction, after pending assignments
/// became missed.
pub fn reveal_and_judge(conn: &mut PgConnection, round: i64) -> Result<CanaryTally, CloseError> {
    let chain = diesel::sql_query(
        "SELECT first_round, rounds, anchor FROM canary_chains \
         WHERE first_round <= $1 AND first_round + rounds > $1",
    )
    .bind::<BigInt, _>(round)
    .get_result::<ChainRow>(conn)
    .optional()?;
    if let Some(chain) = chain {
        let anchor: [u8; 32] = chain.anchor.as_slice().try_into().map_err(|_| {
            diesel::result::Error::DeserializationError("a canary anchor is not 32 bytes".into())
        })?;
        let index = u32::try_from(round - chain.first_round).unwrap_or(u32::MAX);
        if let Some(key) =
            canary::round_key(&anchor, u32::try_from(chain.rounds).unwrap_or(0), index)
        {
            diesel::sql_query("UPDATE rounds SET canary_key = $2 WHERE number = $1")
                .bind::<BigInt, _>(round)
                .bind::<Bytea, _>(key.to_vec())
                .execute(conn)?;
        }
    }
    let answers: Vec<CanaryAnswer> = diesel::sql_query(
        "SELECT c.assignment_id, c.validator_id, c.mode, t.status \
         FROM canary_assignments c LEFT JOIN ticks t ON t.assignment_id = c.assignment_id \
         WHERE c.round_number = $1 ORDER BY c.assignment_id",
    )
    .bind::<BigInt, _>(round)
    .load(conn)?;
    let mut tally = CanaryTally::default();
    let (mut ids, mut outcomes) = (
        Vec::with_capacity(answers.len()),
        Vec::with_capacity(answers.len()),
    );
    for answer in answers {
        let mode = CanaryMode::parse(&answer.mode).ok_or_else(|| {
            diesel::result::Error::DeserializationError("an unknown canary mode".into())
        })?;
        let outcome = canary::judge(mode, answer.status.as_deref());
        let counts = tally.by_validator.entry(answer.validator_id).or_default();
        match outcome {
            CanaryOutcome::Passed => counts.0 += 1,
            CanaryOutcome::Failed => counts.1 += 1,
            CanaryOutcome::Missed => counts.2 += 1,
        }
        ids.push(answer.assignment_id);
        outcomes.push(outcome.as_str());
    }
    // One statement for the round's canaries, however many there are.
    diesel::sql_query(
        "UPDATE canary_assignments c SET outcome = v.outcome \
         FROM unnest($1::bigint[], $2::text[]) AS v(id, outcome) WHERE c.assignment_id = v.id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Text>, _>(&outcomes)
    .execute(conn)?;
    Ok(tally)
}

/// Takes back what `validator` was credited from the first round of the eon that
/// is not committed yet through `round` (this round's credit included), records
/// it on the failed canary, and returns it (an integer amount, as text).
///
/// Holds the eon-boundary lock for the rest of the transaction, so an eon cannot
/// commit credits this takes back.
pub fn forfeit(conn: &mut PgConnection, round: i64, validator: i64) -> Result<String, CloseError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(overlaps_shared::db::EON_BOUNDARY_LOCK)
        .execute(conn)?;
    let forfeited = diesel::sql_query(
        "WITH first AS (SELECT COALESCE(max(last_round), 0) + 1 AS round FROM eons), \
              taken AS (SELECT c.round_number, c.amount FROM validator_credits c, first \
                        WHERE c.validator_id = $1 AND c.round_number BETWEEN first.round AND $2 FOR UPDATE OF c), \
              zeroed AS (UPDATE validator_credits c SET amount = 0 FROM taken \
                         WHERE c.validator_id = $1 AND c.round_number = taken.round_number RETURNING taken.amount) \
         SELECT COALESCE(sum(amount), 0)::text AS amount FROM zeroed",
    )
    .bind::<BigInt, _>(validator)
    .bind::<BigInt, _>(round)
    .get_result::<Amount>(conn)?
    .amount;
    diesel::sql_query("UPDATE validators SET credited = credited - $2::numeric WHERE id = $1")
        .bind::<BigInt, _>(validator)
        .bind::<Text, _>(&forfeited)
        .execute(conn)?;
    diesel::sql_query(
        "UPDATE canary_assignments SET forfeited = $3::numeric \
         WHERE round_number = $1 AND validator_id = $2 AND outcome = 'failed'",
    )
    .bind::<BigInt, _>(round)
    .bind::<BigInt, _>(validator)
    .bind::<Text, _>(&forfeited)
    .execute(conn)?;
    Ok(forfeited)
}
