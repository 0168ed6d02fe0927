//! Validly signed results no honest check could produce, flooded beside honest
//! results: the hub's own rules refuse each, the honest ones are stored, and the
//! poisoner's connection and genuine result survive.

use std::time::Duration;

use chrono::Utc;
use overlaps_shared::protocol::{CheckResult, CheckStatus, ErrorCode, HubMessage};
use overlaps_shared::signing::Keypair;

use super::common::{Deployment, HUB_ID, signed_result};
use super::{a_cheater_and_three_honest, answer_honestly};

/// A result of `key` for `assignment` with its times and latency set as given.
fn result_with(
    key: &Keypair,
    assignment: i64,
    checked_at_ms: i64,
    latency_ms: u32,
    tls_expires_at_ms: Option<i64>,
) -> CheckResult {
    let mut result = signed_result(key, assignment, CheckStatus::Up);
    result.checked_at_ms = checked_at_ms;
    result.latency_ms = latency_ms;
    result.tls_expires_at_ms = tls_expires_at_ms;
    result.sign(HUB_ID, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poisoning_validator_costs_honest_ones_nothing_and_keeps_its_connection() {
    let dep = Deployment::new();
    let server = dep.server("s1", &[]);
    let ((mut poisoner, poison_key, _, poisoned), honest) =
        a_cheater_and_three_honest(&dep, &server).await;

    // Every signed field the store could not hold, or a time no honest check has:
    // each validly signed, so only the hub's own rules stop them.
    let now = Utc::now().timestamp_millis();
    let poison = [
        result_with(&poison_key, poisoned, -1_000_000_000_000_000, 40, None),
        result_with(&poison_key, poisoned, now + 3_600_000, 40, None),
        result_with(&poison_key, poisoned, now - 3_600_000, 40, None),
        result_with(&poison_key, poisoned, now, u32::MAX, None),
        result_with(&poison_key, poisoned, now, 40, Some(i64::MAX)),
        result_with(&poison_key, poisoned, now, 40, Some(-1_000_000_000_000_000)),
    ];
    let flood = tokio::spawn(async move {
        // Within the per-connection message limit, as fast as it can.
        for round in 0..25 {
            for bad in &poison {
                poisoner.send_result(bad.clone()).await;
            }
            if round % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut codes = Vec::new();
        for _ in 0..25 * poison.len() {
            codes.push(poisoner.error().await);
        }
        (poisoner, codes)
    });
    // The honest ones answer at the same moment.
    answer_honestly(&dep, honest, Duration::from_millis(30)).await;
    let (mut poisoner, codes) = flood.await.unwrap();
    assert!(
        codes.iter().all(|c| *c == ErrorCode::InvalidResult),
        "{codes:?}"
    );
    assert_eq!(
        dep.count("SELECT count(*) FROM ticks"),
        3,
        "exactly the honest results"
    );
    assert_eq!(
        dep.count(&format!(
            "SELECT count(*) FROM ticks WHERE assignment_id = {poisoned}"
        )),
        0
    );
    assert_eq!(dep.assignment_state(poisoned), "pending");
    // The connection survived: a proper result is still taken.
    poisoner
        .send_result(signed_result(&poison_key, poisoned, CheckStatus::Up))
        .await;
    assert_eq!(
        poisoner.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![poisoned]
        }
    );
}
