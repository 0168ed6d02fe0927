//! The committed reference vectors (`shared/protocol/vectors.json`, described in
//! PROTOCOL.md) are exactly what the code computes today, and every one of them
//! agrees with an implementation written in this test from the document alone
//! (`vectors/oracle.rs`), so neither the file, the document nor the code can drift.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

#[path = "vectors/oracle.rs"]
mod oracle;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{KeyInit, Mac};
use oracle::{keccak, spec_bytes};
use overlaps_shared::vectors::{self, Vectors};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/vectors.json");

fn committed() -> Vectors {
    let text = std::fs::read_to_string(FILE).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn b32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn address(text: &str) -> [u8; 20] {
    hex::decode(text.strip_prefix("0x").unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// The failure-code table of PROTOCOL.md.
const FAILURE_CODES: [(&str, u8); 11] = [
    ("timeout", 1),
    ("dns", 2),
    ("connect", 3),
    ("tls", 4),
    ("http_status", 5),
    ("keyword_missing", 6),
    ("redirect_loop", 7),
    ("keyword_present", 8),
    ("json_mismatch", 9),
    ("too_slow", 10),
    ("dns_mismatch", 11),
];

#[test]
fn the_committed_file_is_what_the_code_computes() {
    let text = std::fs::read_to_string(FILE).unwrap();
    let generated = vectors::generate().unwrap();
    let mut expected = serde_json::to_string_pretty(&generated).unwrap();
    expected.push('\n');
    assert!(
        text == expected,
        "shared/protocol/vectors.json differs from what the code computes: a format or \
         algorithm changed. If that is intended, run `{}`, update PROTOCOL.md and bump the \
         protocol version where validators are affected.",
        vectors::GENERATOR
    );
    assert_eq!(generated.generator, vectors::GENERATOR);
}

#[test]
fn failure_codes_and_messages_are_as_documented() {
    let v = committed();
    let table: Vec<(String, u8)> = v
        .failure_codes
        .iter()
        .map(|f| (f.name.clone(), f.code))
        .collect();
    let documented: Vec<(String, u8)> = FAILURE_CODES
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
    assert_eq!(table, documented);
    assert_eq!(v.protocol, "overlaps/v2");
    // Every message is one JSON object tagged by `type`, and every type appears.
    let mut types: Vec<String> = v
        .messages
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_str(&m.json).unwrap();
            assert!(m.json.starts_with(r#"{"type":""#), "{}", m.json);
            format!("{}:{}", m.direction, value["type"].as_str().unwrap())
        })
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "hub_to_validator:ack",
            "hub_to_validator:error",
            "hub_to_validator:hello",
            "hub_to_validator:signed_up",
            "hub_to_validator:validate",
            "validator_to_hub:result",
            "validator_to_hub:signup",
        ]
    );
}

/// `domain || 0x00 || u16 BE length of hub id || hub id`.
fn start(domain: &str, hub_id: &str) -> Vec<u8> {
    let mut out = domain.as_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(&(hub_id.len() as u16).to_be_bytes());
    out.extend_from_slice(hub_id.as_bytes());
    out
}

/// The key of `seed`, checked against the vector's public key, and its signature
/// over `bytes` (Ed25519 is deterministic) checked against the vector's.
fn check_signature(seed: &str, public_key: &str, bytes: &[u8], signature: &str) {
    let key = SigningKey::from_bytes(&b32(seed));
    assert_eq!(hex::encode(key.verifying_key().to_bytes()), public_key);
    assert_eq!(hex::encode(key.sign(bytes).to_bytes()), signature);
    let verifying = VerifyingKey::from_bytes(&b32(public_key)).unwrap();
    let sig =
        ed25519_dalek::Signature::from_bytes(&hex::decode(signature).unwrap().try_into().unwrap());
    verifying.verify_strict(bytes, &sig).unwrap();
    let mut other = bytes.to_vec();
    other[bytes.len() - 1] ^= 1;
    assert!(verifying.verify_strict(&other, &sig).is_err());
}

#[test]
fn signup_bytes_are_assembled_as_documented_and_signed_with_ed25519() {
    let v = committed();
    assert_eq!(v.signup.len(), 2);
    for s in &v.signup {
        let mut bytes = start("overlaps/v2/signup", &s.hub_id);
        bytes.extend_from_slice(&b32(&s.nonce));
        bytes.extend_from_slice(&address(&s.payout_address));
        assert_eq!(hex::encode(&bytes), s.bytes, "{}", s.hub_id);
        check_signature(&s.key_seed, &s.public_key, &bytes, &s.signature);
        let message: serde_json::Value = serde_json::from_str(&s.message).unwrap();
        assert_eq!(message["type"], "signup");
        assert_eq!(message["public_key"], s.public_key.as_str());
        assert_eq!(message["payout_address"], s.payout_address.as_str());
        assert_eq!(message["signature"], s.signature.as_str());
    }
}

#[test]
fn check_spec_bytes_and_hashes_are_as_documented() {
    use sha2::Digest;
    let v = committed();
    assert_eq!(v.check_specs.len(), 5);
    for c in &v.check_specs {
        let m: serde_json::Value = serde_json::from_str(&c.message).unwrap();
        assert_eq!(m["type"], "validate");
        let bytes = spec_bytes(&m);
        assert_eq!(hex::encode(&bytes), c.bytes, "{m}");
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), c.spec_hash);
    }
    // Every assertion appears in at least one vector.
    let text: String = v.check_specs.iter().map(|c| c.message.clone()).collect();
    for field in [
        "keyword_absent",
        "accepted_status",
        "json_path",
        "json_expected",
        "max_response_ms",
        "tcp://",
        "dns://",
    ] {
        assert!(text.contains(field), "{field}");
    }
}

#[test]
fn v1_results_keep_their_layout_and_verify() {
    let v = committed();
    assert!(!v.results_v1.is_empty());
    for r in &v.results_v1 {
        let bytes = hex::decode(&r.bytes).unwrap();
        assert!(bytes.starts_with(b"overlaps/v1/result\0"));
        // tag+0, hub id, then the 31 bytes of fields: no spec hash.
        assert_eq!(
            bytes.len(),
            19 + 2 + r.hub_id.len() + 8 + 1 + 2 + 4 + 1 + 1 + 8 + 8
        );
        check_signature(&r.key_seed, &r.public_key, &bytes, &r.signature);
    }
}

#[test]
fn result_bytes_are_assembled_as_documented_with_every_failure_code() {
    let v = committed();
    let specs: Vec<String> = v.check_specs.iter().map(|c| c.spec_hash.clone()).collect();
    let mut failures_seen = Vec::new();
    for r in &v.results {
        let m = &r.message;
        assert_eq!(m["type"], "result");
        let mut bytes = start("overlaps/v2/result", &r.hub_id);
        bytes.extend_from_slice(&m["assignment_id"].as_i64().unwrap().to_be_bytes());
        bytes.push(match m["status"].as_str().unwrap() {
            "up" => 1,
            "down" => 2,
            "degraded" => 3,
            other => panic!("status {other}"),
        });
        let http = m
            .get("http_status")
            .map_or(0, |s| s.as_u64().unwrap() as u16);
        bytes.extend_from_slice(&http.to_be_bytes());
        bytes.extend_from_slice(&(m["latency_ms"].as_u64().unwrap() as u32).to_be_bytes());
        let failure = m.get("failure").map_or(0, |f| {
            let name = f.as_str().unwrap();
            failures_seen.push(name.to_owned());
            FAILURE_CODES.iter().find(|(n, _)| *n == name).unwrap().1
        });
        assert_eq!(failure, r.failure_code);
        bytes.push(failure);
        match m.get("tls_expires_at_ms") {
            Some(at) => {
                bytes.push(1);
                bytes.extend_from_slice(&at.as_i64().unwrap().to_be_bytes());
            }
            None => {
                bytes.push(0);
                bytes.extend_from_slice(&[0; 8]);
            }
        }
        bytes.extend_from_slice(&m["checked_at_ms"].as_i64().unwrap().to_be_bytes());
        let spec_hash = m["spec_hash"].as_str().unwrap();
        assert!(specs.iter().any(|s| s == spec_hash), "a vector's spec hash");
        bytes.extend_from_slice(&b32(spec_hash));
        assert_eq!(hex::encode(&bytes), r.bytes, "{m}");
        assert_eq!(m["signature"], r.signature.as_str());
        check_signature(&r.key_seed, &r.public_key, &bytes, &r.signature);
    }
    let all: Vec<&str> = FAILURE_CODES.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        failures_seen, all,
        "one vector per failure code, in code order"
    );
}

#[test]
fn the_seed_chain_and_round_seeds_follow_the_documented_hashes() {
    let c = committed().seed_chain;
    let mut link = b32(&c.anchor);
    assert_eq!(c.links[0], c.anchor);
    for k in 1..=c.length as usize {
        link = keccak(&[b"overlaps/v1/seed-chain".as_slice(), &link]);
        assert_eq!(hex::encode(link), c.links[k]);
    }
    assert_eq!(hex::encode(link), c.tip);
    // Computed outside this code base too (pycryptodome; see selection.rs).
    assert_eq!(
        c.tip,
        "377293e960e79c5f9f2a6d75a7fe1cd6af8f8891f140d92e9765ad3bba16ff27"
    );
    let genesis = keccak(&[b"overlaps/v1/genesis".as_slice(), c.hub_id.as_bytes()]);
    assert_eq!(hex::encode(genesis), c.genesis_seed);
    let (mut previous_seed, mut previous_link) = (genesis, b32(&c.tip));
    for (i, round) in c.rounds.iter().enumerate() {
        assert_eq!(round.round as usize, i + 1);
        let reveal = b32(&round.reveal);
        assert_eq!(round.reveal, c.links[c.length as usize - 1 - i]);
        assert_eq!(
            keccak(&[b"overlaps/v1/seed-chain".as_slice(), &reveal]),
            previous_link
        );
        let seed = keccak(&[
            b"overlaps/v2/round-seed".as_slice(),
            &previous_seed,
            &reveal,
        ]);
        assert_eq!(hex::encode(seed), round.seed);
        (previous_seed, previous_link) = (seed, reveal);
    }
    let legacy = committed().legacy_round_seed;
    let seed = keccak(&[
        b"overlaps/v1/round-seed",
        b32(&legacy.previous_seed).as_slice(),
        &b32(&legacy.results_hash),
    ]);
    assert_eq!(hex::encode(seed), legacy.seed);
}

#[test]
fn selections_and_due_times_match_an_independent_walker_alias_and_chacha20() {
    let v = committed();
    assert!(v.selection.len() >= 4);
    for s in &v.selection {
        let candidates: Vec<(i64, u32, Option<String>)> = s
            .candidates
            .iter()
            .map(|c| (c.validator_id, c.weight, c.network.clone()))
            .collect();
        assert_eq!(
            oracle::choose(&b32(&s.round_seed), s.website_id, &candidates, s.quorum),
            s.chosen,
            "site {}",
            s.website_id
        );
    }
    // Networks were exercised: a quorum cut short by them, and none with two of one.
    assert!(v.selection.iter().any(|s| {
        s.candidates.iter().any(|c| c.network.is_some())
            && s.chosen.len() < s.quorum.min(s.candidates.len())
    }));
    for s in v.selection.iter() {
        let networks: Vec<&str> = s
            .chosen
            .iter()
            .filter_map(|id| s.candidates.iter().find(|c| c.validator_id == *id))
            .filter_map(|c| c.network.as_deref())
            .collect();
        let mut distinct = networks.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), networks.len(), "site {}", s.website_id);
    }
    // The draws exercised the alias table (more candidates than the quorum).
    assert!(
        v.selection
            .iter()
            .any(|s| s.chosen.len() == s.quorum && s.candidates.len() > 2 * s.quorum)
    );
    for d in &v.due_offsets {
        let digest = keccak(&[
            b"due".as_slice(),
            &b32(&d.round_seed),
            &d.website_id.to_be_bytes(),
        ]);
        let expected = if d.spread_ms == 0 {
            0
        } else {
            oracle::u64_be(&digest) % d.spread_ms
        };
        assert_eq!(d.offset_ms, expected, "site {}", d.website_id);
    }
}

#[test]
fn canary_keys_and_plans_follow_the_documented_draws() {
    let c = committed().canary;
    let domain = b"overlaps/v1/canary-chain";
    let mut links = vec![b32(&c.anchor)];
    for _ in 0..c.length {
        let next = keccak(&[domain.as_slice(), links.last().unwrap()]);
        links.push(next);
    }
    assert_eq!(hex::encode(links[c.length as usize]), c.tip);
    let keywords = ["Welcome", "Sign in", "Status", "Contact", "Home"];
    let mut planned = 0;
    for round in &c.rounds {
        let key = b32(&round.round_key);
        assert_eq!(key, links[(c.length - 1 - round.index) as usize]);
        let draw = |label: &[u8], v: i64| {
            keccak(&[
                b"overlaps/v1/canary-draw".as_slice(),
                &key,
                label,
                &v.to_be_bytes(),
            ])
        };
        let mut ids = round.candidates.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut expected = Vec::new();
        for v in ids {
            if oracle::u64_be(&draw(b"pick", v)) % 10_000 >= u64::from(round.rate_bp) {
                continue;
            }
            let mode = match oracle::u64_be(&draw(b"mode", v)) % 100 {
                0..50 => "ok",
                50..60 => "server_error",
                60..70 => "keyword_missing",
                70..80 => "timeout",
                80..90 => "refused",
                _ => "bad_tls",
            };
            let k = oracle::u64_be(&draw(b"keyword", v));
            let keyword = (mode == "keyword_missing" || k.is_multiple_of(2))
                .then(|| keywords[((k >> 1) % 5) as usize].to_owned());
            expected.push((
                v,
                mode.to_owned(),
                keyword,
                hex::encode(&draw(b"nonce", v)[..8]),
                oracle::u64_be(&draw(b"due", v)),
            ));
        }
        let actual: Vec<_> = round
            .plans
            .iter()
            .map(|p| {
                (
                    p.validator_id,
                    p.mode.clone(),
                    p.keyword.clone(),
                    p.nonce.clone(),
                    p.due_draw,
                )
            })
            .collect();
        assert_eq!(actual, expected, "round {}", round.index);
        planned += actual.len();
    }
    assert!(planned > 0, "the vectors hold canaries");
}

#[test]
fn round_verdicts_results_hash_and_chain_hash_follow_the_documented_layout() {
    let rounds = committed().rounds;
    let mut previous = [0u8; 32];
    for (i, r) in rounds.iter().enumerate() {
        let mut answers = r.answers.clone();
        answers.sort_by_key(|a| (a.website_id, a.assignment_id));
        let mut sites: Vec<i64> = answers.iter().map(|a| a.website_id).collect();
        sites.dedup();
        let mut preimage = b"overlaps/v1/round-results".to_vec();
        preimage.extend_from_slice(&r.round.to_be_bytes());
        let mut verdicts = Vec::new();
        for site in sites {
            let of_site: Vec<_> = answers.iter().filter(|a| a.website_id == site).collect();
            let count = |s: &str| {
                of_site
                    .iter()
                    .filter(|a| a.status.as_deref() == Some(s))
                    .count()
            };
            // The status reported more often than each other one; a tie for the
            // most is unknown.
            let tallies =
                [("up", 1u8), ("down", 2), ("degraded", 3)].map(|(s, c)| (count(s), s, c));
            let most = tallies.iter().map(|t| t.0).max().unwrap();
            let leaders: Vec<_> = tallies.iter().filter(|t| t.0 == most).collect();
            let (verdict, code) = if leaders.len() == 1 {
                (leaders[0].1, leaders[0].2)
            } else {
                ("unknown", 0)
            };
            verdicts.push((site, verdict.to_owned()));
            preimage.extend_from_slice(&site.to_be_bytes());
            preimage.push(code);
            for a in of_site {
                preimage.extend_from_slice(&a.assignment_id.to_be_bytes());
                preimage.extend_from_slice(&a.validator_id.to_be_bytes());
                preimage.push(match a.status.as_deref() {
                    Some("up") => 1,
                    Some("down") => 2,
                    Some("degraded") => 3,
                    _ => 0,
                });
            }
        }
        let actual: Vec<_> = r
            .verdicts
            .iter()
            .map(|v| (v.website_id, v.verdict.clone()))
            .collect();
        assert_eq!(actual, verdicts, "round {}", r.round);
        let results_hash = keccak(&[&preimage]);
        assert_eq!(hex::encode(results_hash), r.results_hash);
        assert_eq!(r.previous_chain_hash.is_none(), i == 0);
        if let Some(p) = &r.previous_chain_hash {
            assert_eq!(b32(p), previous);
        }
        previous = keccak(&[&previous, &results_hash]);
        assert_eq!(hex::encode(previous), r.chain_hash);
    }
    assert!(
        rounds
            .iter()
            .flat_map(|r| &r.verdicts)
            .any(|v| v.verdict == "unknown")
    );
}

#[test]
fn webhook_signatures_are_an_hmac_of_the_time_and_body() {
    let hooks = committed().webhook;
    assert!(!hooks.is_empty());
    for w in hooks {
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(w.secret.as_bytes()).unwrap();
        mac.update(format!("{}.{}", w.timestamp, w.body).as_bytes());
        let expected = format!(
            "t={},v1={}",
            w.timestamp,
            hex::encode(mac.finalize().into_bytes())
        );
        assert_eq!(w.header, expected);
    }
}

#[test]
fn small_reward_trees_match_an_independent_openzeppelin_tree() {
    let trees = committed().merkle;
    let sizes: Vec<usize> = trees.iter().map(|t| t.leaves.len()).collect();
    assert_eq!(sizes, [1, 2, 3, 5, 7, 37]);
    for t in &trees {
        let leaves: Vec<[u8; 32]> = t
            .leaves
            .iter()
            .map(|l| oracle::leaf(&address(&l.address), &oracle::uint256(&l.amount)))
            .collect();
        let hashes: Vec<String> = leaves.iter().map(hex::encode).collect();
        assert_eq!(hashes, t.leaf_hashes);
        let layers = oracle::layers(&leaves);
        let root = layers.last().unwrap()[0];
        assert_eq!(hex::encode(root), t.root, "{} leaves", leaves.len());
        assert_eq!(t.proofs.len(), leaves.len());
        for (i, proof) in t.proofs.iter().enumerate() {
            let mine: Vec<String> = oracle::proof(&layers, i).iter().map(hex::encode).collect();
            assert_eq!(proof, &mine, "{} leaves, leaf {i}", leaves.len());
            let siblings: Vec<[u8; 32]> = proof.iter().map(|p| b32(p)).collect();
            assert_eq!(oracle::process_proof(leaves[i], &siblings), root);
        }
    }
    // Amounts beyond 64 and 128 bits are covered.
    assert!(
        trees
            .iter()
            .flat_map(|t| &t.leaves)
            .any(|l| l.amount.len() > 40)
    );
}

#[test]
fn the_4097_leaf_tree_matches_an_independent_tree_and_every_proof_verifies() {
    let t = committed().merkle_large;
    assert_eq!(t.count, 4_097);
    let leaves: Vec<[u8; 32]> = (1..=t.count as u64)
        .map(|n| {
            let mut address = [0u8; 20];
            address[12..].copy_from_slice(&n.to_be_bytes());
            oracle::leaf(&address, &oracle::uint256(&format!("{n}000000000000")))
        })
        .collect();
    let layers = oracle::layers(&leaves);
    let root = layers.last().unwrap()[0];
    assert_eq!(hex::encode(root), t.root);
    let indices: Vec<usize> = t.proofs.iter().map(|p| p.index).collect();
    assert_eq!(indices, [0, 1, 2_048, 4_095, 4_096]);
    for p in &t.proofs {
        assert_eq!(p.leaf_hash, hex::encode(leaves[p.index]));
        let mine: Vec<String> = oracle::proof(&layers, p.index)
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(p.proof, mine, "leaf {}", p.index);
    }
    // Every proof the hub's tree gives verifies under OpenZeppelin's rule and is
    // the independent tree's own.
    let tree = overlaps_shared::merkle::RewardTree::build(&leaves);
    assert_eq!(tree.root(), root);
    for (i, leaf) in leaves.iter().enumerate() {
        let proof = tree.proof(i);
        assert_eq!(oracle::process_proof(*leaf, &proof), root, "leaf {i}");
        assert_eq!(proof, oracle::proof(&layers, i), "leaf {i}");
    }
}
