//! Settings of the chain follower.

use overlaps_shared::config::{CommonConfig, ConfigError, Env};
use overlaps_shared::eth::settings::ChainSettings;
use overlaps_shared::service::ServiceConfig;

/// Everything `chain` reads from the environment.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// RPC URL, contract, confirmations.
    pub chain: ChainSettings,
    /// `CHAIN_START_BLOCK`: the first block read when nothing is stored yet
    /// (the contract's deployment block; 0 on a dev chain).
    pub start_block: u64,
    /// `CHAIN_POLL_MS`: pause between polls when caught up.
    pub poll_ms: u64,
    /// `CHAIN_BATCH_BLOCKS`: blocks read per step at most.
    pub batch_blocks: u64,
}

impl ServiceConfig for ChainConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        Ok(ChainConfig {
            chain: ChainSettings::from_env(env, common.app_env)?,
            start_block: env.optional("CHAIN_START_BLOCK", 0)?,
            poll_ms: env.ranged("CHAIN_POLL_MS", 1000, 50..=600_000)?,
            batch_blocks: env.ranged("CHAIN_BATCH_BLOCKS", 100, 1..=10_000)?,
            common,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_value_is_named() {
        for (var, value) in [
            ("CHAIN_START_BLOCK", "-1"),
            ("CHAIN_POLL_MS", "0"),
            ("CHAIN_BATCH_BLOCKS", "0"),
            ("CONFIRMATIONS", "zero"),
        ] {
            let env = Env::from_pairs([
                ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                (
                    "CONTRACT_ADDRESS",
                    "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                ),
                (var, value),
            ]);
            let err = ChainConfig::from_env(&env).err();
            assert_eq!(err.as_ref().map(|e| e.var()), Some(var), "{var}={value}");
        }
    }
}
