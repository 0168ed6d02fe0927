//! Settings of the accounting service.

use overlaps_shared::config::{CommonConfig, ConfigError, Env};
use overlaps_shared::service::ServiceConfig;

/// How the tick partitions are kept.
#[derive(Debug, Clone, Copy)]
pub struct PartitionPolicy {
    /// `TICK_RETENTION_DAYS`: days of raw ticks kept.
    pub retention_days: i32,
    /// `TICK_PARTITIONS_AHEAD_DAYS`: daily partitions created in advance.
    pub ahead_days: i32,
}

/// Everything `accounting` reads from the environment.
#[derive(Debug, Clone)]
pub struct AccountingConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// Tick partition upkeep.
    pub partitions: PartitionPolicy,
}

impl ServiceConfig for AccountingConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(AccountingConfig {
            common: CommonConfig::from_env(env)?,
            partitions: PartitionPolicy {
                retention_days: env.ranged("TICK_RETENTION_DAYS", 30, 1..=3650)?,
                ahead_days: env.ranged("TICK_PARTITIONS_AHEAD_DAYS", 7, 1..=60)?,
            },
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
