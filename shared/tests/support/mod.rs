//! What the contract tests share: a chain with the contract deployed, reward trees
//! built by the Rust Merkle code, and calls that return decoded events.

#![allow(dead_code)]

use std::sync::Arc;

use overlaps_shared::eth::{
    self, Address, EthError, OverlapsRewards, RewardsEvent, SignerClient, U256,
};
use overlaps_shared::merkle::{Hash, RewardTree, leaf_hash};
use overlaps_shared::testing::TestChain;

/// What a test returns.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A chain with the contract deployed by the operator (dev key 0), guarded by dev
/// key 9, with a window of `TEST_CHALLENGE_BLOCKS`.
pub struct Setup {
    pub chain: TestChain,
    pub operator: Arc<SignerClient>,
    pub guardian: Arc<SignerClient>,
    pub stranger: Arc<SignerClient>,
    pub contract: OverlapsRewards<SignerClient>,
}

impl Setup {
    /// The contract as `client` sees it (to call it from another account).
    pub fn as_client(&self, client: &Arc<SignerClient>) -> OverlapsRewards<SignerClient> {
        eth::rewards(self.contract.address(), client.clone())
    }

    /// The contract called by the guardian.
    pub fn as_guardian(&self) -> OverlapsRewards<SignerClient> {
        self.as_client(&self.guardian)
    }

    /// The current block number.
    pub async fn block(&self) -> Result<u64, EthError> {
        use overlaps_shared::eth::Middleware;
        Ok(self
            .operator
            .get_block_number()
            .await
            .map_err(|e| EthError::Rpc(e.to_string()))?
            .as_u64())
    }
}

pub async fn setup(funding: u64) -> Result<Setup, Box<dyn std::error::Error>> {
    let chain = TestChain::start()?;
    let address = chain.deploy_funded(U256::from(funding)).await?;
    let operator = eth::signer_client(&chain.rpc_url(), &chain.key(0)).await?;
    let guardian = eth::signer_client(&chain.rpc_url(), &chain.guardian()).await?;
    let stranger = eth::signer_client(&chain.rpc_url(), &chain.key(1)).await?;
    let contract = eth::rewards(address, operator.clone());
    Ok(Setup {
        chain,
        operator,
        guardian,
        stranger,
        contract,
    })
}

/// Fresh accounts with no balance, so a payment shows up exactly.
pub fn accounts(n: u64) -> Vec<Address> {
    (0..n)
        .map(|i| Address::from_low_u64_be(0xA11CE000 + i))
        .collect()
}

pub struct Tree {
    pub accounts: Vec<Address>,
    pub amounts: Vec<U256>,
    pub tree: RewardTree,
}

impl Tree {
    pub fn new(accounts: &[Address], amounts: &[u64]) -> Self {
        let amounts: Vec<U256> = amounts.iter().map(|a| U256::from(*a)).collect();
        let leaves: Vec<Hash> = accounts
            .iter()
            .zip(&amounts)
            .map(|(a, c)| leaf_hash(*a, *c))
            .collect();
        Tree {
            accounts: accounts.to_vec(),
            amounts,
            tree: RewardTree::build(&leaves),
        }
    }

    pub fn total(&self) -> U256 {
        self.amounts.iter().fold(U256::zero(), |a, b| a + *b)
    }

    pub fn proof(&self, i: usize) -> Vec<[u8; 32]> {
        self.tree.proof(i)
    }

    pub fn root(&self) -> [u8; 32] {
        self.tree.root()
    }
}

/// Commits `tree` for `eon` as the operator; the decoded events.
pub async fn commit(s: &Setup, eon: u64, tree: &Tree) -> Result<Vec<RewardsEvent>, EthError> {
    let receipt = eth::send_call(s.contract.commit_root(eon, tree.root(), tree.total())).await?;
    Ok(receipt.logs.iter().filter_map(eth::decode_event).collect())
}

/// Claims leaf `i` of `tree`; the decoded events.
pub async fn claim(s: &Setup, tree: &Tree, i: usize) -> Result<Vec<RewardsEvent>, EthError> {
    let receipt = eth::send_call(s.contract.claim(
        tree.accounts[i],
        tree.amounts[i],
        tree.proof(i),
    ))
    .await?;
    Ok(receipt.logs.iter().filter_map(eth::decode_event).collect())
}

/// Asserts that `result` is a revert naming the custom error `name`.
pub fn reverted_with(result: Result<impl std::fmt::Debug, EthError>, name: &str) {
    match result {
        Err(EthError::Reverted(reason)) => {
            assert!(reason.contains(name), "expected {name}, got {reason}")
        }
        other => panic!("expected a revert with {name}, got {other:?}"),
    }
}
