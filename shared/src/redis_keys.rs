//! The Redis key space of one deployment: every key starts with `REDIS_PREFIX`.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Result;

/// Builds the keys of one deployment (or one test) under a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// A key space rooted at `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        KeyPrefix(prefix.into())
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `prefix:name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.0)
    }
}

/// Opens a self-reconnecting Redis connection.
pub async fn connect(url: &str) -> Result<ConnectionManager> {
    let client = redis::Client::open(url)?;
    // The default 500 ms response timeout turns a busy moment (a saturated CPU
    // under load) into spurious errors; locks and presence tolerate seconds.
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}
