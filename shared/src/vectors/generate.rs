//! Builds the reference vectors from the code itself: every value here is what the
//! hub computes, never a copy of an expected value.

use sha3::{Digest, Keccak256};

use super::*;
use crate::canary;
use crate::eth::{Address, U256};
use crate::ledger::{self, RoundAnswer};
use crate::merkle::{self, RewardTree};
use crate::protocol::{FailureReason, PROTOCOL};
use crate::selection::{self, Candidate};
use crate::signing::{Keypair, PayoutAddress, SigningError};
use crate::webhook::webhook_signature;

mod wire;

use wire::{check_specs, messages, results, results_v1, signups};

/// The hub id of every signed vector.
const HUB_ID: &str = "vector-hub";
/// A fixed instant (2026-01-01T00:00:00Z) the vectors' times are built around.
const T0_MS: i64 = 1_767_225_600_000;
/// The payout address of the vectors (EIP-55's first example).
const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// Every vector, computed now by this code.
pub fn generate() -> Result<Vectors, SigningError> {
    let payout: PayoutAddress = PAYOUT.parse()?;
    let seed_chain = seed_chain();
    let seeds: Vec<[u8; 32]> = seed_chain.rounds.iter().map(|r| unhex32(&r.seed)).collect();
    Ok(Vectors {
        about: "Reference vectors of the Overlaps validator protocol and public formulas; \
                described in PROTOCOL.md. Bytes are lowercase hex without 0x; addresses EIP-55."
            .into(),
        generator: GENERATOR.into(),
        protocol: PROTOCOL.into(),
        failure_codes: FailureReason::ALL
            .iter()
            .map(|r| FailureCodeVector {
                name: r.as_str().into(),
                code: r.code(),
            })
            .collect(),
        messages: messages(&payout),
        signup: signups(&payout),
        check_specs: check_specs(),
        results: results(),
        results_v1: results_v1(),
        legacy_round_seed: legacy_seed(),
        selection: selections(&seeds),
        due_offsets: due_offsets(&seeds),
        seed_chain,
        canary: canaries(),
        rounds: rounds(),
        webhook: webhooks(),
        merkle: [1, 2, 3, 5, 7, 37].into_iter().map(small_tree).collect(),
        merkle_large: large_tree(),
    })
}

fn hex32(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

/// Decodes 32 bytes this module encoded itself (all zeros if it ever could not).
fn unhex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let _ = hex::decode_to_slice(text, &mut out);
    out
}

fn key(n: u8) -> Keypair {
    Keypair::from_seed(&[n; 32])
}

/// JSON text of a message; these types always serialize (an empty string would
/// fail the comparison with the committed file anyway).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn seed_chain() -> SeedChainVector {
    let (anchor, length) = ([0x11u8; 32], 4u32);
    let links = (0..=length).scan(anchor, |link, k| {
        if k > 0 {
            *link = selection::seed_chain_step(link);
        }
        Some(hex32(link))
    });
    let genesis = selection::genesis_seed(HUB_ID);
    let mut previous = genesis;
    let rounds = (0..length)
        .filter_map(|index| {
            let reveal = selection::seed_chain_reveal(&anchor, length, index)?;
            previous = selection::round_seed(&previous, &reveal);
            Some(SeedRoundVector {
                round: index + 1,
                reveal: hex32(&reveal),
                seed: hex32(&previous),
            })
        })
        .collect();
    SeedChainVector {
        hub_id: HUB_ID.into(),
        anchor: hex32(&anchor),
        length,
        links: links.collect(),
        tip: hex32(&selection::seed_chain_tip(&anchor, length)),
        genesis_seed: hex32(&genesis),
        rounds,
    }
}

fn legacy_seed() -> LegacySeedVector {
    let (previous, results) = ([1u8; 32], [2u8; 32]);
    LegacySeedVector {
        previous_seed: hex32(&previous),
        results_hash: hex32(&results),
        seed: hex32(&selection::legacy_round_seed(&previous, &results)),
    }
}

fn selections(seeds: &[[u8; 32]]) -> Vec<SelectionVector> {
    let weighted = |pairs: &[(i64, u32)]| -> Vec<Candidate> {
        pairs
            .iter()
            .map(|&(validator_id, weight)| Candidate {
                validator_id,
                weight,
                network: None,
            })
            .collect()
    };
    // Candidates with networks: `(id, weight, index into NETWORKS)`.
    const NETWORKS: [&str; 4] = [
        "10.1.0.0/24",
        "10.2.0.0/24",
        "2001:db8:1::/48",
        "10.3.0.0/24",
    ];
    let networked = |triples: &[(i64, u32, usize)]| -> Vec<Candidate<'static>> {
        triples
            .iter()
            .map(|&(validator_id, weight, network)| Candidate {
                validator_id,
                weight,
                network: NETWORKS.get(network).copied(),
            })
            .collect()
    };
    let many: Vec<(i64, u32)> = (1..=40)
        .map(|i| (i * 3, (i as u32 * 2_371) % 10_000 + 1))
        .collect();
    let cases: Vec<(usize, i64, Vec<Candidate>, usize)> = vec![
        (
            0,
            1,
            weighted(&[
                (1, 10_000),
                (2, 10_000),
                (3, 5_000),
                (4, 2_500),
                (5, 10_000),
            ]),
            3,
        ),
        // Listed out of order, one twice, one with weight 0 (never chosen).
        (
            1,
            42,
            weighted(&[
                (12, 9_000),
                (3, 100),
                (7, 10_000),
                (1, 0),
                (9, 4_000),
                (3, 100),
                (5, 7_500),
                (10, 10_000),
                (2, 1),
                (8, 6_000),
                (11, 3_000),
                (4, 10_000),
                (6, 2_000),
            ]),
            5,
        ),
        // Fewer eligible candidates than the quorum: all of them, by id.
        (0, 7, weighted(&[(9, 10), (3, 0), (5, 10)]), 3),
        (3, 9_000_000_000, weighted(&many), 15),
        // Twelve candidates on four networks: never two of one network.
        (
            2,
            77,
            networked(&[
                (1, 10_000, 0),
                (2, 10_000, 0),
                (3, 10_000, 0),
                (4, 9_000, 1),
                (5, 8_000, 1),
                (6, 100, 1),
                (7, 5_000, 2),
                (8, 5_000, 2),
                (9, 5_000, 2),
                (10, 300, 3),
                (11, 200, 3),
                (12, 100, 3),
            ]),
            3,
        ),
        // Two networks for a quorum of three: two chosen (a degraded round).
        (
            1,
            78,
            networked(&[
                (1, 10_000, 0),
                (2, 10_000, 0),
                (3, 10_000, 1),
                (4, 10_000, 1),
                (5, 10_000, 0),
            ]),
            3,
        ),
        // No more candidates than the quorum, but two share a network: drawn.
        (
            0,
            79,
            networked(&[(1, 5_000, 0), (2, 5_000, 0), (3, 5_000, 2)]),
            3,
        ),
    ];
    cases
        .into_iter()
        .map(|(seed, website_id, candidates, quorum)| {
            let round_seed = seeds.get(seed).copied().unwrap_or_default();
            SelectionVector {
                round_seed: hex32(&round_seed),
                website_id,
                chosen: selection::choose_validators(&round_seed, website_id, &candidates, quorum),
                candidates: candidates
                    .iter()
                    .map(|c| CandidateVector {
                        validator_id: c.validator_id,
                        weight: c.weight,
                        network: c.network.map(str::to_owned),
                    })
                    .collect(),
                quorum,
            }
        })
        .collect()
}

fn due_offsets(seeds: &[[u8; 32]]) -> Vec<DueOffsetVector> {
    let cases = [
        (0, 1, 15_000u64),
        (1, 42, 15_000),
        (2, 9_000_000_000, 1_000),
        (3, 7, 0),
    ];
    cases
        .into_iter()
        .map(|(seed, website_id, spread_ms)| {
            let round_seed = seeds.get(seed).copied().unwrap_or_default();
            let offset = selection::due_offset(
                &round_seed,
                website_id,
                std::time::Duration::from_millis(spread_ms),
            );
            DueOffsetVector {
                round_seed: hex32(&round_seed),
                website_id,
                spread_ms,
                offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
            }
        })
        .collect()
}

fn canaries() -> CanaryVector {
    let (anchor, length, rate_bp) = ([0x22u8; 32], 3u32, 5_000u32);
    let candidates: Vec<i64> = (1..=16).collect();
    let rounds = (0..length)
        .filter_map(|index| {
            let key = canary::round_key(&anchor, length, index)?;
            let plans = canary::plan_round(&key, &candidates, rate_bp)
                .into_iter()
                .map(|p| CanaryPlanVector {
                    validator_id: p.validator_id,
                    mode: p.mode.as_str().into(),
                    keyword: p.keyword.map(str::to_owned),
                    nonce: hex::encode(p.nonce),
                    due_draw: p.due_draw,
                })
                .collect();
            Some(CanaryRoundVector {
                index,
                round_key: hex32(&key),
                candidates: candidates.clone(),
                rate_bp,
                plans,
            })
        })
        .collect();
    CanaryVector {
        anchor: hex32(&anchor),
        length,
        tip: hex32(&crate::hash_chain::tip(
            canary::CANARY_CHAIN_DOMAIN,
            &anchor,
            length,
        )),
        rounds,
    }
}

fn rounds() -> Vec<RoundVector> {
    let answer = |assignment_id, website_id, validator_id, status: Option<&str>| RoundAnswer {
        assignment_id,
        website_id,
        validator_id,
        status: status.map(str::to_owned),
    };
    let cases: [(i64, Vec<RoundAnswer>); 3] = [
        (
            7,
            vec![
                answer(103, 1, 30, Some("down")),
                answer(101, 1, 10, Some("up")),
                answer(102, 1, 20, Some("up")),
                answer(104, 2, 10, None),
                answer(105, 3, 20, Some("up")),
                answer(106, 3, 30, Some("down")),
            ],
        ),
        (
            8,
            vec![
                answer(201, 1, 10, Some("down")),
                answer(202, 1, 20, Some("down")),
                answer(203, 1, 30, None),
                answer(204, 5_000_000_000, 40, Some("up")),
            ],
        ),
        (
            9,
            vec![
                answer(301, 1, 10, Some("degraded")),
                answer(302, 1, 20, Some("degraded")),
                answer(303, 1, 30, Some("up")),
                answer(304, 2, 10, Some("degraded")),
                answer(305, 2, 20, Some("down")),
                answer(306, 2, 30, Some("up")),
            ],
        ),
    ];
    let mut previous: Option<[u8; 32]> = None;
    cases
        .into_iter()
        .map(|(round, answers)| {
            let outcome = ledger::settle_round(round, &answers);
            let chain =
                ledger::chain_hash(previous.as_ref().map(|p| &p[..]), &outcome.results_hash);
            let vector = RoundVector {
                round,
                answers: answers
                    .iter()
                    .map(|a| AnswerVector {
                        assignment_id: a.assignment_id,
                        website_id: a.website_id,
                        validator_id: a.validator_id,
                        status: a.status.clone(),
                    })
                    .collect(),
                verdicts: outcome
                    .verdicts
                    .iter()
                    .map(|(&website_id, v)| VerdictVector {
                        website_id,
                        verdict: v.as_str().into(),
                    })
                    .collect(),
                results_hash: hex32(&outcome.results_hash),
                previous_chain_hash: previous.as_ref().map(hex32),
                chain_hash: hex32(&chain),
            };
            previous = Some(chain);
            vector
        })
        .collect()
}

fn webhooks() -> Vec<WebhookVector> {
    let body = r#"{"website_id":42,"name":"Demo","url":"https://example.com/","state":"down","since":"2026-01-01T00:00:00Z","cause":"timeout"}"#;
    [
        ("whsec-vector", 1_767_225_600, body),
        ("s3cret", 1_767_225_661, "{}"),
    ]
    .into_iter()
    .map(|(secret, timestamp, body)| WebhookVector {
        secret: secret.into(),
        timestamp,
        body: body.into(),
        header: webhook_signature(secret, timestamp, body.as_bytes()).unwrap_or_default(),
    })
    .collect()
}

/// Leaf `i` of the small trees: an address from a hash, amounts of every size
/// (one beyond 64 bits, one beyond 128).
fn small_leaf(i: u64) -> (Address, U256) {
    let digest = Keccak256::new()
        .chain_update(b"overlaps/vectors/address")
        .chain_update(i.to_be_bytes())
        .finalize();
    let address = Address::from_slice(&digest[12..]);
    let amount = match i % 4 {
        0 => U256::from(i + 1) * U256::exp10(12),
        1 => U256::from(u64::MAX) + U256::from(i),
        2 => U256::from(1u64) << (200 + i as usize % 50),
        _ => U256::from(i * 7 + 3),
    };
    (address, amount)
}

fn tree_vector(rewards: &[(Address, U256)]) -> (Vec<merkle::Hash>, RewardTree) {
    let hashes = merkle::leaf_hashes(rewards);
    let tree = RewardTree::build(&hashes);
    (hashes, tree)
}

fn small_tree(count: u64) -> MerkleVector {
    let rewards: Vec<(Address, U256)> = (0..count).map(small_leaf).collect();
    let (hashes, tree) = tree_vector(&rewards);
    MerkleVector {
        leaves: rewards
            .iter()
            .map(|(address, amount)| LeafVector {
                address: PayoutAddress::from_bytes(address.as_bytes())
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                amount: amount.to_string(),
            })
            .collect(),
        leaf_hashes: hashes.iter().map(hex32).collect(),
        root: hex32(&tree.root()),
        proofs: (0..hashes.len())
            .map(|i| tree.proof(i).iter().map(hex32).collect())
            .collect(),
    }
}

/// The rule of the large tree's leaves (also written into the file).
pub(super) const LARGE_LEAF_RULE: &str = "leaf i (0-based) pays the address whose 20 bytes are \
    the big-endian integer i + 1 the amount (i + 1) * 10^12";

fn large_tree() -> MerkleLargeVector {
    let count = 4_097u64;
    let rewards: Vec<(Address, U256)> = (1..=count)
        .map(|n| (Address::from_low_u64_be(n), U256::from(n) * U256::exp10(12)))
        .collect();
    let (hashes, tree) = tree_vector(&rewards);
    MerkleLargeVector {
        count: hashes.len(),
        leaf_rule: LARGE_LEAF_RULE.into(),
        root: hex32(&tree.root()),
        proofs: [0usize, 1, 2_048, 4_095, 4_096]
            .into_iter()
            .map(|index| IndexedProofVector {
                index,
                leaf_hash: hashes.get(index).map(hex32).unwrap_or_default(),
                proof: tree.proof(index).iter().map(hex32).collect(),
            })
            .collect(),
    }
}
