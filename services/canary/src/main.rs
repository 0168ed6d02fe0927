//! `canary`: serves the hub's known-answer checks. Run by `./run.sh` in dev; in
//! prod each operator runs it on hosts of their own (see the README's trust model).

use overlaps_canary::{CanaryConfig, serve};
use overlaps_shared::config::Env;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config = CanaryConfig::from_env(&Env::from_process())?;
    overlaps_shared::telemetry::init(&config.log);
    let servers = serve(&config)?;
    let handle = servers.handle();
    let running = tokio::spawn(servers);
    overlaps_shared::service::ready_until_shutdown("canary").await?;
    handle.stop(true).await;
    let _ = running.await;
    Ok(())
}
