//! The `close_round` consumer.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder};
use overlaps_shared::jobs::{self, CloseRound};
use overlaps_shared::service::Infrastructure;

use crate::close::{CloseError, close_rounds_through};
use crate::config::ClosePolicy;

/// What a `close_round` handler needs.
#[derive(Debug, Clone)]
pub struct Closer {
    /// PostgreSQL and Redis.
    pub infra: Infrastructure,
    /// Closing rules.
    pub policy: ClosePolicy,
}

/// Consumes `close_round` jobs until the process stops; a failed worker is rebuilt.
pub async fn run(closer: Arc<Closer>) {
    loop {
        let queue = jobs::consumer::<CloseRound>(closer.infra.redis.clone(), &closer.infra.keys);
        let name = format!("close-round-{}", uuid::Uuid::new_v4().simple());
        let worker = WorkerBuilder::new(name)
            .backend(queue)
            .data(Arc::clone(&closer))
            .build(close_round);
        match worker.run().await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(error = %err, "close_round worker failed; restarting in 1 s")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Closes the round (and any earlier one still open). Idempotent: a closed round is
/// left as it is.
#[tracing::instrument(skip_all, fields(round = job.round))]
pub async fn close_round(job: CloseRound, closer: Data<Arc<Closer>>) -> Result<(), BoxDynError> {
    let policy = closer.policy.clone();
    let round = job.round;
    let closed = closer
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
