//! `validator claim`: fetches this node's proof for the contract's claimable eon
//! (never a root still in its challenge window) from the hub's API, checks it
//! against the root the contract holds (trusting neither the hub's root nor its
//! arithmetic), and claims the unclaimed part from the payout key.

use std::sync::Arc;

use overlaps_shared::eth::{self, Address, EthError, Middleware, PrivateKey, U256};
use overlaps_shared::merkle::{Hash, leaf_hash, verify_proof};
use serde_json::Value;

use crate::hub_api::{ApiError, HubApi};

/// Why a claim did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The hub's API could not be reached or answered an error.
    #[error("hub API: {0}")]
    Api(#[from] ApiError),
    /// Nothing is committed on-chain yet.
    #[error("no root is committed on-chain yet: nothing to claim")]
    NoRoot,
    /// A root is committed but still in its challenge window, and none before it
    /// is claimable.
    #[error(
        "no root is claimable yet: eon {}'s root is in its challenge window until block {} \
         (now {}); claim again from then on",
        .0.eon, .0.claimable_at, .0.block
    )]
    InChallengeWindow(PendingRoot),
    /// The hub's answer is not what it must be.
    #[error("the hub's proof is unusable: {0}")]
    BadProof(String),
    /// The proof does not lead to the root the contract holds.
    #[error("the proof does not match the on-chain root (eon {onchain_eon}): {reason}")]
    NotOnChain {
        /// The contract's latest eon.
        onchain_eon: u64,
        /// What differs.
        reason: String,
    },
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
}

/// The contract's newest root while it is still in its challenge window: claims
/// cannot use it before `claimable_at` (the guardian may cancel it until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRoot {
    /// Its eon.
    pub eon: u64,
    /// The first block where claims may use it.
    pub claimable_at: u64,
    /// The block when the contract was read.
    pub block: u64,
}

impl std::fmt::Display for PendingRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "eon {}'s root is still in its challenge window until block {} (now {}): \
             this claim pays only up to the claimable eon; claim again after that block",
            self.eon, self.claimable_at, self.block
        )
    }
}

/// The proof the hub serves at `GET /api/v1/validators/{id}/proof`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The eon of the root it proves against.
    pub eon: u64,
    /// The payout address in the leaf.
    pub payout: Address,
    /// The cumulative reward in the leaf.
    pub cumulative: U256,
    /// The leaf hash.
    pub leaf: Hash,
    /// Sibling hashes from leaf to root.
    pub proof: Vec<Hash>,
    /// The root the hub says it committed.
    pub root: Hash,
    /// The hub's figure for this validator's own cumulative reward at that eon.
    pub validator_cumulative: U256,
    /// The part of it the hub attributed to a payout address.
    pub validator_attributed: U256,
}

fn hash32(value: &Value, field: &str) -> Result<Hash, ClaimError> {
    let text = value
        .as_str()
        .ok_or_else(|| ClaimError::BadProof(format!("{field} is not a string")))?;
    let bytes = hex::decode(text.trim_start_matches("0x"))
        .map_err(|e| ClaimError::BadProof(format!("{field}: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ClaimError::BadProof(format!("{field} is not 32 bytes")))
}

impl Proof {
    /// Parses the API's JSON.
    pub fn from_json(json: &Value) -> Result<Self, ClaimError> {
        let field = |name: &str| {
            json.get(name)
                .ok_or_else(|| ClaimError::BadProof(format!("{name} is missing")))
        };
        let payout = field("payout_address")?
            .as_str()
            .ok_or_else(|| ClaimError::BadProof("payout_address is not a string".into()))?;
        let amount = |name: &str| {
            match field(name)? {
                Value::String(s) => U256::from_dec_str(s).ok(),
                Value::Number(n) => n.as_u64().map(U256::from),
                _ => None,
            }
            .ok_or_else(|| ClaimError::BadProof(format!("{name} is not an integer")))
        };
        Ok(Proof {
            eon: field("eon")?
                .as_u64()
                .ok_or_else(|| ClaimError::BadProof("eon is not a number".into()))?,
            payout: eth::parse_address(payout)
                .map_err(|e| ClaimError::BadProof(format!("payout_address: {e}")))?,
            cumulative: amount("cumulative")?,
            leaf: hash32(field("leaf")?, "leaf")?,
            proof: field("proof")?
                .as_array()
                .ok_or_else(|| ClaimError::BadProof("proof is not a list".into()))?
                .iter()
                .map(|h| hash32(h, "proof"))
                .collect::<Result<_, _>>()?,
            root: hash32(field("root")?, "root")?,
            validator_cumulative: amount("validator_cumulative")?,
            validator_attributed: amount("validator_attributed")?,
        })
    }

    /// Checks the leaf's encoding and that the proof leads to `root`.
    pub fn verify_against(&self, root: Hash) -> Result<(), String> {
        if leaf_hash(self.payout, self.cumulative) != self.leaf {
            return Err("the leaf is not the hash of its address and amount".into());
        }
        if !verify_proof(root, self.leaf, &self.proof) {
            return Err("the proof does not lead to the root".into());
        }
        Ok(())
    }
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Paid `amount` to the payout address.
    Paid {
        /// Wei paid by this claim.
        amount: U256,
        /// The claim transaction.
        tx_hash: String,
    },
    /// Everything in the proof was already claimed.
    NothingToClaim,
}

/// What a claim found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The proof used (for the claimable eon).
    pub proof: Proof,
    /// What was paid.
    pub claimed: Claimed,
    /// A newer root still in its challenge window, which this claim could not use.
    pub pending: Option<PendingRoot>,
}

/// Fetches the proof of the validator with `public_key` for the contract's
/// claimable eon, checks it against the contract's claimable root and claims from
/// `payout_key`. A newer root still in its challenge window is reported, not used.
pub async fn claim(
    api: &HubApi,
    public_key: &str,
    rpc_url: &str,
    contract: Address,
    payout_key: &PrivateKey,
) -> Result<ClaimOutcome, ClaimError> {
    let client = eth::signer_client(rpc_url, payout_key).await?;
    let rewards = eth::rewards(contract, Arc::clone(&client));
    // The contract's views report a matured root as claimable without a transaction.
    let onchain_eon = rewards.eon().call().await.map_err(EthError::from)?;
    let (pending_eon, _, _, claimable_at) =
        rewards.pending().call().await.map_err(EthError::from)?;
    let pending = if pending_eon == 0 {
        None
    } else {
        let block = client
            .inner()
            .get_block_number()
            .await
            .map_err(EthError::from)?;
        Some(PendingRoot {
            eon: pending_eon,
            claimable_at,
            block: block.as_u64(),
        })
    };
    if let Some(pending) = &pending {
        tracing::warn!(%pending, "the newest root is not claimable yet");
    }
    if onchain_eon == 0 {
        return Err(pending.map_or(ClaimError::NoRoot, ClaimError::InChallengeWindow));
    }
    let onchain_root = rewards.root().call().await.map_err(EthError::from)?;
    // The contract's claimable eon, not the hub's latest: the hub may have closed
    // one not yet committed, or committed one still in its challenge window.
    let id = api.validator_id(public_key).await?;
    let proof = api.proof(id, Some(onchain_eon)).await?;
    tracing::info!(eon = proof.eon, cumulative = %proof.cumulative, payout = ?proof.payout, "proof fetched");
    proof
        .verify_against(onchain_root)
        .map_err(|reason| ClaimError::NotOnChain {
            onchain_eon,
            reason: format!("hub eon {}: {reason}", proof.eon),
        })?;
    if payout_key.address() != proof.payout {
        tracing::warn!(payout = ?proof.payout, sender = ?payout_key.address(),
            "the claim is sent from another account; the reward still goes to the payout address");
    }
    let already = rewards
        .claimed(proof.payout)
        .call()
        .await
        .map_err(EthError::from)?;
    if already >= proof.cumulative {
        return Ok(ClaimOutcome {
            proof,
            claimed: Claimed::NothingToClaim,
            pending,
        });
    }
    let receipt =
        eth::send_call(rewards.claim(proof.payout, proof.cumulative, proof.proof.clone())).await?;
    let claimed = Claimed::Paid {
        amount: proof.cumulative - already,
        tx_hash: format!("{:?}", receipt.transaction_hash),
    };
    Ok(ClaimOutcome {
        proof,
        claimed,
        pending,
    })
}
