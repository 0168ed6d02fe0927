//! Leadership: one scheduler at a time opens rounds, holding a renewed Redis lease;
//! the others wait and take over within one lease if the leader dies.

use std::time::Duration;

use apalis::prelude::TaskSink;
use overlaps_shared::jobs::{self, CloseRound};
use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::presence::Presence;
use overlaps_shared::service::Infrastructure;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::SchedulerConfig;
use crate::rounds;

/// How often the leader looks for a round to open or close.
const TICK: Duration = Duration::from_millis(250);

/// Competes for leadership until `stop` turns true; leads while it holds the lease,
/// and releases it on stop so another scheduler takes over at once.
pub async fn run(config: SchedulerConfig, infra: Infrastructure, mut stop: watch::Receiver<bool>) {
    let mutex = RedisMutex::new(
        infra.redis.clone(),
        &infra.keys,
        "scheduler-leader",
        config.leader_ttl,
    );
    while !*stop.borrow() {
        let attempt = tokio::select! {
            attempt = mutex.lock(config.leader_ttl) => attempt,
            _ = stop.changed() => return,
        };
        match attempt {
            Ok(Some(guard)) => {
                tracing::info!("leading: this scheduler opens the rounds");
                let mut lease = guard.into_lease();
                tokio::select! {
                    () = lease.lost() => tracing::warn!("leadership lost; waiting to lead again"),
                    () = lead(&config, &infra) => {}
                    _ = stop.changed() => {}
                }
                if let Err(err) = lease.release().await {
                    tracing::warn!(error = %err, "could not release leadership");
                }
            }
            Ok(None) => tracing::debug!("another scheduler leads"),
            Err(err) => {
                tracing::warn!(error = %err, "leader lock unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Opens rounds on time and hands past-deadline rounds to accounting, until cancelled.
async fn lead(config: &SchedulerConfig, infra: &Infrastructure) {
    let presence = Presence::new(infra.redis.clone(), &infra.keys);
    loop {
        if let Err(err) = step(config, infra, &presence).await {
            tracing::error!(error = %err, "scheduling step failed; retrying");
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn step(
    config: &SchedulerConfig,
    infra: &Infrastructure,
    presence: &Presence,
) -> overlaps_shared::Result<()> {
    let length = config.rules.length;
    let next = infra
        .db
        .run(move |conn| rounds::next_opening(conn, length))
        .await?;
    let now = chrono::Utc::now();
    if next.is_none_or(|at| at <= now) {
        let online = presence.online().await?;
        let rules = config.rules.clone();
        let opened = infra
            .db
            .run(move |conn| rounds::open_round(conn, now, &rules, &online))
            .await?;
        let span = tracing::info_span!("round", round = opened.number);
        async {
            for dispatch in &opened.dispatches {
                let mut queue = jobs::dispatch_storage(
                    infra.redis.clone(),
                    &infra.keys,
                    &dispatch.server_instance,
                );
                queue
                    .push(dispatch.clone())
                    .await
                    .map_err(|e| overlaps_shared::Error::Queue(e.to_string()))?;
            }
            let assignments: usize = opened
                .dispatches
                .iter()
                .map(|d| d.assignment_ids.len())
                .sum();
            if opened.degraded {
                tracing::warn!(
                    sites = opened.sites,
                    assignments,
                    "round opened degraded: fewer validators online than a quorum"
                );
            } else {
                tracing::info!(sites = opened.sites, assignments, "round opened");
            }
            if opened.deferred > 0 {
                tracing::warn!(
                    deferred = opened.deferred,
                    "due sites put off to a later round: their host reached TARGET_HOST_MAX_CHECKS_PER_MINUTE"
                );
            }
            Ok::<_, overlaps_shared::Error>(())
        }
        .instrument(span)
        .await?;
    }
    let closable = infra
        .db
        .run(move |conn| rounds::rounds_to_close(conn, now))
        .await?;
    let mut queue = jobs::storage::<CloseRound>(infra.redis.clone(), &infra.keys);
    for round in closable {
        // Pushed before marked: a crash in between pushes it twice, and close_round is idempotent.
        queue
            .push(CloseRound { round })
            .await
            .map_err(|e| overlaps_shared::Error::Queue(e.to_string()))?;
        infra
            .db
            .run(move |conn| rounds::mark_close_enqueued(conn, round))
            .await?;
        tracing::info!(round, "close_round enqueued");
    }
    Ok(())
}
