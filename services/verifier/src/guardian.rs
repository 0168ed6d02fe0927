//! `verifier guardian …`: the guardian's commands (cancel a pending root, rotate the
//! operator or the guardian, show the contract's custody state), signed with
//! `GUARDIAN_PRIVATE_KEY`. The guardian key belongs off the hub: run these from the
//! guardian's own machine, with only the chain settings and that key.

use std::sync::Arc;

use overlaps_shared::config::{AppEnv, ConfigError, Env};
use overlaps_shared::dev_values::{DevValue, refuse_in_prod};
use overlaps_shared::eth::settings::ChainSettings;
use overlaps_shared::eth::{
    self, Address, EthError, Middleware, OverlapsRewards, PrivateKey, SignerClient,
};

/// What the guardian commands read from the environment.
#[derive(Debug, Clone)]
pub struct GuardianConfig {
    /// `CHAIN_RPC_URL` and `CONTRACT_ADDRESS`.
    pub chain: ChainSettings,
    /// `GUARDIAN_PRIVATE_KEY` (its `Debug` shows only the address).
    pub key: PrivateKey,
}

impl GuardianConfig {
    /// Reads and validates the settings; anvil's keys are refused in prod.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let app_env = env.optional("APP_ENV", AppEnv::Dev)?;
        refuse_in_prod(env, app_env, &[DevValue::GuardianPrivateKey])?;
        Ok(GuardianConfig {
            chain: ChainSettings::from_env(env, app_env)?,
            key: env.required("GUARDIAN_PRIVATE_KEY")?,
        })
    }
}

/// Why a guardian command did not go through.
#[derive(Debug, thiserror::Error)]
pub enum GuardianError {
    /// The key is not the contract's guardian: the contract would refuse it.
    #[error("GUARDIAN_PRIVATE_KEY signs for {key:?}, but the contract's guardian is {guardian:?}")]
    NotGuardian {
        /// The key's address.
        key: Address,
        /// The contract's guardian.
        guardian: Address,
    },
    /// The chain (a revert carries the contract's reason, e.g. `AlreadyClaimable`).
    #[error(transparent)]
    Eth(#[from] EthError),
}

/// The contract's custody state, as the guardian sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The current block.
    pub block: u64,
    /// Who commits roots.
    pub operator: Address,
    /// Who may cancel and rotate.
    pub guardian: Address,
    /// The window, in blocks.
    pub challenge_blocks: u64,
    /// The claimable eon (0: none yet).
    pub claimable_eon: u64,
    /// The root in its window: eon, root and the block it becomes claimable at.
    pub pending: Option<(u64, [u8; 32], u64)>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "block:            {}", self.block)?;
        writeln!(f, "operator:         {:?}", self.operator)?;
        writeln!(f, "guardian:         {:?}", self.guardian)?;
        writeln!(f, "challenge blocks: {}", self.challenge_blocks)?;
        writeln!(f, "claimable eon:    {}", self.claimable_eon)?;
        match self.pending {
            Some((eon, root, at)) => write!(
                f,
                "pending:          eon {eon}, root 0x{}, claimable at block {at} \
                 (cancel before then: verifier guardian cancel-root --eon {eon})",
                hex::encode(root)
            ),
            None => write!(f, "pending:          none"),
        }
    }
}

/// The guardian's view of the contract.
pub struct Guardian {
    client: Arc<SignerClient>,
    contract: OverlapsRewards<SignerClient>,
}

impl Guardian {
    /// Connects with the guardian key.
    pub async fn connect(config: &GuardianConfig) -> Result<Self, GuardianError> {
        let client = eth::signer_client(&config.chain.rpc_url, &config.key).await?;
        let contract = eth::rewards(config.chain.contract, Arc::clone(&client));
        Ok(Guardian { client, contract })
    }

    /// Reads the custody state.
    pub async fn status(&self) -> Result<Status, GuardianError> {
        let (eon, root, _total, at) = self
            .contract
            .pending()
            .call()
            .await
            .map_err(EthError::from)?;
        Ok(Status {
            block: self
                .client
                .inner()
                .get_block_number()
                .await
                .map_err(EthError::from)?
                .as_u64(),
            operator: self
                .contract
                .operator()
                .call()
                .await
                .map_err(EthError::from)?,
            guardian: self
                .contract
                .guardian()
                .call()
                .await
                .map_err(EthError::from)?,
            challenge_blocks: self
                .contract
                .challenge_blocks()
                .call()
                .await
                .map_err(EthError::from)?,
            claimable_eon: self.contract.eon().call().await.map_err(EthError::from)?,
            pending: (eon != 0).then_some((eon, root, at)),
        })
    }

    /// Refuses early, with both addresses, when the key is not the guardian.
    async fn ensure_guardian(&self) -> Result<(), GuardianError> {
        let guardian = self
            .contract
            .guardian()
            .call()
            .await
            .map_err(EthError::from)?;
        if guardian != self.client.address() {
            return Err(GuardianError::NotGuardian {
                key: self.client.address(),
                guardian,
            });
        }
        Ok(())
    }

    /// Cancels eon `eon`'s pending root; returns the transaction hash.
    pub async fn cancel_root(&self, eon: u64) -> Result<String, GuardianError> {
        self.ensure_guardian().await?;
        let receipt = eth::send_call(self.contract.cancel_root(eon)).await?;
        tracing::warn!(eon, tx = ?receipt.transaction_hash, "pending root cancelled by the guardian");
        Ok(format!("{:?}", receipt.transaction_hash))
    }

    /// Makes `operator` the only address that may commit roots.
    pub async fn set_operator(&self, operator: Address) -> Result<String, GuardianError> {
        self.ensure_guardian().await?;
        let receipt = eth::send_call(self.contract.set_operator(operator)).await?;
        tracing::warn!(?operator, tx = ?receipt.transaction_hash, "operator rotated by the guardian");
        Ok(format!("{:?}", receipt.transaction_hash))
    }

    /// Hands the guardian role to `guardian` (this key loses it).
    pub async fn set_guardian(&self, guardian: Address) -> Result<String, GuardianError> {
        self.ensure_guardian().await?;
        let receipt = eth::send_call(self.contract.set_guardian(guardian)).await?;
        tracing::warn!(?guardian, tx = ?receipt.transaction_hash, "guardian role handed over");
        Ok(format!("{:?}", receipt.transaction_hash))
    }
}
