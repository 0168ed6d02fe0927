//! Stakes through the chain follower against an anvil chain per test: each stake
//! event recorded as it arrives, `validator_stakes` set only once its block is
//! final, unbonding and payouts applied, replays and restarts changing nothing, and
//! a reorg of final blocks leaving only what the remaining events say.

use std::sync::Arc;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_chain::follower::Follower;
use overlaps_shared::eth::{self, Address, OverlapsRewards, ReadClient, SignerClient, U256};
use overlaps_shared::schema::{contract_events, validator_stakes};
use overlaps_shared::testing::{TEST_UNBONDING_SECONDS, TestChain, TestDatabase};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Boxed<T> = Result<T, Box<dyn std::error::Error>>;

/// An Ed25519 public key as the contract takes it.
const KEY: [u8; 32] = [0x5A; 32];

/// (staker, amount, unbonding until, block) of a stored stake.
type Stake = (Vec<u8>, BigDecimal, Option<DateTime<Utc>>, i64);

/// (staker, amount, unbonding until, block, updated at) of a stored stake.
type Row = (
    Vec<u8>,
    BigDecimal,
    Option<DateTime<Utc>>,
    i64,
    DateTime<Utc>,
);

struct World {
    db: TestDatabase,
    chain: TestChain,
    rpc: ReadClient,
    /// The contract as the staker (dev key 2) calls it.
    staker: OverlapsRewards<SignerClient>,
    staker_address: Address,
}

impl World {
    async fn new() -> Boxed<Self> {
        let chain = TestChain::start()?;
        let address = chain.deploy_funded(U256::from(1_000_000)).await?;
        let staker = eth::signer_client(&chain.rpc_url(), &chain.key(2)).await?;
        Ok(World {
            db: TestDatabase::new()?,
            rpc: eth::read_client(&chain.rpc_url())?,
            staker_address: staker.address(),
            staker: eth::rewards(address, Arc::clone(&staker)),
            chain,
        })
    }

    async fn follower(&self, confirmations: u64) -> Boxed<Follower> {
        Ok(Follower::new(
            self.db.pool(2).await?,
            self.rpc.clone(),
            self.staker.address(),
            confirmations,
            0,
            100,
        ))
    }

    async fn stake(&self, wei: u64) -> TestResult {
        eth::send_call(self.staker.stake(KEY).value(U256::from(wei))).await?;
        Ok(())
    }

    fn kinds(&self) -> Boxed<Vec<String>> {
        let mut conn = self.db.connect()?;
        Ok(contract_events::table
            .order((contract_events::block_number, contract_events::log_index))
            .select(contract_events::kind)
            .load(&mut conn)?)
    }

    fn rows(&self) -> Boxed<Vec<(Vec<u8>, Row)>> {
        let mut conn = self.db.connect()?;
        Ok(validator_stakes::table
            .order(validator_stakes::public_key)
            .select((
                validator_stakes::public_key,
                (
                    validator_stakes::staker,
                    validator_stakes::amount,
                    validator_stakes::unbonding_until,
                    validator_stakes::block_number,
                    validator_stakes::updated_at,
                ),
            ))
            .load(&mut conn)?)
    }

    /// The one stored stake.
    fn stake_row(&self) -> Boxed<Option<Stake>> {
        let rows = self.rows()?;
        assert!(rows.len() <= 1, "{rows:?}");
        Ok(rows.into_iter().next().map(|(key, row)| {
            assert_eq!(key, KEY.to_vec());
            (row.0, row.1, row.2, row.3)
        }))
    }

    async fn head(&self) -> Boxed<i64> {
        use overlaps_shared::eth::Middleware;
        Ok(i64::try_from(self.rpc.get_block_number().await?.as_u64())?)
    }
}

#[tokio::test]
async fn a_stake_is_recorded_only_after_confirmations_and_more_stake_sets_the_total() -> TestResult
{
    let world = World::new().await?;
    let follower = world.follower(3).await?;
    // Block 3: the stake (0 genesis, 1 deploy, 2 fund).
    world.stake(1_000).await?;
    follower.step().await?;
    assert_eq!(
        world.kinds()?,
        ["operator_changed", "guardian_changed", "funded", "staked"]
    );
    assert_eq!(world.stake_row()?, None, "block 3 is not final at head 3");
    world.chain.mine(1).await?;
    follower.step().await?;
    assert_eq!(world.stake_row()?, None, "nor at head 4");
    world.chain.mine(1).await?;
    follower.step().await?;
    let staker = world.staker_address.as_bytes().to_vec();
    assert_eq!(
        world.stake_row()?,
        Some((staker.clone(), BigDecimal::from(1_000), None, 3))
    );

    // Block 6: 500 more; the row holds the new total once final.
    world.stake(500).await?;
    world.chain.mine(2).await?;
    follower.step().await?;
    assert_eq!(
        world.stake_row()?,
        Some((staker, BigDecimal::from(1_500), None, 6))
    );
    Ok(())
}

#[tokio::test]
async fn an_unstake_request_sets_unbonding_until_and_the_payout_removes_the_stake() -> TestResult {
    let world = World::new().await?;
    let follower = world.follower(2).await?;
    world.stake(1_000).await?;
    eth::send_call(world.staker.request_unstake(KEY)).await?;
    let (_, _, unlock_at) = world.staker.stake_of(KEY).call().await?;
    let request_block = world.head().await?;
    follower.step().await?;
    // The request is not final yet: the stake still shows no unbonding.
    assert_eq!(world.stake_row()?.and_then(|r| r.2), None);
    world.chain.mine(1).await?;
    follower.step().await?;
    let until = DateTime::<Utc>::from_timestamp(i64::try_from(unlock_at)?, 0);
    assert_eq!(
        world.stake_row()?,
        Some((
            world.staker_address.as_bytes().to_vec(),
            BigDecimal::from(1_000),
            until,
            request_block
        ))
    );

    world.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    eth::send_call(world.staker.unstake(KEY)).await?;
    follower.step().await?;
    assert!(world.stake_row()?.is_some(), "the payout is not final yet");
    world.chain.mine(1).await?;
    follower.step().await?;
    assert_eq!(world.stake_row()?, None);
    assert_eq!(
        world.kinds()?[3..],
        ["staked", "unstake_requested", "unstaked"]
    );
    Ok(())
}

#[tokio::test]
async fn replaying_the_stake_events_changes_nothing() -> TestResult {
    let world = World::new().await?;
    world.stake(1_000).await?;
    eth::send_call(world.staker.request_unstake(KEY)).await?;
    world.chain.mine(2).await?;
    world.follower(2).await?.step().await?;
    let applied = world.rows()?;
    assert_eq!(applied.len(), 1);
    assert!(applied[0].1.2.is_some(), "{applied:?}");

    // A restarted follower over the same rows, more blocks, and a full re-derivation
    // leave the row exactly as it was, its update time included.
    let restarted = world.follower(2).await?;
    restarted.step().await?;
    world.chain.mine(3).await?;
    restarted.step().await?;
    let mut conn = world.db.connect()?;
    overlaps_chain::stakes::recompute_all(&mut conn)?;
    overlaps_chain::stakes::apply(&mut conn, 0, world.head().await?)?;
    assert_eq!(world.rows()?, applied);
    assert_eq!(world.kinds()?.len(), 5, "each event stored once");
    Ok(())
}

#[tokio::test]
async fn a_reorg_of_final_blocks_leaves_only_what_the_remaining_events_say() -> TestResult {
    let world = World::new().await?;
    // One confirmation: a block is final as soon as it is read.
    let follower = world.follower(1).await?;
    world.stake(1_000).await?;
    follower.step().await?;
    let snapshot: serde_json::Value = eth::raw_request(&world.rpc, "evm_snapshot", ()).await?;
    // Branch A: the staker asks for its stake back; final at once.
    eth::send_call(world.staker.request_unstake(KEY)).await?;
    follower.step().await?;
    assert!(world.stake_row()?.and_then(|r| r.2).is_some());

    // Branch B replaces it with blocks without any stake event: the request is
    // undone, and only a re-derivation from the remaining events can tell.
    let _: serde_json::Value = eth::raw_request(&world.rpc, "evm_revert", [snapshot]).await?;
    world.chain.mine(3).await?;
    let report = follower.step().await?;
    assert!(report.rolled_back >= 1, "{report:?}");
    assert_eq!(
        world.stake_row()?,
        Some((
            world.staker_address.as_bytes().to_vec(),
            BigDecimal::from(1_000),
            None,
            3
        ))
    );
    assert_eq!(world.kinds()?[3..], ["staked"]);
    Ok(())
}
