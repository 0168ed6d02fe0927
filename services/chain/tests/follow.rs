//! The chain follower against an anvil chain per test: events recorded once,
//! effects applied only after CONFIRMATIONS, reorgs rolled back and re-read,
//! restarts losing and duplicating nothing.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Numeric};
use overlaps_chain::follower::Follower;
use overlaps_shared::eth::{
    self, Address, Middleware, OverlapsRewards, ReadClient, SignerClient, U256,
};
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::money::to_numeric;
use overlaps_shared::schema::{chain_blocks, contract_events, root_commitments, validators};
use overlaps_shared::testing::{TestChain, TestDatabase};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Boxed<T> = Result<T, Box<dyn std::error::Error>>;

struct World {
    db: TestDatabase,
    /// Kept for its lifetime: dropping it stops anvil.
    chain: TestChain,
    rpc: ReadClient,
    contract: OverlapsRewards<SignerClient>,
}

impl World {
    async fn new() -> Boxed<Self> {
        let chain = TestChain::start()?;
        let address = chain.deploy_funded(U256::from(1_000_000)).await?;
        let operator = eth::signer_client(&chain.rpc_url(), &chain.key(0)).await?;
        Ok(World {
            db: TestDatabase::new()?,
            rpc: eth::read_client(&chain.rpc_url())?,
            contract: eth::rewards(address, operator),
            chain,
        })
    }

    async fn follower(&self, confirmations: u64) -> Boxed<Follower> {
        Ok(Follower::new(
            self.db.pool(2).await?,
            self.rpc.clone(),
            self.contract.address(),
            confirmations,
            0,
            100,
        ))
    }

    async fn mine(&self, blocks: u64) -> TestResult {
        let _: serde_json::Value =
            eth::raw_request(&self.rpc, "anvil_mine", [format!("0x{blocks:x}")]).await?;
        Ok(())
    }

    /// A validator with `payout`, and eon `eon` with its root (as accounting writes them).
    fn insert_validator(&self, id: i64, payout: Address) -> TestResult {
        let mut conn = self.db.connect()?;
        diesel::sql_query(
            "INSERT INTO validators (id, public_key, payout_address) VALUES ($1, $2, $3)",
        )
        .bind::<BigInt, _>(id)
        .bind::<Bytea, _>(vec![id as u8; 32])
        .bind::<Bytea, _>(payout.as_bytes().to_vec())
        .execute(&mut conn)?;
        Ok(())
    }

    fn insert_root(&self, eon: i64, root: [u8; 32], total: U256) -> TestResult {
        let mut conn = self.db.connect()?;
        diesel::sql_query("INSERT INTO eons (number, first_round, last_round) VALUES ($1, $1, $1)")
            .bind::<BigInt, _>(eon)
            .execute(&mut conn)?;
        diesel::sql_query(
            "INSERT INTO root_commitments (eon, root, total, leaf_count) VALUES ($1, $2, $3, 2)",
        )
        .bind::<BigInt, _>(eon)
        .bind::<Bytea, _>(root.to_vec())
        .bind::<Numeric, _>(to_numeric(total))
        .execute(&mut conn)?;
        Ok(())
    }

    fn events(&self) -> Boxed<Vec<(i64, String)>> {
        let mut conn = self.db.connect()?;
        Ok(contract_events::table
            .order((contract_events::block_number, contract_events::log_index))
            .select((contract_events::block_number, contract_events::kind))
            .load(&mut conn)?)
    }

    /// The commitment's (claimable from, cancelled in, replaced by).
    fn onchain_state(&self, eon: i64) -> Boxed<(Option<i64>, Option<i64>, Option<i64>)> {
        let mut conn = self.db.connect()?;
        Ok(root_commitments::table
            .find(eon)
            .select((
                root_commitments::onchain_claimable_block,
                root_commitments::onchain_cancelled_block,
                root_commitments::onchain_replaced_by,
            ))
            .first(&mut conn)?)
    }

    fn alerts(&self) -> Boxed<Vec<String>> {
        let mut conn = self.db.connect()?;
        #[derive(QueryableByName)]
        struct Key {
            #[diesel(sql_type = diesel::sql_types::Text)]
            dedup_key: String,
        }
        Ok(
            diesel::sql_query("SELECT dedup_key FROM alert_outbox ORDER BY id")
                .load::<Key>(&mut conn)?
                .into_iter()
                .map(|k| k.dedup_key)
                .collect(),
        )
    }

    fn onchain_root(&self, eon: i64) -> Boxed<(Option<Vec<u8>>, Option<i64>)> {
        let mut conn = self.db.connect()?;
        Ok(root_commitments::table
            .find(eon)
            .select((
                root_commitments::onchain_root,
                root_commitments::onchain_block,
            ))
            .first(&mut conn)?)
    }

    fn claimed(&self, id: i64) -> Boxed<BigDecimal> {
        let mut conn = self.db.connect()?;
        Ok(validators::table
            .find(id)
            .select(validators::claimed)
            .first(&mut conn)?)
    }

    /// Every stored block hash equals the chain's at that height.
    async fn assert_blocks_match_the_chain(&self) -> TestResult {
        let stored: Vec<(i64, Vec<u8>)> = {
            let mut conn = self.db.connect()?;
            chain_blocks::table
                .order(chain_blocks::number)
                .select((chain_blocks::number, chain_blocks::hash))
                .load(&mut conn)?
        };
        let head = self.rpc.get_block_number().await?.as_u64();
        assert_eq!(
            stored.len() as u64,
            head + 1,
            "every block from 0 to the head"
        );
        for (number, hash) in stored {
            let block = self.rpc.get_block(number as u64).await?;
            let chain_hash = block.and_then(|b| b.hash).map(|h| h.as_bytes().to_vec());
            assert_eq!(chain_hash, Some(hash), "block {number}");
        }
        Ok(())
    }
}

/// Two payout accounts and their tree.
fn reward_tree(amounts: [u64; 2]) -> (Vec<Address>, Vec<U256>, RewardTree) {
    let accounts = vec![
        Address::from_low_u64_be(0xA1),
        Address::from_low_u64_be(0xA2),
    ];
    let amounts: Vec<U256> = amounts.iter().map(|a| U256::from(*a)).collect();
    let leaves: Vec<_> = accounts
        .iter()
        .zip(&amounts)
        .map(|(a, c)| leaf_hash(*a, *c))
        .collect();
    let tree = RewardTree::build(&leaves);
    (accounts, amounts, tree)
}

#[tokio::test]
async fn events_are_recorded_once_and_applied_after_confirmations() -> TestResult {
    let world = World::new().await?;
    let (accounts, amounts, tree) = reward_tree([300, 700]);
    world.insert_validator(1, accounts[0])?;
    world.insert_validator(2, accounts[1])?;
    world.insert_root(1, tree.root(), U256::from(1_000))?;

    eth::send_call(
        world
            .contract
            .commit_root(1, tree.root(), U256::from(1_000)),
    )
    .await?;
    let follower = world.follower(3).await?;
    let report = follower.step().await?;
    // Blocks: 0 genesis, 1 deploy (naming operator and guardian), 2 fund, 3 commit.
    assert_eq!(report.head, 3);
    assert_eq!(
        world.events()?,
        vec![
            (1, "operator_changed".into()),
            (1, "guardian_changed".into()),
            (2, "funded".into()),
            (3, "root_committed".into()),
        ]
    );
    // Final up to head - 3 + 1 = 1: the commitment (block 3) is not final yet.
    assert_eq!(world.onchain_root(1)?, (None, None));

    world.mine(2).await?;
    follower.step().await?;
    assert_eq!(
        world.onchain_root(1)?,
        (Some(tree.root().to_vec()), Some(3))
    );
    // Claimable once its window (5 blocks in tests) has passed: from block 8.
    assert_eq!(world.onchain_state(1)?, (Some(8), None, None));
    // The constructor's role events alert nobody.
    assert_eq!(world.alerts()?, Vec::<String>::new());
    world.mine(3).await?;
    // Block 9: the claim.
    eth::send_call(world.contract.claim(accounts[0], amounts[0], tree.proof(0))).await?;
    follower.step().await?;
    assert_eq!(
        world.claimed(1)?,
        BigDecimal::from(0),
        "block 9 is not final yet"
    );
    world.mine(2).await?;
    follower.step().await?;
    assert_eq!(world.claimed(1)?, BigDecimal::from(300));
    assert_eq!(world.claimed(2)?, BigDecimal::from(0));

    // A restarted follower (a new instance on the same rows) adds nothing twice.
    let restarted = world.follower(3).await?;
    let report = restarted.step().await?;
    assert_eq!(
        (report.blocks, report.events, report.rolled_back),
        (0, 0, 0)
    );
    world.mine(2).await?;
    restarted.step().await?;
    assert_eq!(world.events()?.len(), 5);
    assert_eq!(world.claimed(1)?, BigDecimal::from(300));
    world.assert_blocks_match_the_chain().await?;
    Ok(())
}

#[tokio::test]
async fn a_reorg_rolls_back_to_the_fork_point_and_rereads_the_new_branch() -> TestResult {
    let world = World::new().await?;
    let (accounts, amounts, tree) = reward_tree([300, 700]);
    world.insert_validator(1, accounts[0])?;
    world.insert_root(1, tree.root(), U256::from(1_000))?;
    let follower = world.follower(3).await?;
    follower.step().await?;

    // Branch A: the commitment and a claim, seen by the follower but not final.
    let snapshot: serde_json::Value = eth::raw_request(&world.rpc, "evm_snapshot", ()).await?;
    eth::send_call(
        world
            .contract
            .commit_root(1, tree.root(), U256::from(1_000)),
    )
    .await?;
    world.chain.mature().await?;
    eth::send_call(world.contract.claim(accounts[0], amounts[0], tree.proof(0))).await?;
    follower.step().await?;
    assert_eq!(world.events()?.len(), 5);

    // Branch B replaces it: a different root, in blocks of the same heights and more.
    let _: serde_json::Value = eth::raw_request(&world.rpc, "evm_revert", [snapshot]).await?;
    let (_, _, other) = reward_tree([100, 900]);
    eth::send_call(
        world
            .contract
            .commit_root(1, other.root(), U256::from(1_000)),
    )
    .await?;
    world.mine(2).await?;
    let report = follower.step().await?;
    assert!(report.rolled_back >= 2, "{report:?}");
    assert_eq!(
        world.events()?,
        vec![
            (1, "operator_changed".into()),
            (1, "guardian_changed".into()),
            (2, "funded".into()),
            (3, "root_committed".into())
        ]
    );
    world.assert_blocks_match_the_chain().await?;
    // The new branch's commitment is final at head 5 (blocks 3, 4, 5).
    assert_eq!(
        world.onchain_root(1)?,
        (Some(other.root().to_vec()), Some(3))
    );
    assert_eq!(
        world.claimed(1)?,
        BigDecimal::from(0),
        "the claim was undone"
    );
    Ok(())
}

#[tokio::test]
async fn anvil_reorg_of_the_tip_is_noticed_without_new_blocks() -> TestResult {
    let world = World::new().await?;
    let follower = world.follower(2).await?;
    world.mine(3).await?;
    follower.step().await?;
    world.assert_blocks_match_the_chain().await?;
    // Replace the last two blocks by two others of the same heights.
    let _: serde_json::Value =
        eth::raw_request(&world.rpc, "anvil_reorg", (2u64, Vec::<()>::new())).await?;
    let report = follower.step().await?;
    assert!(report.rolled_back >= 2, "{report:?}");
    world.assert_blocks_match_the_chain().await?;
    Ok(())
}

#[tokio::test]
async fn a_cancel_a_replacement_and_a_rotation_are_recorded_and_alerted() -> TestResult {
    let world = World::new().await?;
    let (_, _, tree) = reward_tree([300, 700]);
    for eon in 1..=3 {
        world.insert_root(eon, tree.root(), U256::from(1_000))?;
    }
    let guardian = eth::rewards(
        world.contract.address(),
        eth::signer_client(&world.chain.rpc_url(), &world.chain.guardian()).await?,
    );
    // Block 3: eon 1 committed; block 4: the guardian cancels it.
    eth::send_call(
        world
            .contract
            .commit_root(1, tree.root(), U256::from(1_000)),
    )
    .await?;
    eth::send_call(guardian.cancel_root(1)).await?;
    // Block 5: eon 2 (claimable at 10); block 6: eon 3 replaces it (claimable at 11).
    eth::send_call(
        world
            .contract
            .commit_root(2, tree.root(), U256::from(1_000)),
    )
    .await?;
    eth::send_call(
        world
            .contract
            .commit_root(3, tree.root(), U256::from(1_000)),
    )
    .await?;
    // Block 7: the guardian rotates the operator.
    eth::send_call(guardian.set_operator(world.chain.key(2).address())).await?;
    let follower = world.follower(1).await?;
    follower.step().await?;
    let kinds: Vec<String> = world.events()?.into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        [
            "operator_changed",
            "guardian_changed",
            "funded",
            "root_committed",
            "root_cancelled",
            "root_committed",
            "root_committed",
            "operator_changed",
        ]
    );
    assert_eq!(world.onchain_state(1)?, (Some(8), Some(4), None));
    assert_eq!(world.onchain_state(2)?, (Some(10), None, Some(3)));
    assert_eq!(world.onchain_state(3)?, (Some(11), None, None));
    assert_eq!(
        world.alerts()?,
        vec![
            "root_cancelled:1:4".to_owned(),
            "operator_changed:7".to_owned()
        ]
    );
    // Re-applying (a restarted follower, more blocks) changes nothing.
    world.mine(5).await?;
    world.follower(1).await?.step().await?;
    assert_eq!(world.onchain_state(2)?, (Some(10), None, Some(3)));
    assert_eq!(world.alerts()?.len(), 2);
    Ok(())
}
