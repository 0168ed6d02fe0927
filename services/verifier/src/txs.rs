//! Each on-chain call is an `ethereum_transactions` row (idempotent by its tag)
//! with one `ethereum_transaction_attempts` row per broadcast. [`Sender::advance`]
//! moves a transaction one step: nonce, broadcast, fee bump, mined, confirmed, or
//! back to pending when a reorg took its receipt away. Every step is decided from
//! the rows and the chain, so a restart at any point resumes without loss or repeat.

use std::sync::Arc;
use std::time::Duration;

use diesel::dsl::max;
use diesel::prelude::*;
use overlaps_shared::db::Database;
use overlaps_shared::eth::settings::is_final;
use overlaps_shared::eth::{
    self, Address, BlockNumber, Bytes, Eip1559TransactionRequest, EthError, H256, Middleware,
    ReadClient, Signer, SignerClient, TypedTransaction, U256,
};
use overlaps_shared::models::{EthereumTransaction, EthereumTransactionAttempt};
use overlaps_shared::money::{from_numeric, to_numeric};
use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::operator_alert;
use overlaps_shared::redact::strip_urls;
use overlaps_shared::schema::{
    ethereum_transaction_attempts as attempts, ethereum_transactions as txs,
};
use overlaps_shared::service::Infrastructure;

use crate::config::TxPolicy;

/// What can stop a step.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// PostgreSQL or Redis.
    #[error(transparent)]
    Shared(#[from] overlaps_shared::Error),
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
    /// Another process holds the nonce lock for too long.
    #[error("the nonce lock is busy")]
    LockBusy,
    /// No such transaction row.
    #[error("transaction {0} not found")]
    NotFound(i64),
    /// A stored value does not fit its chain type.
    #[error("stored value out of range: {0}")]
    Corrupt(&'static str),
}

impl From<diesel::result::Error> for TxError {
    fn from(err: diesel::result::Error) -> Self {
        TxError::Shared(err.into())
    }
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Not mined yet (or its receipt disappeared in a reorg).
    Pending,
    /// Mined, waiting for confirmations.
    Mined,
    /// Final.
    Confirmed,
    /// Reverted, or its nonce was taken by another transaction.
    Failed,
}

impl TxState {
    /// The `state` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Pending => "pending",
            TxState::Mined => "mined",
            TxState::Confirmed => "confirmed",
            TxState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> TxState {
        match s {
            "mined" => TxState::Mined,
            "confirmed" => TxState::Confirmed,
            "failed" => TxState::Failed,
            _ => TxState::Pending,
        }
    }
}

/// Creates the transaction tagged `tag` unless it exists; returns its row.
pub fn ensure_transaction(
    conn: &mut PgConnection,
    tag: &str,
    from: Address,
    to: Address,
    data: &[u8],
) -> Result<EthereumTransaction, diesel::result::Error> {
    diesel::insert_into(txs::table)
        .values((
            txs::tag.eq(tag),
            txs::from_address.eq(from.as_bytes()),
            txs::to_address.eq(to.as_bytes()),
            txs::data.eq(data),
        ))
        .on_conflict(txs::tag)
        .do_nothing()
        .execute(conn)?;
    txs::table
        .filter(txs::tag.eq(tag))
        .select(EthereumTransaction::as_select())
        .first(conn)
}

/// Ids of every transaction still pending or mined (oldest first).
pub fn open_transactions(conn: &mut PgConnection) -> Result<Vec<i64>, diesel::result::Error> {
    txs::table
        .filter(txs::state.eq_any(["pending", "mined"]))
        .order(txs::id)
        .select(txs::id)
        .load(conn)
}

/// Verifier locks renew themselves while held, so this is how long a crashed
/// verifier can keep its replacement waiting.
const LOCK_TTL: Duration = Duration::from_secs(10);

/// Sends the operator's transactions.
pub struct Sender {
    db: Database,
    infra: Infrastructure,
    client: Arc<SignerClient>,
    nonce_lock: RedisMutex,
    policy: TxPolicy,
    confirmations: u64,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("from", &self.from())
            .field("policy", &self.policy)
            .finish()
    }
}

impl Sender {
    /// A sender signing with `client`'s key; nonces are taken under a Redis lock
    /// per sending address, so several verifiers never hand out the same one.
    pub fn new(
        infra: &Infrastructure,
        client: Arc<SignerClient>,
        policy: TxPolicy,
        confirmations: u64,
    ) -> Self {
        let name = format!("verifier:nonce:{:?}", client.address());
        Sender {
            db: infra.db.clone(),
            infra: infra.clone(),
            nonce_lock: RedisMutex::new(infra.redis.clone(), &infra.keys, &name, LOCK_TTL),
            client,
            policy,
            confirmations,
        }
    }

    /// The sending address.
    pub fn from(&self) -> Address {
        self.client.address()
    }

    /// The signing client.
    pub fn client(&self) -> &Arc<SignerClient> {
        &self.client
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    fn provider(&self) -> &ReadClient {
        self.client.inner()
    }

    async fn load(
        &self,
        id: i64,
    ) -> Result<(EthereumTransaction, Vec<EthereumTransactionAttempt>), TxError> {
        let loaded = self
            .db
            .run(move |conn| {
                let tx = txs::table
                    .find(id)
                    .select(EthereumTransaction::as_select())
                    .first(conn)
                    .optional()?;
                let tries = attempts::table
                    .filter(attempts::transaction_id.eq(id))
                    .order(attempts::id)
                    .select(EthereumTransactionAttempt::as_select())
                    .load(conn)?;
                Ok((tx, tries))
            })
            .await?;
        match loaded {
            (Some(tx), tries) => Ok((tx, tries)),
            (None, _) => Err(TxError::NotFound(id)),
        }
    }

    /// Moves transaction `id` forward by what the chain shows now; returns its state.
    #[tracing::instrument(skip(self), fields(tag))]
    pub async fn advance(&self, id: i64) -> Result<TxState, TxError> {
        // One process drives a transaction at a time; another just reports it.
        let lock = RedisMutex::new(
            self.infra.redis.clone(),
            &self.infra.keys,
            &format!("verifier:tx:{id}"),
            LOCK_TTL,
        );
        let Some(guard) = lock.try_lock().await? else {
            let (tx, _) = self.load(id).await?;
            return Ok(TxState::parse(&tx.state));
        };
        let lease = guard.into_lease();
        let result = self.advance_locked(id).await;
        if let Err(err) = lease.release().await {
            tracing::warn!(error = %err, "could not release the transaction lock (it expires)");
        }
        result
    }

    async fn advance_locked(&self, id: i64) -> Result<TxState, TxError> {
        let (tx, tries) = self.load(id).await?;
        tracing::Span::current().record("tag", tx.tag.as_str());
        match TxState::parse(&tx.state) {
            done @ (TxState::Confirmed | TxState::Failed) => Ok(done),
            TxState::Mined => self.check_mined(&tx, &tries).await,
            TxState::Pending => self.drive_pending(&tx, &tries).await,
        }
    }

    async fn drive_pending(
        &self,
        tx: &EthereumTransaction,
        tries: &[EthereumTransactionAttempt],
    ) -> Result<TxState, TxError> {
        // The count first: if the nonce is used and none of our receipts shows up
        // afterwards, another transaction took it.
        let used = self
            .provider()
            .get_transaction_count(self.from(), Some(BlockNumber::Latest.into()))
            .await
            .map_err(EthError::from)?
            .as_u64();
        for attempt in tries.iter().rev() {
            let hash = H256::from_slice(&attempt.tx_hash);
            let receipt = self
                .provider()
                .get_transaction_receipt(hash)
                .await
                .map_err(EthError::from)?;
            if let Some(receipt) = receipt
                && let (Some(number), Some(block_hash)) = (receipt.block_number, receipt.block_hash)
            {
                self.mark_mined(tx.id, attempt.id, number.as_u64(), block_hash)
                    .await?;
                tracing::info!(tx_hash = ?hash, block = number.as_u64(), "transaction mined");
                let (tx, tries) = self.load(tx.id).await?;
                return self.check_mined(&tx, &tries).await;
            }
        }
        let Some(last) = tries.last() else {
            // First broadcast. The estimate comes before the nonce: a call that
            // would revert fails here without taking (and so skipping) a nonce.
            let gas = match self.estimate_gas(tx).await? {
                Ok(gas) => gas,
                Err(cause) => return self.fail(tx, &cause).await,
            };
            let nonce = match tx.nonce {
                Some(nonce) => nonce,
                None => self.assign_nonce(tx.id).await?,
            };
            let fees = self.initial_fees().await?;
            let head = self.head().await?;
            return self.broadcast(tx, nonce, fees, gas, head).await;
        };
        let nonce = last.nonce;
        if used > nonce_u64(nonce)? {
            let cause = format!(
                "transaction {} (nonce {nonce}) was replaced by another transaction from {:?}",
                tx.tag,
                self.from()
            );
            return self.fail(tx, &cause).await;
        }
        let head = self.head().await?;
        if head < block_u64(last.broadcast_block)? + self.policy.resend_blocks {
            return Ok(TxState::Pending);
        }
        match self.bumped_fees(last).await? {
            Some(fees) => self.broadcast(tx, nonce, fees, last.gas_limit, head).await,
            None => {
                let cause = format!(
                    "transaction {} (nonce {nonce}) is not mined after {} attempts at the fee cap of {} wei per gas",
                    tx.tag,
                    tries.len(),
                    self.policy.max_fee_cap
                );
                let key = format!("tx_fee_cap:{}", tx.tag);
                self.db
                    .run(move |conn| operator_alert::raise(conn, &key, &cause))
                    .await?;
                Ok(TxState::Pending)
            }
        }
    }

    /// The gas limit for `tx` (estimate plus a margin), or why it would revert.
    async fn estimate_gas(&self, tx: &EthereumTransaction) -> Result<Result<i64, String>, TxError> {
        let call = self.request(tx)?;
        match self
            .provider()
            .estimate_gas(&TypedTransaction::Eip1559(call), None)
            .await
        {
            // A margin: the state can change between estimate and inclusion.
            Ok(gas) => Ok(Ok(
                i64::try_from((gas + gas / 5).as_u64()).map_err(|_| TxError::Corrupt("gas"))?
            )),
            Err(err) if err.to_string().contains("revert") => Ok(Err(format!(
                "transaction {} would revert: {}",
                tx.tag,
                strip_urls(&err.to_string())
            ))),
            Err(err) => Err(EthError::from(err).into()),
        }
    }

    fn request(&self, tx: &EthereumTransaction) -> Result<Eip1559TransactionRequest, TxError> {
        let value = from_numeric(&tx.value).map_err(|_| TxError::Corrupt("value"))?;
        Ok(Eip1559TransactionRequest::new()
            .from(self.from())
            .to(Address::from_slice(&tx.to_address))
            .data(Bytes::from(tx.data.clone()))
            .value(value))
    }

    async fn head(&self) -> Result<u64, TxError> {
        Ok(self
            .provider()
            .get_block_number()
            .await
            .map_err(EthError::from)?
            .as_u64())
    }

    /// Assigns the next nonce under the lock: the larger of the chain's pending
    /// count and the stored maximum plus one, so none is reused or skipped.
    async fn assign_nonce(&self, id: i64) -> Result<i64, TxError> {
        let guard = self
            .nonce_lock
            .lock(Duration::from_secs(30))
            .await?
            .ok_or(TxError::LockBusy)?
            .into_lease();
        let assigned = async {
            let pending = self
                .provider()
                .get_transaction_count(self.from(), Some(BlockNumber::Pending.into()))
                .await
                .map_err(EthError::from)?
                .as_u64();
            let pending = i64::try_from(pending).map_err(|_| TxError::Corrupt("nonce"))?;
            let from = self.from();
            let nonce = self
                .db
                .run(move |conn| {
                    conn.transaction(|conn| {
                        let current: Option<i64> = txs::table
                            .find(id)
                            .select(txs::nonce)
                            .for_update()
                            .first(conn)?;
                        if let Some(nonce) = current {
                            return Ok(nonce);
                        }
                        let stored: Option<i64> = txs::table
                            .filter(txs::from_address.eq(from.as_bytes()))
                            .select(max(txs::nonce))
                            .first(conn)?;
                        let nonce = pending.max(stored.map_or(0, |n| n + 1));
                        diesel::update(txs::table.find(id))
                            .set((txs::nonce.eq(nonce), txs::updated_at.eq(diesel::dsl::now)))
                            .execute(conn)?;
                        Ok(nonce)
                    })
                })
                .await?;
            Ok::<_, TxError>(nonce)
        }
        .await;
        if let Err(err) = guard.release().await {
            tracing::warn!(error = %err, "could not release the nonce lock (it expires)");
        }
        let nonce = assigned?;
        tracing::info!(nonce, "nonce assigned");
        Ok(nonce)
    }

    async fn initial_fees(&self) -> Result<(U256, U256), TxError> {
        let base = self.base_fee().await?;
        let cap = self.policy.max_fee_cap;
        let max_fee = (base * U256::from(2) + self.policy.priority_fee).min(cap);
        Ok((max_fee, self.policy.priority_fee.min(max_fee)))
    }

    async fn base_fee(&self) -> Result<U256, TxError> {
        let block = self
            .provider()
            .get_block(BlockNumber::Latest)
            .await
            .map_err(EthError::from)?;
        Ok(block.and_then(|b| b.base_fee_per_gas).unwrap_or_default())
    }

    /// The next attempt's fees: both raised by at least the bump, never past the
    /// cap; `None` once the last attempt already paid the cap.
    async fn bumped_fees(
        &self,
        last: &EthereumTransactionAttempt,
    ) -> Result<Option<(U256, U256)>, TxError> {
        let old_max =
            from_numeric(&last.max_fee_per_gas).map_err(|_| TxError::Corrupt("max fee"))?;
        let old_tip =
            from_numeric(&last.max_priority_fee_per_gas).map_err(|_| TxError::Corrupt("tip"))?;
        let cap = self.policy.max_fee_cap;
        if old_max >= cap {
            return Ok(None);
        }
        let percent = U256::from(self.policy.bump_percent);
        let bump = |x: U256| x + x * percent / U256::from(100) + U256::one();
        let tip = bump(old_tip);
        let base = self.base_fee().await?;
        let max_fee = bump(old_max).max(base * U256::from(2) + tip).min(cap);
        Ok(Some((max_fee, tip.min(max_fee))))
    }

    /// Signs and sends one attempt, recording it first: a crash right after the
    /// broadcast leaves a row whose receipt the next sweep finds.
    async fn broadcast(
        &self,
        tx: &EthereumTransaction,
        nonce: i64,
        (max_fee, tip): (U256, U256),
        gas_limit: i64,
        head: u64,
    ) -> Result<TxState, TxError> {
        let request = self
            .request(tx)?
            .nonce(nonce_u64(nonce)?)
            .gas(gas_limit)
            .max_fee_per_gas(max_fee)
            .max_priority_fee_per_gas(tip)
            .chain_id(self.client.signer().chain_id());
        let (raw, hash) = eth::sign(self.client.signer(), request).await?;
        let attempt_id = {
            let (tx_id, hash_bytes) = (tx.id, hash.as_bytes().to_vec());
            let (max_fee, tip) = (to_numeric(max_fee), to_numeric(tip));
            let head = i64::try_from(head).map_err(|_| TxError::Corrupt("block"))?;
            self.db
                .run(move |conn| {
                    diesel::insert_into(attempts::table)
                        .values((
                            attempts::transaction_id.eq(tx_id),
                            attempts::tx_hash.eq(hash_bytes),
                            attempts::nonce.eq(nonce),
                            attempts::max_fee_per_gas.eq(max_fee),
                            attempts::max_priority_fee_per_gas.eq(tip),
                            attempts::gas_limit.eq(gas_limit),
                            attempts::broadcast_block.eq(head),
                        ))
                        .returning(attempts::id)
                        .get_result::<i64>(conn)
                        .map_err(Into::into)
                })
                .await?
        };
        match self.provider().send_raw_transaction(raw).await {
            Ok(_) => {}
            // Already in the pool or mined (a repeat after a crash): the receipt
            // check of the next step settles it.
            Err(err)
                if {
                    let text = err.to_string().to_lowercase();
                    text.contains("already known") || text.contains("nonce too low")
                } =>
            {
                tracing::info!(error = %strip_urls(&err.to_string()), "broadcast: already known");
            }
            Err(err) => {
                // Never sent: forget the attempt so it is not mistaken for one in flight.
                // The provider's error quotes the RPC URL, which may carry an API key.
                let message: String = strip_urls(&err.to_string())
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                let tx_id = tx.id;
                self.db
                    .run(move |conn| {
                        diesel::delete(attempts::table.find(attempt_id)).execute(conn)?;
                        diesel::update(txs::table.find(tx_id))
                            .set(txs::last_error.eq(message))
                            .execute(conn)?;
                        Ok(())
                    })
                    .await?;
                return Err(EthError::from(err).into());
            }
        }
        tracing::info!(
            tx_hash = ?hash,
            nonce,
            %max_fee,
            %tip,
            "transaction broadcast"
        );
        Ok(TxState::Pending)
    }

    async fn mark_mined(
        &self,
        tx_id: i64,
        attempt_id: i64,
        block: u64,
        block_hash: H256,
    ) -> Result<(), TxError> {
        let block = i64::try_from(block).map_err(|_| TxError::Corrupt("block"))?;
        self.db
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::update(attempts::table.filter(attempts::transaction_id.eq(tx_id)))
                        .set((
                            attempts::mined_block.eq(None::<i64>),
                            attempts::mined_block_hash.eq(None::<Vec<u8>>),
                        ))
                        .execute(conn)?;
                    diesel::update(attempts::table.find(attempt_id))
                        .set((
                            attempts::mined_block.eq(block),
                            attempts::mined_block_hash.eq(block_hash.as_bytes().to_vec()),
                        ))
                        .execute(conn)?;
                    diesel::update(txs::table.find(tx_id))
                        .set((
                            txs::state.eq("mined"),
                            txs::mined_block.eq(block),
                            txs::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    /// A mined transaction: back to pending if its receipt is gone (reorg), moved
    /// if it was re-mined elsewhere, failed if it reverted, confirmed once final.
    async fn check_mined(
        &self,
        tx: &EthereumTransaction,
        tries: &[EthereumTransactionAttempt],
    ) -> Result<TxState, TxError> {
        let Some(attempt) = tries.iter().find(|a| a.mined_block.is_some()) else {
            return self.unmine(tx.id).await;
        };
        let hash = H256::from_slice(&attempt.tx_hash);
        let receipt = self
            .provider()
            .get_transaction_receipt(hash)
            .await
            .map_err(EthError::from)?;
        let Some(receipt) = receipt else {
            tracing::warn!(tx_hash = ?hash, "receipt disappeared (reorg): back to pending");
            return self.unmine(tx.id).await;
        };
        let (Some(number), Some(block_hash)) = (receipt.block_number, receipt.block_hash) else {
            return self.unmine(tx.id).await;
        };
        if attempt.mined_block_hash.as_deref() != Some(block_hash.as_bytes()) {
            tracing::warn!(tx_hash = ?hash, block = number.as_u64(), "re-mined in another block");
            self.mark_mined(tx.id, attempt.id, number.as_u64(), block_hash)
                .await?;
        }
        if receipt.status != Some(1u64.into()) {
            let cause = format!("transaction {} reverted on chain ({hash:?})", tx.tag);
            return self.fail(tx, &cause).await;
        }
        let head = self.head().await?;
        if !is_final(head, number.as_u64(), self.confirmations) {
            return Ok(TxState::Mined);
        }
        let id = tx.id;
        self.db
            .run(move |conn| {
                diesel::update(txs::table.find(id).filter(txs::state.eq("mined")))
                    .set((
                        txs::state.eq("confirmed"),
                        txs::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .map_err(Into::into)
            })
            .await?;
        tracing::info!(tx_hash = ?hash, block = number.as_u64(), "transaction confirmed");
        Ok(TxState::Confirmed)
    }

    async fn unmine(&self, id: i64) -> Result<TxState, TxError> {
        self.db
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::update(attempts::table.filter(attempts::transaction_id.eq(id)))
                        .set((
                            attempts::mined_block.eq(None::<i64>),
                            attempts::mined_block_hash.eq(None::<Vec<u8>>),
                        ))
                        .execute(conn)?;
                    diesel::update(txs::table.find(id))
                        .set((
                            txs::state.eq("pending"),
                            txs::mined_block.eq(None::<i64>),
                            txs::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(TxState::Pending)
    }

    async fn fail(&self, tx: &EthereumTransaction, cause: &str) -> Result<TxState, TxError> {
        // Node errors can carry raw revert bytes; PostgreSQL text refuses NUL.
        let cause: String = cause.chars().filter(|c| !c.is_control()).collect();
        let (id, key) = (tx.id, format!("tx_failed:{}", tx.tag));
        self.db
            .run(move |conn| {
                diesel::update(txs::table.find(id))
                    .set((
                        txs::state.eq("failed"),
                        txs::last_error.eq(&cause),
                        txs::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)?;
                operator_alert::raise(conn, &key, &cause)
            })
            .await?;
        Ok(TxState::Failed)
    }
}

fn nonce_u64(nonce: i64) -> Result<u64, TxError> {
    u64::try_from(nonce).map_err(|_| TxError::Corrupt("nonce"))
}

fn block_u64(block: i64) -> Result<u64, TxError> {
    u64::try_from(block).map_err(|_| TxError::Corrupt("block"))
}
