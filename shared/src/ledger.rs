//! The rules of the round ledger: a site's verdict by majority, what each validator
//! answered and agreed with, the round's results hash and the hash chain of rounds.
//! Accounting applies them when it closes a round; the audit re-applies them to
//! stored data and compares.

use std::collections::BTreeMap;

use sha3::{Digest, Keccak256};

/// A site's result for one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The majority saw it up.
    Up,
    /// The majority saw it down.
    Down,
    /// The majority saw it answer correctly but over its response-time limit.
    Degraded,
    /// No majority, or no results (never "down" for lack of validators).
    Unknown,
}

impl Verdict {
    /// The name stored in `website_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Down => "down",
            Verdict::Degraded => "degraded",
            Verdict::Unknown => "unknown",
        }
    }

    fn code(self) -> u8 {
        match self {
            Verdict::Up => 1,
            Verdict::Down => 2,
            Verdict::Degraded => 3,
            Verdict::Unknown => 0,
        }
    }
}

/// The verdict of `statuses` (`up`/`down`/`degraded`): the status more results
/// report than each other one (a plurality; with two states, the majority). A tie
/// for the most, or nothing, is unknown: a split quorum moves no site.
pub fn majority<'a>(statuses: impl IntoIterator<Item = &'a str>) -> Verdict {
    let (mut up, mut down, mut degraded) = (0usize, 0usize, 0usize);
    for status in statuses {
        match status {
            "up" => up += 1,
            "down" => down += 1,
            "degraded" => degraded += 1,
            _ => {}
        }
    }
    if up > down && up > degraded {
        Verdict::Up
    } else if down > up && down > degraded {
        Verdict::Down
    } else if degraded > up && degraded > down {
        Verdict::Degraded
    } else {
        Verdict::Unknown
    }
}

/// One assignment of a round and the status its validator reported, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundAnswer {
    /// The assignment.
    pub assignment_id: i64,
    /// The site checked.
    pub website_id: i64,
    /// The validator assigned.
    pub validator_id: i64,
    /// `up`/`down`/`degraded` from the stored tick; `None` when missed.
    pub status: Option<String>,
}

/// What one validator did in a round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Results it returned.
    pub answered: i64,
    /// Results that matched the site's verdict.
    pub agreed: i64,
    /// Assignments it did not answer.
    pub missed: i64,
}

/// A round settled by the ledger's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Each site's verdict.
    pub verdicts: BTreeMap<i64, Verdict>,
    /// Each validator's tally.
    pub tallies: BTreeMap<i64, Tally>,
    /// Keccak-256 over the round number, verdicts and every answer, in order.
    pub results_hash: [u8; 32],
}

/// Settles round `round` from its answers (any order: they are sorted by site,
/// then assignment, as the hash requires).
pub fn settle_round(round: i64, answers: &[RoundAnswer]) -> RoundOutcome {
    let mut by_site: BTreeMap<i64, Vec<&RoundAnswer>> = BTreeMap::new();
    for answer in answers {
        by_site.entry(answer.website_id).or_default().push(answer);
    }
    let mut hasher = Keccak256::new();
    hasher.update(b"overlaps/v1/round-results");
    hasher.update(round.to_be_bytes());
    let mut verdicts = BTreeMap::new();
    let mut tallies: BTreeMap<i64, Tally> = BTreeMap::new();
    for (&site, answers) in &mut by_site {
        answers.sort_by_key(|a| a.assignment_id);
        let verdict = majority(answers.iter().filter_map(|a| a.status.as_deref()));
        verdicts.insert(site, verdict);
        hasher.update(site.to_be_bytes());
        hasher.update([verdict.code()]);
        for a in answers.iter() {
            hasher.update(a.assignment_id.to_be_bytes());
            hasher.update(a.validator_id.to_be_bytes());
            hasher.update([match a.status.as_deref() {
                Some("up") => 1,
                Some("down") => 2,
                Some("degraded") => 3,
                _ => 0,
            }]);
            let tally = tallies.entry(a.validator_id).or_default();
            match a.status.as_deref() {
                Some(status) => {
                    tally.answered += 1;
                    if status == verdict.as_str() {
                        tally.agreed += 1;
                    }
                }
                None => tally.missed += 1,
            }
        }
    }
    RoundOutcome {
        verdicts,
        tallies,
        results_hash: hasher.finalize().into(),
    }
}

/// The link of a closed round: `keccak256(previous chain hash || results hash)`,
/// with 32 zero bytes before the first round.
pub fn chain_hash(previous: Option<&[u8]>, results_hash: &[u8; 32]) -> [u8; 32] {
    Keccak256::new()
        .chain_update(previous.unwrap_or(&[0u8; 32]))
        .chain_update(results_hash)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: i64, site: i64, validator: i64, status: Option<&str>) -> RoundAnswer {
        RoundAnswer {
            assignment_id: id,
            website_id: site,
            validator_id: validator,
            status: status.map(str::to_owned),
        }
    }

    #[test]
    fn the_majority_of_received_results_decides_and_a_tie_is_unknown() {
        assert_eq!(majority(["up", "up", "down"]), Verdict::Up);
        assert_eq!(majority(["down", "down", "up"]), Verdict::Down);
        assert_eq!(majority(["down"]), Verdict::Down);
        assert_eq!(majority(["up", "down"]), Verdict::Unknown);
        assert_eq!(majority([]), Verdict::Unknown);
        assert_eq!(majority(["degraded", "degraded", "up"]), Verdict::Degraded);
        assert_eq!(majority(["degraded", "up", "down"]), Verdict::Unknown);
        assert_eq!(majority(["degraded", "down"]), Verdict::Unknown);
        assert_eq!(majority(["up", "up", "degraded", "down"]), Verdict::Up);
    }

    #[test]
    fn tallies_count_agreement_and_misses_and_order_does_not_matter() {
        let answers = vec![
            answer(3, 1, 30, Some("down")),
            answer(1, 1, 10, Some("up")),
            answer(2, 1, 20, Some("up")),
            answer(4, 2, 10, None),
        ];
        let outcome = settle_round(7, &answers);
        assert_eq!(outcome.verdicts[&1], Verdict::Up);
        assert_eq!(outcome.verdicts[&2], Verdict::Unknown);
        assert_eq!(
            outcome.tallies[&10],
            Tally {
                answered: 1,
                agreed: 1,
                missed: 1
            }
        );
        assert_eq!(
            outcome.tallies[&30],
            Tally {
                answered: 1,
                agreed: 0,
                missed: 0
            }
        );
        let mut reversed = answers.clone();
        reversed.reverse();
        assert_eq!(settle_round(7, &reversed), outcome);
        // Any stored fact changes the hash.
        let mut tampered = answers;
        tampered[0].status = Some("up".into());
        assert_ne!(
            settle_round(7, &tampered).results_hash,
            outcome.results_hash
        );
        assert_ne!(
            settle_round(8, &reversed).results_hash,
            outcome.results_hash
        );
    }
}
