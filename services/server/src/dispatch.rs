//! Pushing assignments to validators: the `dispatch` job consumer, and the sweep
//! that records assignments nobody answered in time as missed.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz};
use overlaps_shared::jobs::{self, Dispatch};
use overlaps_shared::protocol::{HubMessage, ValidateRequest};

use crate::hub::Hub;

#[derive(QueryableByName)]
struct PendingCheck {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Timestamptz)]
    deadline_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Int4)]
    timeout_ms: i32,
    #[diesel(sql_type = Nullable<Text>)]
    keyword: Option<String>,
}

/// Consumes this instance's `dispatch` queue until the process stops; a worker
/// that fails (Redis gone, say) is rebuilt after a pause.
pub async fn run_worker(hub: Arc<Hub>) {
    loop {
        let storage = jobs::dispatch_consumer(
            hub.infra.redis.clone(),
            &hub.infra.keys,
            &hub.config.instance_id,
        );
        // A unique name per start: a restarted instance must not wait for its dead
        // predecessor's worker registration to expire.
        let name = format!(
            "dispatch-{}-{}",
            hub.config.instance_id,
            uuid::Uuid::new_v4().simple()
        );
        let worker = WorkerBuilder::new(name)
            .backend(storage)
            .data(Arc::clone(&hub))
            .build(dispatch);
        match worker.run().await {
            Ok(()) => return,
            Err(err) => tracing::error!(error = %err, "dispatch worker failed; restarting in 1 s"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sends each pending assignment of the job to its validator, if connected here;
/// the others are recorded as missed at once. Running it twice sends nothing new
/// for assignments already answered or missed.
#[tracing::instrument(skip_all, fields(round = job.round, assignments = job.assignment_ids.len()))]
pub async fn dispatch(job: Dispatch, hub: Data<Arc<Hub>>) -> Result<(), BoxDynError> {
    let ids = job.assignment_ids.clone();
    let instance = hub.config.instance_id.clone();
    let checks: Vec<PendingCheck> = hub
        .infra
        .db
        .run(move |conn| {
            Ok(diesel::sql_query(
                "SELECT a.id, a.validator_id, a.deadline_at, w.url, w.method, w.timeout_ms, w.keyword \
                 FROM check_assignments a JOIN websites w ON w.id = a.website_id \
                 WHERE a.id = ANY($1) AND a.state = 'pending' AND a.server_instance = $2",
            )
            .bind::<Array<BigInt>, _>(&ids)
            .bind::<Text, _>(&instance)
            .load(conn)?)
        })
        .await?;
    let mut undeliverable = Vec::new();
    let mut sent = 0usize;
    for check in checks {
        let request = HubMessage::Validate(ValidateRequest {
            assignment_id: check.id,
            url: check.url,
            method: check.method,
            timeout_ms: u32::try_from(check.timeout_ms).unwrap_or(0),
            keyword: check.keyword,
            deadline_ms: check.deadline_at.timestamp_millis(),
        });
        // A full outbox means the validator is not keeping up: count it as missed
        // rather than queue without bound.
        let delivered = hub
            .sessions
            .outbox(check.validator_id)
            .is_some_and(|outbox| outbox.try_send(request).is_ok());
        if delivered {
            sent += 1;
        } else {
            undeliverable.push(check.id);
        }
    }
    let missed = undeliverable.len();
    if !undeliverable.is_empty() {
        hub.infra
            .db
            .run(move |conn| mark_missed(conn, &undeliverable))
            .await?;
    }
    tracing::debug!(sent, missed, "dispatched");
    Ok(())
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
