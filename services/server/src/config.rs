//! Settings of the server.

use std::net::SocketAddr;

use overlaps_shared::config::{CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::service::ServiceConfig;

/// Everything `server` reads from the environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// `SERVER_BIND`: address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `SERVER_INSTANCE_ID`: this instance's name in presence and dispatch queues.
    pub instance_id: String,
}

impl ServiceConfig for ServerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let instance_id: String = env.optional("SERVER_INSTANCE_ID", "server-1".to_owned())?;
        if instance_id.is_empty()
            || instance_id.len() > 64
            || !instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(invalid(
                "SERVER_INSTANCE_ID",
                &instance_id,
                "use 1 to 64 letters, digits, - or _",
            ));
        }
        Ok(ServerConfig {
            common: CommonConfig::from_env(env)?,
            bind: env.optional("SERVER_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            instance_id,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
