//! The verifier against real PostgreSQL, Redis and an anvil chain per test: root
//! commitments sent once, fee bumps with the same nonce, confirmations, reorgs,
//! restarts, and operator alerts.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Numeric};
use overlaps_shared::eth::{self, Address, BlockNumber, Middleware, ReadClient, U256};
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::models::EthereumTransactionAttempt;
use overlaps_shared::money::to_numeric;
use overlaps_shared::schema::{
    alert_outbox, ethereum_transaction_attempts as attempts, ethereum_transactions as txs,
};
use overlaps_shared::service::Infrastructure;
use overlaps_shared::testing::{TestChain, TestDatabase, TestRedis};
use overlaps_verifier::config::TxPolicy;
use overlaps_verifier::txs::TxState;
use overlaps_verifier::worker::Verifier;

type TestResult = Result<(), Box<dyn std::error::Error>>;
/// (tag, nonce, state) of a transaction row.
type TxRow = (String, Option<i64>, String);

struct World {
    db: TestDatabase,
    redis: TestRedis,
    chain: TestChain,
    rpc: ReadClient,
    contract: Address,
}

impl World {
    /// A chain with the contract deployed and funded; then mining only on demand
    /// when `manual_mining`.
    async fn new(funding: u64, manual_mining: bool) -> Result<Self, Box<dyn std::error::Error>> {
        let chain = TestChain::start()?;
        let contract = chain.deploy_funded(U256::from(funding)).await?;
        let rpc = eth::read_client(&chain.rpc_url())?;
        if manual_mining {
            let _: serde_json::Value = eth::raw_request(&rpc, "evm_setAutomine", [false]).await?;
        }
        Ok(World {
            db: TestDatabase::new()?,
            redis: TestRedis::new()?,
            chain,
            rpc,
            contract,
        })
    }

    async fn verifier(
        &self,
        policy: TxPolicy,
        confirmations: u64,
    ) -> Result<Verifier, Box<dyn std::error::Error>> {
        let infra = Infrastructure {
            db: self.db.pool(4).await?,
            redis: self.redis.connect().await?,
            keys: self.redis.keys().clone(),
        };
        let client = eth::signer_client(&self.chain.rpc_url(), &self.chain.key(0)).await?;
        Ok(Verifier::new(
            infra,
            client,
            self.contract,
            policy,
            confirmations,
        ))
    }

    async fn mine(&self, blocks: u64) -> TestResult {
        let _: serde_json::Value =
            eth::raw_request(&self.rpc, "anvil_mine", [format!("0x{blocks:x}")]).await?;
        Ok(())
    }

    /// Inserts eon `eon`, its root commitment (what accounting would write) and a
    /// clean audit report (what the audit would).
    fn insert_root(&self, eon: i64, total: u64) -> Result<[u8; 32], Box<dyn std::error::Error>> {
        let root = self.insert_unaudited_root(eon, total)?;
        self.audit(eon, true)?;
        Ok(root)
    }

    /// Stores eon `eon`'s audit report.
    fn audit(&self, eon: i64, ok: bool) -> Result<(), Box<dyn std::error::Error>> {
        diesel::sql_query(
            "INSERT INTO audit_reports (eon, ok, checked) VALUES ($1, $2, '{}') \
             ON CONFLICT (eon) DO UPDATE SET ok = EXCLUDED.ok",
        )
        .bind::<BigInt, _>(eon)
        .bind::<diesel::sql_types::Bool, _>(ok)
        .execute(&mut self.db.connect()?)?;
        Ok(())
    }

    /// Inserts eon `eon` and its root commitment, not audited yet.
    fn insert_unaudited_root(
        &self,
        eon: i64,
        total: u64,
    ) -> Result<[u8; 32], Box<dyn std::error::Error>> {
        let leaves: Vec<_> = (1..=3)
            .map(|i| leaf_hash(Address::from_low_u64_be(i), U256::from(total / 3)))
            .collect();
        let root = RewardTree::build(&leaves).root();
        let mut conn = self.db.connect()?;
        diesel::sql_query("INSERT INTO eons (number, first_round, last_round) VALUES ($1, $1, $1)")
            .bind::<BigInt, _>(eon)
            .execute(&mut conn)?;
        diesel::sql_query(
            "INSERT INTO root_commitments (eon, root, total, leaf_count) VALUES ($1, $2, $3, 3)",
        )
        .bind::<BigInt, _>(eon)
        .bind::<Bytea, _>(root.to_vec())
        .bind::<Numeric, _>(to_numeric(U256::from(total)))
        .execute(&mut conn)?;
        Ok(root)
    }

    fn attempts(&self) -> Result<Vec<EthereumTransactionAttempt>, Box<dyn std::error::Error>> {
        let mut conn = self.db.connect()?;
        Ok(attempts::table
            .order(attempts::id)
            .select(EthereumTransactionAttempt::as_select())
            .load(&mut conn)?)
    }

    fn tx_rows(&self) -> Result<Vec<TxRow>, Box<dyn std::error::Error>> {
        let mut conn = self.db.connect()?;
        Ok(txs::table
            .order(txs::id)
            .select((txs::tag, txs::nonce, txs::state))
            .load(&mut conn)?)
    }

    fn alerts(&self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut conn = self.db.connect()?;
        Ok(alert_outbox::table
            .select(alert_outbox::dedup_key)
            .load(&mut conn)?)
    }

    async fn operator_nonce(&self) -> Result<u64, Box<dyn std::error::Error>> {
        Ok(self
            .rpc
            .get_transaction_count(
                self.chain.key(0).address(),
                Some(BlockNumber::Latest.into()),
            )
            .await?
            .as_u64())
    }

    /// The newest eon committed on-chain: the one in its challenge window, else the
    /// claimable one.
    async fn onchain_eon(&self) -> Result<u64, Box<dyn std::error::Error>> {
        Ok(self.onchain_root().await?.0)
    }

    /// The newest root committed on-chain (eon, root): pending, else claimable.
    async fn onchain_root(&self) -> Result<(u64, [u8; 32]), Box<dyn std::error::Error>> {
        let contract = eth::rewards(self.contract, std::sync::Arc::new(self.rpc.clone()));
        let (eon, root, _, _) = contract.pending().call().await?;
        if eon != 0 {
            return Ok((eon, root));
        }
        Ok((contract.eon().call().await?, contract.root().call().await?))
    }

    async fn drop_pending(&self) -> TestResult {
        for attempt in self.attempts()? {
            let hash = format!("0x{}", hex::encode(&attempt.tx_hash));
            let _: serde_json::Value =
                eth::raw_request(&self.rpc, "anvil_dropTransaction", [hash]).await?;
        }
        Ok(())
    }
}

fn policy(resend_blocks: u64) -> TxPolicy {
    TxPolicy {
        resend_blocks,
        ..TxPolicy::default()
    }
}

#[tokio::test]
async fn a_root_waits_for_a_clean_audit_and_one_with_mismatches_is_held() -> TestResult {
    let world = World::new(1_000_000, true).await?;
    world.insert_unaudited_root(1, 900)?;
    let verifier = world.verifier(policy(10), 1).await?;
    // Not audited yet: nothing is sent.
    assert_eq!(verifier.submit_root(1).await?, None);
    // Audited with mismatches: held, the operator told once, nothing sent.
    world.audit(1, false)?;
    assert_eq!(verifier.submit_root(1).await?, None);
    assert_eq!(verifier.submit_root(1).await?, None);
    assert!(world.tx_rows()?.is_empty());
    assert_eq!(world.onchain_eon().await?, 0);
    let alerts: i64 = {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(
            "SELECT count(*) AS n FROM alert_outbox WHERE dedup_key LIKE 'root_held:1%'",
        )
        .get_result::<N>(&mut world.db.connect()?)?
        .n
    };
    assert!(alerts >= 1, "the operator is alerted");
    // Clean (e.g. after the operator fixed the data and re-audited): committed.
    world.audit(1, true)?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    Ok(())
}

#[tokio::test]
async fn a_root_is_committed_once_and_confirmed_after_exactly_confirmations_blocks() -> TestResult {
    let world = World::new(1_000_000, true).await?;
    let root = world.insert_root(1, 900)?;
    let verifier = world.verifier(policy(10), 3).await?;

    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    // The job running twice changes nothing.
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    assert_eq!(world.attempts()?.len(), 1);
    // Nonces 0 and 1 went to deploying and funding the contract.
    assert_eq!(
        world.tx_rows()?,
        vec![("commit_root:1".into(), Some(2), "pending".into())]
    );

    // Mined in block b: one confirmation at head b, two at b+1, three at b+2.
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Mined));
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Mined));
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Confirmed));
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Confirmed));

    // Confirmed, yet still in its challenge window: committed, not claimable.
    assert_eq!(world.onchain_root().await?, (1, root));
    let contract = eth::rewards(world.contract, std::sync::Arc::new(world.rpc.clone()));
    assert_eq!(contract.eon().call().await?, 0);
    world.chain.mature().await?;
    assert_eq!(contract.eon().call().await?, 1);
    assert_eq!(contract.root().call().await?, root);
    assert_eq!(world.attempts()?.len(), 1);
    assert_eq!(world.operator_nonce().await?, 3);
    Ok(())
}

#[tokio::test]
async fn an_unmined_transaction_is_resent_with_the_same_nonce_and_higher_fees() -> TestResult {
    let world = World::new(1_000_000, true).await?;
    world.insert_root(1, 900)?;
    let verifier = world.verifier(policy(2), 1).await?;

    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    // The node loses it: nothing gets mined.
    world.drop_pending().await?;
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    assert_eq!(
        world.attempts()?.len(),
        1,
        "re-sent before TX_RESEND_BLOCKS"
    );
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    let tries = world.attempts()?;
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0].nonce, tries[1].nonce);
    assert_ne!(tries[0].tx_hash, tries[1].tx_hash);
    let bumped = |old: &bigdecimal::BigDecimal, new: &bigdecimal::BigDecimal| {
        new * bigdecimal::BigDecimal::from(100) >= old * bigdecimal::BigDecimal::from(120)
    };
    assert!(
        bumped(&tries[0].max_fee_per_gas, &tries[1].max_fee_per_gas),
        "{tries:?}"
    );
    assert!(
        bumped(
            &tries[0].max_priority_fee_per_gas,
            &tries[1].max_priority_fee_per_gas
        ),
        "{tries:?}"
    );

    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Confirmed));
    let tries = world.attempts()?;
    assert!(
        tries[0].mined_block.is_none() && tries[1].mined_block.is_some(),
        "{tries:?}"
    );
    assert_eq!(world.onchain_eon().await?, 1);
    assert_eq!(world.operator_nonce().await?, 3);
    Ok(())
}

#[tokio::test]
async fn fees_stop_at_the_cap_and_the_operator_is_alerted() -> TestResult {
    let world = World::new(1_000_000, true).await?;
    world.insert_root(1, 900)?;
    let capped = TxPolicy {
        resend_blocks: 1,
        bump_percent: 100,
        max_fee_cap: U256::exp10(10),
        ..TxPolicy::default()
    };
    let verifier = world.verifier(capped, 1).await?;
    verifier.submit_root(1).await?;
    for _ in 0..10 {
        world.drop_pending().await?;
        world.mine(1).await?;
        verifier.submit_root(1).await?;
        if !world.alerts()?.is_empty() {
            break;
        }
    }
    assert_eq!(world.alerts()?, vec!["tx_fee_cap:commit_root:1".to_owned()]);
    let tries = world.attempts()?;
    let cap = to_numeric(U256::exp10(10));
    assert!(tries.iter().all(|t| t.max_fee_per_gas <= cap), "{tries:?}");
    assert_eq!(tries.last().map(|t| t.max_fee_per_gas.clone()), Some(cap));
    assert!(tries.iter().all(|t| t.nonce == tries[0].nonce));
    Ok(())
}

#[tokio::test]
async fn a_receipt_lost_in_a_reorg_goes_back_to_pending_and_the_root_is_committed_once()
-> TestResult {
    let world = World::new(1_000_000, true).await?;
    world.insert_root(1, 900)?;
    let verifier = world.verifier(policy(1), 2).await?;
    let snapshot: serde_json::Value = eth::raw_request(&world.rpc, "evm_snapshot", ()).await?;

    verifier.submit_root(1).await?;
    world.mine(1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Mined));

    // The block that held it is replaced.
    let _: serde_json::Value = eth::raw_request(&world.rpc, "evm_revert", [snapshot]).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Pending));
    assert_eq!(world.tx_rows()?[0].2, "pending");
    assert!(world.attempts()?.iter().all(|a| a.mined_block.is_none()));

    // It gets through again (the same nonce), and is confirmed.
    for _ in 0..6 {
        world.mine(1).await?;
        if verifier.submit_root(1).await? == Some(TxState::Confirmed) {
            break;
        }
    }
    assert_eq!(world.tx_rows()?[0].2, "confirmed");
    assert_eq!(world.onchain_eon().await?, 1);
    assert_eq!(world.operator_nonce().await?, 3);
    assert!(world.attempts()?.iter().all(|a| a.nonce == 2));
    Ok(())
}

#[tokio::test]
async fn a_restart_between_broadcast_and_confirmation_neither_loses_nor_repeats_the_commit()
-> TestResult {
    let world = World::new(1_000_000, true).await?;
    world.insert_root(1, 900)?;
    {
        let before = world.verifier(policy(3), 1).await?;
        assert_eq!(before.submit_root(1).await?, Some(TxState::Pending));
    } // the process dies here
    world.mine(1).await?;
    let after = world.verifier(policy(3), 1).await?;
    // The periodic sweep finds the open transaction and its receipt.
    after.sweep().await;
    assert_eq!(
        world.tx_rows()?,
        vec![("commit_root:1".into(), Some(2), "confirmed".into())]
    );
    after.sweep().await;
    world.mine(3).await?;
    after.sweep().await;
    assert_eq!(world.attempts()?.len(), 1);
    assert_eq!(world.operator_nonce().await?, 3);
    assert_eq!(world.onchain_eon().await?, 1);
    Ok(())
}

#[tokio::test]
async fn two_verifiers_take_consecutive_nonces_and_lost_jobs_are_swept_up() -> TestResult {
    let world = World::new(1_000_000, false).await?;
    world.insert_root(1, 900)?;
    world.insert_root(2, 1_200)?;
    let (a, b) = (
        world.verifier(policy(3), 1).await?,
        world.verifier(policy(3), 1).await?,
    );
    // The later eon's job runs first, to completion: eon 1 must still get the
    // lower nonce (the contract refuses going back), and its own job, run after,
    // repeats nothing.
    b.submit_root(2).await?;
    a.submit_root(1).await?;
    let rows = world.tx_rows()?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let nonce_of = |tag: &str| rows.iter().find(|r| r.0 == tag).and_then(|r| r.1);
    assert_eq!(nonce_of("commit_root:1"), Some(2), "{rows:?}");
    assert_eq!(nonce_of("commit_root:2"), Some(3), "{rows:?}");
    // Eon 3 arrives with no job: the sweep submits it.
    world.insert_root(3, 1_500)?;
    for _ in 0..3 {
        a.sweep().await;
    }
    let rows = world.tx_rows()?;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.2 == "confirmed"), "{rows:?}");
    assert_eq!(world.onchain_eon().await?, 3);
    Ok(())
}

#[tokio::test]
async fn a_later_eon_waits_while_another_verifier_has_not_numbered_the_earlier_one() -> TestResult {
    let world = World::new(1_000_000, false).await?;
    let root = world.insert_root(1, 900)?;
    world.insert_root(2, 1_200)?;
    // Another verifier has queued eon 1's commitment and is driving it (it holds
    // the transaction's lock) but has not taken its nonce yet.
    let client = std::sync::Arc::new(eth::read_client(&world.chain.rpc_url())?);
    let data = eth::commit_root_calldata(
        &eth::rewards(world.contract, client),
        1,
        root,
        U256::from(900),
    );
    let from = world.chain.key(0).address();
    let row = overlaps_verifier::txs::ensure_transaction(
        &mut world.db.connect()?,
        "commit_root:1",
        from,
        world.contract,
        &data,
    )?;
    let other = overlaps_shared::mutex::RedisMutex::new(
        world.redis.connect().await?,
        world.redis.keys(),
        &format!("verifier:tx:{}", row.id),
        std::time::Duration::from_secs(30),
    );
    let held = other.try_lock().await?.ok_or("the lock was free")?;

    // Eon 2 must not take a nonce meanwhile: it would be below eon 1's, and the
    // contract would then refuse eon 1 as older than the latest.
    let verifier = world.verifier(policy(3), 1).await?;
    assert_eq!(verifier.submit_root(2).await?, None);
    assert_eq!(
        world.tx_rows()?,
        vec![("commit_root:1".into(), None, "pending".into())]
    );

    // Once the other verifier is gone, eon 1 goes first and eon 2 after it.
    held.release().await?;
    verifier.submit_root(2).await?;
    let rows = world.tx_rows()?;
    let nonce_of = |tag: &str| rows.iter().find(|r| r.0 == tag).and_then(|r| r.1);
    assert_eq!(nonce_of("commit_root:1"), Some(2), "{rows:?}");
    assert_eq!(nonce_of("commit_root:2"), Some(3), "{rows:?}");
    Ok(())
}

#[tokio::test]
async fn a_root_the_contract_cannot_pay_alerts_and_waits_for_funds() -> TestResult {
    let world = World::new(100, false).await?;
    world.insert_root(1, 900)?;
    let verifier = world.verifier(policy(3), 1).await?;
    assert_eq!(verifier.submit_root(1).await?, None);
    assert_eq!(world.alerts()?, vec!["contract_insolvent:1".to_owned()]);
    assert!(world.tx_rows()?.is_empty());

    let client = eth::signer_client(&world.chain.rpc_url(), &world.chain.key(1)).await?;
    eth::fund(&client, world.contract, U256::from(800)).await?;
    verifier.sweep().await;
    verifier.sweep().await;
    assert_eq!(world.tx_rows()?[0].2, "confirmed");
    Ok(())
}

#[tokio::test]
async fn staked_wei_does_not_make_a_root_payable() -> TestResult {
    // 100 wei of rewards, and 5,000 staked beside them: the balance would cover the
    // root, the pool does not.
    let world = World::new(100, false).await?;
    let staker = eth::signer_client(&world.chain.rpc_url(), &world.chain.key(2)).await?;
    let contract = eth::rewards(world.contract, staker);
    eth::send_call(contract.stake([7; 32]).value(U256::from(5_000))).await?;
    world.insert_root(1, 900)?;
    let verifier = world.verifier(policy(3), 1).await?;
    assert_eq!(verifier.submit_root(1).await?, None);
    assert_eq!(world.alerts()?, vec!["contract_insolvent:1".to_owned()]);
    assert!(world.tx_rows()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_low_operator_balance_alerts_once() -> TestResult {
    let world = World::new(0, false).await?;
    let rich = world.verifier(TxPolicy::default(), 1).await?;
    rich.check_operator_balance().await?;
    assert!(world.alerts()?.is_empty());
    let poor = world
        .verifier(
            TxPolicy {
                operator_balance_alert: U256::MAX,
                ..TxPolicy::default()
            },
            1,
        )
        .await?;
    poor.check_operator_balance().await?;
    poor.check_operator_balance().await?;
    let alerts = world.alerts()?;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].starts_with("operator_balance_low:"), "{alerts:?}");
    Ok(())
}

#[tokio::test]
async fn an_eon_the_contract_already_passed_fails_with_an_alert() -> TestResult {
    let world = World::new(1_000_000, false).await?;
    world.insert_root(1, 900)?;
    // Someone (an earlier deployment of the hub) already committed eon 5.
    let operator = eth::signer_client(&world.chain.rpc_url(), &world.chain.key(0)).await?;
    let contract = eth::rewards(world.contract, operator);
    eth::send_call(contract.commit_root(5, [7u8; 32], U256::zero())).await?;
    let verifier = world.verifier(policy(3), 1).await?;
    assert_eq!(verifier.submit_root(1).await?, Some(TxState::Failed));
    // The estimate refused it before a nonce was taken: none is skipped.
    assert_eq!(world.tx_rows()?[0].1, None);
    assert_eq!(world.alerts()?, vec!["tx_failed:commit_root:1".to_owned()]);
    Ok(())
}
