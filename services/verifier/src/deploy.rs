//! `verifier deploy`: deploys `OverlapsRewards` on a dev chain and funds it.

use overlaps_shared::config::{AppEnv, ConfigError, Env, invalid};
use overlaps_shared::eth::settings::{CustodySettings, DEV_RPC_URL, EonClock};
use overlaps_shared::eth::{self, Address, Custody, EthError, PrivateKey, U256};

/// What deploying needs: no database, no contract address yet.
#[derive(Clone)]
pub struct DeployConfig {
    /// `CHAIN_RPC_URL`.
    pub rpc_url: String,
    /// `OPERATOR_PRIVATE_KEY`: deploys, and becomes the contract's operator.
    pub operator_key: PrivateKey,
    /// `GUARDIAN_ADDRESS`, `CHALLENGE_BLOCKS` and `UNBONDING_SECONDS`.
    pub custody: CustodySettings,
}

impl std::fmt::Debug for DeployConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The RPC URL may carry an API key; the key's Debug shows only its address.
        f.debug_struct("DeployConfig")
            .field(
                "rpc_url",
                &overlaps_shared::redact::redact_url(&self.rpc_url),
            )
            .field("operator_key", &self.operator_key)
            .field("custody", &self.custody)
            .finish()
    }
}

impl DeployConfig {
    /// Reads and validates the deploy settings; refuses a challenge window that
    /// would not fit in an eon (`CHAIN_BLOCK_SECONDS`, `EON_ROUNDS`,
    /// `ROUND_SECONDS`, `EON_SECONDS`), since no root would ever mature.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let app_env = env.optional("APP_ENV", AppEnv::Dev)?;
        let custody = CustodySettings::from_env(env, app_env)?;
        EonClock::from_env(env, app_env)?
            .check(custody.challenge_blocks)
            .map_err(|err| invalid("CHALLENGE_BLOCKS", custody.challenge_blocks, err))?;
        Ok(DeployConfig {
            rpc_url: env.optional("CHAIN_RPC_URL", DEV_RPC_URL.to_owned())?,
            operator_key: env.required("OPERATOR_PRIVATE_KEY")?,
            custody,
        })
    }
}

/// Parses a `--fund` amount in wei.
pub fn parse_wei(value: &str) -> Result<U256, ConfigError> {
    Env::from_pairs([("--fund", value)]).amount("--fund", U256::zero())
}

/// Deploys the contract with the operator key as operator and the configured
/// guardian, challenge window and unbonding delay, sends it `funding`, and returns
/// its address.
pub async fn deploy_and_fund(config: &DeployConfig, funding: U256) -> Result<Address, EthError> {
    let client = eth::signer_client(&config.rpc_url, &config.operator_key).await?;
    let custody = Custody {
        operator: config.operator_key.address(),
        guardian: config.custody.guardian,
        challenge_blocks: config.custody.challenge_blocks,
        unbonding_seconds: config.custody.unbonding_seconds,
    };
    let address = eth::deploy(client.clone(), custody).await?;
    if !funding.is_zero() {
        eth::fund(&client, address, funding).await?;
    }
    tracing::info!(
        contract = ?address,
        %funding,
        guardian = ?custody.guardian,
        challenge_blocks = custody.challenge_blocks,
        unbonding_seconds = custody.unbonding_seconds,
        "OverlapsRewards deployed"
    );
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<DeployConfig, ConfigError> {
        let mut all = vec![(
            "OPERATOR_PRIVATE_KEY",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )];
        all.extend_from_slice(pairs);
        DeployConfig::from_env(&Env::from_pairs(all))
    }

    #[test]
    fn dev_defaults_to_anvils_last_account_as_guardian() -> Result<(), ConfigError> {
        let config = read(&[])?;
        assert_eq!(
            format!("{:?}", config.custody.guardian),
            overlaps_shared::dev_values::ANVIL_ADDRESSES[9]
        );
        Ok(())
    }

    #[test]
    fn a_window_longer_than_an_eon_is_refused_naming_challenge_blocks() {
        let err = read(&[
            ("CHALLENGE_BLOCKS", "61"),
            ("CHAIN_BLOCK_SECONDS", "1"),
            ("EON_ROUNDS", "6"),
            ("ROUND_SECONDS", "10"),
        ])
        .err();
        assert_eq!(err.as_ref().map(|e| e.var()), Some("CHALLENGE_BLOCKS"));
        assert!(
            read(&[
                ("CHALLENGE_BLOCKS", "20"),
                ("CHAIN_BLOCK_SECONDS", "1"),
                ("EON_ROUNDS", "6"),
                ("ROUND_SECONDS", "10"),
            ])
            .is_ok()
        );
    }
}
