//! `accounting`: closes rounds and eons. Until those jobs land it keeps the tick
//! table's daily partitions: created ahead, dropped after `TICK_RETENTION_DAYS`.

mod config;
mod partitions;

use overlaps_shared::service;

use crate::config::AccountingConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<AccountingConfig>().await?;
    let upkeep = tokio::spawn(partitions::keep_tick_partitions(infra, config.partitions));
    service::ready_until_shutdown("accounting").await?;
    upkeep.abort();
    Ok(())
}
