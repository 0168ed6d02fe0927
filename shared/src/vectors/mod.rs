//! Reference vectors of the protocol and the public formulas
//! (`shared/protocol/vectors.json`, described in `PROTOCOL.md`): fixed inputs and
//! the exact bytes, hashes and signatures this code derives from them, so an
//! implementation in another language can check itself, and a change to any
//! format or algorithm shows up as a changed file (the `vectors` test fails).
//!
//! Regenerate with `cargo run --bin protocol-vectors -- shared/protocol/vectors.json`.

mod generate;

use serde::{Deserialize, Serialize};

pub use generate::generate;

/// The command that writes the committed file.
pub const GENERATOR: &str = "cargo run --bin protocol-vectors -- shared/protocol/vectors.json";

/// Every vector, as stored in `shared/protocol/vectors.json`. Byte strings are
/// lowercase hex without `0x`, except Ethereum addresses (EIP-55, `0x`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vectors {
    /// What the file is and where it is described.
    pub about: String,
    /// The command that produced it.
    pub generator: String,
    /// The protocol version announced in `hello`.
    pub protocol: String,
    /// The one-byte failure codes of the result layout.
    pub failure_codes: Vec<FailureCodeVector>,
    /// One example of every message type, as sent on the socket.
    pub messages: Vec<MessageVector>,
    /// Signup payloads and their signatures.
    pub signup: Vec<SignupVector>,
    /// Check specs (`validate` messages): canonical bytes and spec hashes.
    pub check_specs: Vec<CheckSpecVector>,
    /// Result payloads and their signatures, one per status and failure.
    pub results: Vec<ResultVector>,
    /// Results signed under the `overlaps/v1` layout (stored before v2; still verified).
    pub results_v1: Vec<ResultVector>,
    /// A seed chain, its reveals and the round seeds built on them.
    pub seed_chain: SeedChainVector,
    /// The round-seed rule of rounds opened before seed chains.
    pub legacy_round_seed: LegacySeedVector,
    /// Walker-alias choices of validators for a site.
    pub selection: Vec<SelectionVector>,
    /// Due offsets of a site's check in its round.
    pub due_offsets: Vec<DueOffsetVector>,
    /// A canary-key chain and the canary plans of its rounds.
    pub canary: CanaryVector,
    /// Rounds settled by majority: verdicts, results hash, chain hash.
    pub rounds: Vec<RoundVector>,
    /// Webhook signatures.
    pub webhook: Vec<WebhookVector>,
    /// Reward trees of 1, 2, 3, 5, 7 and 37 leaves with every proof.
    pub merkle: Vec<MerkleVector>,
    /// A reward tree of 4,097 leaves from a rule, its root and sample proofs.
    pub merkle_large: MerkleLargeVector,
}

/// A failure reason and its code in the signed result bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureCodeVector {
    /// The name on the wire and in the store.
    pub name: String,
    /// The byte in `result_bytes`.
    pub code: u8,
}

/// One message as a JSON text frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageVector {
    /// `hub_to_validator` or `validator_to_hub`.
    pub direction: String,
    /// The frame's text.
    pub json: String,
}

/// A signup: the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignupVector {
    /// The Ed25519 secret seed (32 bytes) of the validator's key.
    pub key_seed: String,
    /// Its public key (32 bytes).
    pub public_key: String,
    /// The hub id from `hello`.
    pub hub_id: String,
    /// The nonce from `hello` (32 bytes).
    pub nonce: String,
    /// The payout address (EIP-55).
    pub payout_address: String,
    /// The exact signed bytes.
    pub bytes: String,
    /// The Ed25519 signature (64 bytes).
    pub signature: String,
    /// The `signup` frame carrying it.
    pub message: String,
}

/// A result: the wire message, the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultVector {
    /// The Ed25519 secret seed (32 bytes) of the validator's key.
    pub key_seed: String,
    /// Its public key (32 bytes).
    pub public_key: String,
    /// The hub id from `hello`.
    pub hub_id: String,
    /// The `result` frame, signature included.
    pub message: serde_json::Value,
    /// The failure byte in the signed bytes (0 for none).
    pub failure_code: u8,
    /// The exact signed bytes.
    pub bytes: String,
    /// The Ed25519 signature (64 bytes).
    pub signature: String,
}

/// A check spec: the `validate` message that carries it, its canonical bytes and hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpecVector {
    /// The `validate` frame.
    pub message: String,
    /// The canonical spec bytes.
    pub bytes: String,
    /// SHA-256 of the bytes: the `spec_hash` a result for it signs.
    pub spec_hash: String,
}

/// One round of a seed chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRoundVector {
    /// The round number (1 is the hub's first).
    pub round: u32,
    /// Its reveal, `h_(L-1-i)` for the epoch's `i`-th round.
    pub reveal: String,
    /// Its seed.
    pub seed: String,
}

/// A seed chain (one epoch) from a known anchor, and the rounds using it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedChainVector {
    /// The hub id (for the genesis seed).
    pub hub_id: String,
    /// The chain's secret anchor `h_0` (public here, for the vector).
    pub anchor: String,
    /// Rounds in the epoch, `L`.
    pub length: u32,
    /// `h_0 … h_L`.
    pub links: Vec<String>,
    /// The published tip, `h_L`.
    pub tip: String,
    /// `keccak256("overlaps/v1/genesis" || hub id)`.
    pub genesis_seed: String,
    /// The epoch's rounds, from the hub's first.
    pub rounds: Vec<SeedRoundVector>,
}

/// The old round-seed rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacySeedVector {
    /// The previous round's seed.
    pub previous_seed: String,
    /// The results hash it used.
    pub results_hash: String,
    /// The seed.
    pub seed: String,
}

/// A selection candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateVector {
    /// The validator.
    pub validator_id: i64,
    /// Its selection weight (0 to 10,000).
    pub weight: u32,
    /// Its network; two of one network never share a quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// The validators chosen for one site in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionVector {
    /// The round seed.
    pub round_seed: String,
    /// The site.
    pub website_id: i64,
    /// The candidates as listed (order and repeats do not matter).
    pub candidates: Vec<CandidateVector>,
    /// How many distinct validators the site asks for.
    pub quorum: usize,
    /// The chosen validators, in the order drawn.
    pub chosen: Vec<i64>,
}

/// When a site's check is due in its round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueOffsetVector {
    /// The round seed.
    pub round_seed: String,
    /// The site.
    pub website_id: i64,
    /// The spread (half the round), milliseconds.
    pub spread_ms: u64,
    /// The offset from the round's opening, milliseconds.
    pub offset_ms: u64,
}

/// One canary of a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryPlanVector {
    /// Who gets it.
    pub validator_id: i64,
    /// Its mode.
    pub mode: String,
    /// The keyword asked for.
    pub keyword: Option<String>,
    /// The URL nonce (8 bytes).
    pub nonce: String,
    /// The draw that picks the real check it is sent beside.
    pub due_draw: u64,
}

/// The canaries of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryRoundVector {
    /// The epoch's `i`-th round.
    pub index: u32,
    /// Its key (the chain's reveal).
    pub round_key: String,
    /// The candidates (validators online at the opening).
    pub candidates: Vec<i64>,
    /// The canary rate, basis points.
    pub rate_bp: u32,
    /// The canaries, by validator id.
    pub plans: Vec<CanaryPlanVector>,
}

/// A canary-key chain and its rounds' plans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryVector {
    /// The chain's secret anchor.
    pub anchor: String,
    /// Rounds in the epoch.
    pub length: u32,
    /// The committed tip.
    pub tip: String,
    /// The rounds.
    pub rounds: Vec<CanaryRoundVector>,
}

/// One assignment of a round and what was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerVector {
    /// The assignment.
    pub assignment_id: i64,
    /// The site.
    pub website_id: i64,
    /// The validator.
    pub validator_id: i64,
    /// `up`, `down`, or null when missed.
    pub status: Option<String>,
}

/// A site's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictVector {
    /// The site.
    pub website_id: i64,
    /// `up`, `down` or `unknown`.
    pub verdict: String,
}

/// A round settled by the ledger's rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundVector {
    /// The round number.
    pub round: i64,
    /// Its assignments (canaries excluded), in no particular order.
    pub answers: Vec<AnswerVector>,
    /// Each site's majority.
    pub verdicts: Vec<VerdictVector>,
    /// The results hash.
    pub results_hash: String,
    /// The previous round's chain hash (null before the first round).
    pub previous_chain_hash: Option<String>,
    /// This round's chain hash.
    pub chain_hash: String,
}

/// A webhook delivery's signature header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookVector {
    /// The channel's secret (UTF-8).
    pub secret: String,
    /// The delivery's Unix second.
    pub timestamp: i64,
    /// The body (UTF-8 JSON).
    pub body: String,
    /// The `X-Overlaps-Signature` value.
    pub header: String,
}

/// A reward leaf's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafVector {
    /// The payout address (EIP-55).
    pub address: String,
    /// The cumulative reward, a decimal integer in the chain's smallest unit.
    pub amount: String,
}

/// A reward tree with every leaf and proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerkleVector {
    /// The leaves, in tree order.
    pub leaves: Vec<LeafVector>,
    /// Their hashes.
    pub leaf_hashes: Vec<String>,
    /// The root.
    pub root: String,
    /// The proof of each leaf, from the leaf up.
    pub proofs: Vec<Vec<String>>,
}

/// A proof of one leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedProofVector {
    /// The leaf's position.
    pub index: usize,
    /// Its hash.
    pub leaf_hash: String,
    /// The proof, from the leaf up.
    pub proof: Vec<String>,
}

/// A large reward tree whose leaves follow a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerkleLargeVector {
    /// The number of leaves.
    pub count: usize,
    /// How leaf `i` is made.
    pub leaf_rule: String,
    /// The root.
    pub root: String,
    /// Proofs of some leaves.
    pub proofs: Vec<IndexedProofVector>,
}
