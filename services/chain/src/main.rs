//! `chain`: follows blocks and the rewards contract's events.

use std::time::Duration;

use overlaps_chain::config::ChainConfig;
use overlaps_chain::follower::{self, Follower};
use overlaps_shared::eth;
use overlaps_shared::service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<ChainConfig>().await?;
    let client = eth::read_client(&config.chain.rpc_url)?;
    let follower = Follower::new(
        infra.db.clone(),
        client,
        config.chain.contract,
        config.chain.confirmations,
        config.start_block,
        config.batch_blocks,
    );
    let following = tokio::spawn(follower::run(
        follower,
        infra,
        Duration::from_millis(config.poll_ms),
    ));
    service::ready_until_shutdown("chain").await?;
    following.abort();
    Ok(())
}
