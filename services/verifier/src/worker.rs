//! The `submit_root` consumer and the periodic sweep that drives every open
//! transaction, submits roots whose job was lost, and watches balances.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder};
use diesel::prelude::*;
use overlaps_shared::eth::settings::{EonClock, WindowTooLong};
use overlaps_shared::eth::{
    self, Address, EthError, Middleware, OverlapsRewards, SignerClient, U256,
};
use overlaps_shared::jobs::{self, SubmitRoot};
use overlaps_shared::models::RootCommitment;
use overlaps_shared::money::from_numeric;
use overlaps_shared::operator_alert;
use overlaps_shared::schema::{audit_reports, ethereum_transactions as txs, root_commitments};
use overlaps_shared::service::Infrastructure;

use crate::config::TxPolicy;
use crate::txs::{Sender, TxError, TxState, ensure_transaction, open_transactions};

/// What the verifier's handlers need.
#[derive(Debug)]
pub struct Verifier {
    /// PostgreSQL and Redis.
    pub infra: Infrastructure,
    /// Sends and follows transactions.
    pub sender: Sender,
    /// The rewards contract.
    pub contract: OverlapsRewards<SignerClient>,
    /// Thresholds for operator alerts.
    pub policy: TxPolicy,
}

/// Why the verifier cannot work with the configured contract.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No contract code at the address (wrong address or wrong chain).
    #[error("CONTRACT_ADDRESS={0:?}: no contract there on this chain")]
    NoContract(Address),
    /// The contract's operator is another account.
    #[error("OPERATOR_PRIVATE_KEY signs for {key:?}, but the contract's operator is {operator:?}")]
    WrongOperator {
        /// The key's address.
        key: Address,
        /// The contract's operator.
        operator: Address,
    },
    /// The contract's challenge window does not fit in an eon.
    #[error("CONTRACT_ADDRESS={contract:?}: {cause}")]
    WindowTooLong {
        /// The contract.
        contract: Address,
        /// The window against the eon.
        cause: WindowTooLong,
    },
    /// The chain could not be asked.
    #[error(transparent)]
    Eth(#[from] EthError),
}

/// Checks at start-up that `contract` is a rewards contract operated by `client`'s key.
pub async fn check_operator(
    client: &Arc<SignerClient>,
    contract: Address,
) -> Result<(), SetupError> {
    let code = client
        .inner()
        .get_code(contract, None)
        .await
        .map_err(EthError::from)?;
    if code.is_empty() {
        return Err(SetupError::NoContract(contract));
    }
    let operator = eth::rewards(contract, Arc::clone(client))
        .operator()
        .call()
        .await
        .map_err(EthError::from)?;
    if operator != client.address() {
        return Err(SetupError::WrongOperator {
            key: client.address(),
            operator,
        });
    }
    Ok(())
}

/// Checks at start-up that the contract's challenge window is shorter than an eon:
/// otherwise every root is replaced by the next before it matures and validators
/// can never claim. Returns the window in blocks.
pub async fn check_challenge_window(
    client: &Arc<SignerClient>,
    contract: Address,
    clock: &EonClock,
) -> Result<u64, SetupError> {
    let blocks = eth::rewards(contract, Arc::clone(client))
        .challenge_blocks()
        .call()
        .await
        .map_err(EthError::from)?;
    clock
        .check(blocks)
        .map_err(|cause| SetupError::WindowTooLong { contract, cause })?;
    tracing::info!(
        challenge_blocks = blocks,
        window_seconds = blocks * clock.block_seconds,
        eon_seconds = clock.shortest_eon_seconds(),
        "each root becomes claimable after its challenge window"
    );
    Ok(blocks)
}

/// The idempotency tag of eon `eon`'s commitment.
pub fn commit_tag(eon: i64) -> String {
    format!("commit_root:{eon}")
}

impl Verifier {
    /// A verifier for `contract`, sending with `client`.
    pub fn new(
        infra: Infrastructure,
        client: Arc<SignerClient>,
        contract: Address,
        policy: TxPolicy,
        confirmations: u64,
    ) -> Self {
        Verifier {
            sender: Sender::new(&infra, client.clone(), policy.clone(), confirmations),
            contract: eth::rewards(contract, client),
            infra,
            policy,
        }
    }

    /// Commits eon `eon`'s root (once: the transaction row is tagged) and moves it
    /// one step; `None` when there is nothing to send yet (no root, or the contract
    /// cannot pay it: the operator is alerted and the sweep tries again).
    ///
    /// Earlier eons whose commitment has no nonce yet go first, in order: the
    /// contract refuses an eon below the latest, so nonces must follow eons.
    #[tracing::instrument(skip(self))]
    pub async fn submit_root(&self, eon: i64) -> Result<Option<TxState>, TxError> {
        let earlier = self
            .infra
            .db
            .run(move |conn| {
                let eons: Vec<i64> = root_commitments::table
                    .filter(root_commitments::eon.lt(eon))
                    .select(root_commitments::eon)
                    .order(root_commitments::eon)
                    .load(conn)?;
                let numbered: Vec<String> = txs::table
                    .filter(txs::tag.like("commit_root:%"))
                    .filter(txs::nonce.is_not_null().or(txs::state.eq("failed")))
                    .select(txs::tag)
                    .load(conn)?;
                Ok(eons
                    .into_iter()
                    .filter(|e| !numbered.contains(&commit_tag(*e)))
                    .collect::<Vec<_>>())
            })
            .await?;
        for before in earlier {
            // Another verifier may be driving that commitment and not have taken its
            // nonce yet (`advance` then only reports its state): this eon must wait
            // until it has one, or it could take the lower nonce.
            if self.submit_one(before).await?.is_none() || !self.numbered(before).await? {
                tracing::warn!(before, "an earlier eon has no nonce yet; this one waits");
                return Ok(None);
            }
        }
        self.submit_one(eon).await
    }

    /// Whether eon `eon`'s commitment has its nonce (or has failed for good).
    async fn numbered(&self, eon: i64) -> Result<bool, TxError> {
        let tag = commit_tag(eon);
        Ok(self
            .infra
            .db
            .run(move |conn| {
                Ok(diesel::select(diesel::dsl::exists(
                    txs::table
                        .filter(txs::tag.eq(&tag))
                        .filter(txs::nonce.is_not_null().or(txs::state.eq("failed"))),
                ))
                .get_result::<bool>(conn)?)
            })
            .await?)
    }

    #[tracing::instrument(skip(self))]
    async fn submit_one(&self, eon: i64) -> Result<Option<TxState>, TxError> {
        let tag = commit_tag(eon);
        let (commitment, existing) = {
            let tag = tag.clone();
            self.infra
                .db
                .run(move |conn| {
                    let commitment = root_commitments::table
                        .find(eon)
                        .select(RootCommitment::as_select())
                        .first(conn)
                        .optional()?;
                    let existing: Option<i64> = txs::table
                        .filter(txs::tag.eq(&tag))
                        .select(txs::id)
                        .first(conn)
                        .optional()?;
                    Ok((commitment, existing))
                })
                .await?
        };
        if let Some(id) = existing {
            return self.sender.advance(id).await.map(Some);
        }
        let Some(commitment) = commitment else {
            tracing::warn!("no root commitment for this eon yet");
            return Ok(None);
        };
        if !self.audited_clean(eon).await? {
            return Ok(None);
        }
        let total = from_numeric(&commitment.total).map_err(|_| TxError::Corrupt("total"))?;
        let root: [u8; 32] = commitment
            .root
            .as_slice()
            .try_into()
            .map_err(|_| TxError::Corrupt("root"))?;
        let payable = self.payable().await?;
        if payable < total {
            let cause = format!(
                "the rewards contract can pay {payable} wei but eon {eon} commits {total} wei: fund it"
            );
            let key = format!("contract_insolvent:{eon}");
            self.infra
                .db
                .run(move |conn| operator_alert::raise(conn, &key, &cause))
                .await?;
            return Ok(None);
        }
        let eon_u64 = u64::try_from(eon).map_err(|_| TxError::Corrupt("eon"))?;
        let data = eth::commit_root_calldata(&self.contract, eon_u64, root, total);
        let (from, to) = (self.sender.from(), self.contract.address());
        let tx = self
            .infra
            .db
            .run(move |conn| Ok(ensure_transaction(conn, &tag, from, to, &data)?))
            .await?;
        tracing::info!(tx_id = tx.id, %total, "root commitment queued");
        self.sender.advance(tx.id).await.map(Some)
    }

    /// Whether eon `eon`'s audit found nothing wrong: a root goes on-chain only
    /// then. No report yet: wait (the sweep asks again). A report with mismatches:
    /// the root is held and the operator told, once.
    async fn audited_clean(&self, eon: i64) -> Result<bool, TxError> {
        let report: Option<bool> = self
            .infra
            .db
            .run(move |conn| {
                Ok(audit_reports::table
                    .find(eon)
                    .select(audit_reports::ok)
                    .first(conn)
                    .optional()?)
            })
            .await?;
        match report {
            Some(true) => Ok(true),
            None => {
                tracing::info!("waiting for the eon's audit before committing its root");
                Ok(false)
            }
            Some(false) => {
                let cause = format!(
                    "eon {eon}'s audit found mismatches: its root is held, not committed on-chain \
                     (see GET /api/v1/eons/{eon}/audit)"
                );
                let key = format!("root_held:{eon}");
                self.infra
                    .db
                    .run(move |conn| operator_alert::raise(conn, &key, &cause))
                    .await?;
                tracing::error!("the eon's audit found mismatches: root held");
                Ok(false)
            }
        }
    }

    /// What the contract could pay in all: its reward pool (the balance minus every
    /// stake, which the contract never pays rewards from) plus what it already paid.
    async fn payable(&self) -> Result<U256, TxError> {
        let pool = self
            .contract
            .reward_pool()
            .call()
            .await
            .map_err(EthError::from)?;
        let claimed = self
            .contract
            .total_claimed()
            .call()
            .await
            .map_err(EthError::from)?;
        Ok(pool + claimed)
    }

    /// One sweep: roots with no transaction yet, every open transaction, and the
    /// operator's balance. Errors are logged; the next sweep tries again.
    pub async fn sweep(&self) {
        let work = self
            .infra
            .db
            .run(|conn| {
                let eons: Vec<i64> = root_commitments::table
                    .select(root_commitments::eon)
                    .order(root_commitments::eon)
                    .load(conn)?;
                let tags: Vec<String> = txs::table
                    .filter(txs::tag.like("commit_root:%"))
                    .select(txs::tag)
                    .load(conn)?;
                let unsent: Vec<i64> = eons
                    .into_iter()
                    .filter(|eon| !tags.contains(&commit_tag(*eon)))
                    .collect();
                Ok((unsent, open_transactions(conn)?))
            })
            .await;
        let (unsent, open) = match work {
            Ok(work) => work,
            Err(err) => {
                tracing::warn!(error = %err, "sweep: database");
                return;
            }
        };
        for eon in unsent {
            if let Err(err) = self.submit_root(eon).await {
                tracing::warn!(eon, error = %err, "sweep: submit_root failed");
            }
        }
        for id in open {
            if let Err(err) = self.sender.advance(id).await {
                tracing::warn!(tx_id = id, error = %err, "sweep: advance failed");
            }
        }
        if let Err(err) = self.check_operator_balance().await {
            tracing::warn!(error = %err, "sweep: balance check failed");
        }
    }

    /// Alerts (once a day) when the operator cannot pay for much more gas.
    pub async fn check_operator_balance(&self) -> Result<(), TxError> {
        let from = self.sender.from();
        let balance = eth::balance(self.sender.client().as_ref(), from).await?;
        if balance >= self.policy.operator_balance_alert {
            return Ok(());
        }
        let cause = format!(
            "the operator account {from:?} holds {balance} wei, below OPERATOR_BALANCE_ALERT_WEI={}",
            self.policy.operator_balance_alert
        );
        let key = format!(
            "operator_balance_low:{from:?}:{}",
            chrono::Utc::now().format("%Y-%m-%d")
        );
        self.infra
            .db
            .run(move |conn| operator_alert::raise(conn, &key, &cause))
            .await?;
        Ok(())
    }
}

/// Consumes `submit_root` jobs and sweeps every `sweep` until the process stops.
pub async fn run(verifier: Arc<Verifier>, sweep: Duration) {
    let sweeping = {
        let verifier = Arc::clone(&verifier);
        async move {
            loop {
                verifier.sweep().await;
                tokio::time::sleep(sweep).await;
            }
        }
    };
    let consuming = jobs::keep_running("submit-root", || {
        let queue =
            jobs::consumer::<SubmitRoot>(verifier.infra.redis.clone(), &verifier.infra.keys);
        WorkerBuilder::new(jobs::worker_name("submit-root"))
            .backend(queue)
            .data(Arc::clone(&verifier))
            .build(submit_root)
            .run()
    });
    tokio::join!(sweeping, consuming);
}

/// Handles one `submit_root` job (idempotent: the transaction is tagged by eon).
#[tracing::instrument(skip_all, fields(eon = job.eon))]
pub async fn submit_root(
    job: SubmitRoot,
    verifier: Data<Arc<Verifier>>,
) -> Result<(), BoxDynError> {
    let state = verifier.submit_root(job.eon).await?;
    tracing::info!(?state, "submit_root handled");
    Ok(())
}
