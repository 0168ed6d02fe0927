//! The one place that talks to ethers-rs: chain types, the `OverlapsRewards`
//! bindings, RPC clients, deployment and event decoding. The rest of the code base
//! uses these names and never imports `ethers` itself.

mod bindings;
pub mod settings;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::redact::strip_urls;

pub use bindings::{
    ClaimedFilter, FundedFilter, GuardianChangedFilter, OVERLAPSREWARDS_ABI,
    OVERLAPSREWARDS_BYTECODE, OperatorChangedFilter, OverlapsRewards, OverlapsRewardsErrors,
    OverlapsRewardsEvents, RootCancelledFilter, RootCommittedFilter, StakedFilter,
    UnstakeRequestedFilter, UnstakedFilter,
};
pub use ethers::abi::AbiDecode;
pub use ethers::contract::builders::ContractCall;
pub use ethers::providers::{Http, Middleware, Provider, ProviderError};
pub use ethers::signers::{LocalWallet, Signer};
pub use ethers::types::transaction::eip2718::TypedTransaction;
pub use ethers::types::{
    Address, Block, BlockId, BlockNumber, Bytes, Eip1559TransactionRequest, Filter, H256, Log,
    TransactionReceipt, U64, U256,
};
pub use ethers::utils::keccak256;

/// A read-only JSON-RPC connection.
pub type ReadClient = Provider<Http>;
/// A JSON-RPC connection that signs with a local key.
pub type SignerClient = ethers::middleware::SignerMiddleware<Provider<Http>, LocalWallet>;

/// The private keys anvil derives from its default mnemonic (public knowledge:
/// dev chains only). The first is the dev operator.
pub const DEV_PRIVATE_KEYS: [&str; 10] = crate::dev_values::ANVIL_PRIVATE_KEYS;

/// What can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum EthError {
    /// The RPC endpoint failed or is unreachable.
    #[error("chain RPC: {0}")]
    Rpc(String),
    /// A key, address or URL could not be parsed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The contract rejected a call (a revert), with its decoded reason when known.
    #[error("contract reverted: {0}")]
    Reverted(String),
    /// A transaction was mined but failed.
    #[error("transaction {0:?} failed on chain")]
    TxFailed(H256),
    /// A transaction disappeared before it was mined.
    #[error("transaction dropped before it was mined")]
    Dropped,
}

impl From<ProviderError> for EthError {
    fn from(err: ProviderError) -> Self {
        EthError::Rpc(strip_urls(&err.to_string()))
    }
}

impl<M: Middleware> From<ethers::contract::ContractError<M>> for EthError {
    fn from(err: ethers::contract::ContractError<M>) -> Self {
        if let Some(decoded) = err.decode_contract_revert::<OverlapsRewardsErrors>() {
            return EthError::Reverted(format!("{decoded:?}"));
        }
        if err.is_revert() {
            return EthError::Reverted(strip_urls(&err.to_string()));
        }
        EthError::Rpc(strip_urls(&err.to_string()))
    }
}

/// A secp256k1 private key (hex). Its `Debug` shows only the address.
#[derive(Clone)]
pub struct PrivateKey(LocalWallet);

impl PrivateKey {
    /// The address the key signs for.
    pub fn address(&self) -> Address {
        self.0.address()
    }

    /// The wallet, for `chain_id`.
    pub fn wallet(&self, chain_id: u64) -> LocalWallet {
        self.0.clone().with_chain_id(chain_id)
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?})", self.address())
    }
}

impl FromStr for PrivateKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.trim().trim_start_matches("0x");
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("expected 32 bytes as 64 hex digits".into());
        }
        LocalWallet::from_str(hex)
            .map(PrivateKey)
            .map_err(|_| "not a valid secp256k1 private key".into())
    }
}

/// Parses a `0x…` address.
pub fn parse_address(s: &str) -> Result<Address, EthError> {
    Address::from_str(s.trim()).map_err(|err| EthError::Invalid {
        what: "address",
        reason: err.to_string(),
    })
}

/// A read-only client for `rpc_url` (polls every 100 ms when waiting).
pub fn read_client(rpc_url: &str) -> Result<ReadClient, EthError> {
    let provider = Provider::<Http>::try_from(rpc_url).map_err(|err| EthError::Invalid {
        what: "RPC URL",
        reason: strip_urls(&err.to_string()),
    })?;
    Ok(provider.interval(Duration::from_millis(100)))
}

/// A client for `rpc_url` that signs with `key`, for the chain it reports.
pub async fn signer_client(rpc_url: &str, key: &PrivateKey) -> Result<Arc<SignerClient>, EthError> {
    let provider = read_client(rpc_url)?;
    let chain_id = provider.get_chainid().await?.as_u64();
    Ok(Arc::new(ethers::middleware::SignerMiddleware::new(
        provider,
        key.wallet(chain_id),
    )))
}

/// The rewards contract at `address`, through `client`.
pub fn rewards<M: Middleware>(address: Address, client: Arc<M>) -> OverlapsRewards<M> {
    OverlapsRewards::new(address, client)
}

/// Who runs a rewards contract and how long its funds wait, fixed at deployment
/// (the guardian may later rotate both roles; the periods never change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Custody {
    /// Commits roots.
    pub operator: Address,
    /// Cancels pending roots in their window, rotates the operator and itself.
    pub guardian: Address,
    /// Blocks between a root's commit and its being claimable.
    pub challenge_blocks: u64,
    /// Seconds between an unstake request and the stake's payout.
    pub unbonding_seconds: u64,
}

/// Deploys `OverlapsRewards` with `custody`'s roles and periods; returns its address.
pub async fn deploy(client: Arc<SignerClient>, custody: Custody) -> Result<Address, EthError> {
    let deployer = OverlapsRewards::deploy(
        client,
        (
            custody.operator,
            custody.guardian,
            custody.challenge_blocks,
            custody.unbonding_seconds,
        ),
    )?;
    let contract = deployer.send().await?;
    Ok(contract.address())
}

/// Sends `amount` to the contract (its `receive` emits `Funded`), waiting until mined.
pub async fn fund(
    client: &SignerClient,
    contract: Address,
    amount: U256,
) -> Result<TransactionReceipt, EthError> {
    let tx = Eip1559TransactionRequest::new().to(contract).value(amount);
    let pending = client
        .send_transaction(tx, None)
        .await
        .map_err(|err| EthError::Rpc(strip_urls(&err.to_string())))?;
    let hash = pending.tx_hash();
    let receipt = pending.await?.ok_or(EthError::Dropped)?;
    if receipt.status != Some(U64::from(1)) {
        return Err(EthError::TxFailed(hash));
    }
    Ok(receipt)
}

/// The ABI-encoded call `commitRoot(eon, root, total)`.
pub fn commit_root_calldata<M: Middleware>(
    contract: &OverlapsRewards<M>,
    eon: u64,
    root: [u8; 32],
    total: U256,
) -> Bytes {
    contract
        .commit_root(eon, root, total)
        .calldata()
        .unwrap_or_default()
}

/// A decoded event of the rewards contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewardsEvent {
    /// `RootCommitted(eon, root, total, claimableAt)`: pending until `claimable_at`.
    RootCommitted {
        /// The eon.
        eon: u64,
        /// The Merkle root.
        root: [u8; 32],
        /// The sum of the tree's cumulative amounts.
        total: U256,
        /// The first block where claims may use it (unless cancelled or replaced first).
        claimable_at: u64,
    },
    /// `RootCancelled(eon, root)`: the guardian cancelled a pending root.
    RootCancelled {
        /// The eon.
        eon: u64,
        /// The cancelled root.
        root: [u8; 32],
    },
    /// `OperatorChanged(previous, current)`.
    OperatorChanged {
        /// The operator before (zero at deployment).
        previous: Address,
        /// The operator now.
        current: Address,
    },
    /// `GuardianChanged(previous, current)`.
    GuardianChanged {
        /// The guardian before (zero at deployment).
        previous: Address,
        /// The guardian now.
        current: Address,
    },
    /// `Claimed(account, amount, cumulative)`.
    Claimed {
        /// Who was paid.
        account: Address,
        /// What was paid by this claim.
        amount: U256,
        /// Everything paid to the account so far.
        cumulative: U256,
    },
    /// `Funded(from, amount)`.
    Funded {
        /// The sender.
        from: Address,
        /// The amount received.
        amount: U256,
    },
    /// `Staked(key, staker, amount, total)`.
    Staked {
        /// The Ed25519 public key the stake is bound to.
        key: [u8; 32],
        /// The address whose own position on the key this is.
        staker: Address,
        /// What this stake added.
        amount: U256,
        /// The position's amount afterwards.
        total: U256,
    },
    /// `UnstakeRequested(key, staker, amount, unlockAt)`: the stake unbonds until then.
    UnstakeRequested {
        /// The Ed25519 public key.
        key: [u8; 32],
        /// The position's owner.
        staker: Address,
        /// The whole amount being unbonded.
        amount: U256,
        /// The block timestamp (Unix seconds) from which `unstake` pays.
        unlock_at: u64,
    },
    /// `Unstaked(key, staker, amount)`: paid out, the position is gone.
    Unstaked {
        /// The Ed25519 public key.
        key: [u8; 32],
        /// Who was paid.
        staker: Address,
        /// What was paid.
        amount: U256,
    },
}

/// Decodes one log of the rewards contract; `None` for a log it did not emit.
pub fn decode_event(log: &Log) -> Option<RewardsEvent> {
    use ethers::contract::EthLogDecode;
    let raw = ethers::abi::RawLog {
        topics: log.topics.clone(),
        data: log.data.to_vec(),
    };
    match OverlapsRewardsEvents::decode_log(&raw).ok()? {
        OverlapsRewardsEvents::RootCommittedFilter(e) => Some(RewardsEvent::RootCommitted {
            eon: e.eon,
            root: e.root,
            total: e.total,
            claimable_at: e.claimable_at,
        }),
        OverlapsRewardsEvents::RootCancelledFilter(e) => Some(RewardsEvent::RootCancelled {
            eon: e.eon,
            root: e.root,
        }),
        OverlapsRewardsEvents::OperatorChangedFilter(e) => Some(RewardsEvent::OperatorChanged {
            previous: e.previous,
            current: e.current,
        }),
        OverlapsRewardsEvents::GuardianChangedFilter(e) => Some(RewardsEvent::GuardianChanged {
            previous: e.previous,
            current: e.current,
        }),
        OverlapsRewardsEvents::ClaimedFilter(e) => Some(RewardsEvent::Claimed {
            account: e.account,
            amount: e.amount,
            cumulative: e.cumulative,
        }),
        OverlapsRewardsEvents::FundedFilter(e) => Some(RewardsEvent::Funded {
            from: e.from,
            amount: e.amount,
        }),
        OverlapsRewardsEvents::StakedFilter(e) => Some(RewardsEvent::Staked {
            key: e.key,
            staker: e.staker,
            amount: e.amount,
            total: e.total,
        }),
        OverlapsRewardsEvents::UnstakeRequestedFilter(e) => Some(RewardsEvent::UnstakeRequested {
            key: e.key,
            staker: e.staker,
            amount: e.amount,
            unlock_at: e.unlock_at,
        }),
        OverlapsRewardsEvents::UnstakedFilter(e) => Some(RewardsEvent::Unstaked {
            key: e.key,
            staker: e.staker,
            amount: e.amount,
        }),
    }
}

/// The filter for every log of the contract at `address` in blocks `from..=to`.
pub fn contract_logs(address: Address, from: u64, to: u64) -> Filter {
    Filter::new().address(address).from_block(from).to_block(to)
}

/// Signs `tx` with `wallet`; returns the raw bytes to broadcast and the hash the
/// transaction will have (known before it is sent, so it can be recorded first).
pub async fn sign(
    wallet: &LocalWallet,
    tx: Eip1559TransactionRequest,
) -> Result<(Bytes, H256), EthError> {
    let typed: TypedTransaction = tx.into();
    let signature = wallet
        .sign_transaction(&typed)
        .await
        .map_err(|err| EthError::Invalid {
            what: "transaction",
            reason: err.to_string(),
        })?;
    let raw = typed.rlp_signed(&signature);
    let hash = H256::from(keccak256(&raw));
    Ok((raw, hash))
}

/// Calls a JSON-RPC method the typed client has no wrapper for (anvil's `evm_*`).
pub async fn raw_request<T, R>(client: &ReadClient, method: &str, params: T) -> Result<R, EthError>
where
    T: std::fmt::Debug + serde::Serialize + Send + Sync,
    R: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug + Send,
{
    Ok(client.request(method, params).await?)
}

/// Sends a contract call and waits until it is mined; a revert (found when the
/// gas is estimated) comes back as [`EthError::Reverted`] with the decoded error.
pub async fn send_call<M, D>(call: ContractCall<M, D>) -> Result<TransactionReceipt, EthError>
where
    M: Middleware + 'static,
    D: ethers::abi::Detokenize + Send + Sync,
{
    let pending = call.send().await?;
    let hash = pending.tx_hash();
    let receipt = pending.await?.ok_or(EthError::Dropped)?;
    if receipt.status != Some(U64::from(1)) {
        return Err(EthError::TxFailed(hash));
    }
    Ok(receipt)
}

/// The native balance of `account` at the latest block.
pub async fn balance<M: Middleware>(client: &M, account: Address) -> Result<U256, EthError> {
    client
        .get_balance(account, None)
        .await
        .map_err(|err| EthError::Rpc(strip_urls(&err.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_rpc_url_with_a_key_leaves_no_secret_in_the_error() {
        let client = read_client("http://user:secret-key@127.0.0.1:1/secret-path?key=secret")
            .expect("a client");
        let err = match client.get_block_number().await {
            Ok(_) => panic!("nothing listens on port 1"),
            Err(err) => EthError::from(err),
        };
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("chain RPC"), "{shown}");
    }

    #[test]
    fn chain_settings_debug_hides_the_rpc_key() {
        let env = crate::config::Env::from_pairs([
            (
                "CHAIN_RPC_URL",
                "https://user:secret-key@rpc.example/v3/secret-path",
            ),
            (
                "CONTRACT_ADDRESS",
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            ),
        ]);
        let settings = settings::ChainSettings::from_env(&env, crate::config::AppEnv::Dev)
            .expect("valid settings");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("rpc.example"), "{shown}");
    }
}
