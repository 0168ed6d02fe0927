//! Why the hub verifies every result on its own (strict) and never in a batch: a
//! cheater's mixed-order signature passes ed25519-dalek's batch verification for
//! about one nonce in two, and never strict verification, which is what the audit
//! re-runs on every stored tick and what a status page's browser runs (WebCrypto).
//! Had the hub batched, one such result stored would fail the eon's audit and hold
//! back every validator's payout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use ed25519_dalek::Signature;
use overlaps_shared::protocol::{CheckResult, CheckStatus};
use overlaps_shared::signing::{self, Keypair, SigningError};
use overlaps_shared::testing::mixed_order_signature;

fn result(assignment_id: i64) -> Vec<u8> {
    let unsigned = CheckResult {
        assignment_id,
        status: CheckStatus::Up,
        http_status: Some(200),
        latency_ms: 42,
        failure: None,
        tls_expires_at_ms: None,
        checked_at_ms: 1_765_000_000_000,
        spec_hash: hex::encode([7u8; 32]),
        signature: String::new(),
    };
    signing::result_bytes("hub", &unsigned.fields())
}

#[test]
fn a_mixed_order_signature_passes_a_batch_for_some_nonces_and_strict_verification_never() {
    let cheater = Keypair::generate();
    let honest: Vec<Keypair> = (0..7).map(|_| Keypair::generate()).collect();
    let messages: Vec<Vec<u8>> = (0..8).map(result).collect();
    let mut keys: Vec<_> = honest
        .iter()
        .map(|k| *k.public_key().verifying_key())
        .collect();
    keys.push(*cheater.public_key().verifying_key());
    let mut signatures: Vec<Signature> = honest
        .iter()
        .zip(&messages)
        .map(|(key, message)| Signature::from_bytes(&key.sign(message)))
        .collect();

    let mut batches_taken = 0;
    let tries = 64;
    for nonce in 0..tries {
        let forged = mixed_order_signature(&cheater, &messages[7], nonce);
        assert_eq!(
            cheater.public_key().verify(&messages[7], &forged),
            Err(SigningError::BadSignature),
            "strict verification refuses every mixed-order signature (nonce {nonce})"
        );
        signatures.push(Signature::from_bytes(&forged));
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok() {
            batches_taken += 1;
        }
        signatures.pop();
    }
    // z·T vanishes for an even z: about half of the batches take the forgery. Fewer
    // than 8 of 64, or all 64, each has a chance under 1e-9.
    assert!(
        (8..tries).contains(&batches_taken),
        "{batches_taken} of {tries} batches took the forged signature"
    );
}
