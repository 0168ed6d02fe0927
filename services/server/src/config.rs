//! Settings of the server.

use std::net::SocketAddr;
use std::time::Duration;

use overlaps_shared::config::{CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::service::ServiceConfig;

/// Limits and timings of the validator WebSocket.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// `WS_MAX_FRAME_BYTES`: larger frames close the connection.
    pub max_frame_bytes: usize,
    /// `WS_MAX_MESSAGES_PER_SECOND`: sustained rate per connection (bursts up to 2×).
    pub max_messages_per_second: u32,
    /// `WS_MAX_CONNECTIONS_PER_IP`: per server instance.
    pub max_connections_per_ip: usize,
    /// `WS_HEARTBEAT_SECONDS`: ping period; three silent periods close the socket.
    pub heartbeat: Duration,
    /// `PRESENCE_TTL_SECONDS`: how long presence and the session lock outlive a
    /// server that stopped refreshing them.
    pub presence_ttl: Duration,
}

/// How results are written to PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// `INGEST_BATCH_MAX`: results per transaction at most.
    pub batch_max: usize,
    /// `INGEST_BATCH_WAIT_MS`: how long a batch waits to fill.
    pub batch_wait: Duration,
    /// `INGEST_WRITERS`: transactions in flight at once.
    pub writers: usize,
}

/// Everything `server` reads from the environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// `SERVER_BIND`: address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `SERVER_INSTANCE_ID`: this instance's name in presence and dispatch queues.
    pub instance_id: String,
    /// `HUB_ID`: the hub's name inside every signed payload (same on all instances).
    pub hub_id: String,
    /// WebSocket limits.
    pub limits: SocketLimits,
    /// Result ingest.
    pub ingest: IngestSettings,
}

fn identifier(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let value: String = env.optional(var, default.to_owned())?;
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            var,
            &value,
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(value)
}

impl ServiceConfig for ServerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(ServerConfig {
            common: CommonConfig::from_env(env)?,
            bind: env.optional("SERVER_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            instance_id: identifier(env, "SERVER_INSTANCE_ID", "server-1")?,
            hub_id: identifier(env, "HUB_ID", "overlaps-dev")?,
            limits: SocketLimits {
                max_frame_bytes: env.ranged("WS_MAX_FRAME_BYTES", 16 * 1024, 512..=1024 * 1024)?,
                max_messages_per_second: env.ranged(
                    "WS_MAX_MESSAGES_PER_SECOND",
                    200,
                    1..=100_000,
                )?,
                max_connections_per_ip: env.ranged(
                    "WS_MAX_CONNECTIONS_PER_IP",
                    32,
                    1..=1_000_000,
                )?,
                heartbeat: Duration::from_secs(env.ranged("WS_HEARTBEAT_SECONDS", 10, 1..=300)?),
                presence_ttl: Duration::from_secs(env.ranged(
                    "PRESENCE_TTL_SECONDS",
                    30,
                    2..=3600,
                )?),
            },
            ingest: IngestSettings {
                batch_max: env.ranged("INGEST_BATCH_MAX", 2000, 1..=50_000)?,
                batch_wait: Duration::from_millis(env.ranged(
                    "INGEST_BATCH_WAIT_MS",
                    5,
                    0..=1000,
                )?),
                writers: env.ranged("INGEST_WRITERS", 2, 1..=64)?,
            },
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
