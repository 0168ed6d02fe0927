//! The job consumers: `close_round`, `close_eon` and `send_alert`.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, TaskSink, WorkerBuilder};
use overlaps_shared::jobs::{self, AuditEon, CloseEon, CloseRound, SendAlert, SubmitRoot};
use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::service::Infrastructure;

use crate::alerts::channels::Sender;
use crate::alerts::{self, OperatorChannels};
use crate::close::{CloseError, close_rounds_through};
use crate::config::ClosePolicy;
use crate::eon::{self, EonError, EonPolicy};

/// What the accounting job handlers need.
#[derive(Debug)]
pub struct Accounting {
    /// PostgreSQL and Redis.
    pub infra: Infrastructure,
    /// Closing rules.
    pub policy: ClosePolicy,
    /// When eons close.
    pub eons: EonPolicy,
    /// Sends alerts.
    pub sender: Sender,
    /// Where operator alerts go.
    pub operator: OperatorChannels,
}

/// Consumes `close_round`, `close_eon` and `send_alert` jobs until the process
/// stops, queues due reminders and re-enqueues due alerts (retries, reminders,
/// and any whose job was lost) every 10 s,
/// and looks for a due eon every 10 s (`EON_SECONDS`, or a lost job).
pub async fn run(accounting: Arc<Accounting>) {
    store_missing_trees(&accounting).await;
    tokio::join!(
        jobs::keep_running("close-round", || {
            let queue = jobs::consumer::<CloseRound>(
                accounting.infra.redis.clone(),
                &accounting.infra.keys,
            );
            WorkerBuilder::new(jobs::worker_name("close-round"))
                .backend(queue)
                .data(Arc::clone(&accounting))
                .build(close_round)
                .run()
        }),
        jobs::keep_running("send-alert", || {
            let queue =
                jobs::consumer::<SendAlert>(accounting.infra.redis.clone(), &accounting.infra.keys);
            WorkerBuilder::new(jobs::worker_name("send-alert"))
                .backend(queue)
                .data(Arc::clone(&accounting))
                .build(send_alert)
                .run()
        }),
        jobs::keep_running("close-eon", || {
            let queue =
                jobs::consumer::<CloseEon>(accounting.infra.redis.clone(), &accounting.infra.keys);
            WorkerBuilder::new(jobs::worker_name("close-eon"))
                .backend(queue)
                .data(Arc::clone(&accounting))
                .build(close_eon)
                .run()
        }),
        sweep_alerts(&accounting),
        sweep_eons(&accounting),
    );
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
        // Reminders become outbox rows here; the due rows below include them.
        if let Err(err) = accounting
            .infra
            .db
            .run(move |conn| alerts::reminders::queue_due(conn, now))
            .await
        {
            tracing::warn!(error = %err, "reminder sweep failed");
        }
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

async fn sweep_eons(accounting: &Accounting) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        enqueue_due_eon(accounting).await;
    }
}

/// Enqueues `close_eon` for the eon due now, if one is.
async fn enqueue_due_eon(accounting: &Accounting) {
    let policy = accounting.eons;
    let due = accounting
        .infra
        .db
        .run(move |conn| {
            eon::due_eon(conn, chrono::Utc::now(), &policy)
                .map_err(|err| overlaps_shared::Error::Queue(err.to_string()))
        })
        .await;
    match due {
        Ok(Some(eon)) => {
            let mut queue =
                jobs::storage::<CloseEon>(accounting.infra.redis.clone(), &accounting.infra.keys);
            if let Err(err) = queue.push(CloseEon { eon }).await {
                tracing::warn!(eon, error = %err, "could not enqueue close_eon");
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "eon check failed"),
    }
}

/// Sets a database failure apart (the pool's error, worth retrying) from an eon
/// that cannot be closed or rebuilt as asked (an answer, logged).
fn database_apart<T>(outcome: Result<T, EonError>) -> overlaps_shared::Result<Result<T, EonError>> {
    match outcome {
        Err(EonError::Database(db)) => Err(overlaps_shared::Error::Database(db)),
        other => Ok(other),
    }
}

/// Stores the trees of eons closed before trees were stored (once, at start). Two
/// instances racing here collide on the primary key: one stores, the other's
/// transaction fails without effect.
async fn store_missing_trees(accounting: &Accounting) {
    let outcome = accounting
        .infra
        .db
        .run(|conn| database_apart(eon::store_missing_trees(conn)))
        .await;
    match outcome {
        Ok(Ok(rebuilt)) => {
            if !rebuilt.stored.is_empty() {
                tracing::info!(eons = ?rebuilt.stored, "trees of earlier eons stored");
            }
            if !rebuilt.refused.is_empty() {
                // The audit of each names the difference and alerts the operator.
                tracing::error!(eons = ?rebuilt.refused,
                    "earlier eons whose leaves do not lead to their committed root: no tree stored");
            }
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "could not rebuild the trees of earlier eons")
        }
        Err(err) => tracing::warn!(error = %err, "could not store the trees of earlier eons"),
    }
}

/// Closes the eon under the eon mutex (one closer across every accounting
/// process), then hands its root to the verifier and the audit. Idempotent: an
/// eon already closed is only handed on again.
#[tracing::instrument(skip_all, fields(eon = job.eon))]
pub async fn close_eon(
    job: CloseEon,
    accounting: Data<Arc<Accounting>>,
) -> Result<(), BoxDynError> {
    let mutex = RedisMutex::new(
        accounting.infra.redis.clone(),
        &accounting.infra.keys,
        "close-eon",
        Duration::from_secs(30),
    );
    let Some(guard) = mutex.lock(Duration::from_secs(60)).await? else {
        return Err("the eon lock stayed taken for 60 s".into());
    };
    let lease = guard.into_lease();
    let number = job.eon;
    let db = accounting.infra.db.clone();
    let closed = accounting
        .infra
        .db
        .run(move |conn| {
            let mut staging = db.connect_dedicated()?;
            database_apart(eon::close_eon(conn, &mut staging, number))
        })
        .await?;
    if let Err(err) = lease.release().await {
        tracing::warn!(error = %err, "could not release the eon lock");
    }
    match closed {
        Ok(Some(summary)) => tracing::info!(
            first_round = summary.first_round,
            last_round = summary.last_round,
            root = %hex::encode(summary.root),
            total = %summary.total,
            leaves = summary.leaves,
            excluded = summary.excluded,
            "eon closed"
        ),
        Ok(None) => tracing::info!("eon already closed; handing it on again"),
        // A job for an eon that is not next (or has no round yet) changes nothing.
        Err(err) => {
            tracing::warn!(error = %err, "eon not closed");
            return Ok(());
        }
    }
    let redis = accounting.infra.redis.clone();
    jobs::storage::<SubmitRoot>(redis.clone(), &accounting.infra.keys)
        .push(SubmitRoot { eon: number })
        .await?;
    jobs::storage::<AuditEon>(redis, &accounting.infra.keys)
        .push(AuditEon { eon: number })
        .await?;
    Ok(())
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
    enqueue_due_eon(&accounting).await;
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
