//! Waiting for SIGINT (Ctrl-C) or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn signal_received() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    Ok(())
}
