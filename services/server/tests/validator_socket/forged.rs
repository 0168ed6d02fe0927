//! Forged signatures in the same batches as honest results. The ingest checks each
//! batch's signatures together, off the sockets' workers; a forgery costs only its
//! sender, and none that strict verification refuses is ever stored.

use std::time::Duration;

use overlaps_shared::protocol::{CheckResult, CheckStatus, ErrorCode, HubMessage};
use overlaps_shared::signing::{self, Keypair};
use overlaps_shared::testing::mixed_order_signature;

use super::common::{Deployment, HUB_ID, signed_result};
use super::{a_cheater_and_three_honest, answer_honestly};

/// `result` with `signature` (64 bytes) in place of its own.
fn with_signature(mut result: CheckResult, signature: [u8; 64]) -> CheckResult {
    result.signature = hex::encode(signature);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_signatures_batched_with_honest_results_cost_only_their_sender() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let ((mut forger, forger_key, _, target), honest) =
        a_cheater_and_three_honest(&dep, &server).await;

    let genuine = signed_result(&forger_key, target, CheckStatus::Up);
    let bytes = signing::result_bytes(HUB_ID, &genuine.fields());
    // Mixed-order signatures of the right bytes by the right key (the nonce point
    // shifted by the point of order 2): ed25519-dalek's batch verification takes
    // about half of them, so a hub that batched would store one of these twelve
    // with odds 4095 in 4096.
    let mut forgeries: Vec<CheckResult> = (0..12)
        .map(|nonce| {
            with_signature(
                genuine.clone(),
                mixed_order_signature(&forger_key, &bytes, nonce),
            )
        })
        .collect();
    // One bit flipped, another key's signature of the same bytes, and the right
    // key's signature for another hub.
    let mut flipped = genuine.signature_bytes().unwrap();
    flipped[40] ^= 0x10;
    forgeries.push(with_signature(genuine.clone(), flipped));
    forgeries.push(with_signature(
        genuine.clone(),
        Keypair::generate().sign(&bytes),
    ));
    forgeries.push(with_signature(
        genuine.clone(),
        forger_key.sign(&signing::result_bytes("another-hub", &genuine.fields())),
    ));
    let sent = forgeries.len();

    let flood = tokio::spawn(async move {
        for forged in forgeries {
            forger.send_result(forged).await;
        }
        let mut codes = Vec::new();
        for _ in 0..sent {
            codes.push(forger.error().await);
        }
        (forger, codes)
    });
    // The honest ones answer at the same moment, into the same batches.
    answer_honestly(&dep, honest, Duration::from_millis(2)).await;
    let (mut forger, codes) = flood.await.unwrap();
    assert_eq!(codes, vec![ErrorCode::BadSignature; sent]);
    assert_eq!(
        dep.count("SELECT count(*) FROM ticks"),
        3,
        "the honest results only"
    );
    assert_eq!(dep.assignment_state(target), "pending");

    // The connection lives on, and the genuine result still lands.
    forger.send_result(genuine).await;
    assert_eq!(
        forger.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![target]
        }
    );
    assert_eq!(
        dep.count(&format!(
            "SELECT count(*) FROM ticks WHERE assignment_id = {target}"
        )),
        1
    );
}
