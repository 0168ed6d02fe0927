//! `server`: the hub's HTTP face: REST API, Swagger UI and the validator WebSocket.

use overlaps_server::{ServerConfig, build_server};
use overlaps_shared::{service, shutdown};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<ServerConfig>().await?;
    let server = build_server(&config, infra)?;
    let handle = server.handle();
    let running = tokio::spawn(server);
    tracing::info!(service = "server", bind = %config.bind, instance = %config.instance_id, "ready");
    shutdown::signal_received().await?;
    // Graceful: stop accepting, let in-flight requests finish.
    handle.stop(true).await;
    running.await??;
    tracing::info!(service = "server", "stopped");
    Ok(())
}
