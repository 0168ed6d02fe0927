//! Strict Ed25519 verification of a batch of results, spread over the machine's
//! cores on the ingest's blocking threads, so the sockets' async workers only
//! read, parse and answer.
//!
//! Each signature is checked on its own (`verify_strict`): never a batch
//! equation, which takes some mixed-order signatures the audit refuses (README,
//! *Every signature strict*).

use std::num::NonZeroUsize;

use overlaps_shared::protocol::CheckResult;
use overlaps_shared::signing::{PublicKey, SigningError};

/// One result to check: the key bound to its socket, the result, its signature.
pub struct SignedResult<'a> {
    /// The key the validator signed up with (never a key the message names).
    pub key: &'a PublicKey,
    /// The result as received.
    pub result: &'a CheckResult,
    /// Its 64 signature bytes.
    pub signature: &'a [u8; 64],
}

/// Below this many results a batch is checked on the calling thread alone: a
/// thread costs more to start than a few dozen verifications.
const PER_THREAD_AT_LEAST: usize = 32;

/// Checks every result's signature for `hub_id`, in order.
pub fn verify_all(hub_id: &str, results: &[SignedResult<'_>]) -> Vec<Result<(), SigningError>> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let per_thread = results.len().div_ceil(cores).max(PER_THREAD_AT_LEAST);
    if results.len() <= per_thread {
        return verify_part(hub_id, results);
    }
    let mut parts = results.chunks(per_thread);
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let others: Vec<_> = parts
            .map(|part| (part.len(), scope.spawn(move || verify_part(hub_id, part))))
            .collect();
        let mut verdicts = verify_part(hub_id, first);
        for (len, thread) in others {
            // Verification does not panic on any input; were it to, those results
            // are refused rather than stored unchecked.
            verdicts.extend(
                thread
                    .join()
                    .unwrap_or_else(|_| vec![Err(SigningError::BadSignature); len]),
            );
        }
        verdicts
    })
}

fn verify_part(hub_id: &str, results: &[SignedResult<'_>]) -> Vec<Result<(), SigningError>> {
    results
        .iter()
        .map(|r| r.result.verify(hub_id, r.key, r.signature))
        .collect()
}

#[cfg(test)]
mod tests {
    use overlaps_shared::protocol::CheckStatus;
    use overlaps_shared::signing::Keypair;

    use super::*;

    fn result(id: i64) -> CheckResult {
        CheckResult {
            assignment_id: id,
            status: CheckStatus::Up,
            http_status: Some(200),
            latency_ms: 7,
            failure: None,
            tls_expires_at_ms: None,
            checked_at_ms: 1_765_000_000_000,
            spec_hash: hex::encode([3u8; 32]),
            signature: String::new(),
        }
    }

    #[test]
    fn each_verdict_is_its_own_results_in_order_across_threads() {
        let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate()).collect();
        let results: Vec<CheckResult> = (0..300)
            .map(|i| result(i).sign("hub", &keys[i as usize % 4]))
            .collect();
        let mut signatures: Vec<[u8; 64]> = results
            .iter()
            .map(|r| r.signature_bytes().unwrap_or([0; 64]))
            .collect();
        // Every seventh is broken, one signed for another hub, one by another key.
        for s in signatures.iter_mut().step_by(7) {
            s[5] ^= 1;
        }
        let other_hub = result(1).sign("another-hub", &keys[1]);
        signatures[1] = other_hub.signature_bytes().unwrap_or([0; 64]);
        let public: Vec<PublicKey> = keys.iter().map(Keypair::public_key).collect();
        let wrong_key = public[3];
        let checks: Vec<SignedResult<'_>> = results
            .iter()
            .zip(&signatures)
            .enumerate()
            .map(|(i, (result, signature))| SignedResult {
                key: if i == 2 { &wrong_key } else { &public[i % 4] },
                result,
                signature,
            })
            .collect();

        let verdicts = verify_all("hub", &checks);
        assert_eq!(verdicts.len(), 300);
        for (i, verdict) in verdicts.iter().enumerate() {
            let bad = i % 7 == 0 || i == 1 || i == 2;
            assert_eq!(verdict.is_err(), bad, "result {i}: {verdict:?}");
        }
        // A batch too small to share out is checked the same way.
        assert_eq!(verify_all("hub", &checks[..5]), verdicts[..5].to_vec());
        assert!(verify_all("hub", &[]).is_empty());
    }
}
