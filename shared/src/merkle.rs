//! The reward tree of an eon: one leaf per validator with a payout address, hashed
//! as OpenZeppelin's `StandardMerkleTree` does, so proofs built here verify with
//! `MerkleProof.verify` in the rewards contract.
//!
//! Leaf: `keccak256(bytes.concat(keccak256(abi.encode(address payout, uint256 cumulative))))`.
//! Internal node: `keccak256(min(a, b) || max(a, b))` (sorted pair). A node without a
//! sibling moves up unchanged, so its proof simply has no entry for that level.

use rs_merkle::{Hasher, PartialTree};

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

/// The leaves of `rewards` (payout address, cumulative amount), in order, hashed on
/// every core: two of the three Keccak-256 hashes per leaf of a tree are the leaf's.
pub fn leaf_hashes(rewards: &[(Address, U256)]) -> Vec<Hash> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below this, starting threads costs more than it saves.
    if threads == 1 || rewards.len() < 10_000 {
        return rewards.iter().map(|(a, c)| leaf_hash(*a, *c)).collect();
    }
    let per_thread = rewards.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = rewards
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(a, c)| leaf_hash(*a, *c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
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

/// Hashes per stored chunk of a tree layer: 128 KiB rows, so a million leaves'
/// tree is about 500 rows and a proof reads one 32-byte slice from each layer.
pub const NODE_CHUNK: usize = 4096;

/// The nodes a proof of leaf `index` needs in a tree of `leaf_count` leaves, as
/// (layer, position) from the leaves up: the sibling on each layer, where there is one.
pub fn proof_path(index: usize, leaf_count: usize) -> Vec<(usize, usize)> {
    let (mut path, mut node, mut width, mut layer) = (Vec::new(), index, leaf_count, 0);
    while width > 1 {
        let sibling = node ^ 1;
        if sibling < width {
            path.push((layer, sibling));
        }
        node /= 2;
        width = width.div_ceil(2);
        layer += 1;
    }
    path
}

/// Below this many leaves a tree is built on one thread.
const PARALLEL_MIN: usize = 16_384;

/// A built reward tree: every layer, from the leaves to the root.
pub struct RewardTree {
    layers: Vec<Vec<Hash>>,
}

impl std::fmt::Debug for RewardTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardTree")
            .field("leaves", &self.len())
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl RewardTree {
    /// Builds the tree over `leaves`, in that order.
    pub fn build(leaves: &[Hash]) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 {
            return Self::build_here(leaves);
        }
        Self::build_in_halves(leaves, PARALLEL_MIN)
    }

    /// rs_merkle's full tree (the one `MerkleTree` keeps), on this thread.
    fn build_here(leaves: &[Hash]) -> Self {
        let mut layers = PartialTree::<SortedKeccak256>::from_leaves(leaves)
            .map(|tree| tree.layer_nodes())
            .unwrap_or_default();
        // Its top layer may repeat the root.
        if let Some(top) = layers.iter().position(|layer| layer.len() <= 1) {
            layers.truncate(top + 1);
        }
        RewardTree { layers }
    }

    /// The same tree from two halves built at once: the first `p` leaves (the largest
    /// power of two below their number) make a complete subtree, whose layers pair up
    /// exactly as in the whole tree; the rest make the other, whose root moves up
    /// unchanged to the first subtree's height; the root hashes the two roots.
    fn build_in_halves(leaves: &[Hash], at_least: usize) -> Self {
        if leaves.len() < at_least.max(2) {
            return Self::build_here(leaves);
        }
        let split = leaves.len().next_power_of_two() / 2;
        let (left, right) = std::thread::scope(|scope| {
            let left = scope.spawn(|| Self::build_here(&leaves[..split]));
            let right = Self::build_here(&leaves[split..]);
            let left = left
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (left, right)
        });
        let (left_root, right_root) = (left.root(), right.root());
        let mut layers: Vec<Vec<Hash>> = left
            .layers
            .into_iter()
            .enumerate()
            .map(|(height, mut layer)| {
                match right.layers.get(height) {
                    Some(nodes) => layer.extend_from_slice(nodes),
                    None => layer.push(right_root),
                }
                layer
            })
            .collect();
        layers.push(vec![hash_pair(&left_root, &right_root)]);
        RewardTree { layers }
    }

    /// The root; all zeros for an empty tree (nothing can be claimed against it).
    pub fn root(&self) -> Hash {
        match self.layers.last().map(Vec::as_slice) {
            Some([root]) => *root,
            _ => [0u8; 32],
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sibling hashes from leaf `index` up to the root.
    pub fn proof(&self, index: usize) -> Vec<Hash> {
        proof_path(index, self.len())
            .into_iter()
            .filter_map(|(layer, node)| self.layers.get(layer)?.get(node).copied())
            .collect()
    }

    /// Every layer cut in [`NODE_CHUNK`]-hash pieces, as stored: (layer, chunk, bytes).
    pub fn chunks(&self) -> impl Iterator<Item = (usize, usize, Vec<u8>)> + '_ {
        self.layers.iter().enumerate().flat_map(|(layer, nodes)| {
            nodes
                .chunks(NODE_CHUNK)
                .enumerate()
                .map(move |(chunk, hashes)| (layer, chunk, hashes.concat()))
        })
    }
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
    fn a_tree_built_in_halves_is_the_tree_built_at_once() {
        let sizes = (2..=70).chain([127, 128, 129, 1000, 4097, 10_001, 65_537]);
        for n in sizes {
            let leaves = leaves(n);
            let whole = RewardTree::build_here(&leaves);
            let halves = RewardTree::build_in_halves(&leaves, 2);
            assert_eq!(halves.layers, whole.layers, "n={n}");
        }
        assert_eq!(
            RewardTree::build_in_halves(&leaves(1), 2).layers,
            RewardTree::build_here(&leaves(1)).layers
        );
    }

    #[test]
    fn leaves_hashed_on_every_core_are_the_leaves_in_order() {
        let rewards: Vec<(Address, U256)> = (1..=25_001u64)
            .map(|i| (Address::from_low_u64_be(i), U256::from(i * 7)))
            .collect();
        let one_by_one: Vec<Hash> = rewards.iter().map(|(a, c)| leaf_hash(*a, *c)).collect();
        assert_eq!(leaf_hashes(&rewards), one_by_one);
        assert_eq!(leaf_hashes(&rewards[..3]), one_by_one[..3]);
        assert!(leaf_hashes(&[]).is_empty());
    }

    #[test]
    fn proofs_match_rs_merkles_own_and_chunks_hold_every_layer() {
        for n in [1, 2, 3, 5, 8, 9, 4097] {
            let leaves = leaves(n);
            let tree = RewardTree::build(&leaves);
            let reference = rs_merkle::MerkleTree::<SortedKeccak256>::from_leaves(&leaves);
            assert_eq!(Some(tree.root()), reference.root(), "n={n}");
            for i in [0, n as usize / 2, n as usize - 1] {
                assert_eq!(
                    tree.proof(i),
                    reference.proof(&[i]).proof_hashes(),
                    "n={n} i={i}"
                );
            }
            // Layers of n, n/2, … 1 nodes, each cut into chunks of at most NODE_CHUNK.
            let chunks: Vec<_> = tree.chunks().collect();
            let mut width = n as usize;
            for layer in 0.. {
                let bytes: Vec<u8> = chunks
                    .iter()
                    .filter(|(l, _, _)| *l == layer)
                    .flat_map(|(_, _, b)| b.clone())
                    .collect();
                assert_eq!(bytes.len(), width * 32, "n={n} layer={layer}");
                if width == 1 {
                    assert_eq!(bytes, tree.root());
                    assert!(
                        chunks.iter().all(|(l, _, _)| *l <= layer),
                        "n={n}: a repeated top"
                    );
                    break;
                }
                width = width.div_ceil(2);
            }
            assert!(chunks.iter().all(|(_, _, b)| b.len() <= NODE_CHUNK * 32));
        }
        assert_eq!(RewardTree::build(&[]).root(), [0u8; 32]);
    }
}
