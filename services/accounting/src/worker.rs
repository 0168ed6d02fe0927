//! The job consumers: `close_round` and `send_alert`.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder};
use overlaps_shared::jobs::{self, CloseRound, SendAlert};
use overlaps_shared::service::Infrastructure;

use crate::alerts::channels::Sender;
use crate::alerts::{self, OperatorChannels};
use crate::close::{CloseError, close_rounds_through};
use crate::config::ClosePolicy;

/// What the accounting job handlers need.
#[derive(Debug)]
pub struct Accounting {
    /// PostgreSQL and Redis.
    pub infra: Infrastructure,
    /// Closing rules.
    pub policy: ClosePolicy,
    /// Sends alerts.
    pub sender: Sender,
    /// Where operator alerts go.
    pub operator: OperatorChannels,
}

/// Consumes `close_round` and `send_alert` jobs until the process stops, and
/// re-enqueues due alerts (retries, and any whose job was lost) every 10 s.
pub async fn run(accounting: Arc<Accounting>) {
    tokio::join!(
        keep_running("close-round", || {
            let queue = jobs::consumer::<CloseRound>(
                accounting.infra.redis.clone(),
                &accounting.infra.keys,
            );
            WorkerBuilder::new(worker_name("close-round"))
                .backend(queue)
                .data(Arc::clone(&accounting))
                .build(close_round)
                .run()
        }),
        keep_running("send-alert", || {
            let queue =
                jobs::consumer::<SendAlert>(accounting.infra.redis.clone(), &accounting.infra.keys);
            WorkerBuilder::new(worker_name("send-alert"))
                .backend(queue)
                .data(Arc::clone(&accounting))
                .build(send_alert)
                .run()
        }),
        sweep_alerts(&accounting),
    );
}

/// Unique per start: a restarted process must not wait for its predecessor's
/// worker registration to expire.
fn worker_name(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs a worker, rebuilding it after a pause whenever it fails.
async fn keep_running<F, Fut, E>(name: &str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        match start().await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(worker = name, error = %err, "worker failed; restarting in 1 s")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn enqueue_alerts(accounting: &Accounting, ids: impl IntoIterator<Item = i64>) {
    let mut queue =
        jobs::storage::<SendAlert>(accounting.infra.redis.clone(), &accounting.infra.keys);
    for outbox_id in ids {
        if let Err(err) = queue.push(SendAlert { outbox_id }).await {
            // The sweep picks it up later.
            tracing::warn!(outbox_id, error = %err, "could not enqueue send_alert");
        }
    }
}

async fn sweep_alerts(accounting: &Accounting) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = chrono::Utc::now();
        match accounting
            .infra
            .db
            .run(move |conn| alerts::due_alerts(conn, now, 1000))
            .await
        {
            Ok(due) => enqueue_alerts(accounting, due).await,
            Err(err) => tracing::warn!(error = %err, "alert sweep failed"),
        }
    }
}

/// Closes the round (and any earlier one still open), then enqueues its alerts.
/// Idempotent: a closed round is left as it is.
#[tracing::instrument(skip_all, fields(round = job.round))]
pub async fn close_round(
    job: CloseRound,
    accounting: Data<Arc<Accounting>>,
) -> Result<(), BoxDynError> {
    let policy = accounting.policy.clone();
    let round = job.round;
    let closed = accounting
        .infra
        .db
        .run(move |conn| {
            close_rounds_through(conn, round, chrono::Utc::now(), &policy).map_err(
                |err| match err {
                    CloseError::Database(db) => overlaps_shared::Error::Database(db),
                    other => overlaps_shared::Error::Queue(other.to_string()),
                },
            )
        })
        .await?;
    for (number, summary) in closed {
        enqueue_alerts(&accounting, summary.alerts.iter().copied()).await;
        tracing::info!(
            round = number,
            up = summary.up,
            down = summary.down,
            unknown = summary.unknown,
            opened = summary.incidents_opened.len(),
            resolved = summary.incidents_resolved.len(),
            alerts = summary.alerts.len(),
            credited = summary.credited,
            "round closed"
        );
    }
    Ok(())
}

/// Delivers one outbox row (claimed first, so at most once per channel).
#[tracing::instrument(skip_all, fields(outbox_id = job.outbox_id))]
pub async fn send_alert(
    job: SendAlert,
    accounting: Data<Arc<Accounting>>,
) -> Result<(), BoxDynError> {
    let outcome = alerts::deliver(
        &accounting.infra.db,
        &accounting.sender,
        &accounting.operator,
        job.outbox_id,
    )
    .await?;
    tracing::info!(?outcome, "alert handled");
    Ok(())
}
