//! `server`: the hub's HTTP face: REST API, Swagger UI and the validator WebSocket.

use clap::{Parser, Subcommand};
use overlaps_server::{
    BoundServer, Hub, ServerConfig, build_server, create_operator_key,
    ensure_configured_operator_key, spawn_background,
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
        /// Promote an existing owner account even though it holds API keys, by
        /// revoking every one of them first.
        #[arg(long)]
        revoke_owner_keys: bool,
    },
}

/// How long a stopping server waits for its validator connections to settle their
/// results and release their locks (each allows itself 5 s to settle).
const CLOSE_CONNECTIONS_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, infra) = service::boot::<ServerConfig>().await?;
    if let Some(Command::CreateOperatorKey {
        email,
        revoke_owner_keys,
    }) = cli.command
    {
        let (key, revoked) = create_operator_key(&infra, &email, revoke_owner_keys).await?;
        if revoked > 0 {
            eprintln!("revoked {revoked} owner API key(s) of {email} before making it an operator");
        }
        // The only place the key is ever shown: stdout, for the operator to keep.
        println!("{key}");
        return Ok(());
    }
    let instance = config.instance_id.clone();
    let hub = Hub::new(config, infra);
    ensure_configured_operator_key(&hub).await?;
    let BoundServer {
        server,
        address: bind,
    } = build_server(hub.clone())?;
    let handle = server.handle();
    let running = tokio::spawn(server);
    let background = spawn_background(&hub);
    let stop = shutdown::ShutdownSignal::listen()?;
    // The bound address, so a server started on port 0 says which port it has.
    tracing::info!(service = "server", %bind, %instance, "ready");
    stop.received().await;
    // Graceful: validators are told to reconnect and their locks released before the
    // HTTP server stops (its workers would drop the connection tasks mid-release).
    let open = hub.open.len();
    if !hub.open.close_all(CLOSE_CONNECTIONS_WITHIN).await {
        tracing::warn!(
            left = hub.open.len(),
            "some validator connections did not close in time"
        );
    }
    tracing::info!(closed = open, "validator connections closed");
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
