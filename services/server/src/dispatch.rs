//! Pushing assignments to validators: the `dispatch` job consumer, and the sweep
//! that records assignments nobody answered in time as missed.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int4, Nullable, Text, Timestamptz};
use overlaps_shared::jobs::{self, Dispatch};
use overlaps_shared::protocol::{HubMessage, ValidateRequest};
use overlaps_shared::site_check::SiteCheck;
use tracing::Instrument;

use crate::hub::{Frame, Hub};

#[derive(QueryableByName)]
struct PendingCheck {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    deadline_at: DateTime<Utc>,
    /// The site's check (a canary's URL, keyword and timeout with default assertions).
    #[diesel(embed)]
    check: SiteCheck,
    /// What the scheduler recorded when it opened the round.
    #[diesel(sql_type = Nullable<Bytea>)]
    spec_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Int4>)]
    max_response_ms: Option<i32>,
}

impl PendingCheck {
    /// The `validate` message for this check (its spec is what the result signs).
    fn request(&self, round: i64) -> ValidateRequest {
        self.check
            .request(self.id, round, self.deadline_at.timestamp_millis())
    }
}

/// Assignments whose recorded spec hash or limit is not that of the check about to
/// be sent: the site changed after its round opened (or the row was written without
/// them). Their record is brought in line before anything is sent, so ingest always
/// compares a result with the check its validator received.
fn stale_specs(checks: &[PendingCheck]) -> (Vec<i64>, Vec<Vec<u8>>, Vec<Option<i32>>) {
    let mut stale = (Vec::new(), Vec::new(), Vec::new());
    for c in checks {
        let spec = c.check.recorded();
        if c.spec_hash.as_deref() != Some(&spec.hash[..])
            || c.max_response_ms != spec.max_response_ms
        {
            stale.0.push(c.id);
            stale.1.push(spec.hash.to_vec());
            stale.2.push(spec.max_response_ms);
        }
    }
    stale
}

/// Consumes this instance's `dispatch` queue until the process stops; a worker
/// that fails (Redis gone, say) is rebuilt after a pause.
pub async fn run_worker(hub: Arc<Hub>) {
    let kind = format!("dispatch-{}", hub.config.instance_id);
    jobs::keep_running(&kind, || {
        let storage = jobs::dispatch_consumer(
            hub.infra.redis.clone(),
            &hub.infra.keys,
            &hub.config.instance_id,
        );
        WorkerBuilder::new(jobs::worker_name(&kind))
            .backend(storage)
            .data(Arc::clone(&hub))
            .build(dispatch)
            .run()
    })
    .await;
}

/// Sends each pending assignment of the job to its validator at its due time (the
/// scheduler spreads a round's checks so they do not all run at once). Assignments
/// whose validator is not connected here are recorded as missed. The job returns once
/// the sends are scheduled; running it twice sends nothing for assignments already
/// answered or missed.
#[tracing::instrument(skip_all, fields(round = job.round, assignments = job.assignment_ids.len()))]
pub async fn dispatch(job: Dispatch, hub: Data<Arc<Hub>>) -> Result<(), BoxDynError> {
    let ids = job.assignment_ids.clone();
    let instance = hub.config.instance_id.clone();
    let checks: Vec<PendingCheck> = hub
        .infra
        .db
        .run(move |conn| {
            Ok(diesel::sql_query(
                "SELECT a.id, a.validator_id, a.due_at, a.deadline_at, \
                        COALESCE(c.url, w.url) AS url, w.method, COALESCE(c.timeout_ms, w.timeout_ms) AS timeout_ms, \
                        CASE WHEN c.assignment_id IS NULL THEN w.keyword ELSE c.keyword END AS keyword, \
                        CASE WHEN c.assignment_id IS NULL THEN w.assertions ELSE '{}'::jsonb END AS assertions, \
                        a.spec_hash, a.max_response_ms \
                 FROM check_assignments a JOIN websites w ON w.id = a.website_id \
                 LEFT JOIN canary_assignments c ON c.assignment_id = a.id \
                 WHERE a.id = ANY($1) AND a.state = 'pending' AND a.server_instance = $2 \
                 ORDER BY a.due_at",
            )
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Text, _>(&instance)
            .load(conn)?)
        })
        .await?;
    let round = job.round;
    // What each result must sign is recorded before anything is sent: ingest refuses
    // a result whose spec hash differs, and a degraded one under this limit. The
    // scheduler recorded it at the round's opening; only a site edited since (rare)
    // costs a write here.
    let (ids, hashes, limits) = stale_specs(&checks);
    if !ids.is_empty() {
        tracing::debug!(
            stale = ids.len(),
            "recording the specs of sites changed since the round opened"
        );
        hub.infra
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "UPDATE check_assignments a SET spec_hash = s.spec_hash, max_response_ms = s.max_response_ms \
                     FROM unnest($1::bigint[], $2::bytea[], $3::int[]) AS s(id, spec_hash, max_response_ms) \
                     WHERE a.id = s.id AND a.state = 'pending'",
                )
                .bind::<Array<BigInt>, _>(&ids)
                .bind::<Array<Bytea>, _>(&hashes)
                .bind::<Array<Nullable<Int4>>, _>(&limits)
                .execute(conn)?)
            })
            .await?;
    }
    let hub = Arc::clone(&hub);
    tokio::spawn(
        send_when_due(hub, round, checks).instrument(tracing::info_span!("dispatch_sends", round)),
    );
    Ok(())
}

/// How often assignments found undeliverable are written as missed.
const MISSED_FLUSH: Duration = Duration::from_millis(250);

async fn send_when_due(hub: Arc<Hub>, round: i64, checks: Vec<PendingCheck>) {
    let mut undeliverable = Vec::new();
    let mut flushed_at = tokio::time::Instant::now();
    let (mut sent, mut missed) = (0usize, 0usize);
    for check in checks {
        if let Ok(wait) = (check.due_at - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let validator_id = check.validator_id;
        let id = check.id;
        let request = Frame::of(&HubMessage::Validate(check.request(round)));
        // A full outbox means the validator is not keeping up: count it as missed
        // rather than queue without bound.
        let delivered = hub
            .sessions
            .outbox(validator_id)
            .is_some_and(|outbox| outbox.try_send(request).is_ok());
        if delivered {
            sent += 1;
        } else {
            undeliverable.push(id);
        }
        if !undeliverable.is_empty() && flushed_at.elapsed() >= MISSED_FLUSH {
            missed += flush_missed(&hub, std::mem::take(&mut undeliverable)).await;
            flushed_at = tokio::time::Instant::now();
        }
    }
    missed += flush_missed(&hub, undeliverable).await;
    tracing::debug!(sent, missed, "dispatched");
}

async fn flush_missed(hub: &Hub, ids: Vec<i64>) -> usize {
    if ids.is_empty() {
        return 0;
    }
    match hub.infra.db.run(move |conn| mark_missed(conn, &ids)).await {
        Ok(missed) => missed,
        Err(err) => {
            // The deadline sweep records them later anyway.
            tracing::warn!(error = %err, "could not record undeliverable assignments");
            0
        }
    }
}

/// Records the given pending assignments as missed.
fn mark_missed(conn: &mut PgConnection, ids: &[i64]) -> overlaps_shared::Result<usize> {
    Ok(diesel::sql_query(
        "UPDATE check_assignments SET state = 'missed' WHERE id = ANY($1) AND state = 'pending'",
    )
    .bind::<Array<BigInt>, _>(ids)
    .execute(conn)?)
}

/// Every second, records this instance's pending assignments past their deadline
/// as missed, so nothing waits forever.
pub async fn sweep_expired(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let instance = hub.config.instance_id.clone();
        let swept = hub
            .infra
            .db
            .run(move |conn| {
                Ok(diesel::sql_query(
                    "UPDATE check_assignments SET state = 'missed' \
                     WHERE server_instance = $1 AND state = 'pending' AND deadline_at <= now()",
                )
                .bind::<Text, _>(&instance)
                .execute(conn)?)
            })
            .await;
        match swept {
            Ok(0) => {}
            Ok(missed) => {
                tracing::info!(missed, "assignments past their deadline recorded as missed")
            }
            Err(err) => tracing::warn!(error = %err, "deadline sweep failed"),
        }
    }
}
