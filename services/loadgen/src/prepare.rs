//! The rounds the driver plays, prepared before the timed phase: their assignments
//! inserted (the scheduler's work, not the hub's) and every result signed ahead,
//! so that during the timed phase the driver only pushes dispatch jobs and sends
//! ready frames, and the two shared cores go to the hub.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Double, Text, Timestamptz};
use overlaps_shared::protocol::{CheckResult, CheckStatus, ValidatorMessage};
use overlaps_shared::signing::Keypair;
use tokio_tungstenite::tungstenite::Message;

use crate::BenchSites;

/// How far past a round's opening its deadline lies.
pub const DEADLINE_AFTER_MS: i64 = 30_000;

/// What to prepare.
pub struct RoundPlan<'a> {
    /// The first round's number; the others follow it.
    pub first_round: i64,
    /// How many rounds.
    pub rounds: u64,
    /// Seconds between two rounds' openings.
    pub round_seconds: u64,
    /// The server instance every assignment is routed to.
    pub instance: &'a str,
    /// The hub's id (signed into every result).
    pub hub_id: &'a str,
    /// The insert rate the schedule's start is estimated with (rows/s).
    pub insert_rows_per_s: f64,
}

/// One round's assignments, to dispatch at `opens_at`.
pub struct PreparedRound {
    /// The round's number.
    pub number: i64,
    /// When the round opens (its dispatch is pushed then).
    pub opens_at: DateTime<Utc>,
    /// Its assignments, in the order the hub will be told.
    pub assignment_ids: Vec<i64>,
}

/// Every round of the run, and the answer to each of its assignments, signed.
pub struct PreparedRounds {
    /// In order of opening.
    pub rounds: Vec<PreparedRound>,
    /// Assignment id → the `result` frame its validator sends.
    pub results: HashMap<i64, Message>,
    /// Time spent inserting assignments (and moving them, if the estimate was short).
    pub insert_time: Duration,
    /// Time spent signing and serializing the results.
    pub sign_time: Duration,
    /// Whether the schedule had to be moved later because preparation overran.
    pub shifted_by: Duration,
}

/// One inserted assignment, as the result signer needs it.
#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
}

/// Prepares `plan.rounds` rounds of every site for every validator: inserts the
/// rounds and assignments (due times spread over 80 % of each round, as the
/// scheduler spreads them) and signs each assignment's `up` result with its
/// validator's key, `checked_at_ms` at the due time (when the hub sends it).
pub fn prepare_rounds(
    conn: &mut PgConnection,
    plan: &RoundPlan<'_>,
    validators: &HashMap<i64, Keypair>,
    sites: &BenchSites,
) -> anyhow::Result<PreparedRounds> {
    let mut validator_ids: Vec<i64> = validators.keys().copied().collect();
    validator_ids.sort_unstable();
    let rows = plan.rounds as usize * validator_ids.len() * sites.ids.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sign_estimate = estimate_signing(rows, threads, plan.hub_id);
    // Start late enough for the insert at the planned rate, and move the schedule
    // if even that was short.
    let insert_estimate = Duration::from_secs_f64(rows as f64 / plan.insert_rows_per_s);
    let margin = Duration::from_secs(3);
    let start = Utc::now() + chrono::Duration::from_std(insert_estimate + sign_estimate + margin)?;

    let inserting = Instant::now();
    let mut inserted = Vec::with_capacity(rows);
    let mut rounds = Vec::with_capacity(plan.rounds as usize);
    let spread = plan.round_seconds as f64 * 0.8;
    for i in 0..plan.rounds {
        let number = plan.first_round + i as i64;
        let opens_at = start + chrono::Duration::seconds((i * plan.round_seconds) as i64);
        let batch = insert_round(
            conn,
            number,
            opens_at,
            spread,
            &validator_ids,
            sites,
            plan.instance,
        )?;
        rounds.push(PreparedRound {
            number,
            opens_at,
            assignment_ids: batch.iter().map(|a| a.id).collect(),
        });
        inserted.extend(batch);
    }
    let mut shifted_by = Duration::ZERO;
    let ready_by = Utc::now() + chrono::Duration::from_std(sign_estimate + margin)?;
    if ready_by > start {
        // Moving every row costs about what inserting it did.
        let by = (ready_by - start) + chrono::Duration::from_std(inserting.elapsed())?;
        // Whole milliseconds, so the rows move by exactly what the frames are signed for.
        let by = chrono::Duration::milliseconds(by.num_milliseconds() + 1);
        shift_rounds(conn, plan.first_round, plan.rounds, by)?;
        shifted_by = by.to_std()?;
        for round in &mut rounds {
            round.opens_at += by;
        }
        for a in &mut inserted {
            a.due_at += by;
        }
    }
    // A hub that has run longer than autovacuum's minute has statistics on what it
    // holds; without them, the planner takes the pending rows for a few hundred.
    diesel::sql_query("ANALYZE check_assignments, rounds").execute(conn)?;
    let insert_time = inserting.elapsed();

    let signing = Instant::now();
    let spec_hashes: HashMap<i64, String> = sites
        .ids
        .iter()
        .zip(&sites.spec_hashes)
        .map(|(id, hash)| (*id, hex::encode(hash)))
        .collect();
    let chunk = inserted.len().div_ceil(threads).max(1);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = inserted
            .chunks(chunk)
            .map(|part| {
                let spec_hashes = &spec_hashes;
                scope.spawn(move || sign_results(part, validators, spec_hashes, plan.hub_id))
            })
            .collect();
        let mut results = HashMap::with_capacity(rows);
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
            results.extend(part);
        }
        Ok::<_, anyhow::Error>(results)
    })?;
    Ok(PreparedRounds {
        rounds,
        results,
        insert_time,
        sign_time: signing.elapsed(),
        shifted_by,
    })
}

/// Signs and serializes the results of `assignments`.
fn sign_results(
    assignments: &[Inserted],
    validators: &HashMap<i64, Keypair>,
    spec_hashes: &HashMap<i64, String>,
    hub_id: &str,
) -> anyhow::Result<Vec<(i64, Message)>> {
    assignments
        .iter()
        .map(|a| {
            let key = validators
                .get(&a.validator_id)
                .ok_or_else(|| anyhow::anyhow!("no key for validator {}", a.validator_id))?;
            let spec_hash = spec_hashes
                .get(&a.website_id)
                .ok_or_else(|| anyhow::anyhow!("no spec hash for website {}", a.website_id))?;
            // Microseconds round up: the hub refuses a check that ended before it was due.
            let due_ms = (a.due_at.timestamp_micros() + 999).div_euclid(1000);
            let frame = result_frame(a.id, due_ms, spec_hash.clone(), hub_id, key)?;
            Ok((a.id, frame))
        })
        .collect()
}

/// The `result` frame of an `up` answer to `assignment_id`, signed with `key`.
pub fn result_frame(
    assignment_id: i64,
    checked_at_ms: i64,
    spec_hash: String,
    hub_id: &str,
    key: &Keypair,
) -> anyhow::Result<Message> {
    let result = CheckResult {
        assignment_id,
        status: CheckStatus::Up,
        http_status: Some(200),
        latency_ms: 12,
        failure: None,
        tls_expires_at_ms: None,
        checked_at_ms,
        spec_hash,
        signature: String::new(),
    }
    .sign(hub_id, key);
    Ok(Message::text(serde_json::to_string(
        &ValidatorMessage::Result(result),
    )?))
}

/// How long signing `rows` results on `threads` threads will take, from a sample,
/// with half as much again for the machine's swings.
fn estimate_signing(rows: usize, threads: usize, hub_id: &str) -> Duration {
    let key = Keypair::generate();
    let sample = 500;
    let started = Instant::now();
    for i in 0..sample {
        let _ = result_frame(i, 0, "00".repeat(32), hub_id, &key);
    }
    let per_row = started.elapsed().as_secs_f64() / sample as f64;
    Duration::from_secs_f64(per_row * rows as f64 / threads as f64 * 1.5)
}

/// Opens round `number` at `opens_at` and assigns every site to every validator.
fn insert_round(
    conn: &mut PgConnection,
    number: i64,
    opens_at: DateTime<Utc>,
    spread_seconds: f64,
    validators: &[i64],
    sites: &BenchSites,
    instance: &str,
) -> anyhow::Result<Vec<Inserted>> {
    let deadline = opens_at + chrono::Duration::milliseconds(DEADLINE_AFTER_MS);
    diesel::sql_query("INSERT INTO rounds (number, seed, deadline_at) VALUES ($1, $2, $3)")
        .bind::<BigInt, _>(number)
        .bind::<Bytea, _>(vec![0u8; 32])
        .bind::<Timestamptz, _>(deadline)
        .execute(conn)?;
    Ok(diesel::sql_query(
        "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, spec_hash) \
         SELECT $1, w.id, v.id, $2, $8 + random() * make_interval(secs => $6), $3, w.spec_hash \
         FROM unnest($4::bigint[]) AS v(id) CROSS JOIN unnest($5::bigint[], $7::bytea[]) AS w(id, spec_hash) \
         RETURNING id, validator_id, website_id, due_at",
    )
    .bind::<BigInt, _>(number)
    .bind::<Text, _>(instance)
    .bind::<Timestamptz, _>(deadline)
    .bind::<Array<BigInt>, _>(validators)
    .bind::<Array<BigInt>, _>(&sites.ids)
    .bind::<Double, _>(spread_seconds)
    .bind::<Array<Bytea>, _>(&sites.spec_hashes)
    .bind::<Timestamptz, _>(opens_at)
    .load::<Inserted>(conn)?)
}

/// Moves rounds `first..first + count` and their assignments `by` later.
fn shift_rounds(
    conn: &mut PgConnection,
    first: i64,
    count: u64,
    by: chrono::Duration,
) -> anyhow::Result<()> {
    let last = first + count as i64 - 1;
    let by_seconds = by.num_milliseconds() as f64 / 1000.0;
    diesel::sql_query(
        "UPDATE rounds SET deadline_at = deadline_at + make_interval(secs => $3) \
         WHERE number BETWEEN $1 AND $2",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .bind::<Double, _>(by_seconds)
    .execute(conn)?;
    diesel::sql_query(
        "UPDATE check_assignments SET due_at = due_at + make_interval(secs => $3), \
                deadline_at = deadline_at + make_interval(secs => $3) \
         WHERE round_number BETWEEN $1 AND $2",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .bind::<Double, _>(by_seconds)
    .execute(conn)?;
    Ok(())
}
