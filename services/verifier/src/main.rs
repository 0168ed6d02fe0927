//! `verifier`: sends on-chain transactions (submit_root jobs).
//!
//! Today it starts, validates its configuration, connects to PostgreSQL and Redis
//! and waits for SIGINT/SIGTERM; its work arrives with the issue that builds it.

use overlaps_shared::config::CommonConfig;
use overlaps_shared::service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_config, _infra) = service::boot::<CommonConfig>().await?;
    service::ready_until_shutdown("verifier").await?;
    Ok(())
}
