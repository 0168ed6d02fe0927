//! `server`: the hub's HTTP face: REST API, Swagger UI and the validator WebSocket.

use overlaps_server::{Hub, ServerConfig, build_server, spawn_background};
use overlaps_shared::{service, shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<ServerConfig>().await?;
    let (bind, instance) = (config.bind, config.instance_id.clone());
    let hub = Hub::new(config, infra);
    let server = build_server(hub.clone())?;
    let handle = server.handle();
    let running = tokio::spawn(server);
    let background = spawn_background(&hub);
    tracing::info!(service = "server", %bind, %instance, "ready");
    shutdown::signal_received().await?;
    // Graceful: stop accepting, let connections close and settle their results.
    handle.stop(true).await;
    running.await??;
    for task in background {
        task.abort();
    }
    tracing::info!(service = "server", "stopped");
    // Everything is settled; a database call still blocked on an unreachable
    // PostgreSQL (up to the pool's 10 s connection timeout) must not hold the exit,
    // which returning from main would do while the runtime waits for it.
    std::process::exit(0)
}
