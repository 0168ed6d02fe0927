//! Settings of the verifier.

use overlaps_shared::config::{AppEnv, CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::eth::settings::{ChainSettings, EonClock};
use overlaps_shared::eth::{DEV_PRIVATE_KEYS, PrivateKey, U256};
use overlaps_shared::service::ServiceConfig;

/// How transactions are priced and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPolicy {
    /// `TX_RESEND_BLOCKS`: re-send with higher fees when not mined after this many blocks.
    pub resend_blocks: u64,
    /// `TX_FEE_BUMP_PERCENT`: each re-send raises both fees by at least this much.
    pub bump_percent: u64,
    /// `TX_PRIORITY_FEE_WEI`: the first attempt's tip.
    pub priority_fee: U256,
    /// `TX_MAX_FEE_PER_GAS_WEI`: fees are never raised above this (the cap).
    pub max_fee_cap: U256,
    /// `OPERATOR_BALANCE_ALERT_WEI`: alert the operator when its balance is lower.
    pub operator_balance_alert: U256,
}

impl Default for TxPolicy {
    fn default() -> Self {
        TxPolicy {
            resend_blocks: 3,
            bump_percent: 20,
            priority_fee: U256::exp10(9),
            max_fee_cap: U256::exp10(9) * 500,
            operator_balance_alert: U256::exp10(17),
        }
    }
}

impl TxPolicy {
    /// Reads and validates the transaction policy.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = TxPolicy::default();
        let policy = TxPolicy {
            resend_blocks: env.ranged("TX_RESEND_BLOCKS", d.resend_blocks, 1..=1000)?,
            // Nodes refuse a replacement that raises the fees by less than 10 %.
            bump_percent: env.ranged("TX_FEE_BUMP_PERCENT", d.bump_percent, 10..=500)?,
            priority_fee: env.amount("TX_PRIORITY_FEE_WEI", d.priority_fee)?,
            max_fee_cap: env.amount("TX_MAX_FEE_PER_GAS_WEI", d.max_fee_cap)?,
            operator_balance_alert: env
                .amount("OPERATOR_BALANCE_ALERT_WEI", d.operator_balance_alert)?,
        };
        if policy.max_fee_cap < policy.priority_fee {
            return Err(invalid(
                "TX_MAX_FEE_PER_GAS_WEI",
                policy.max_fee_cap,
                "must be at least TX_PRIORITY_FEE_WEI",
            ));
        }
        Ok(policy)
    }
}

/// Whether `key` is one of anvil's well-known dev keys.
pub fn is_dev_key(key: &PrivateKey) -> bool {
    DEV_PRIVATE_KEYS
        .iter()
        .filter_map(|dev| dev.parse::<PrivateKey>().ok())
        .any(|dev| dev.address() == key.address())
}

/// Everything `verifier` reads from the environment.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// RPC URL, contract, confirmations.
    pub chain: ChainSettings,
    /// `OPERATOR_PRIVATE_KEY`: the key that commits roots.
    pub operator_key: PrivateKey,
    /// Pricing and retries.
    pub policy: TxPolicy,
    /// `VERIFIER_SWEEP_SECONDS`: how often open transactions are driven forward.
    pub sweep_seconds: u64,
    /// Block time and eon length: the contract's challenge window must fit.
    pub eon_clock: EonClock,
}

impl ServiceConfig for VerifierConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let operator_key: PrivateKey = env.required("OPERATOR_PRIVATE_KEY")?;
        // Anvil's keys are public: on a real chain anyone could take their funds.
        if common.app_env == AppEnv::Prod && is_dev_key(&operator_key) {
            return Err(invalid(
                "OPERATOR_PRIVATE_KEY",
                "(anvil dev key)",
                "a publicly known dev key cannot be used in production",
            ));
        }
        Ok(VerifierConfig {
            chain: ChainSettings::from_env(env, common.app_env)?,
            operator_key,
            policy: TxPolicy::from_env(env)?,
            sweep_seconds: env.ranged("VERIFIER_SWEEP_SECONDS", 5, 1..=3600)?,
            eon_clock: EonClock::from_env(env, common.app_env)?,
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

    fn read(extra: &[(&str, &str)]) -> Result<VerifierConfig, ConfigError> {
        let mut pairs = vec![
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            (
                "CONTRACT_ADDRESS",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ),
            (
                "OPERATOR_PRIVATE_KEY",
                "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            ),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        VerifierConfig::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn defaults_are_valid() -> Result<(), ConfigError> {
        let config = read(&[])?;
        assert_eq!(config.policy, TxPolicy::default());
        assert_eq!(config.chain.confirmations, 2);
        // The key's Debug shows its address, never the key.
        let shown = format!("{config:?}");
        assert!(!shown.contains("ac0974bec"), "{shown}");
        Ok(())
    }

    #[test]
    fn each_bad_value_is_named() {
        let cases = [
            ("OPERATOR_PRIVATE_KEY", ""),
            ("OPERATOR_PRIVATE_KEY", "0x1234"),
            ("TX_RESEND_BLOCKS", "0"),
            ("TX_FEE_BUMP_PERCENT", "5"),
            ("TX_PRIORITY_FEE_WEI", "1.5"),
            ("TX_MAX_FEE_PER_GAS_WEI", "-1"),
            ("OPERATOR_BALANCE_ALERT_WEI", "lots"),
            ("VERIFIER_SWEEP_SECONDS", "0"),
            ("CONTRACT_ADDRESS", "nope"),
            ("CHAIN_BLOCK_SECONDS", "0"),
        ];
        let prod = read(&[
            ("APP_ENV", "prod"),
            ("CHAIN_RPC_URL", "https://rpc.example"),
        ])
        .err();
        assert_eq!(
            prod.as_ref().map(|e| e.var()),
            Some("OPERATOR_PRIVATE_KEY"),
            "{prod:?}"
        );
        assert!(
            !format!("{prod:?}").contains("ac0974bec"),
            "the key is never printed"
        );
        for (var, value) in cases {
            let err = read(&[(var, value)]).err();
            assert_eq!(
                err.as_ref().map(|e| e.var()),
                Some(var),
                "{var}={value:?}: {err:?}"
            );
        }
    }
}
