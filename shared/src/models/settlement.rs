//! Rewards and settlement: credits, eons, roots, Merkle leaves and layers,
//! Ethereum transactions, the chain record and audit reports.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value as Json;

use crate::schema::*;

/// What a validator earned in one round.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = validator_credits, check_for_backend(diesel::pg::Pg))]
pub struct ValidatorCredit {
    /// The round.
    pub round_number: i64,
    /// The validator.
    pub validator_id: i64,
    /// Checks credited.
    pub checks: i32,
    /// Amount, smallest unit.
    pub amount: BigDecimal,
}

/// A closed eon: a run of rounds whose cumulative rewards are committed together.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = eons, primary_key(number), check_for_backend(diesel::pg::Pg))]
pub struct Eon {
    /// Eon number, from 1.
    pub number: i64,
    /// First round included.
    pub first_round: i64,
    /// Last round included.
    pub last_round: i64,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

/// The Merkle root of an eon's cumulative rewards.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = root_commitments, primary_key(eon), check_for_backend(diesel::pg::Pg))]
pub struct RootCommitment {
    /// The eon.
    pub eon: i64,
    /// 32-byte root.
    pub root: Vec<u8>,
    /// Sum of all leaves, smallest unit.
    pub total: BigDecimal,
    /// Leaves in the tree.
    pub leaf_count: i32,
    /// Validators left out for lack of a payout address.
    pub excluded_count: i32,
    /// When it was computed.
    pub created_at: DateTime<Utc>,
    /// The root committed on-chain for this eon, once final (also when it was
    /// later cancelled or replaced: see the fields below).
    pub onchain_root: Option<Vec<u8>>,
    /// The block that committed it.
    pub onchain_block: Option<i64>,
    /// The first block where claims may use it (its challenge window ends).
    pub onchain_claimable_block: Option<i64>,
    /// The block where the guardian cancelled it, if it did.
    pub onchain_cancelled_block: Option<i64>,
    /// The eon whose commit replaced it while it was still pending, if any.
    pub onchain_replaced_by: Option<i64>,
}

/// One payout address's leaf in an eon's tree.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = merkle_leaves, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct MerkleLeaf {
    /// The eon.
    pub eon: i64,
    /// Position in the tree.
    pub leaf_index: i32,
    /// Payout address in the leaf.
    pub payout_address: Vec<u8>,
    /// Cumulative reward of the address, smallest unit.
    pub cumulative: BigDecimal,
}

/// Up to [`crate::merkle::NODE_CHUNK`] consecutive hashes of one layer of an eon's tree.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = merkle_nodes, check_for_backend(diesel::pg::Pg), treat_none_as_default_value = false)]
pub struct MerkleNodes {
    /// The eon.
    pub eon: i64,
    /// 0 for the leaf hashes, up to the root's layer.
    pub layer: i16,
    /// Which chunk of the layer.
    pub chunk: i32,
    /// The hashes, 32 bytes each.
    pub hashes: Vec<u8>,
}

/// One on-chain call the verifier is responsible for.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ethereum_transactions, check_for_backend(diesel::pg::Pg))]
pub struct EthereumTransaction {
    /// Row id.
    pub id: i64,
    /// Idempotency tag, such as `commit_root:7`.
    pub tag: String,
    /// Sender.
    pub from_address: Vec<u8>,
    /// Contract called.
    pub to_address: Vec<u8>,
    /// Call data.
    pub data: Vec<u8>,
    /// Value sent, smallest unit.
    pub value: BigDecimal,
    /// The nonce, once assigned.
    pub nonce: Option<i64>,
    /// `pending`, `mined`, `confirmed` or `failed`.
    pub state: String,
    /// Block it was mined in.
    pub mined_block: Option<i64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One broadcast of a transaction.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = ethereum_transaction_attempts, check_for_backend(diesel::pg::Pg))]
pub struct EthereumTransactionAttempt {
    /// Row id.
    pub id: i64,
    /// The transaction.
    pub transaction_id: i64,
    /// Hash of this signed attempt.
    pub tx_hash: Vec<u8>,
    /// Nonce (the same for every attempt of a transaction).
    pub nonce: i64,
    /// EIP-1559 max fee.
    pub max_fee_per_gas: BigDecimal,
    /// EIP-1559 tip.
    pub max_priority_fee_per_gas: BigDecimal,
    /// Gas limit.
    pub gas_limit: i64,
    /// When it was sent.
    pub broadcast_at: DateTime<Utc>,
    /// Chain head when it was sent.
    pub broadcast_block: i64,
    /// Block it was mined in, if any.
    pub mined_block: Option<i64>,
    /// Hash of that block, to notice reorgs.
    pub mined_block_hash: Option<Vec<u8>>,
}

/// A block the chain follower has seen.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = chain_blocks, primary_key(number), check_for_backend(diesel::pg::Pg))]
pub struct ChainBlock {
    /// Height.
    pub number: i64,
    /// Block hash.
    pub hash: Vec<u8>,
    /// Parent hash, compared on the next block to detect reorgs.
    pub parent_hash: Vec<u8>,
    /// Block time.
    pub timestamp: DateTime<Utc>,
    /// Past `CONFIRMATIONS`.
    pub finalized: bool,
}

/// A decoded contract log.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = contract_events, check_for_backend(diesel::pg::Pg))]
pub struct ContractEvent {
    /// Row id.
    pub id: i64,
    /// Block height.
    pub block_number: i64,
    /// Block hash.
    pub block_hash: Vec<u8>,
    /// Transaction hash.
    pub tx_hash: Vec<u8>,
    /// Position in the block.
    pub log_index: i32,
    /// `root_committed`, `claimed` or `funded`.
    pub kind: String,
    /// Eon, for `root_committed`.
    pub eon: Option<i64>,
    /// Account, for `claimed` and `funded`.
    pub account: Option<Vec<u8>>,
    /// Amount, smallest unit.
    pub amount: Option<BigDecimal>,
    /// All decoded fields.
    pub data: Json,
}

/// The audit's verdict on one eon.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = audit_reports, primary_key(eon), check_for_backend(diesel::pg::Pg))]
pub struct AuditReport {
    /// The eon.
    pub eon: i64,
    /// When it ran.
    pub created_at: DateTime<Utc>,
    /// No mismatch found.
    pub ok: bool,
    /// What was re-derived, with counts.
    pub checked: Json,
    /// Each mismatch with exact ids.
    pub mismatches: Json,
}
