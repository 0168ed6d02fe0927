//! Hourly upkeep of the day-partitioned `ticks` table.

use std::time::Duration;

use overlaps_shared::db::maintain_tick_partitions;
use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::service::Infrastructure;

use crate::config::PartitionPolicy;

const PERIOD: Duration = Duration::from_secs(3600);

/// Runs the upkeep now and every hour; one process at a time does it (Redis mutex).
pub async fn keep_tick_partitions(infra: Infrastructure, policy: PartitionPolicy) {
    let mutex = RedisMutex::new(
        infra.redis.clone(),
        &infra.keys,
        "tick-partitions",
        Duration::from_secs(60),
    );
    loop {
        match mutex.try_lock().await {
            Ok(Some(guard)) => {
                let today = chrono::Utc::now().date_naive();
                let done = infra
                    .db
                    .run(move |conn| {
                        maintain_tick_partitions(
                            conn,
                            today,
                            policy.ahead_days,
                            policy.retention_days,
                        )
                    })
                    .await;
                match done {
                    Ok(upkeep) => tracing::info!(
                        created = upkeep.created,
                        dropped = upkeep.dropped,
                        "tick partitions kept"
                    ),
                    Err(err) => tracing::error!(error = %err, "tick partition upkeep failed"),
                }
                if let Err(err) = guard.release().await {
                    tracing::warn!(error = %err, "could not release the partition lock");
                }
            }
            Ok(None) => tracing::debug!("another accounting process keeps the partitions"),
            Err(err) => tracing::error!(error = %err, "partition lock unavailable"),
        }
        tokio::time::sleep(PERIOD).await;
    }
}
