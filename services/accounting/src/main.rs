//! `accounting`: consumes `close_round` jobs and keeps the tick table's daily
//! partitions (created ahead, dropped after `TICK_RETENTION_DAYS`).

use std::sync::Arc;

use overlaps_accounting::config::AccountingConfig;
use overlaps_accounting::partitions;
use overlaps_accounting::worker::{self, Closer};
use overlaps_shared::service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<AccountingConfig>().await?;
    let upkeep = tokio::spawn(partitions::keep_tick_partitions(
        infra.clone(),
        config.partitions,
    ));
    let closer = Arc::new(Closer {
        infra,
        policy: config.close.clone(),
    });
    let closing = tokio::spawn(worker::run(closer));
    service::ready_until_shutdown("accounting").await?;
    upkeep.abort();
    closing.abort();
    Ok(())
}
