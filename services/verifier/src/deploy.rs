//! `verifier deploy`: deploys `OverlapsRewards` on a dev chain and funds it.

use overlaps_shared::config::{ConfigError, Env};
use overlaps_shared::eth::settings::DEV_RPC_URL;
use overlaps_shared::eth::{self, Address, EthError, PrivateKey, U256};

/// What deploying needs: no database, no contract address yet.
#[derive(Clone)]
pub struct DeployConfig {
    /// `CHAIN_RPC_URL`.
    pub rpc_url: String,
    /// `OPERATOR_PRIVATE_KEY`: deploys, and becomes the contract's operator.
    pub operator_key: PrivateKey,
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
            .finish()
    }
}

impl DeployConfig {
    /// Reads and validates the deploy settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(DeployConfig {
            rpc_url: env.optional("CHAIN_RPC_URL", DEV_RPC_URL.to_owned())?,
            operator_key: env.required("OPERATOR_PRIVATE_KEY")?,
        })
    }
}

/// Parses a `--fund` amount in wei.
pub fn parse_wei(value: &str) -> Result<U256, ConfigError> {
    Env::from_pairs([("--fund", value)]).amount("--fund", U256::zero())
}

/// Deploys the contract with the operator key as operator, sends it `funding`,
/// and returns its address.
pub async fn deploy_and_fund(config: &DeployConfig, funding: U256) -> Result<Address, EthError> {
    let client = eth::signer_client(&config.rpc_url, &config.operator_key).await?;
    let address = eth::deploy(client.clone(), config.operator_key.address()).await?;
    if !funding.is_zero() {
        eth::fund(&client, address, funding).await?;
    }
    tracing::info!(contract = ?address, %funding, "OverlapsRewards deployed");
    Ok(address)
}
