//! The reward tree of an eon: one leaf per validator with a payout address, hashed
//! as OpenZeppelin's `StandardMerkleTree` does, so proofs built here verify with
//! `MerkleProof.verify` in the rewards contract.
//!
//! Leaf: `keccak256(bytes.concat(keccak256(abi.encode(address payout, uint256 cumulative))))`.
//! Internal node: `keccak256(min(a, b) || max(a, b))` (sorted pair). A node without a
//! sibling moves up unchanged, so its proof simply has no entry for that level.

use rs_merkle::{Hasher, MerkleTree};

use crate::eth::{Address, U256, keccak256};

/// A 32-byte Keccak-256 hash.
pub type Hash = [u8; 32];

/// Keccak-256 over sorted pairs: rs_merkle's [`Hasher`] for the reward tree.
#[derive(Debug, Clone, Copy)]
pub struct SortedKeccak256;

impl Hasher for SortedKeccak256 {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        keccak256(data)
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => hash_pair(left, right),
            None => *left,
        }
    }

    fn hash_size() -> usize {
        32
    }
}

/// The parent of two nodes: the hash of the smaller followed by the larger.
pub fn hash_pair(a: &Hash, b: &Hash) -> Hash {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(low);
    both[32..].copy_from_slice(high);
    keccak256(both)
}

/// The leaf of a validator's cumulative reward.
pub fn leaf_hash(payout: Address, cumulative: U256) -> Hash {
    // abi.encode(address, uint256): the address left-padded to 32 bytes, then the amount.
    let mut encoded = [0u8; 64];
    encoded[12..32].copy_from_slice(payout.as_bytes());
    cumulative.to_big_endian(&mut encoded[32..]);
    keccak256(keccak256(encoded))
}

/// Folds a proof into the root it implies for `leaf` (OpenZeppelin's `processProof`).
pub fn process_proof(leaf: Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(leaf, |node, sibling| hash_pair(&node, sibling))
}

/// Whether `proof` links `leaf` to `root`.
pub fn verify_proof(root: Hash, leaf: Hash, proof: &[Hash]) -> bool {
    process_proof(leaf, proof) == root
}

/// A built reward tree.
pub struct RewardTree {
    tree: MerkleTree<SortedKeccak256>,
    len: usize,
}

impl std::fmt::Debug for RewardTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardTree")
            .field("leaves", &self.len)
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl RewardTree {
    /// Builds the tree over `leaves`, in that order.
    pub fn build(leaves: &[Hash]) -> Self {
        RewardTree {
            tree: MerkleTree::from_leaves(leaves),
            len: leaves.len(),
        }
    }

    /// The root; all zeros for an empty tree (nothing can be claimed against it).
    pub fn root(&self) -> Hash {
        self.tree.root().unwrap_or([0u8; 32])
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sibling hashes from leaf `index` up to the root.
    pub fn proof(&self, index: usize) -> Vec<Hash> {
        self.tree.proof(&[index]).proof_hashes().to_vec()
    }
}

/// Packs proof hashes into one byte string (as stored), 32 bytes each.
pub fn pack_proof(proof: &[Hash]) -> Vec<u8> {
    proof.concat()
}

/// Splits a stored proof back into hashes; `None` if its length is not a multiple of 32.
pub fn unpack_proof(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (1..=n)
            .map(|i| leaf_hash(Address::from_low_u64_be(i), U256::from(i * 1_000)))
            .collect()
    }

    #[test]
    fn every_proof_verifies_for_every_size() {
        for n in 1..=17 {
            let leaves = leaves(n);
            let tree = RewardTree::build(&leaves);
            for (i, leaf) in leaves.iter().enumerate() {
                assert!(
                    verify_proof(tree.root(), *leaf, &tree.proof(i)),
                    "n={n} i={i}"
                );
            }
        }
    }

    #[test]
    fn a_proof_does_not_verify_another_leaf_or_amount() {
        let leaves = leaves(8);
        let tree = RewardTree::build(&leaves);
        let proof = tree.proof(3);
        assert!(!verify_proof(tree.root(), leaves[4], &proof));
        let inflated = leaf_hash(Address::from_low_u64_be(4), U256::from(4_001));
        assert!(!verify_proof(tree.root(), inflated, &proof));
    }

    #[test]
    fn leaf_matches_the_solidity_encoding() {
        // keccak256(bytes.concat(keccak256(abi.encode(0x…01, 5)))), computed by hand.
        let mut encoded = [0u8; 64];
        encoded[31] = 1;
        encoded[63] = 5;
        let expected = keccak256(keccak256(encoded));
        assert_eq!(
            leaf_hash(Address::from_low_u64_be(1), U256::from(5)),
            expected
        );
    }

    #[test]
    fn proofs_pack_and_unpack() {
        let proof = vec![[1u8; 32], [2u8; 32]];
        assert_eq!(unpack_proof(&pack_proof(&proof)), Some(proof));
        assert_eq!(unpack_proof(&[0u8; 33]), None);
    }
}
