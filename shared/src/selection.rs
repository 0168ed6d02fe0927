//! Public, re-derivable choices: each round's seed and the validators assigned to
//! each site. Anyone holding the stored public data (previous seed, the previous
//! round's results hash, the online validators with their reputations) derives the
//! same seed and the same assignments.
//!
//! - The round seed is `keccak256("overlaps/v1/round-seed" || previous seed ||
//!   previous round's results hash)`.
//! - For a site, a ChaCha20 generator is seeded with `keccak256(round seed ||
//!   website id)` and draws validators by Walker's alias method (`rand_distr`'s
//!   `WeightedAliasIndex`), weighted by reputation, until `quorum` distinct ones.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha20Rng;
use rand_distr::weighted::WeightedAliasIndex;
use sha3::{Digest, Keccak256};

/// Domain tag of round seeds.
pub const ROUND_SEED_DOMAIN: &[u8] = b"overlaps/v1/round-seed";

/// The seed of the round after one with `previous_seed` whose closed results hash
/// to `previous_results_hash`.
pub fn next_round_seed(previous_seed: &[u8; 32], previous_results_hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(ROUND_SEED_DOMAIN);
    hasher.update(previous_seed);
    hasher.update(previous_results_hash);
    hasher.finalize().into()
}

/// A validator that can be chosen, with its selection weight (reputation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The validator.
    pub validator_id: i64,
    /// Relative chance of being chosen; 0 never is.
    pub weight: u32,
}

/// Chooses up to `quorum` distinct validators for `website_id` in the round with
/// `round_seed`. Candidates are taken in validator-id order, so callers cannot
/// change the outcome by listing them differently. Fewer than `quorum` eligible
/// candidates gives all of them.
pub fn choose_validators(
    round_seed: &[u8; 32],
    website_id: i64,
    candidates: &[Candidate],
    quorum: usize,
) -> Vec<i64> {
    let mut pool: Vec<Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| c.weight > 0)
        .collect();
    pool.sort_by_key(|c| c.validator_id);
    pool.dedup_by_key(|c| c.validator_id);
    if pool.len() <= quorum {
        return pool.iter().map(|c| c.validator_id).collect();
    }
    let mut hasher = Keccak256::new();
    hasher.update(round_seed);
    hasher.update(website_id.to_be_bytes());
    let mut rng = ChaCha20Rng::from_seed(hasher.finalize().into());
    let mut chosen = Vec::with_capacity(quorum);
    // Draw from the alias table; when a draw repeats, rebuild the table without
    // the validators already chosen (sampling without replacement).
    while chosen.len() < quorum {
        let weights: Vec<u32> = pool.iter().map(|c| c.weight).collect();
        let Ok(table) = WeightedAliasIndex::new(weights) else {
            break;
        };
        loop {
            let picked = pool[table.sample(&mut rng)].validator_id;
            if !chosen.contains(&picked) {
                chosen.push(picked);
                if chosen.len() == quorum {
                    break;
                }
                continue;
            }
            pool.retain(|c| !chosen.contains(&c.validator_id));
            break;
        }
    }
    chosen
}

/// Domain tag of the first round's seed.
pub const GENESIS_DOMAIN: &[u8] = b"overlaps/v1/genesis";

/// The seed of round 1 of the hub named `hub_id`.
pub fn genesis_seed(hub_id: &str) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(GENESIS_DOMAIN);
    hasher.update(hub_id.as_bytes());
    hasher.finalize().into()
}

/// When in a round (from its opening) a site's check is due: spread uniformly over
/// `spread`, derived from the round seed so that it too is public.
pub fn due_offset(
    round_seed: &[u8; 32],
    website_id: i64,
    spread: std::time::Duration,
) -> std::time::Duration {
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    if spread_ms == 0 {
        return std::time::Duration::ZERO;
    }
    let mut hasher = Keccak256::new();
    hasher.update(b"due");
    hasher.update(round_seed);
    hasher.update(website_id.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    std::time::Duration::from_millis(u64::from_be_bytes(first) % spread_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(weights: &[(i64, u32)]) -> Vec<Candidate> {
        weights
            .iter()
            .map(|&(validator_id, weight)| Candidate {
                validator_id,
                weight,
            })
            .collect()
    }

    fn seed(n: u8) -> [u8; 32] {
        next_round_seed(&[n; 32], &[0; 32])
    }

    #[test]
    fn the_same_public_inputs_give_the_same_choice_in_any_order() {
        let pool = candidates(&[(1, 5000), (2, 5000), (3, 9000), (4, 100), (5, 7000)]);
        let mut shuffled = pool.clone();
        shuffled.reverse();
        for round in 0..50 {
            let a = choose_validators(&seed(round), 42, &pool, 3);
            assert_eq!(a, choose_validators(&seed(round), 42, &shuffled, 3));
            assert_eq!(a.len(), 3);
            let mut distinct = a.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{a:?}");
        }
        // Another site or another round draws differently (somewhere in 50 tries).
        assert!((0..50).any(|r| choose_validators(&seed(r), 42, &pool, 3)
            != choose_validators(&seed(r), 43, &pool, 3)));
        assert!((1..50).any(|r| choose_validators(&seed(r), 42, &pool, 3)
            != choose_validators(&seed(0), 42, &pool, 3)));
    }

    #[test]
    fn fewer_candidates_than_the_quorum_gives_all_and_zero_weight_never_chosen() {
        let pool = candidates(&[(9, 10), (3, 0), (5, 10)]);
        assert_eq!(choose_validators(&seed(1), 1, &pool, 3), vec![5, 9]);
        for round in 0..100 {
            let chosen = choose_validators(
                &seed(round),
                7,
                &candidates(&[(1, 1), (2, 0), (3, 1), (4, 1)]),
                2,
            );
            assert!(!chosen.contains(&2));
        }
        assert!(choose_validators(&seed(1), 1, &[], 3).is_empty());
    }

    #[test]
    fn higher_reputation_is_chosen_more_often() {
        let pool = candidates(&[(1, 9000), (2, 1000), (3, 1000), (4, 1000), (5, 1000)]);
        let mut counts = [0u32; 6];
        for round in 0..=255u8 {
            for site in 0..8 {
                for id in choose_validators(&seed(round), site, &pool, 1) {
                    counts[id as usize] += 1;
                }
            }
        }
        // Weight 9000 of 13000: about 69 % of 2048 draws; each 1000-weight one about 8 %.
        assert!(counts[1] > 1200, "{counts:?}");
        assert!(counts[2..].iter().all(|&c| c < 400), "{counts:?}");
    }

    #[test]
    fn each_seed_depends_on_the_previous_seed_and_results() {
        let base = next_round_seed(&[1; 32], &[2; 32]);
        assert_ne!(base, next_round_seed(&[1; 32], &[3; 32]));
        assert_ne!(base, next_round_seed(&[0; 32], &[2; 32]));
        assert_eq!(base, next_round_seed(&[1; 32], &[2; 32]));
    }
}
