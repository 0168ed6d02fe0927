//! `server`: the hub's HTTP face: REST API, Swagger UI and the validator WebSocket.

use clap::{Parser, Subcommand};
use overlaps_server::{
    Hub, ServerConfig, build_server, create_operator_key, ensure_configured_operator_key,
    spawn_background,
};
use overlaps_shared::{service, shutdown};

#[derive(Parser)]
#[command(
    name = "server",
    about = "The Overlaps hub server (REST API, Swagger UI, validator WebSocket)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Create an operator API key for the account with this e-mail (created or
    /// made an operator) and print it once.
    CreateOperatorKey {
        /// The operator account's e-mail.
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, infra) = service::boot::<ServerConfig>().await?;
    if let Some(Command::CreateOperatorKey { email }) = cli.command {
        let key = create_operator_key(&infra, &email).await?;
        // The only place the key is ever shown: stdout, for the operator to keep.
        println!("{key}");
        return Ok(());
    }
    let (bind, instance) = (config.bind, config.instance_id.clone());
    let hub = Hub::new(config, infra);
    ensure_configured_operator_key(&hub).await?;
    let server = build_server(hub.clone())?;
    let handle = server.handle();
    let running = tokio::spawn(server);
    let background = spawn_background(&hub);
    let stop = shutdown::ShutdownSignal::listen()?;
    tracing::info!(service = "server", %bind, %instance, "ready");
    stop.received().await;
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
