//! Public, re-derivable choices: each round's seed and the validators assigned to
//! each site. Anyone holding the stored public data (previous seed, the round's
//! revealed seed-chain link, the chain's published tip, the online validators with
//! their reputations) derives the same seed and the same assignments.
//!
//! - Seeds come from a hash chain of the hub's secrets, one chain per epoch of
//!   rounds: `anchor` (32 random bytes, secret), `h_0 = anchor`,
//!   `h_k = keccak256("overlaps/v1/seed-chain" || h_(k-1))`, `tip = h_L` for an
//!   epoch of `L` rounds. The tip is published a whole epoch before the epoch's
//!   first round; the `i`-th round of the epoch reveals `h_(L-1-i)`, which hashes
//!   once to the previous round's reveal (the tip for `i = 0`). Validators cannot
//!   compute a reveal before it is published (it is a Keccak preimage), and the hub
//!   cannot choose one after committing the tip.
//! - The round seed is `keccak256("overlaps/v2/round-seed" || previous seed ||
//!   reveal)`; round 1's previous seed is [`genesis_seed`]. Closed results no
//!   longer enter it, so a validator choosing its answers cannot steer it.
//! - Rounds opened before seed chains existed used [`legacy_round_seed`]
//!   (previous seed and the latest closed round's results hash); it stays only so
//!   those rounds can still be verified.
//! - For a site, a ChaCha20 generator is seeded with `keccak256(round seed ||
//!   website id)` and draws validators by Walker's alias method (`rand_distr`'s
//!   `WeightedAliasIndex`), weighted by selection weight
//!   ([`crate::admission`]), until `quorum` distinct ones. No two chosen validators
//!   share a network ([`crate::network`]): a draw that repeats a validator or a
//!   network rebuilds the table without the chosen validators and every candidate
//!   of their networks. Candidates with no recorded network (rounds opened before
//!   networks were recorded) never clash.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha20Rng;
use rand_distr::weighted::WeightedAliasIndex;
use sha3::{Digest, Keccak256};

use crate::hash_chain;

/// Domain tag of round seeds (seed-chain rule).
pub const ROUND_SEED_DOMAIN: &[u8] = b"overlaps/v2/round-seed";

/// Domain tag of round seeds under the old rule, before seed chains.
pub const LEGACY_ROUND_SEED_DOMAIN: &[u8] = b"overlaps/v1/round-seed";

/// Domain tag of each step of a seed chain.
pub const SEED_CHAIN_DOMAIN: &[u8] = b"overlaps/v1/seed-chain";

/// The seed of a round whose previous round had `previous_seed` and which
/// reveals `reveal` (its seed-chain link).
pub fn round_seed(previous_seed: &[u8; 32], reveal: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(ROUND_SEED_DOMAIN);
    hasher.update(previous_seed);
    hasher.update(reveal);
    hasher.finalize().into()
}

/// The seed of a round opened under the old rule, from the previous seed and the
/// results hash of the latest closed round (zeros when none was closed). Only for
/// verifying rounds opened before seed chains: results chosen by validators must
/// not steer new seeds.
pub fn legacy_round_seed(previous_seed: &[u8; 32], results_hash: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(LEGACY_ROUND_SEED_DOMAIN);
    hasher.update(previous_seed);
    hasher.update(results_hash);
    hasher.finalize().into()
}

/// One step of a seed chain: `keccak256("overlaps/v1/seed-chain" || link)`
/// (a [`crate::hash_chain`] in the seed domain).
pub fn seed_chain_step(link: &[u8; 32]) -> [u8; 32] {
    hash_chain::step(SEED_CHAIN_DOMAIN, link)
}

/// The tip of the chain of `rounds` links from `anchor`: `h_rounds`.
pub fn seed_chain_tip(anchor: &[u8; 32], rounds: u32) -> [u8; 32] {
    hash_chain::tip(SEED_CHAIN_DOMAIN, anchor, rounds)
}

/// What the `index`-th round (0-based) of an epoch of `rounds` rounds reveals:
/// `h_(rounds-1-index)`; None past the epoch's end.
pub fn seed_chain_reveal(anchor: &[u8; 32], rounds: u32, index: u32) -> Option<[u8; 32]> {
    hash_chain::reveal(SEED_CHAIN_DOMAIN, anchor, rounds, index)
}

/// Why a round's seed does not follow from its public inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeedMismatch {
    /// The reveal does not hash to the previous round's reveal (or the chain's tip).
    #[error("the reveal does not hash to the previous reveal or the chain's tip")]
    Reveal,
    /// The seed is not `round_seed(previous seed, reveal)`.
    #[error("the seed does not follow from the previous seed and the reveal")]
    Seed,
}

/// Checks that `reveal` is the link before `previous_link` (the previous round's
/// reveal, or the chain's tip at the epoch's first round).
pub fn verify_reveal(reveal: &[u8; 32], previous_link: &[u8; 32]) -> Result<(), SeedMismatch> {
    if hash_chain::follows(SEED_CHAIN_DOMAIN, reveal, previous_link) {
        Ok(())
    } else {
        Err(SeedMismatch::Reveal)
    }
}

/// Verifies a round's `seed` from public inputs only: the previous round's seed
/// (the genesis seed for round 1), the round's `reveal`, and `previous_link` — the
/// previous round's reveal, or the chain's tip at the epoch's first round.
pub fn verify_round_seed(
    previous_seed: &[u8; 32],
    reveal: &[u8; 32],
    previous_link: &[u8; 32],
    seed: &[u8; 32],
) -> Result<(), SeedMismatch> {
    verify_reveal(reveal, previous_link)?;
    if round_seed(previous_seed, reveal) != *seed {
        return Err(SeedMismatch::Seed);
    }
    Ok(())
}

/// A validator that can be chosen, with its selection weight and network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The validator.
    pub validator_id: i64,
    /// Relative chance of being chosen; 0 never is.
    pub weight: u32,
    /// The network it connects from; two of one network never share a quorum.
    pub network: Option<&'a str>,
}

impl Candidate<'_> {
    fn clashes(&self, chosen: &[i64], networks: &[&str]) -> bool {
        chosen.contains(&self.validator_id) || self.network.is_some_and(|n| networks.contains(&n))
    }
}

/// Chooses up to `quorum` distinct validators of distinct networks for
/// `website_id` in the round with `round_seed`. Candidates are taken in
/// validator-id order, so callers cannot change the outcome by listing them
/// differently. When fewer than `quorum` can be chosen (too few candidates or too
/// few networks), the result is shorter: the round is degraded.
pub fn choose_validators(
    round_seed: &[u8; 32],
    website_id: i64,
    candidates: &[Candidate<'_>],
    quorum: usize,
) -> Vec<i64> {
    let mut pool: Vec<Candidate<'_>> = candidates
        .iter()
        .copied()
        .filter(|c| c.weight > 0)
        .collect();
    pool.sort_by_key(|c| c.validator_id);
    pool.dedup_by_key(|c| c.validator_id);
    // Only a pool no larger than the quorum needs its networks compared.
    if pool.len() <= quorum && networks_distinct(&pool) {
        return pool.iter().map(|c| c.validator_id).collect();
    }
    let mut hasher = Keccak256::new();
    hasher.update(round_seed);
    hasher.update(website_id.to_be_bytes());
    let mut rng = ChaCha20Rng::from_seed(hasher.finalize().into());
    let mut chosen = Vec::with_capacity(quorum);
    let mut taken: Vec<&str> = Vec::with_capacity(quorum);
    // Draw from the alias table; when a draw repeats a validator or a network,
    // rebuild the table without them (sampling without replacement).
    while chosen.len() < quorum {
        let weights: Vec<u32> = pool.iter().map(|c| c.weight).collect();
        let Ok(table) = WeightedAliasIndex::new(weights) else {
            break;
        };
        loop {
            let picked = pool[table.sample(&mut rng)];
            if !picked.clashes(&chosen, &taken) {
                chosen.push(picked.validator_id);
                taken.extend(picked.network);
                if chosen.len() == quorum {
                    break;
                }
                continue;
            }
            pool.retain(|c| !c.clashes(&chosen, &taken));
            break;
        }
    }
    chosen
}

/// Whether no two of `pool` share a recorded network.
fn networks_distinct(pool: &[Candidate<'_>]) -> bool {
    let mut networks: Vec<&str> = pool.iter().filter_map(|c| c.network).collect();
    networks.sort_unstable();
    networks.windows(2).all(|w| w[0] != w[1])
}

/// A candidate as a round records it: `[validator_id, weight, network]` (rounds
/// opened before networks were recorded have `[validator_id, weight]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCandidate {
    /// The validator.
    pub validator_id: i64,
    /// Its selection weight in that round.
    pub weight: u32,
    /// Its network then, if recorded.
    pub network: Option<String>,
}

impl RecordedCandidate {
    /// As a [`Candidate`] for [`choose_validators`].
    pub fn as_candidate(&self) -> Candidate<'_> {
        Candidate {
            validator_id: self.validator_id,
            weight: self.weight,
            network: self.network.as_deref(),
        }
    }

    /// The JSON a round stores.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.network {
            Some(network) => serde_json::json!([self.validator_id, self.weight, network]),
            None => serde_json::json!([self.validator_id, self.weight]),
        }
    }

    /// Reads a round's `candidates`; None if it is not the recorded shape.
    pub fn parse_all(json: &serde_json::Value) -> Option<Vec<RecordedCandidate>> {
        json.as_array()?
            .iter()
            .map(|entry| {
                let fields = entry.as_array()?;
                if !(2..=3).contains(&fields.len()) {
                    return None;
                }
                Some(RecordedCandidate {
                    validator_id: fields[0].as_i64()?,
                    weight: u32::try_from(fields[1].as_u64()?).ok()?,
                    network: match fields.get(2) {
                        None => None,
                        Some(network) => Some(network.as_str()?.to_owned()),
                    },
                })
            })
            .collect()
    }
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

    fn candidates(weights: &[(i64, u32)]) -> Vec<Candidate<'_>> {
        weights
            .iter()
            .map(|&(validator_id, weight)| Candidate {
                validator_id,
                weight,
                network: None,
            })
            .collect()
    }

    fn seed(n: u8) -> [u8; 32] {
        round_seed(&[n; 32], &[0; 32])
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
    fn two_validators_of_one_network_never_share_a_quorum() {
        // Ten heavy validators in one /24 and four light ones, each alone.
        let networks: Vec<String> = (0..14)
            .map(|i| {
                if i < 10 {
                    "10.9.9.0/24".to_owned()
                } else {
                    format!("10.0.{i}.0/24")
                }
            })
            .collect();
        let pool: Vec<Candidate<'_>> = networks
            .iter()
            .enumerate()
            .map(|(i, network)| Candidate {
                validator_id: i as i64 + 1,
                weight: if i < 10 { 10_000 } else { 100 },
                network: Some(network),
            })
            .collect();
        let mut from_the_crowd = 0;
        for round in 0..=255u8 {
            for site in 0..4 {
                let chosen = choose_validators(&seed(round), site, &pool, 3);
                assert_eq!(chosen.len(), 3);
                let crowd = chosen.iter().filter(|&&id| id <= 10).count();
                assert!(crowd <= 1, "round {round} site {site}: {chosen:?}");
                from_the_crowd += crowd;
            }
        }
        // The crowd still gets its one seat nearly always (it is heavy).
        assert!(from_the_crowd > 900, "{from_the_crowd}");
        // Too few networks for the quorum: the result is short (a degraded round).
        let same: Vec<Candidate<'_>> = pool[..10].to_vec();
        for round in 0..20 {
            assert_eq!(choose_validators(&seed(round), 1, &same, 3).len(), 1);
        }
        // Two candidates of one network and a quorum of 3: one of them, plus the other.
        let pair = vec![pool[0], pool[1], pool[12]];
        let chosen = choose_validators(&seed(9), 1, &pair, 3);
        assert_eq!(chosen.len(), 2);
        assert!(chosen.contains(&13));
    }

    #[test]
    fn recorded_candidates_round_trip_in_both_shapes() {
        let json = serde_json::json!([[1, 5000, "10.0.0.0/24"], [2, 100]]);
        let parsed = RecordedCandidate::parse_all(&json).unwrap();
        assert_eq!(parsed[0].network.as_deref(), Some("10.0.0.0/24"));
        assert_eq!(parsed[1].network, None);
        let back: Vec<serde_json::Value> = parsed.iter().map(RecordedCandidate::to_json).collect();
        assert_eq!(serde_json::Value::from(back), json);
        for bad in [
            serde_json::json!({}),
            serde_json::json!([[1]]),
            serde_json::json!([[1, -5]]),
            serde_json::json!([[1, 5, 7]]),
            serde_json::json!([[1, 5, "a", "b"]]),
        ] {
            assert!(RecordedCandidate::parse_all(&bad).is_none(), "{bad}");
        }
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

    fn hex32(text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).unwrap();
        out
    }

    /// Fixed vectors computed outside this code base, with Python's pycryptodome
    /// (`Crypto.Hash.keccak`, 256 bits; checked against Keccak-256("") =
    /// c5d2…a470): anchor = 0x11 × 32, an epoch of 4 rounds, hub id `vector-hub`.
    ///
    /// ```python
    /// from Crypto.Hash import keccak
    /// def k(*parts):
    ///     h = keccak.new(digest_bits=256)
    ///     for p in parts: h.update(p)
    ///     return h.digest()
    /// h = [b"\x11" * 32]
    /// for _ in range(4): h.append(k(b"overlaps/v1/seed-chain", h[-1]))
    /// genesis = k(b"overlaps/v1/genesis", b"vector-hub")
    /// s1 = k(b"overlaps/v2/round-seed", genesis, h[3]); s2 = k(b"overlaps/v2/round-seed", s1, h[2])
    /// ```
    ///
    /// Any change to a domain tag, the order of the inputs or the chain's
    /// direction fails here.
    #[test]
    fn seeds_and_chains_match_independently_computed_vectors() {
        let anchor = [0x11; 32];
        let tip = hex32("377293e960e79c5f9f2a6d75a7fe1cd6af8f8891f140d92e9765ad3bba16ff27");
        let h3 = hex32("619ba890b1e3f257a02ee37f2aeec412d44045f9990cf2444e2ac02f5dc6aabf");
        let h2 = hex32("7adcdea2d148ed03c45f6ae31e630f0ac47145647777a0471b08925724a980d9");
        let h1 = hex32("c4af71342cd676812538d27e195dc20125fa551dfcb7320d67e66fc2d257affe");
        let genesis = hex32("6a3784af4ec59ffe3bb769d3f7adde6f794102704aeeeecb13b2da83529f03e0");
        let seed1 = hex32("5244255e19605a9600ac84eae80b27936a372294696f7cc9041fcc74595755bc");
        let seed2 = hex32("a6440368a691c6c961a61a03a175777888f677cb3a81408bd9ae856dfe25999d");

        assert_eq!(seed_chain_tip(&anchor, 4), tip);
        assert_eq!(seed_chain_reveal(&anchor, 4, 0), Some(h3));
        assert_eq!(seed_chain_reveal(&anchor, 4, 1), Some(h2));
        assert_eq!(seed_chain_reveal(&anchor, 4, 2), Some(h1));
        assert_eq!(
            seed_chain_reveal(&anchor, 4, 3),
            Some(anchor),
            "the last round reveals the anchor"
        );
        assert_eq!(seed_chain_reveal(&anchor, 4, 4), None);
        assert_eq!(genesis_seed("vector-hub"), genesis);
        assert_eq!(round_seed(&genesis, &h3), seed1);
        assert_eq!(round_seed(&seed1, &h2), seed2);

        // Verified from public inputs alone: round 1 against the tip, round 2
        // against round 1's reveal.
        assert_eq!(verify_round_seed(&genesis, &h3, &tip, &seed1), Ok(()));
        assert_eq!(verify_round_seed(&seed1, &h2, &h3, &seed2), Ok(()));
        assert_eq!(
            verify_round_seed(&seed1, &h1, &h3, &seed2),
            Err(SeedMismatch::Reveal)
        );
        assert_eq!(
            verify_round_seed(&seed1, &h2, &h3, &seed1),
            Err(SeedMismatch::Seed)
        );
        assert_eq!(
            verify_round_seed(&genesis, &h2, &h3, &seed2),
            Err(SeedMismatch::Seed)
        );

        // The old rule, kept for rounds opened before seed chains.
        assert_eq!(
            legacy_round_seed(&[1; 32], &[2; 32]),
            hex32("f94607e75e01f469c2ef873506f23f48c059eee1e3fd40880c6b55f0fff37cab")
        );
    }

    #[test]
    fn each_seed_depends_on_the_previous_seed_and_the_reveal() {
        let base = round_seed(&[1; 32], &[2; 32]);
        assert_ne!(base, round_seed(&[1; 32], &[3; 32]));
        assert_ne!(base, round_seed(&[0; 32], &[2; 32]));
        assert_eq!(base, round_seed(&[1; 32], &[2; 32]));
        assert_ne!(
            base,
            legacy_round_seed(&[1; 32], &[2; 32]),
            "the rules are domain-separated"
        );
    }
}
