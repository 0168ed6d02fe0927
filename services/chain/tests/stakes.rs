//! Stakes through the chain follower against an anvil chain per test: each stake
//! event recorded as it arrives, `validator_stakes` set only once its block is
//! final (one row per key and staker), unbonding and payouts applied to the
//! staker's own row, replays and restarts changing nothing, a reorg of final
//! blocks leaving only what the remaining events say, and stake admission
//! following the payout address's final position alone.

use std::sync::Arc;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bytea;
use overlaps_chain::follower::Follower;
use overlaps_shared::admission::{AdmissionMode, AdmissionPolicy, Standing};
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

/// (amount, unbonding until, block) of one staker's stored position.
type Position = (BigDecimal, Option<DateTime<Utc>>, i64);

struct World {
    db: TestDatabase,
    chain: TestChain,
    rpc: ReadClient,
    /// The contract as the staker (dev key 2) calls it.
    staker: OverlapsRewards<SignerClient>,
    staker_address: Address,
    /// The contract as a stranger (dev key 3) calls it.
    stranger: OverlapsRewards<SignerClient>,
    stranger_address: Address,
}

impl World {
    async fn new() -> Boxed<Self> {
        let chain = TestChain::start()?;
        let address = chain.deploy_funded(U256::from(1_000_000)).await?;
        let staker = eth::signer_client(&chain.rpc_url(), &chain.key(2)).await?;
        let stranger = eth::signer_client(&chain.rpc_url(), &chain.key(3)).await?;
        Ok(World {
            db: TestDatabase::new()?,
            rpc: eth::read_client(&chain.rpc_url())?,
            staker_address: staker.address(),
            staker: eth::rewards(address, Arc::clone(&staker)),
            stranger_address: stranger.address(),
            stranger: eth::rewards(address, Arc::clone(&stranger)),
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

    async fn stranger_stakes(&self, wei: u64) -> TestResult {
        eth::send_call(self.stranger.stake(KEY).value(U256::from(wei))).await?;
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
            .order((validator_stakes::public_key, validator_stakes::staker))
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

    /// The stored position of `staker` on `KEY`.
    fn position(&self, staker: Address) -> Boxed<Option<Position>> {
        let rows = self.rows()?;
        Ok(rows
            .into_iter()
            .find(|(key, row)| *key == KEY.to_vec() && row.0 == staker.as_bytes())
            .map(|(_, row)| (row.1, row.2, row.3)))
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
    let (_, unlock_at) = world
        .staker
        .stake_of(KEY, world.staker_address)
        .call()
        .await?;
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

#[tokio::test]
async fn two_stakers_on_one_key_hold_two_rows_and_unstaking_one_leaves_the_other() -> TestResult {
    let world = World::new().await?;
    let follower = world.follower(1).await?;
    // The stranger stakes on the key first; the staker's stake is its own.
    world.stranger_stakes(1).await?;
    world.stake(1_000).await?;
    follower.step().await?;
    assert_eq!(world.rows()?.len(), 2);
    assert_eq!(
        world.position(world.stranger_address)?,
        Some((BigDecimal::from(1), None, 3))
    );
    assert_eq!(
        world.position(world.staker_address)?,
        Some((BigDecimal::from(1_000), None, 4))
    );

    // The staker's request unbonds its row alone; a later stake by the stranger
    // neither clears that unbonding nor adds to it.
    eth::send_call(world.staker.request_unstake(KEY)).await?;
    world.stranger_stakes(2).await?;
    follower.step().await?;
    let until = world
        .position(world.staker_address)?
        .and_then(|p| p.1)
        .ok_or("the staker's row is unbonding")?;
    assert_eq!(
        world.position(world.staker_address)?,
        Some((BigDecimal::from(1_000), Some(until), 5))
    );
    assert_eq!(
        world.position(world.stranger_address)?,
        Some((BigDecimal::from(3), None, 6))
    );

    // Paid out: the staker's row goes, the stranger's stays as it was.
    world.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    eth::send_call(world.staker.unstake(KEY)).await?;
    follower.step().await?;
    assert_eq!(world.position(world.staker_address)?, None);
    assert_eq!(
        world.position(world.stranger_address)?,
        Some((BigDecimal::from(3), None, 6))
    );
    assert_eq!(world.rows()?.len(), 1);

    // A full re-derivation agrees.
    let before = world.rows()?;
    let mut conn = world.db.connect()?;
    overlaps_chain::stakes::recompute_all(&mut conn)?;
    assert_eq!(world.rows()?, before);
    Ok(())
}

/// A validator with `KEY` paid to `payout`, as the hub registers it.
fn register(world: &World, payout: Address) -> Boxed<i64> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut conn = world.db.connect()?;
    let row: Id = diesel::sql_query(
        "INSERT INTO validators (public_key, payout_address) VALUES ($1, $2) RETURNING id",
    )
    .bind::<Bytea, _>(KEY.to_vec())
    .bind::<Bytea, _>(payout.as_bytes().to_vec())
    .get_result(&mut conn)?;
    Ok(row.id)
}

/// The validator's standing at `now` under `policy`.
fn standing(
    world: &World,
    policy: &AdmissionPolicy,
    id: i64,
    now: DateTime<Utc>,
) -> Boxed<Standing> {
    let mut conn = world.db.connect()?;
    let standings = policy.standings(&mut conn, &[id], now)?;
    standings
        .into_iter()
        .next()
        .ok_or_else(|| "no standing".into())
}

#[tokio::test]
async fn stake_admission_follows_the_payout_addresss_final_stake_alone() -> TestResult {
    const CONFIRMATIONS: u64 = 3;
    let world = World::new().await?;
    let follower = world.follower(CONFIRMATIONS).await?;
    let policy = AdmissionPolicy {
        mode: AdmissionMode::Stake,
        min_stake: U256::from(1_000),
        ..AdmissionPolicy::open()
    };
    let id = register(&world, world.staker_address)?;
    let admitted =
        |now: DateTime<Utc>| -> Boxed<bool> { Ok(standing(&world, &policy, id, now)?.admitted) };

    // The attack: a stranger stakes 1 wei on the key first; it admits nothing and,
    // once final, blocks nothing.
    world.stranger_stakes(1).await?;
    world.chain.mine(CONFIRMATIONS).await?;
    follower.step().await?;
    assert!(world.position(world.stranger_address)?.is_some());
    let refused = standing(&world, &policy, id, Utc::now())?;
    assert!(!refused.admitted);
    assert!(
        refused
            .refusal
            .as_deref()
            .is_some_and(|r| r.contains("only the payout address's stake counts")),
        "{refused:?}"
    );

    // The payout address stakes the minimum: not admitted while the stake is not
    // final (fewer than CONFIRMATIONS blocks), admitted once it is.
    world.stake(1_000).await?;
    for _ in 1..CONFIRMATIONS {
        follower.step().await?;
        assert!(!admitted(Utc::now())?, "not final yet");
        world.chain.mine(1).await?;
    }
    follower.step().await?;
    let standing_now = standing(&world, &policy, id, Utc::now())?;
    assert!(standing_now.admitted, "{standing_now:?}");
    assert_eq!(
        standing_now.stake,
        U256::from(1_000),
        "the stranger's wei is not counted"
    );

    // Unbonding: still admitted until it ends, by the chain's clock moved forward,
    // whatever the stranger does meanwhile; not admitted from the unlock time on.
    eth::send_call(world.staker.request_unstake(KEY)).await?;
    world.stranger_stakes(1).await?;
    world.chain.mine(CONFIRMATIONS).await?;
    follower.step().await?;
    let until = world
        .position(world.staker_address)?
        .and_then(|p| p.1)
        .ok_or("the payout address's position is unbonding")?;
    assert_eq!(
        world.position(world.stranger_address)?.map(|p| p.0),
        Some(BigDecimal::from(2))
    );
    assert!(admitted(Utc::now())?);
    world.chain.advance_time(TEST_UNBONDING_SECONDS / 2).await?;
    let half_way = DateTime::<Utc>::from_timestamp(i64::try_from(latest_time(&world).await?)?, 0)
        .ok_or("block time")?;
    assert!(half_way < until);
    assert!(admitted(half_way)?, "still unbonding at {half_way}");
    assert!(admitted(until - chrono::Duration::seconds(1))?);
    assert!(!admitted(until)?, "unbonded at {until}");
    assert!(!admitted(until + chrono::Duration::hours(1))?);

    // Paid out: the row goes, and the stranger's position still admits nothing.
    world.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    eth::send_call(world.staker.unstake(KEY)).await?;
    world.chain.mine(CONFIRMATIONS).await?;
    follower.step().await?;
    assert_eq!(world.position(world.staker_address)?, None);
    assert!(world.position(world.stranger_address)?.is_some());
    assert!(!admitted(Utc::now())?);
    Ok(())
}

/// The latest block's timestamp (Unix seconds).
async fn latest_time(world: &World) -> Boxed<u64> {
    use overlaps_shared::eth::{BlockNumber, Middleware};
    let block = world
        .rpc
        .get_block(BlockNumber::Latest)
        .await?
        .ok_or("no latest block")?;
    Ok(block.timestamp.as_u64())
}
