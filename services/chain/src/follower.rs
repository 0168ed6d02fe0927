//! Following the chain: one [`Follower::step`] at a time, under a Redis lock so
//! only one follower writes at once.
//!
//! Records (`chain_blocks`, `contract_events`) are written as blocks arrive and
//! removed when a reorg replaces them; effects (`root_commitments.onchain_*`,
//! `validators.claimed`, `validator_stakes`) follow only final blocks and are
//! recomputed from the final events, so applying them twice or after a restart
//! changes nothing (see [`crate::stakes`] for stakes). A
//! root's on-chain state (pending until its window ends, cancelled by the
//! guardian, replaced by a newer commit in its window) is re-derived from every
//! final `RootCommitted`/`RootCancelled`, as the contract decides it (see
//! [`crate::roots`]); the guardian's acts also alert the operator.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use overlaps_shared::db::Database;
use overlaps_shared::eth::{
    self, Address, Block, EthError, H256, Log, Middleware, ReadClient, RewardsEvent,
};
use overlaps_shared::models::ChainBlock;
use overlaps_shared::money::to_numeric;
use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::operator_alert;
use overlaps_shared::schema::{chain_blocks, contract_events};
use overlaps_shared::service::Infrastructure;

/// What can stop a step.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// PostgreSQL or Redis.
    #[error(transparent)]
    Shared(#[from] overlaps_shared::Error),
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
    /// The node returned a block without a hash or number (still pending).
    #[error("block {0} is incomplete")]
    Incomplete(u64),
}

impl From<diesel::result::Error> for FollowError {
    fn from(err: diesel::result::Error) -> Self {
        FollowError::Shared(err.into())
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Blocks read and stored.
    pub blocks: u64,
    /// Contract events stored.
    pub events: u64,
    /// Stored blocks removed because the chain replaced them.
    pub rolled_back: u64,
    /// Blocks that became final.
    pub finalized: u64,
    /// The chain head seen.
    pub head: u64,
}

/// Follows one contract on one chain.
#[derive(Debug, Clone)]
pub struct Follower {
    db: Database,
    client: ReadClient,
    contract: Address,
    confirmations: u64,
    start_block: u64,
    batch_blocks: u64,
}

impl Follower {
    /// A follower of `contract` that starts at `start_block` when nothing is stored.
    pub fn new(
        db: Database,
        client: ReadClient,
        contract: Address,
        confirmations: u64,
        start_block: u64,
        batch_blocks: u64,
    ) -> Self {
        Follower {
            db,
            client,
            contract,
            confirmations,
            start_block,
            batch_blocks,
        }
    }

    async fn tip(&self) -> Result<Option<ChainBlock>, FollowError> {
        Ok(self
            .db
            .run(|conn| {
                Ok(chain_blocks::table
                    .order(chain_blocks::number.desc())
                    .select(ChainBlock::as_select())
                    .first(conn)
                    .optional()?)
            })
            .await?)
    }

    async fn block(&self, number: u64) -> Result<Option<Block<H256>>, FollowError> {
        Ok(self
            .client
            .get_block(number)
            .await
            .map_err(EthError::from)?)
    }

    /// Reads what is new, rolls back what a reorg replaced, finalizes what is deep enough.
    #[tracing::instrument(skip(self))]
    pub async fn step(&self) -> Result<StepReport, FollowError> {
        let mut report = StepReport {
            head: self
                .client
                .get_block_number()
                .await
                .map_err(EthError::from)?
                .as_u64(),
            ..StepReport::default()
        };
        // Walk back from the stored tip until it is on the chain again.
        let mut tip = self.tip().await?;
        while let Some(stored) = &tip {
            let number = u64::try_from(stored.number).unwrap_or_default();
            let on_chain = self.block(number).await?;
            if on_chain.and_then(|b| b.hash).map(|h| h.as_bytes().to_vec())
                == Some(stored.hash.clone())
            {
                break;
            }
            report.rolled_back += self.roll_back_from(stored.number).await?;
            tip = self.tip().await?;
        }
        let next = match &tip {
            Some(stored) => u64::try_from(stored.number + 1).unwrap_or_default(),
            None => self.start_block,
        };
        let last = report.head.min(next + self.batch_blocks - 1);
        let mut parent = tip.map(|b| b.hash);
        for number in next..=last {
            if number > report.head {
                break;
            }
            let Some(block) = self.block(number).await? else {
                break;
            };
            let hash = block.hash.ok_or(FollowError::Incomplete(number))?;
            if let Some(parent) = &parent
                && parent.as_slice() != block.parent_hash.as_bytes()
            {
                // The chain changed while we read it: the next step walks back.
                tracing::warn!(block = number, "parent hash differs: reorg under way");
                break;
            }
            let logs = self
                .client
                .get_logs(
                    &eth::Filter::new()
                        .address(self.contract)
                        .at_block_hash(hash),
                )
                .await
                .map_err(EthError::from)?;
            report.events += self.store_block(&block, hash, &logs).await?;
            report.blocks += 1;
            parent = Some(hash.as_bytes().to_vec());
        }
        report.finalized = self.finalize(report.head).await?;
        // Plain new blocks are routine (one a second on a dev chain); events and
        // reorgs are worth a line at info.
        if report.events > 0 || report.rolled_back > 0 {
            tracing::info!(?report, "chain step");
        } else if report.blocks > 0 {
            tracing::debug!(?report, "chain step");
        }
        Ok(report)
    }

    async fn store_block(
        &self,
        block: &Block<H256>,
        hash: H256,
        logs: &[Log],
    ) -> Result<u64, FollowError> {
        let number = block.number.ok_or(FollowError::Incomplete(0))?.as_u64();
        let timestamp = DateTime::<Utc>::from_timestamp(
            i64::try_from(block.timestamp.low_u64()).unwrap_or_default(),
            0,
        )
        .unwrap_or_default();
        let row = ChainBlock {
            number: i64::try_from(number).unwrap_or(i64::MAX),
            hash: hash.as_bytes().to_vec(),
            parent_hash: block.parent_hash.as_bytes().to_vec(),
            timestamp,
            finalized: false,
        };
        let events: Vec<_> = logs
            .iter()
            .filter(|log| log.address == self.contract && log.removed != Some(true))
            .filter_map(|log| Some((log, eth::decode_event(log)?)))
            .map(|(log, event)| event_row(row.number, hash, log, &event))
            .collect();
        let count = events.len() as u64;
        self.db
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::insert_into(chain_blocks::table)
                        .values(&row)
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                    for event in events {
                        diesel::insert_into(contract_events::table)
                            .values(event)
                            .on_conflict_do_nothing()
                            .execute(conn)?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(count)
    }

    /// Removes stored blocks from `number` on (their events go with them); if any
    /// was final, recomputes the effects from the final events that remain.
    async fn roll_back_from(&self, number: i64) -> Result<u64, FollowError> {
        let (removed, deep) = self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    let finals: Vec<bool> =
                        diesel::delete(chain_blocks::table.filter(chain_blocks::number.ge(number)))
                            .returning(chain_blocks::finalized)
                            .get_results(conn)?;
                    let deep = finals.iter().any(|f| *f);
                    if deep {
                        operator_alert::raise(
                            conn,
                            &format!("chain_deep_reorg:{number}"),
                            &format!("a reorg replaced final block {number}: raise CONFIRMATIONS"),
                        )?;
                        recompute_effects(conn, number)?;
                    }
                    Ok((finals.len() as u64, deep))
                })
            })
            .await?;
        tracing::warn!(
            from = number,
            removed,
            deep,
            "rolled back to the fork point"
        );
        Ok(removed)
    }

    /// Marks blocks with enough confirmations final and applies their events.
    async fn finalize(&self, head: u64) -> Result<u64, FollowError> {
        if head + 1 < self.confirmations {
            return Ok(0);
        }
        // Final when head - number + 1 >= confirmations.
        let last_final = i64::try_from(head + 1 - self.confirmations).unwrap_or(i64::MAX);
        Ok(self
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    let numbers: Vec<i64> = diesel::update(
                        chain_blocks::table
                            .filter(chain_blocks::finalized.eq(false))
                            .filter(chain_blocks::number.le(last_final)),
                    )
                    .set(chain_blocks::finalized.eq(true))
                    .returning(chain_blocks::number)
                    .get_results(conn)?;
                    if let (Some(low), Some(high)) = (numbers.iter().min(), numbers.iter().max()) {
                        apply_effects(conn, *low, *high)?;
                    }
                    Ok(numbers.len() as u64)
                })
            })
            .await?)
    }
}

#[derive(Insertable)]
#[diesel(table_name = contract_events)]
struct NewEvent {
    block_number: i64,
    block_hash: Vec<u8>,
    tx_hash: Vec<u8>,
    log_index: i32,
    kind: &'static str,
    eon: Option<i64>,
    account: Option<Vec<u8>>,
    amount: Option<bigdecimal::BigDecimal>,
    data: serde_json::Value,
}

fn event_row(block_number: i64, block_hash: H256, log: &Log, event: &RewardsEvent) -> NewEvent {
    let mut row = NewEvent {
        block_number,
        block_hash: block_hash.as_bytes().to_vec(),
        tx_hash: log.transaction_hash.unwrap_or_default().as_bytes().to_vec(),
        log_index: log
            .log_index
            .map(|i| i32::try_from(i.low_u64()).unwrap_or(i32::MAX))
            .unwrap_or_default(),
        kind: "",
        eon: None,
        account: None,
        amount: None,
        data: serde_json::Value::Null,
    };
    match event {
        RewardsEvent::RootCommitted {
            eon,
            root,
            total,
            claimable_at,
        } => {
            row.kind = "root_committed";
            row.eon = i64::try_from(*eon).ok();
            row.amount = Some(to_numeric(*total));
            row.data = serde_json::json!({
                "eon": eon, "root": format!("0x{}", hex::encode(root)), "total": total.to_string(),
                "claimable_at": claimable_at,
            });
        }
        RewardsEvent::RootCancelled { eon, root } => {
            row.kind = "root_cancelled";
            row.eon = i64::try_from(*eon).ok();
            row.data = serde_json::json!({
                "eon": eon, "root": format!("0x{}", hex::encode(root)),
            });
        }
        RewardsEvent::OperatorChanged { previous, current } => {
            row.kind = "operator_changed";
            row.account = Some(current.as_bytes().to_vec());
            row.data = serde_json::json!({
                "previous": format!("{previous:?}"), "current": format!("{current:?}"),
            });
        }
        RewardsEvent::GuardianChanged { previous, current } => {
            row.kind = "guardian_changed";
            row.account = Some(current.as_bytes().to_vec());
            row.data = serde_json::json!({
                "previous": format!("{previous:?}"), "current": format!("{current:?}"),
            });
        }
        RewardsEvent::Claimed {
            account,
            amount,
            cumulative,
        } => {
            row.kind = "claimed";
            row.account = Some(account.as_bytes().to_vec());
            row.amount = Some(to_numeric(*amount));
            row.data = serde_json::json!({
                "account": format!("{account:?}"), "amount": amount.to_string(),
                "cumulative": cumulative.to_string(),
            });
        }
        RewardsEvent::Funded { from, amount } => {
            row.kind = "funded";
            row.account = Some(from.as_bytes().to_vec());
            row.amount = Some(to_numeric(*amount));
            row.data = serde_json::json!({
                "from": format!("{from:?}"), "amount": amount.to_string(),
            });
        }
        // `data.key` is the Ed25519 key as 0x-hex and `data.staker` the address: stake
        // effects are derived per (key, staker) position.
        RewardsEvent::Staked {
            key,
            staker,
            amount,
            total,
        } => {
            row.kind = "staked";
            row.account = Some(staker.as_bytes().to_vec());
            row.amount = Some(to_numeric(*amount));
            row.data = serde_json::json!({
                "key": format!("0x{}", hex::encode(key)), "staker": format!("{staker:?}"),
                "amount": amount.to_string(), "total": total.to_string(),
            });
        }
        RewardsEvent::UnstakeRequested {
            key,
            staker,
            amount,
            unlock_at,
        } => {
            row.kind = "unstake_requested";
            row.account = Some(staker.as_bytes().to_vec());
            row.amount = Some(to_numeric(*amount));
            row.data = serde_json::json!({
                "key": format!("0x{}", hex::encode(key)), "staker": format!("{staker:?}"),
                "amount": amount.to_string(), "unlock_at": unlock_at,
            });
        }
        RewardsEvent::Unstaked {
            key,
            staker,
            amount,
        } => {
            row.kind = "unstaked";
            row.account = Some(staker.as_bytes().to_vec());
            row.amount = Some(to_numeric(*amount));
            row.data = serde_json::json!({
                "key": format!("0x{}", hex::encode(key)), "staker": format!("{staker:?}"),
                "amount": amount.to_string(),
            });
        }
    }
    row
}

#[derive(QueryableByName)]
struct GuardianAct {
    #[diesel(sql_type = BigInt)]
    block_number: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Text)]
    previous: String,
}

const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// Applies the final events of blocks `low..=high`: each eon's on-chain root state
/// (re-derived when a root event became final), each validator's claimed amount
/// (its account's latest cumulative claim), each (key, staker) position with a
/// stake event among them (re-derived from its final stake events), and an operator
/// alert for each act of the guardian.
fn apply_effects(conn: &mut PgConnection, low: i64, high: i64) -> overlaps_shared::Result<()> {
    let acts: Vec<GuardianAct> = diesel::sql_query(
        "SELECT block_number, kind, \
                CASE kind WHEN 'root_cancelled' THEN COALESCE(eon::text, '') \
                          ELSE COALESCE(data->>'current', '') END AS detail, \
                COALESCE(data->>'previous', '') AS previous \
         FROM contract_events \
         WHERE kind IN ('root_committed', 'root_cancelled', 'operator_changed', 'guardian_changed') \
           AND block_number BETWEEN $1 AND $2 ORDER BY block_number, log_index",
    )
    .bind::<BigInt, _>(low)
    .bind::<BigInt, _>(high)
    .load(conn)?;
    if !acts.is_empty() {
        crate::roots::recompute(conn)?;
    }
    for act in &acts {
        let (key, cause) = match act.kind.as_str() {
            "root_cancelled" => (
                format!("root_cancelled:{}:{}", act.detail, act.block_number),
                format!(
                    "the guardian cancelled eon {}'s root on-chain (block {}): it will never pay; \
                     the next eon's root carries the cumulative amounts",
                    act.detail, act.block_number
                ),
            ),
            // The constructor names both roles (from the zero address): no alert.
            "operator_changed" | "guardian_changed" if act.previous == ZERO_ADDRESS => continue,
            "operator_changed" => (
                format!("operator_changed:{}", act.block_number),
                format!(
                    "the contract's operator is now {} (block {}): a verifier with another key \
                     can no longer commit roots",
                    act.detail, act.block_number
                ),
            ),
            "guardian_changed" => (
                format!("guardian_changed:{}", act.block_number),
                format!(
                    "the contract's guardian is now {} (block {})",
                    act.detail, act.block_number
                ),
            ),
            _ => continue,
        };
        operator_alert::raise(conn, &key, &cause)?;
    }
    diesel::sql_query(
        "UPDATE validators v SET claimed = GREATEST(v.claimed, c.cumulative) \
         FROM (SELECT account, max((data->>'cumulative')::numeric) AS cumulative \
               FROM contract_events WHERE kind = 'claimed' AND block_number BETWEEN $1 AND $2 \
               GROUP BY account) c \
         WHERE v.payout_address = c.account",
    )
    .bind::<BigInt, _>(low)
    .bind::<BigInt, _>(high)
    .execute(conn)?;
    crate::stakes::apply(conn, low, high)?;
    Ok(())
}

/// After final blocks from `_from` on were rolled back: re-derive every root's
/// on-chain state, every claimed amount and every stake from the final events that
/// remain.
fn recompute_effects(conn: &mut PgConnection, _from: i64) -> diesel::QueryResult<()> {
    crate::roots::recompute(conn)?;
    crate::stakes::recompute_all(conn)?;
    diesel::sql_query(
        "UPDATE validators v SET claimed = COALESCE((\
            SELECT max((e.data->>'cumulative')::numeric) FROM contract_events e \
            JOIN chain_blocks b ON b.number = e.block_number AND b.finalized \
            WHERE e.kind = 'claimed' AND e.account = v.payout_address), 0) \
         WHERE v.payout_address IS NOT NULL",
    )
    .execute(conn)?;
    Ok(())
}

/// Steps until the process stops: one follower at a time (Redis lock), pausing
/// `poll` when caught up or after an error.
pub async fn run(follower: Follower, infra: Infrastructure, poll: Duration) {
    let lock = RedisMutex::new(
        infra.redis.clone(),
        &infra.keys,
        "chain:follower",
        Duration::from_secs(30),
    );
    loop {
        match lock.try_lock().await {
            Ok(Some(guard)) => {
                let result = follower.step().await;
                if let Err(err) = guard.release().await {
                    tracing::warn!(error = %err, "could not release the follower lock");
                }
                match result {
                    Ok(report) if report.blocks >= follower.batch_blocks => continue,
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "chain step failed"),
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "follower lock"),
        }
        tokio::time::sleep(poll).await;
    }
}
