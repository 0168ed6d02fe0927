//! Settling this node's receipts of one round against the round's public record:
//! which of its results agreed with the majority (recomputed without results that
//! do not verify under their validator's key), and its canary.

use std::collections::HashMap;

use overlaps_shared::canary::{self, CanaryMode, CanaryOutcome};
use overlaps_shared::ledger::{self, RoundAnswer};
use overlaps_shared::signing::{self, PublicKey};

use super::Problem;
use crate::hub_api::PublicAssignment;
use crate::receipts::Receipt;

/// What this node's receipts of one round earned, by the round's public record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundSettlement {
    /// Receipts that agreed with their site's majority, or passed a canary.
    pub agreed: u64,
    /// A receipt answered a canary wrongly: the eon's credits so far are forfeited.
    pub failed_canary: bool,
    /// Receipts missing from, or altered in, the record.
    pub problems: Vec<Problem>,
}

fn same_signature(a: &str, b: &str) -> bool {
    a.trim_start_matches("0x")
        .eq_ignore_ascii_case(b.trim_start_matches("0x"))
}

/// Settles validator `own_id`'s receipts of round `round` against the round's public
/// record. Its results count as the node sent them, whatever the record says, so a
/// hub that drops or alters one cannot talk the node out of its expectation.
/// `own_canary` is the canary the round's revealed key gives this node (re-derived
/// by the node, not taken from the record): a canary counts when answered rightly,
/// and a wrong answer marks the round as forfeiting the eon so far.
pub fn settle_receipts(
    own_id: i64,
    round: i64,
    receipts: &[Receipt],
    record: &[PublicAssignment],
    own_canary: Option<CanaryMode>,
) -> RoundSettlement {
    // Canaries are judged by their known answer, never by majority.
    let mut answers: Vec<RoundAnswer> = record
        .iter()
        .filter(|a| a.canary.is_none())
        .map(|a| RoundAnswer {
            assignment_id: a.id,
            website_id: a.website_id,
            validator_id: a.validator_id,
            status: a.result.as_ref().map(|r| r.status.clone()),
        })
        .collect();
    let index: HashMap<i64, usize> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| (a.assignment_id, i))
        .collect();
    let by_id: HashMap<i64, &PublicAssignment> = record.iter().map(|a| (a.id, a)).collect();
    let mut settlement = RoundSettlement::default();
    let mut own = Vec::new();
    for receipt in receipts {
        let id = receipt.assignment_id;
        let Some(assignment) = by_id.get(&id) else {
            settlement.problems.push(Problem::RecordDiffers(format!(
                "round {round} has no assignment {id}"
            )));
            continue;
        };
        if assignment.validator_id != own_id {
            settlement.problems.push(Problem::RecordDiffers(format!(
                "round {round}: assignment {id} is recorded as validator {}'s",
                assignment.validator_id
            )));
            continue;
        }
        match &assignment.result {
            None => settlement.problems.push(Problem::RecordDiffers(format!(
                "round {round}: assignment {id} has no result although the hub acknowledged it"
            ))),
            Some(r)
                if r.status != receipt.status.as_str()
                    || !same_signature(&r.signature, &receipt.signature) =>
            {
                settlement.problems.push(Problem::RecordDiffers(format!(
                    "round {round}: assignment {id} is recorded as {} with another signature than this node's {}",
                    r.status,
                    receipt.status.as_str()
                )))
            }
            Some(_) => {}
        }
        if assignment.canary.is_some() {
            match own_canary {
                Some(mode) => match canary::judge(mode, Some(receipt.status.as_str())) {
                    CanaryOutcome::Passed => settlement.agreed += 1,
                    _ => settlement.failed_canary = true,
                },
                None => settlement.problems.push(Problem::RecordDiffers(format!(
                    "round {round}: assignment {id} is published as a canary, but the round's key gives this node none"
                ))),
            }
            continue;
        }
        if let Some(&i) = index.get(&id) {
            answers[i].status = Some(receipt.status.as_str().to_owned());
        }
        own.push((assignment.website_id, receipt.status.as_str()));
    }
    let outcome = ledger::settle_round(round, &answers);
    settlement.agreed += own
        .iter()
        .filter(|(site, status)| outcome.verdicts.get(site).map(|v| v.as_str()) == Some(*status))
        .count() as u64;
    settlement
}

/// Leaves out of `record` every other validator's result that does not verify under
/// its key in `keys` for `hub_id`: a hub cannot outvote this node with invented results.
pub fn discard_unsigned(
    record: &mut [PublicAssignment],
    own_id: i64,
    round: i64,
    hub_id: &str,
    keys: &HashMap<i64, PublicKey>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for assignment in record.iter_mut().filter(|a| a.validator_id != own_id) {
        let Some(result) = &assignment.result else {
            continue;
        };
        let signed = keys.get(&assignment.validator_id).is_some_and(|key| {
            hex::decode(result.signature.trim_start_matches("0x")).is_ok_and(|signature| {
                let bytes = signing::result_bytes(hub_id, &result.signed_fields(assignment.id));
                key.verify(&bytes, &signature).is_ok()
            })
        });
        if !signed {
            problems.push(Problem::Unsigned(format!(
                "round {round}: assignment {} ({} by validator {})",
                assignment.id, result.status, assignment.validator_id
            )));
            assignment.result = None;
        }
    }
    problems
}
