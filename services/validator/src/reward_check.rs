//! `validator run`'s check of every new on-chain eon: the node computes the reward
//! its own acknowledged results earn (its receipts, settled against the public
//! record of their rounds by the same majority rule accounting applies), then checks
//! that its leaf is in the contract's root, pays its address, and holds what it
//! expects. Anything else is logged loudly: the hub may have left it out.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use overlaps_shared::canary::{self, CanaryMode, CanaryOutcome};
use overlaps_shared::eth::{self, Address, EthError, U256};
use overlaps_shared::ledger::{self, RoundAnswer};
use overlaps_shared::merkle::Hash;
use overlaps_shared::signing::{self, PublicKey};

use crate::hub_api::{ApiError, HubApi, PublicAssignment, PublicCanary};
use crate::receipts::{self, Receipt, ReceiptError, ReceiptJournal, Settled};

/// Why an eon could not be checked (it is tried again on the next tick).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The hub's API.
    #[error("hub API: {0}")]
    Api(#[from] ApiError),
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
    /// The receipt file.
    #[error(transparent)]
    Receipts(#[from] ReceiptError),
}

/// Something the check found wrong, each with a loud headline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// No leaf, another address, or a proof that does not lead to the on-chain root.
    #[error("OWN LEAF NOT IN THE ON-CHAIN ROOT: {0}")]
    LeafNotInRoot(String),
    /// An acknowledged result is missing from, or altered in, its round's public record.
    #[error("ACKNOWLEDGED RESULT NOT IN THE HUB'S RECORD: {0}")]
    RecordDiffers(String),
    /// Another validator's result in the record does not verify under its key; it is
    /// left out when the node recomputes the majority.
    #[error("RESULT NOT SIGNED BY ITS VALIDATOR: {0}")]
    Unsigned(String),
    /// The hub credits this validator less than its acknowledged results earn.
    #[error(
        "REWARD BELOW EXPECTED: the hub credits {credited}, this node's {agreed} agreeing acknowledged results earn {expected}"
    )]
    BelowExpected {
        /// The hub's figure.
        credited: U256,
        /// This node's.
        expected: U256,
        /// Agreeing acknowledged results.
        agreed: u64,
    },
    /// The hub credits more than the node's record explains (another node with this
    /// key, or a lost receipt file).
    #[error(
        "REWARD ABOVE EXPECTED: the hub credits {credited}, this node's acknowledged results earn {expected}; is another node using this key?"
    )]
    AboveExpected {
        /// The hub's figure.
        credited: U256,
        /// This node's.
        expected: U256,
    },
    /// Part of the reward is in no leaf although the node always names an address.
    #[error(
        "REWARD NOT IN ANY LEAF: only {attributed} of {credited} is attributed to a payout address"
    )]
    Unattributed {
        /// In some leaf.
        attributed: U256,
        /// In all.
        credited: U256,
    },
    /// The on-chain leaf pays less than this node alone earned into it.
    #[error(
        "LEAF BELOW EXPECTED: the leaf of {payout:?} holds {leaf}, this node alone earned {expected} into it"
    )]
    LeafBelowExpected {
        /// The address.
        payout: Address,
        /// The leaf's cumulative amount.
        leaf: U256,
        /// This node's.
        expected: U256,
    },
    /// The leaf holds less than in an earlier eon (cumulative rewards never decrease).
    #[error("REWARD SHRANK: the leaf holds {now}, {before} in an earlier eon")]
    Shrank {
        /// This eon.
        now: U256,
        /// Before.
        before: U256,
    },
}

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

/// What the check of one on-chain eon found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EonCheck {
    /// The contract's eon.
    pub eon: u64,
    /// Agreeing acknowledged results up to the eon's last round.
    pub agreed: u64,
    /// The cumulative reward they earn.
    pub expected: U256,
    /// The leaf's cumulative amount, when it is in the on-chain root.
    pub leaf: Option<U256>,
    /// The receipt file covers the validator's whole life at the hub, so the hub's
    /// figures must equal the node's, not merely reach them.
    pub complete: bool,
    /// What is wrong (empty: all as expected).
    pub problems: Vec<Problem>,
}

/// Compares the hub's figures for eon `eon` with the node's expectation; pure, so
/// every rule is tested without a hub.
fn compare(
    check: &mut EonCheck,
    proof: &crate::claim::Proof,
    root: Hash,
    payout: Address,
    payout_constant: bool,
    previous_leaf: U256,
) {
    if proof.eon != check.eon {
        check.problems.push(Problem::LeafNotInRoot(format!(
            "asked for eon {}, the hub served eon {}",
            check.eon, proof.eon
        )));
        return;
    }
    if proof.payout != payout {
        check.problems.push(Problem::LeafNotInRoot(format!(
            "the leaf pays {:?}, not this node's {payout:?}",
            proof.payout
        )));
        return;
    }
    if let Err(reason) = proof.verify_against(root) {
        check.problems.push(Problem::LeafNotInRoot(format!(
            "hub eon {}: {reason}",
            proof.eon
        )));
        return;
    }
    check.leaf = Some(proof.cumulative);
    let (credited, expected) = (proof.validator_cumulative, check.expected);
    if credited < expected {
        check.problems.push(Problem::BelowExpected {
            credited,
            expected,
            agreed: check.agreed,
        });
    } else if credited > expected && check.complete {
        check
            .problems
            .push(Problem::AboveExpected { credited, expected });
    }
    if proof.validator_attributed < credited {
        check.problems.push(Problem::Unattributed {
            attributed: proof.validator_attributed,
            credited,
        });
    }
    // Only when every reward went to this one address can the leaf be held to it.
    if check.complete && payout_constant && proof.cumulative < expected {
        check.problems.push(Problem::LeafBelowExpected {
            payout,
            leaf: proof.cumulative,
            expected,
        });
    }
    if proof.cumulative < previous_leaf {
        check.problems.push(Problem::Shrank {
            now: proof.cumulative,
            before: previous_leaf,
        });
    }
}

/// Checks this node's reward at every new on-chain eon.
pub struct RewardWatch {
    api: HubApi,
    public_key: String,
    payout: Address,
    rpc_url: String,
    contract: Address,
    receipts: Arc<Mutex<ReceiptJournal>>,
    /// Other validators' keys, fetched once each (a key never changes under an id).
    keys: Mutex<HashMap<i64, PublicKey>>,
}

impl RewardWatch {
    /// A watch for the node with `public_key` (hex) paid to `payout`, reading the hub
    /// at `api` and the contract at `contract` through `rpc_url`.
    pub fn new(
        api: HubApi,
        public_key: String,
        payout: Address,
        rpc_url: String,
        contract: Address,
        receipts: Arc<Mutex<ReceiptJournal>>,
    ) -> Self {
        RewardWatch {
            api,
            public_key,
            payout,
            rpc_url,
            contract,
            receipts,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of the validators in `record`, fetching those not yet known; a
    /// malformed key stays unknown, so its results count as unsigned.
    async fn keys_for(
        &self,
        record: &[PublicAssignment],
    ) -> Result<HashMap<i64, PublicKey>, CheckError> {
        let missing: Vec<i64> = {
            let known = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            let mut ids: Vec<i64> = record
                .iter()
                .map(|a| a.validator_id)
                .filter(|id| !known.contains_key(id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        for id in missing {
            let record = self.api.validator(id).await?;
            match record.public_key.parse::<PublicKey>() {
                Ok(key) => {
                    self.keys
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, key);
                }
                Err(err) => {
                    tracing::warn!(validator = id, error = %err, "the hub serves a malformed key")
                }
            }
        }
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, ReceiptJournal> {
        receipts::lock(&self.receipts)
    }

    /// The reward this node's receipts earn up to eon `eon`'s last round (settled by
    /// [`Self::check`] once the whole check went through, so nothing it found is lost
    /// to a retry).
    async fn expectation(
        &self,
        own_id: i64,
        eon: u64,
    ) -> Result<(Settled, Vec<Problem>), CheckError> {
        let base = self.journal().settled().cloned();
        if let Some(base) = base.as_ref().filter(|b| b.eon >= eon) {
            return Ok((base.clone(), Vec::new()));
        }
        let range = self.api.eon(eon).await?;
        let (terms, reward) = self.api.network().await?;
        let mut by_round: BTreeMap<i64, Vec<Receipt>> = BTreeMap::new();
        for receipt in self.journal().unsettled_through(range.last_round) {
            by_round.entry(receipt.round).or_default().push(receipt);
        }
        let (mut agreed, mut problems) = (0u64, Vec::new());
        // Agreements per round of this pass, so a failed canary can take back the
        // eon's so far, as accounting does.
        let mut earned: BTreeMap<i64, u64> = BTreeMap::new();
        for (round, receipts) in &by_round {
            let mut record = self.api.round_assignments(*round).await?;
            let keys = self.keys_for(&record).await?;
            problems.extend(discard_unsigned(
                &mut record,
                own_id,
                *round,
                &terms.hub_id,
                &keys,
            ));
            let canaries = self.api.round_canaries(*round).await?;
            let marked: HashMap<i64, &PublicCanary> = canaries
                .items
                .iter()
                .map(|c| (c.assignment_id, c))
                .collect();
            for assignment in &mut record {
                assignment.canary = marked.get(&assignment.id).map(|c| (*c).clone());
            }
            let own_canary = if record
                .iter()
                .any(|a| a.validator_id == own_id && a.canary.is_some())
            {
                let malformed =
                    |url: String, reason| CheckError::Api(ApiError::Malformed { url, reason });
                let candidates = self
                    .api
                    .round(*round)
                    .await?
                    .candidate_ids()
                    .map_err(|reason| malformed(format!("/api/v1/rounds/{round}"), reason))?;
                canaries.canary_of(own_id, &candidates).map_err(|reason| {
                    malformed(format!("/api/v1/rounds/{round}/canaries"), reason)
                })?
            } else {
                None
            };
            let settled = settle_receipts(own_id, *round, receipts, &record, own_canary);
            earned.insert(*round, settled.agreed);
            if settled.failed_canary {
                tracing::error!(
                    round,
                    "CANARY FAILED: this node answered a known-answer check wrongly; the eon's reward so far is forfeited"
                );
                // The forfeit reaches back to the first round of the eon not yet
                // committed: this eon's when the round is in it, else (an earlier eon
                // this node had not checked) everything of this pass before it, which
                // may expect less than is owed, never more.
                let from = if *round >= range.first_round {
                    range.first_round
                } else {
                    i64::MIN
                };
                for (_, count) in earned.range_mut(from..=*round) {
                    *count = 0;
                }
            }
            problems.extend(settled.problems);
        }
        agreed += earned.values().sum::<u64>();
        let (base_agreed, base_expected) =
            base.map_or((0, U256::zero()), |b| (b.agreed, b.expected));
        let settled = Settled {
            eon,
            last_round: range.last_round,
            agreed: base_agreed + agreed,
            expected: base_expected.saturating_add(reward.saturating_mul(U256::from(agreed))),
        };
        Ok((settled, problems))
    }

    /// Checks on-chain eon `eon` with root `root`; `None` when the node has already
    /// settled a later eon (the contract was replaced), so there is nothing to compare.
    pub async fn check(
        &self,
        eon: u64,
        root: Hash,
        previous_leaf: U256,
    ) -> Result<Option<EonCheck>, CheckError> {
        let later = self.journal().settled().filter(|s| s.eon > eon).cloned();
        if let Some(settled) = later {
            tracing::warn!(
                eon,
                settled_eon = settled.eon,
                "the contract is at an older eon than this node has settled (a new contract?): nothing to compare"
            );
            return Ok(None);
        }
        let own_id = self.api.validator_id(&self.public_key).await?;
        let first_seen = self.api.validator(own_id).await?.first_seen_at;
        let (settled, problems) = self.expectation(own_id, eon).await?;
        let start = self.journal().start().clone();
        let mut check = EonCheck {
            eon,
            agreed: settled.agreed,
            expected: settled.expected,
            leaf: None,
            complete: start.started_at_ms <= first_seen.timestamp_millis(),
            problems,
        };
        match self.api.proof(own_id, Some(eon)).await {
            Ok(proof) => compare(
                &mut check,
                &proof,
                root,
                self.payout,
                start.payout_constant,
                previous_leaf,
            ),
            // Nothing earned, nothing committed: as expected.
            Err(err) if err.is_not_found() && check.expected.is_zero() => {}
            Err(err) if err.is_transient() => return Err(err.into()),
            Err(err) => check.problems.push(Problem::LeafNotInRoot(format!(
                "the hub serves no usable proof for this node (expected {}): {err}",
                check.expected
            ))),
        }
        let newer = self.journal().settled().is_none_or(|s| s.eon < settled.eon);
        if newer {
            self.journal().settle(settled)?;
        }
        Ok(Some(check))
    }

    /// Checks every `every` until `stop`; each new on-chain eon once.
    pub async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (mut seen_eon, mut seen_root, mut last_leaf) = (0u64, [0u8; 32], U256::zero());
        loop {
            match self.onchain_root().await {
                // A newer eon, or the same eon re-committed after the guardian
                // cancelled its first root.
                Ok(Some((eon, root)))
                    if eon > seen_eon || (eon == seen_eon && root != seen_root) =>
                {
                    let span = tracing::info_span!("reward_check", eon);
                    match tracing::Instrument::instrument(self.check(eon, root, last_leaf), span)
                        .await
                    {
                        Ok(Some(check)) => {
                            log_check(&check);
                            (seen_eon, seen_root) = (eon, root);
                            last_leaf = last_leaf.max(check.leaf.unwrap_or_default());
                        }
                        Ok(None) => (seen_eon, seen_root) = (eon, root),
                        Err(err) => {
                            tracing::warn!(eon, error = %err, "could not check the own reward; trying again")
                        }
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not read the on-chain root"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// The newest root on-chain: the pending one if any (a wrong leaf is reported
    /// while the guardian can still cancel it), else the claimable one.
    async fn onchain_root(&self) -> Result<Option<(u64, Hash)>, EthError> {
        let rewards = eth::rewards(self.contract, Arc::new(eth::read_client(&self.rpc_url)?));
        let (pending_eon, pending_root, _, claimable_at) =
            rewards.pending().call().await.map_err(EthError::from)?;
        if pending_eon != 0 {
            tracing::debug!(
                eon = pending_eon,
                claimable_at,
                "checking a root still in its challenge window (the guardian can cancel it until then)"
            );
            return Ok(Some((pending_eon, pending_root)));
        }
        let eon = rewards.eon().call().await.map_err(EthError::from)?;
        if eon == 0 {
            return Ok(None);
        }
        let root = rewards.root().call().await.map_err(EthError::from)?;
        Ok(Some((eon, root)))
    }
}

fn log_check(check: &EonCheck) {
    let eon = check.eon;
    let expected = check.expected.to_string();
    if let Some(leaf) = check.leaf {
        tracing::info!(eon, leaf = %leaf, %expected, agreed = check.agreed, complete = check.complete,
            "own leaf is in the on-chain root");
    }
    for problem in &check.problems {
        match problem {
            Problem::AboveExpected { .. } => tracing::warn!(eon, "{problem}"),
            _ => tracing::error!(eon, "{problem}"),
        }
    }
    if check.problems.is_empty() {
        tracing::info!(eon, %expected, agreed = check.agreed,
            "reward as expected from this node's acknowledged results");
    }
}

#[cfg(test)]
mod tests;
