//! Settings of the scheduler.

use std::time::Duration;

use overlaps_shared::config::{CommonConfig, ConfigError, Env};
use overlaps_shared::service::ServiceConfig;

/// Everything `scheduler` reads from the environment.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// `HUB_ID`: names the hub in the first round's seed (same as the server's).
    pub hub_id: String,
    /// `ROUND_SECONDS`: a round opens this often; its results are due by its end.
    pub round_length: Duration,
    /// `SCHEDULER_LOCK_TTL_SECONDS`: a dead leader is replaced within this.
    pub leader_ttl: Duration,
    /// `SEED_CHAIN_ROUNDS`: rounds per seed epoch (links of each committed chain).
    pub seed_chain_rounds: u32,
}

impl ServiceConfig for SchedulerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(SchedulerConfig {
            common: CommonConfig::from_env(env)?,
            hub_id: env.optional("HUB_ID", "overlaps-dev".to_owned())?,
            round_length: Duration::from_secs(env.ranged("ROUND_SECONDS", 30, 2..=3600)?),
            leader_ttl: Duration::from_secs(env.ranged(
                "SCHEDULER_LOCK_TTL_SECONDS",
                10,
                2..=300,
            )?),
            // Opening a round hashes up to this many times; 100,000 is still a few
            // milliseconds, and an epoch is how far ahead each chain is committed.
            seed_chain_rounds: env.ranged("SEED_CHAIN_ROUNDS", 1024, 1..=100_000)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
