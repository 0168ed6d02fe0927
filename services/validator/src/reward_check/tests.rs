//! Unit tests of the reward check: settling receipts against public records, canaries, and comparing the hub's figures.
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::protocol::CheckStatus;

use overlaps_shared::canary::CanaryMode;
use overlaps_shared::signing;

use super::settle::RoundSettlement;
use super::*;
use crate::claim::Proof;
use crate::hub_api::PublicResult;

const ME: i64 = 7;

fn assignment(id: i64, site: i64, validator: i64, status: Option<&str>) -> PublicAssignment {
    PublicAssignment {
        id,
        website_id: site,
        validator_id: validator,
        result: status.map(|s| PublicResult {
            status: s.into(),
            http_status: Some(200),
            latency_ms: 12,
            failure: (s == "down").then(|| "connect".to_owned()),
            checked_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_000)
                .unwrap_or_default(),
            tls_expires_at: None,
            signature: format!("0x{}", "ab".repeat(64)),
            protocol_version: 2,
            spec_hash: Some(format!("0x{}", "cd".repeat(32))),
        }),
        canary: None,
    }
}

/// Signs assignment `a`'s result with `key` for hub `hub`.
fn sign(mut a: PublicAssignment, key: &signing::Keypair, hub: &str) -> PublicAssignment {
    if let Some(result) = &mut a.result {
        let bytes = signing::result_bytes(hub, &result.signed_fields(a.id));
        result.signature = format!("0x{}", hex::encode(key.sign(&bytes)));
    }
    a
}

#[test]
fn results_not_signed_by_their_validator_are_left_out_of_the_majority() {
    let (v8, v9) = (signing::Keypair::generate(), signing::Keypair::generate());
    let keys = HashMap::from([(8, v8.public_key()), (9, v9.public_key())]);
    let mut record = vec![
        assignment(1, 1, ME, Some("up")),
        sign(assignment(2, 1, 8, Some("up")), &v8, "hub"),
        // Validator 9 signed for another hub: not a result here.
        sign(assignment(3, 1, 9, Some("down")), &v9, "other-hub"),
        // An unknown validator, and a signature that is not validator 8's.
        assignment(4, 1, 10, Some("down")),
        assignment(5, 1, 8, Some("down")),
    ];
    // Counted as published, three downs would outvote this node's up.
    assert_eq!(
        settle_receipts(ME, 4, &[receipt(1, CheckStatus::Up)], &record, None).agreed,
        0
    );
    let problems = discard_unsigned(&mut record, ME, 4, "hub", &keys);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(matches!(&problems[0], Problem::Unsigned(m) if m.contains("assignment 3")));
    assert!(record[1].result.is_some(), "a good signature is kept");
    assert!(record[2..].iter().all(|a| a.result.is_none()));
    let settled = settle_receipts(ME, 4, &[receipt(1, CheckStatus::Up)], &record, None);
    assert_eq!(settled.agreed, 1);
}

fn receipt(id: i64, status: CheckStatus) -> Receipt {
    Receipt {
        round: 4,
        assignment_id: id,
        status,
        signature: "AB".repeat(64),
    }
}

#[test]
fn receipts_earn_where_they_agree_with_the_majority() {
    let record = [
        // Site 1: up by 2 to 1, this node said up.
        assignment(1, 1, ME, Some("up")),
        assignment(2, 1, 8, Some("up")),
        assignment(3, 1, 9, Some("down")),
        // Site 2: down by 2 to 1, this node said up.
        assignment(4, 2, ME, Some("up")),
        assignment(5, 2, 8, Some("down")),
        assignment(6, 2, 9, Some("down")),
    ];
    let settled = settle_receipts(
        ME,
        4,
        &[receipt(1, CheckStatus::Up), receipt(4, CheckStatus::Up)],
        &record,
        None,
    );
    assert_eq!(
        settled,
        RoundSettlement {
            agreed: 1,
            failed_canary: false,
            problems: vec![]
        }
    );
}

#[test]
fn canaries_count_by_their_known_answer_never_by_majority() {
    let canary = |mut a: PublicAssignment| {
        a.canary = Some(PublicCanary {
            assignment_id: a.id,
            validator_id: a.validator_id,
            mode: "server_error".into(),
            expected_status: "down".into(),
        });
        a
    };
    // The node's canary (assignment 3) and another's (4) sit beside a real site.
    let record = vec![
        assignment(1, 1, ME, Some("up")),
        assignment(2, 1, 8, Some("up")),
        canary(assignment(3, 99, ME, Some("down"))),
        canary(assignment(4, 99, 8, Some("up"))),
    ];
    let receipts = [receipt(1, CheckStatus::Up), receipt(3, CheckStatus::Down)];
    let settled = settle_receipts(ME, 4, &receipts, &record, Some(CanaryMode::ServerError));
    assert_eq!((settled.agreed, settled.failed_canary), (2, false));
    assert!(settled.problems.is_empty(), "{:?}", settled.problems);
    // Answered wrongly (as the node sent it, whatever the record says): forfeits.
    let lazy = [receipt(1, CheckStatus::Up), receipt(3, CheckStatus::Up)];
    let settled = settle_receipts(ME, 4, &lazy, &record, Some(CanaryMode::ServerError));
    assert_eq!((settled.agreed, settled.failed_canary), (1, true));
    // A canary the round's key does not give this node is reported, never counted.
    let settled = settle_receipts(ME, 4, &receipts, &record, None);
    assert_eq!((settled.agreed, settled.failed_canary), (1, false));
    assert!(matches!(&settled.problems[..], [Problem::RecordDiffers(m)] if m.contains("canary")));
}

#[test]
fn a_dropped_or_altered_result_is_reported_and_counted_as_sent() {
    // The hub dropped this node's up and so turned a 2-to-1 up into a tie.
    let dropped = [
        assignment(1, 1, ME, None),
        assignment(2, 1, 8, Some("up")),
        assignment(3, 1, 9, Some("down")),
    ];
    let settled = settle_receipts(ME, 4, &[receipt(1, CheckStatus::Up)], &dropped, None);
    assert_eq!(settled.agreed, 1, "counted as the node sent it");
    assert!(
        matches!(&settled.problems[..], [Problem::RecordDiffers(m)] if m.contains("no result"))
    );

    // Altered to down: still counted as up.
    let altered = [
        assignment(1, 1, ME, Some("down")),
        assignment(2, 1, 8, Some("up")),
        assignment(3, 1, 9, Some("up")),
    ];
    let settled = settle_receipts(ME, 4, &[receipt(1, CheckStatus::Up)], &altered, None);
    assert_eq!(settled.agreed, 1);
    assert_eq!(settled.problems.len(), 1);

    // Missing altogether, or given to someone else: reported, not counted.
    let settled = settle_receipts(ME, 4, &[receipt(9, CheckStatus::Up)], &altered, None);
    assert_eq!(settled.agreed, 0);
    assert!(
        matches!(&settled.problems[..], [Problem::RecordDiffers(m)] if m.contains("no assignment 9"))
    );
    let settled = settle_receipts(ME, 4, &[receipt(2, CheckStatus::Up)], &altered, None);
    assert!(
        matches!(&settled.problems[..], [Problem::RecordDiffers(m)] if m.contains("validator 8"))
    );
}

fn proof(payout: Address, leaf: u64, credited: u64, attributed: u64) -> (Proof, Hash) {
    let leaves = [
        leaf_hash(payout, U256::from(leaf)),
        leaf_hash(Address::from_low_u64_be(1), U256::from(5)),
    ];
    let tree = RewardTree::build(&leaves);
    let proof = Proof {
        eon: 3,
        payout,
        cumulative: U256::from(leaf),
        leaf: leaves[0],
        proof: tree.proof(0),
        root: tree.root(),
        validator_cumulative: U256::from(credited),
        validator_attributed: U256::from(attributed),
    };
    (proof, tree.root())
}

fn checked(expected: u64, complete: bool, proof: &Proof, root: Hash, previous: u64) -> EonCheck {
    let mut check = EonCheck {
        eon: 3,
        agreed: expected / 10,
        expected: U256::from(expected),
        leaf: None,
        complete,
        problems: vec![],
    };
    compare(
        &mut check,
        proof,
        root,
        Address::from_low_u64_be(0xA),
        true,
        U256::from(previous),
    );
    check
}

#[test]
fn the_hubs_figures_are_held_to_the_nodes_expectation() {
    let me = Address::from_low_u64_be(0xA);
    let (exact, root) = proof(me, 50, 50, 50);
    let check = checked(50, true, &exact, root, 40);
    assert_eq!((check.leaf, check.problems), (Some(U256::from(50)), vec![]));

    let (short, root) = proof(me, 40, 40, 40);
    let problems = checked(50, true, &short, root, 0).problems;
    assert!(
        matches!(problems[0], Problem::BelowExpected { .. }),
        "{problems:?}"
    );
    assert!(
        matches!(problems[1], Problem::LeafBelowExpected { .. }),
        "{problems:?}"
    );

    // More than expected: suspicious with a complete record, fine with a partial one.
    let (more, root) = proof(me, 60, 60, 60);
    assert!(matches!(
        checked(50, true, &more, root, 0).problems[..],
        [Problem::AboveExpected { .. }]
    ));
    assert_eq!(checked(50, false, &more, root, 0).problems, vec![]);

    let (unattributed, root) = proof(me, 30, 50, 30);
    assert!(
        checked(50, true, &unattributed, root, 0)
            .problems
            .contains(&Problem::Unattributed {
                attributed: U256::from(30),
                credited: U256::from(50),
            })
    );
    assert!(
        checked(40, false, &exact, root, 0)
            .problems
            .iter()
            .any(|p| matches!(p, Problem::LeafNotInRoot(_))),
        "a proof to another root"
    );
    let (shrunk, root) = proof(me, 50, 50, 50);
    assert!(matches!(
        checked(50, true, &shrunk, root, 70).problems[..],
        [Problem::Shrank { .. }]
    ));
    let (elsewhere, root) = proof(Address::from_low_u64_be(0xB), 50, 50, 50);
    assert!(
        matches!(&checked(50, true, &elsewhere, root, 0).problems[..], [Problem::LeafNotInRoot(m)] if m.contains("not this node's"))
    );
}
