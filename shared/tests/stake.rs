//! Stakes on `OverlapsRewards` on a real dev chain (anvil): one position per
//! Ed25519 key and staker (a stranger's stake on a key blocks nobody), each unbonded
//! only by its staker after the delay, paid out exactly once, and kept apart from
//! the reward pool.

mod support;

use std::sync::Arc;

use overlaps_shared::eth::{
    self, EthError, Middleware, OverlapsRewards, RewardsEvent, SignerClient, TransactionReceipt,
    U256,
};
use overlaps_shared::testing::TEST_UNBONDING_SECONDS;
use support::{Setup, Tree, accounts, claim, commit, reverted_with, setup};

type TestResult = support::TestResult;

/// An Ed25519 public key as the contract takes it.
const KEY: [u8; 32] = [0x5A; 32];

/// A funded dev account that stakes (dev key `i`).
async fn staker(s: &Setup, i: usize) -> Result<Arc<SignerClient>, EthError> {
    eth::signer_client(&s.chain.rpc_url(), &s.chain.key(i)).await
}

fn events(receipt: &TransactionReceipt) -> Vec<RewardsEvent> {
    receipt.logs.iter().filter_map(eth::decode_event).collect()
}

/// Stakes `wei` on `key` from the account `contract` is called by.
async fn stake(
    contract: &OverlapsRewards<SignerClient>,
    key: [u8; 32],
    wei: u64,
) -> Result<TransactionReceipt, EthError> {
    eth::send_call(contract.stake(key).value(U256::from(wei))).await
}

/// What the sender paid for `receipt` in gas.
fn gas_cost(receipt: &TransactionReceipt) -> U256 {
    receipt.gas_used.unwrap_or_default() * receipt.effective_gas_price.unwrap_or_default()
}

/// Unstakes `staker`'s position on [`KEY`] through `contract` (called by it) and
/// checks it was paid exactly `wei`, gas aside, with one `Unstaked` event; returns
/// its balance after.
async fn unstake_paid(
    s: &Setup,
    contract: &OverlapsRewards<SignerClient>,
    staker: eth::Address,
    wei: u64,
) -> Result<U256, EthError> {
    let before = eth::balance(&*s.operator, staker).await?;
    let receipt = eth::send_call(contract.unstake(KEY)).await?;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::Unstaked {
            key: KEY,
            staker,
            amount: U256::from(wei),
        }]
    );
    let after = eth::balance(&*s.operator, staker).await?;
    assert_eq!(after + gas_cost(&receipt), before + U256::from(wei));
    Ok(after)
}

/// The timestamp of the block `receipt` landed in.
async fn block_time(s: &Setup, receipt: &TransactionReceipt) -> Result<u64, EthError> {
    let number = receipt.block_number.unwrap_or_default();
    let block = s
        .operator
        .get_block(number)
        .await
        .map_err(|e| EthError::Rpc(e.to_string()))?;
    Ok(block.map(|b| b.timestamp.low_u64()).unwrap_or_default())
}

#[tokio::test]
async fn a_stake_adds_to_the_callers_own_position_on_the_key() -> TestResult {
    let s = setup(0).await?;
    let alice = staker(&s, 2).await?;
    let as_alice = s.as_client(&alice);
    let receipt = stake(&as_alice, KEY, 100).await?;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::Staked {
            key: KEY,
            staker: alice.address(),
            amount: U256::from(100),
            total: U256::from(100),
        }]
    );
    let receipt = stake(&as_alice, KEY, 50).await?;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::Staked {
            key: KEY,
            staker: alice.address(),
            amount: U256::from(50),
            total: U256::from(150),
        }]
    );
    assert_eq!(
        s.contract.stake_of(KEY, alice.address()).call().await?,
        (U256::from(150), 0)
    );
    assert_eq!(s.contract.total_staked().call().await?, U256::from(150));

    // Another address staking on the same key opens its own position beside it.
    let bob = staker(&s, 3).await?;
    let receipt = stake(&s.as_client(&bob), KEY, 10).await?;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::Staked {
            key: KEY,
            staker: bob.address(),
            amount: U256::from(10),
            total: U256::from(10),
        }]
    );
    assert_eq!(
        s.contract.stake_of(KEY, bob.address()).call().await?,
        (U256::from(10), 0)
    );
    assert_eq!(
        s.contract.stake_of(KEY, alice.address()).call().await?,
        (U256::from(150), 0)
    );
    reverted_with(stake(&as_alice, KEY, 0).await, "ZeroStake");
    // Stakes add up in totalStaked, not in the pool.
    stake(&s.as_client(&bob), [0x0B; 32], 10).await?;
    assert_eq!(s.contract.total_staked().call().await?, U256::from(170));
    assert_eq!(
        eth::balance(&*s.operator, s.contract.address()).await?,
        U256::from(170)
    );
    assert_eq!(s.contract.reward_pool().call().await?, U256::zero());
    Ok(())
}

#[tokio::test]
async fn each_staker_unbonds_only_its_own_position_and_adds_nothing_while_it_runs() -> TestResult {
    let s = setup(0).await?;
    let alice = staker(&s, 2).await?;
    let as_alice = s.as_client(&alice);
    reverted_with(
        eth::send_call(as_alice.request_unstake(KEY)).await,
        "NoStake",
    );
    stake(&as_alice, KEY, 1_000).await?;
    // The stranger holds no position on the key: it can start no unbonding there.
    reverted_with(
        eth::send_call(s.as_client(&s.stranger).request_unstake(KEY)).await,
        "NoStake",
    );
    let receipt = eth::send_call(as_alice.request_unstake(KEY)).await?;
    let unlock_at = block_time(&s, &receipt).await? + TEST_UNBONDING_SECONDS;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::UnstakeRequested {
            key: KEY,
            staker: alice.address(),
            amount: U256::from(1_000),
            unlock_at,
        }]
    );
    assert_eq!(
        s.contract.stake_of(KEY, alice.address()).call().await?,
        (U256::from(1_000), unlock_at)
    );
    reverted_with(
        eth::send_call(as_alice.request_unstake(KEY)).await,
        "AlreadyUnbonding",
    );
    reverted_with(stake(&as_alice, KEY, 1).await, "AlreadyUnbonding");
    // Alice's unbonding is hers alone: another address still stakes on the key.
    stake(&s.as_client(&s.stranger), KEY, 1).await?;
    assert_eq!(
        s.contract
            .stake_of(KEY, s.stranger.address())
            .call()
            .await?,
        (U256::from(1), 0)
    );
    Ok(())
}

#[tokio::test]
async fn unstake_pays_exactly_the_stake_after_unbonding_and_only_once() -> TestResult {
    let s = setup(0).await?;
    let alice = staker(&s, 2).await?;
    let as_alice = s.as_client(&alice);
    let wei = 7_000_000_000_000_000_000u64;
    stake(&as_alice, KEY, wei).await?;
    reverted_with(
        eth::send_call(as_alice.unstake(KEY)).await,
        "UnstakeNotRequested",
    );
    eth::send_call(as_alice.request_unstake(KEY)).await?;
    reverted_with(
        eth::send_call(as_alice.unstake(KEY)).await,
        "StillUnbonding",
    );
    // Half-way through: still unbonding.
    s.chain.advance_time(TEST_UNBONDING_SECONDS / 2).await?;
    reverted_with(
        eth::send_call(as_alice.unstake(KEY)).await,
        "StillUnbonding",
    );
    s.chain.advance_time(TEST_UNBONDING_SECONDS / 2).await?;
    // Nobody else can take Alice's stake: the stranger has no position here.
    reverted_with(
        eth::send_call(s.as_client(&s.stranger).unstake(KEY)).await,
        "NoStake",
    );

    let after = unstake_paid(&s, &as_alice, alice.address(), wei).await?;
    assert_eq!(
        eth::balance(&*s.operator, s.contract.address()).await?,
        U256::zero()
    );
    assert_eq!(s.contract.total_staked().call().await?, U256::zero());
    assert_eq!(
        s.contract.stake_of(KEY, alice.address()).call().await?,
        (U256::zero(), 0)
    );

    // A second unstake pays nothing: the position is gone.
    reverted_with(eth::send_call(as_alice.unstake(KEY)).await, "NoStake");
    assert_eq!(eth::balance(&*s.operator, alice.address()).await?, after);
    // Alice may stake on the key afresh: a new position, not unbonding.
    stake(&as_alice, KEY, 5).await?;
    assert_eq!(
        s.contract.stake_of(KEY, alice.address()).call().await?,
        (U256::from(5), 0)
    );
    Ok(())
}

#[tokio::test]
async fn a_strangers_first_stake_on_a_key_blocks_nothing_and_each_gets_its_own_back() -> TestResult
{
    let s = setup(0).await?;
    // The attack: a stranger stakes 1 wei on a (public) validator key first.
    let as_stranger = s.as_client(&s.stranger);
    stake(&as_stranger, KEY, 1).await?;
    // The key's payout address still stakes, and its position is its own.
    let payout = staker(&s, 2).await?;
    let as_payout = s.as_client(&payout);
    let wei = 3_000_000_000_000_000_000u64;
    stake(&as_payout, KEY, wei).await?;
    assert_eq!(
        s.contract.stake_of(KEY, payout.address()).call().await?,
        (U256::from(wei), 0)
    );
    assert_eq!(
        s.contract
            .stake_of(KEY, s.stranger.address())
            .call()
            .await?,
        (U256::from(1), 0)
    );
    assert_eq!(s.contract.total_staked().call().await?, U256::from(wei + 1));

    // The payout address unbonds and takes back exactly its own stake.
    eth::send_call(as_payout.request_unstake(KEY)).await?;
    assert_eq!(
        s.contract
            .stake_of(KEY, s.stranger.address())
            .call()
            .await?,
        (U256::from(1), 0),
        "the stranger's position is not unbonding"
    );
    s.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    // The stranger's position was never asked back: it cannot be paid.
    reverted_with(
        eth::send_call(as_stranger.unstake(KEY)).await,
        "UnstakeNotRequested",
    );
    let after = unstake_paid(&s, &as_payout, payout.address(), wei).await?;
    reverted_with(eth::send_call(as_payout.unstake(KEY)).await, "NoStake");
    assert_eq!(eth::balance(&*s.operator, payout.address()).await?, after);
    assert_eq!(s.contract.total_staked().call().await?, U256::from(1));

    // Only the stranger can take its 1 wei back, and it gets exactly that.
    eth::send_call(as_stranger.request_unstake(KEY)).await?;
    s.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    let after = unstake_paid(&s, &as_stranger, s.stranger.address(), 1).await?;
    reverted_with(eth::send_call(as_stranger.unstake(KEY)).await, "NoStake");
    assert_eq!(
        eth::balance(&*s.operator, s.stranger.address()).await?,
        after
    );
    assert_eq!(s.contract.total_staked().call().await?, U256::zero());
    assert_eq!(
        eth::balance(&*s.operator, s.contract.address()).await?,
        U256::zero()
    );
    Ok(())
}

#[tokio::test]
async fn rewards_are_paid_only_from_the_pool_never_from_stakes() -> TestResult {
    // A pool of 1,000 wei and a stake of 5,000 beside it.
    let s = setup(1_000).await?;
    let alice = staker(&s, 2).await?;
    let as_alice = s.as_client(&alice);
    stake(&as_alice, KEY, 5_000).await?;
    assert_eq!(s.contract.reward_pool().call().await?, U256::from(1_000));
    let accounts = accounts(2);

    // A root promising more than the pool is refused, though the balance holds it.
    let greedy = Tree::new(&accounts, &[3_000, 500]);
    reverted_with(commit(&s, 1, &greedy).await, "Insolvent");
    // Committed with a total the pool covers, the tree's 3,000-wei leaf still
    // cannot be claimed: it would take staked wei.
    eth::send_call(s.contract.commit_root(1, greedy.root(), U256::from(1_000))).await?;
    s.chain.mature().await?;
    reverted_with(claim(&s, &greedy, 0).await, "ExceedsCommittedTotal");
    claim(&s, &greedy, 1).await?;
    assert_eq!(
        eth::balance(&*s.operator, accounts[1]).await?,
        U256::from(500)
    );
    assert_eq!(s.contract.reward_pool().call().await?, U256::from(500));
    // Funding adds to the pool only.
    eth::fund(&s.operator, s.contract.address(), U256::from(2_000)).await?;
    assert_eq!(s.contract.reward_pool().call().await?, U256::from(2_500));
    assert_eq!(s.contract.total_staked().call().await?, U256::from(5_000));

    // The stake comes back whole, and the pool is what it was.
    eth::send_call(as_alice.request_unstake(KEY)).await?;
    s.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    let receipt = eth::send_call(as_alice.unstake(KEY)).await?;
    assert_eq!(
        events(&receipt),
        vec![RewardsEvent::Unstaked {
            key: KEY,
            staker: alice.address(),
            amount: U256::from(5_000),
        }]
    );
    assert_eq!(
        eth::balance(&*s.operator, s.contract.address()).await?,
        U256::from(2_500)
    );
    assert_eq!(s.contract.reward_pool().call().await?, U256::from(2_500));
    Ok(())
}
