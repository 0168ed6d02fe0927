//! `validator`: the validator node. It connects to a hub over WebSocket, checks
//! websites when asked and returns signed results.
//!
//! Today it validates its configuration and waits for SIGINT/SIGTERM; the protocol
//! arrives with the validator-network issue.

mod config;

use overlaps_shared::{config::Env, shutdown, telemetry};

use crate::config::ValidatorConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ValidatorConfig::from_env(&Env::from_process())?;
    telemetry::init(&config.log);
    tracing::info!(service = "validator", hub = %config.hub_url, "ready");
    shutdown::signal_received().await?;
    tracing::info!(service = "validator", "stopped");
    Ok(())
}
