//! Stores validators' results in batches, and acknowledges each one only after its
//! batch has committed.
//!
//! Each batch's signatures are checked first, strictly and one by one, on the
//! blocking threads and every core ([`signatures`]): a result that does not verify
//! is refused `bad_signature` and never reaches the store.
//!
//! One transaction per batch: the assignments move from `pending` to `answered`
//! (only if they belong to the sender, are still pending and before their deadline)
//! and the ticks of exactly those are written with COPY. That state change is what
//! makes a resent result land once. Refused results are classified afterwards so
//! each gets a precise error, and a resend of a stored result is acknowledged again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Int4, Nullable, Text, Timestamptz};
use overlaps_shared::db::Database;
use overlaps_shared::models::Tick;
use overlaps_shared::protocol::{CheckResult, CheckStatus, ErrorCode};
use overlaps_shared::schema::ticks;
use overlaps_shared::signing::PublicKey;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::IngestSettings;

mod signatures;

use signatures::SignedResult;

/// What became of one submitted result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (now or by an earlier identical submission): acknowledge it.
    Stored,
    /// Refused for good.
    Refused(ErrorCode, String),
    /// Not stored because of a hub-side failure: the validator should resend.
    Unavailable,
}

/// A result waiting to be checked and written.
#[derive(Debug)]
struct Submission {
    validator_id: i64,
    /// The key bound to the sender's socket.
    key: PublicKey,
    result: CheckResult,
    signature: [u8; 64],
    reply: oneshot::Sender<Outcome>,
}

/// The handle connections submit results through.
#[derive(Clone, Debug)]
pub struct Ingest {
    queue: mpsc::Sender<Submission>,
}

impl Ingest {
    /// Starts the batching task for results signed for `hub_id`; it runs until
    /// every handle is dropped.
    pub fn start(db: Database, settings: IngestSettings, hub_id: String) -> Self {
        let (queue, receiver) = mpsc::channel(settings.batch_max.max(1) * 4);
        tokio::spawn(collect_batches(db, settings, hub_id.into(), receiver));
        Ingest { queue }
    }

    /// Submits a result of the validator whose socket is bound to `key`; its
    /// signature is checked with its batch. Resolves once it is settled.
    pub async fn submit(
        &self,
        validator_id: i64,
        key: PublicKey,
        result: CheckResult,
        signature: [u8; 64],
    ) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let submission = Submission {
            validator_id,
            key,
            result,
            signature,
            reply,
        };
        if self.queue.send(submission).await.is_err() {
            return Outcome::Unavailable;
        }
        outcome.await.unwrap_or(Outcome::Unavailable)
    }
}

async fn collect_batches(
    db: Database,
    settings: IngestSettings,
    hub_id: Arc<str>,
    mut receiver: mpsc::Receiver<Submission>,
) {
    let writers = Arc::new(Semaphore::new(settings.writers));
    let skew = settings.clock_skew;
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let fill_until = tokio::time::Instant::now() + settings.batch_wait;
        while batch.len() < settings.batch_max {
            // Take what is already queued without waiting, then wait a little for more.
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => match tokio::time::timeout_at(fill_until, receiver.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    _ => break,
                },
            }
        }
        let Ok(permit) = writers.clone().acquire_owned().await else {
            break;
        };
        let (db, hub_id) = (db.clone(), Arc::clone(&hub_id));
        tokio::spawn(async move {
            let batch = refuse_bad_signatures(hub_id, batch).await;
            if !batch.is_empty() {
                write_and_reply(&db, batch, skew).await;
            }
            drop(permit);
        });
    }
}

/// Checks every signature of `batch` on blocking threads; answers those that do
/// not verify `bad_signature` and returns the rest.
async fn refuse_bad_signatures(hub_id: Arc<str>, batch: Vec<Submission>) -> Vec<Submission> {
    let checked = tokio::task::spawn_blocking(move || {
        let results: Vec<SignedResult<'_>> = batch
            .iter()
            .map(|s| SignedResult {
                key: &s.key,
                result: &s.result,
                signature: &s.signature,
            })
            .collect();
        let verdicts = signatures::verify_all(&hub_id, &results);
        (batch, verdicts)
    })
    .await;
    let (batch, verdicts) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            // The batch went down with its thread; its replies are dropped, which
            // tells each sender to resend (`Outcome::Unavailable`).
            tracing::error!(error = %err, "checking signatures failed; validators will resend");
            return Vec::new();
        }
    };
    let mut valid = Vec::with_capacity(batch.len());
    for (submission, verdict) in batch.into_iter().zip(verdicts) {
        match verdict {
            Ok(()) => valid.push(submission),
            Err(err) => {
                let _ = submission
                    .reply
                    .send(Outcome::Refused(ErrorCode::BadSignature, err.to_string()));
            }
        }
    }
    valid
}

async fn write_and_reply(db: &Database, batch: Vec<Submission>, skew: chrono::Duration) {
    let rows: Vec<ResultRow> = batch.iter().map(ResultRow::from).collect();
    let size = rows.len();
    let outcomes = db
        .run(move |conn| Ok(store_isolating_failures(conn, &rows, skew, &store_batch)))
        .await;
    match outcomes {
        Ok((outcomes, per_round)) => {
            crate::metrics::results_stored(per_round);
            for (submission, outcome) in batch.into_iter().zip(outcomes) {
                let _ = submission.reply.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, batch = size, "storing results failed; validators will resend");
            for submission in batch {
                let _ = submission.reply.send(Outcome::Unavailable);
            }
        }
    }
}

/// What became of each result of a batch, and how many ticks it wrote per round.
type Stored = (Vec<Outcome>, BTreeMap<i64, u64>);

/// One way of storing a batch on a `C` (the real one is [`store_batch`] on a connection).
type StoreFn<'a, C> =
    dyn Fn(&mut C, &[ResultRow], chrono::Duration) -> overlaps_shared::Result<Stored> + 'a;

/// Stores `rows` with `store`; when a batch fails on its data (not the
/// connection), its halves are stored apart, down to single rows, so one row the
/// store refuses costs only its sender: it is refused `invalid_result`, and every
/// other result of the batch is stored as if it had been alone.
fn store_isolating_failures<C>(
    conn: &mut C,
    rows: &[ResultRow],
    skew: chrono::Duration,
    store: &StoreFn<'_, C>,
) -> Stored {
    match store(conn, rows, skew) {
        Ok(stored) => stored,
        Err(err) if rows.len() > 1 && is_data_error(&err) => {
            let (first, second) = rows.split_at(rows.len() / 2);
            let (mut outcomes, mut per_round) = store_isolating_failures(conn, first, skew, store);
            let (more, rounds) = store_isolating_failures(conn, second, skew, store);
            outcomes.extend(more);
            for (round, n) in rounds {
                *per_round.entry(round).or_default() += n;
            }
            (outcomes, per_round)
        }
        Err(err) if is_data_error(&err) => {
            tracing::warn!(error = %err, validator_id = rows[0].validator_id,
                assignment_id = rows[0].result.assignment_id, "the store refused one result");
            let refused = Outcome::Refused(
                ErrorCode::InvalidResult,
                "the hub cannot store this result".into(),
            );
            (vec![refused], BTreeMap::new())
        }
        Err(err) => {
            tracing::error!(error = %err, batch = rows.len(), "storing results failed; validators will resend");
            (vec![Outcome::Unavailable; rows.len()], BTreeMap::new())
        }
    }
}

/// Whether `err` is about the rows (a value or constraint the store refuses)
/// rather than about reaching the database.
fn is_data_error(err: &overlaps_shared::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as Diesel};
    match err {
        overlaps_shared::Error::Database(Diesel::DatabaseError(kind, _)) => !matches!(
            kind,
            DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ReadOnlyTransaction
        ),
        overlaps_shared::Error::Database(Diesel::SerializationError(_)) => true,
        _ => false,
    }
}

/// The part of a submission the blocking writer needs.
#[derive(Debug, Clone)]
struct ResultRow {
    validator_id: i64,
    result: CheckResult,
    signature: [u8; 64],
}

impl From<&Submission> for ResultRow {
    fn from(s: &Submission) -> Self {
        ResultRow {
            validator_id: s.validator_id,
            result: s.result.clone(),
            signature: s.signature,
        }
    }
}

#[derive(QueryableByName)]
struct Answered {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
}

#[derive(QueryableByName)]
struct AssignmentState {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Bool)]
    past_deadline: bool,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Bytea>)]
    signature: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    spec_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Int4>)]
    max_response_ms: Option<i32>,
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Writes one batch in one transaction and says what became of each result, and
/// how many ticks it wrote per round.
fn store_batch(
    conn: &mut PgConnection,
    rows: &[ResultRow],
    skew: chrono::Duration,
) -> overlaps_shared::Result<Stored> {
    let ids: Vec<i64> = rows.iter().map(|r| r.result.assignment_id).collect();
    let validators: Vec<i64> = rows.iter().map(|r| r.validator_id).collect();
    let mut per_round: BTreeMap<i64, u64> = BTreeMap::new();
    // A check cannot start before its assignment was due (sent at that time).
    let latest_due: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|r| millis(r.result.checked_at_ms).unwrap_or_default() + skew)
        .collect();
    let spec_hashes: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| r.result.spec_hash_bytes().unwrap_or_default().to_vec())
        .collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.result.status.as_str()).collect();
    let latencies: Vec<i32> = rows
        .iter()
        .map(|r| i32::try_from(r.result.latency_ms).unwrap_or(i32::MAX))
        .collect();
    // The first submission in the batch for an assignment is the one stored.
    let mut first_index: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        first_index.entry(r.result.assignment_id).or_insert(i);
    }
    let stored: HashMap<i64, usize> = conn.transaction(|conn| {
        let answered: Vec<Answered> = diesel::sql_query(
            "UPDATE check_assignments a SET state = 'answered', answered_at = now() \
             FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::bytea[], $5::text[], $6::int[]) \
                  AS r(id, validator_id, latest_due, spec_hash, status, latency_ms) \
             WHERE a.id = r.id AND a.validator_id = r.validator_id \
               AND a.state = 'pending' AND a.deadline_at > now() AND a.due_at <= r.latest_due \
               AND a.spec_hash = r.spec_hash \
               AND (r.status <> 'degraded' OR r.latency_ms > a.max_response_ms) \
               AND (r.status <> 'up' OR a.max_response_ms IS NULL OR r.latency_ms <= a.max_response_ms) \
             RETURNING a.id, a.round_number, a.website_id",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<BigInt>, _>(&validators)
        .bind::<Array<Timestamptz>, _>(&latest_due)
        .bind::<Array<Bytea>, _>(&spec_hashes)
        .bind::<Array<Text>, _>(&statuses)
        .bind::<Array<Int4>, _>(&latencies)
        .load(conn)?;
        let received_at = Utc::now();
        let mut stored = HashMap::with_capacity(answered.len());
        let mut ticks_rows = Vec::with_capacity(answered.len());
        for a in answered {
            let Some(&index) = first_index.get(&a.id) else {
                continue;
            };
            let row = &rows[index];
            let r = &row.result;
            ticks_rows.push(Tick {
                assignment_id: a.id,
                round_number: a.round_number,
                website_id: a.website_id,
                validator_id: row.validator_id,
                status: r.status.as_str().to_owned(),
                http_status: r.http_status.and_then(|s| i16::try_from(s).ok()),
                latency_ms: i32::try_from(r.latency_ms).unwrap_or(i32::MAX),
                failure: r.failure.map(|f| f.as_str().to_owned()),
                tls_expires_at: r.tls_expires_at_ms.and_then(millis),
                checked_at: millis(r.checked_at_ms).unwrap_or(received_at),
                received_at,
                signature: row.signature.to_vec(),
                protocol_version: 2,
                spec_hash: r.spec_hash_bytes().map(|h| h.to_vec()),
            });
            stored.insert(a.id, index);
            *per_round.entry(a.round_number).or_default() += 1;
        }
        if !ticks_rows.is_empty() {
            diesel::copy_from(ticks::table)
                .from_insertable(&ticks_rows)
                .execute(conn)?;
        }
        Ok::<_, overlaps_shared::Error>(stored)
    })?;

    let refused: Vec<i64> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| stored.get(&r.result.assignment_id) != Some(i))
        .map(|(_, r)| r.result.assignment_id)
        .collect();
    let states: HashMap<i64, AssignmentState> = if refused.is_empty() {
        HashMap::new()
    } else {
        diesel::sql_query(
            "SELECT a.id, a.validator_id, a.state, a.deadline_at <= now() AS past_deadline, \
                    a.due_at, t.signature, a.spec_hash, a.max_response_ms \
             FROM check_assignments a LEFT JOIN ticks t ON t.assignment_id = a.id \
             WHERE a.id = ANY($1)",
        )
        .bind::<Array<BigInt>, _>(&refused)
        .load::<AssignmentState>(conn)?
        .into_iter()
        .map(|s| (s.id, s))
        .collect()
    };

    let outcomes = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let id = row.result.assignment_id;
            if stored.get(&id) == Some(&i) {
                return Outcome::Stored;
            }
            classify(row, states.get(&id), skew)
        })
        .collect();
    Ok((outcomes, per_round))
}

/// Why a result was not stored by this batch.
fn classify(row: &ResultRow, state: Option<&AssignmentState>, skew: chrono::Duration) -> Outcome {
    let id = row.result.assignment_id;
    let Some(state) = state else {
        return Outcome::Refused(ErrorCode::UnknownAssignment, format!("no assignment {id}"));
    };
    if state.validator_id != row.validator_id {
        return Outcome::Refused(
            ErrorCode::NotYourAssignment,
            format!("assignment {id} belongs to another validator"),
        );
    }
    match state.state.as_str() {
        "answered" if state.signature.as_deref() == Some(&row.signature[..]) => Outcome::Stored,
        "answered" => Outcome::Refused(
            ErrorCode::AlreadyAnswered,
            format!("assignment {id} already has a different result"),
        ),
        "missed" => Outcome::Refused(
            ErrorCode::DeadlinePassed,
            format!("assignment {id} was released as missed"),
        ),
        _ if state.past_deadline => Outcome::Refused(
            ErrorCode::DeadlinePassed,
            format!("assignment {id} is past its deadline"),
        ),
        _ if millis(row.result.checked_at_ms).is_none_or(|at| at + skew < state.due_at) => {
            Outcome::Refused(
                ErrorCode::InvalidResult,
                format!("checked_at_ms is before assignment {id} was sent"),
            )
        }
        _ if row.result.spec_hash_bytes().map(|h| h.to_vec()) != state.spec_hash => {
            Outcome::Refused(
                ErrorCode::InvalidResult,
                format!("spec_hash is not the hash of the check sent with assignment {id}"),
            )
        }
        _ if contradicts_limit(&row.result, state.max_response_ms) => Outcome::Refused(
            ErrorCode::InvalidResult,
            format!(
                "{} with latency_ms {} contradicts the limit of assignment {id} ({})",
                row.result.status.as_str(),
                row.result.latency_ms,
                state
                    .max_response_ms
                    .map_or_else(|| "none".to_owned(), |ms| format!("{ms} ms")),
            ),
        ),
        // Pending and in time, yet not updated: a concurrent batch holds it. Retry.
        _ => Outcome::Unavailable,
    }
}

/// Whether a result's status contradicts the assignment's response-time limit:
/// `degraded` needs a latency over it, `up` one within it.
fn contradicts_limit(result: &CheckResult, limit: Option<i32>) -> bool {
    let latency = i64::from(result.latency_ms);
    match (result.status, limit) {
        (CheckStatus::Degraded, None) => true,
        (CheckStatus::Degraded, Some(limit)) => latency <= i64::from(limit),
        (CheckStatus::Up, Some(limit)) => latency > i64::from(limit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use diesel::result::{DatabaseErrorKind, Error as Diesel};
    use overlaps_shared::protocol::{CheckResult, CheckStatus};

    use super::*;

    fn row(id: i64) -> ResultRow {
        ResultRow {
            validator_id: id * 10,
            result: CheckResult {
                assignment_id: id,
                status: CheckStatus::Up,
                http_status: Some(200),
                latency_ms: 1,
                failure: None,
                tls_expires_at_ms: None,
                checked_at_ms: 0,
                spec_hash: String::new(),
                signature: String::new(),
            },
            signature: [0; 64],
        }
    }

    fn failure(kind: DatabaseErrorKind) -> overlaps_shared::Error {
        overlaps_shared::Error::Database(Diesel::DatabaseError(
            kind,
            Box::new("refused".to_owned()),
        ))
    }

    #[test]
    fn one_row_the_store_refuses_costs_only_its_sender() {
        let rows: Vec<ResultRow> = (1..=9).map(row).collect();
        let calls = Cell::new(0);
        // A store that refuses any batch holding assignment 5 (as PostgreSQL did for
        // an unstorable time: the whole COPY failed).
        let store = |_: &mut (), batch: &[ResultRow], _: chrono::Duration| {
            calls.set(calls.get() + 1);
            if batch.iter().any(|r| r.result.assignment_id == 5) {
                Err(failure(DatabaseErrorKind::CheckViolation))
            } else {
                Ok((
                    vec![Outcome::Stored; batch.len()],
                    BTreeMap::from([(1, batch.len() as u64)]),
                ))
            }
        };
        let (outcomes, per_round) =
            store_isolating_failures(&mut (), &rows, chrono::Duration::zero(), &store);
        assert_eq!(outcomes.len(), 9);
        assert_eq!(
            per_round,
            BTreeMap::from([(1, 8)]),
            "eight ticks written in all"
        );
        for (row, outcome) in rows.iter().zip(&outcomes) {
            if row.result.assignment_id == 5 {
                assert!(
                    matches!(outcome, Outcome::Refused(ErrorCode::InvalidResult, _)),
                    "{outcome:?}"
                );
            } else {
                assert_eq!(
                    outcome,
                    &Outcome::Stored,
                    "assignment {}",
                    row.result.assignment_id
                );
            }
        }
        // Halving finds it in about 2·log2(9) tries, not one per row.
        assert!(calls.get() <= 9, "{} tries", calls.get());
    }

    #[test]
    fn a_lost_connection_is_not_split_and_everyone_resends() {
        let rows: Vec<ResultRow> = (1..=4).map(row).collect();
        let calls = Cell::new(0);
        let store = |_: &mut (), _: &[ResultRow], _: chrono::Duration| {
            calls.set(calls.get() + 1);
            Err(failure(DatabaseErrorKind::ClosedConnection))
        };
        let (outcomes, _) =
            store_isolating_failures(&mut (), &rows, chrono::Duration::zero(), &store);
        assert_eq!(outcomes, vec![Outcome::Unavailable; 4]);
        assert_eq!(calls.get(), 1);
    }
}
