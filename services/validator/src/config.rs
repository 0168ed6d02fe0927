//! Settings of the validator node (it needs no database of its own).

use overlaps_shared::config::{ConfigError, Env, LogConfig, invalid};

/// Everything `validator` reads from the environment.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// `HUB_URL`: the hub's WebSocket endpoint (`ws://` or `wss://`).
    pub hub_url: url::Url,
    /// `LOG_FORMAT` and `LOG_LEVEL`.
    pub log: LogConfig,
}

impl ValidatorConfig {
    /// Reads and validates the validator's settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let hub_url: url::Url = env.optional(
            "HUB_URL",
            url::Url::parse("ws://127.0.0.1:8080/ws/validator")
                .map_err(|e| invalid("HUB_URL", "", e))?,
        )?;
        if !matches!(hub_url.scheme(), "ws" | "wss") {
            return Err(invalid(
                "HUB_URL",
                &hub_url,
                "expected a ws:// or wss:// URL",
            ));
        }
        Ok(ValidatorConfig {
            hub_url,
            log: LogConfig::from_env(env)?,
        })
    }
}
