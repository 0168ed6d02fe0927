//! Settings of the audit service.

use overlaps_shared::config::{CommonConfig, ConfigError, Env};
use overlaps_shared::eth::U256;
use overlaps_shared::service::ServiceConfig;

/// What the audit needs to re-derive an eon: the same rules accounting applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPolicy {
    /// `HUB_ID`: bound into every signed result.
    pub hub_id: String,
    /// `REWARD_PER_CHECK`: credited per agreeing result.
    pub reward_per_check: U256,
}

/// Everything `audit` reads from the environment.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// The rules to re-apply.
    pub policy: AuditPolicy,
    /// `AUDIT_SWEEP_SECONDS`: how often eons without a report are audited.
    pub sweep_seconds: u64,
}

impl ServiceConfig for AuditConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(AuditConfig {
            common: CommonConfig::from_env(env)?,
            policy: AuditPolicy {
                hub_id: env.optional("HUB_ID", "overlaps-dev".to_owned())?,
                reward_per_check: env.reward_per_check()?,
            },
            sweep_seconds: env.ranged("AUDIT_SWEEP_SECONDS", 60, 5..=86_400)?,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
