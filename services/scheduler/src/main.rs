//! `scheduler`: opens check rounds and assigns validators (one leader at a time).

use overlaps_scheduler::{SchedulerConfig, leader};
use overlaps_shared::service;
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<SchedulerConfig>().await?;
    let (stop, stopped) = watch::channel(false);
    let leading = tokio::spawn(leader::run(config, infra, stopped));
    service::ready_until_shutdown("scheduler").await?;
    // Release the lease so another scheduler takes over at once.
    let _ = stop.send(true);
    let _ = leading.await;
    Ok(())
}
