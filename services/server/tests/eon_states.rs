//! `GET /api/v1/eons/{n}` shows each eon's on-chain root state as the chain
//! follower records it from a real contract on anvil: pending until its window
//! ends, claimable, cancelled by the guardian, replaced by a newer commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::Api;
use overlaps_chain::follower::Follower;
use overlaps_shared::eth::{self, Middleware, U256};
use overlaps_shared::testing::{TEST_CHALLENGE_BLOCKS, TestChain};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn each_eon_shows_its_onchain_state_as_the_chain_decides_it() {
    let api = Api::start(&[]);
    let chain = TestChain::start().unwrap();
    let address = chain.deploy_funded(U256::from(1_000_000)).await.unwrap();
    let rpc = eth::read_client(&chain.rpc_url()).unwrap();
    let operator = eth::rewards(
        address,
        eth::signer_client(&chain.rpc_url(), &chain.key(0))
            .await
            .unwrap(),
    );
    let guardian = eth::rewards(
        address,
        eth::signer_client(&chain.rpc_url(), &chain.guardian())
            .await
            .unwrap(),
    );
    // The hub's eons 1..=3, one root each (what accounting stores).
    let root = [5u8; 32];
    for eon in 1..=3 {
        api.sql(&format!(
            "INSERT INTO eons (number, first_round, last_round) VALUES ({eon}, {eon}, {eon}); \
             INSERT INTO root_commitments (eon, root, total, leaf_count) \
             VALUES ({eon}, decode(repeat('05', 32), 'hex'), 100, 1)"
        ));
    }
    let follower = Follower::new(
        api.deployment.db.pool(2).await.unwrap(),
        rpc.clone(),
        address,
        1,
        0,
        100,
    );
    let head = || async { rpc.get_block_number().await.unwrap().as_u64() as i64 };
    let eon = |n: i64| {
        let api = &api;
        async move {
            api.get(&format!("/api/v1/eons/{n}"), None)
                .await
                .expect(200)
                .clone()
        }
    };

    // Not on-chain yet.
    follower.step().await.unwrap();
    assert_eq!(eon(1).await["onchain_state"], Value::Null);

    // Eon 1 committed: pending until its window ends.
    eth::send_call(operator.commit_root(1, root, U256::from(100)))
        .await
        .unwrap();
    let landed = head().await;
    follower.step().await.unwrap();
    let one = eon(1).await;
    assert_eq!(one["onchain_state"], "pending", "{one}");
    assert_eq!(one["onchain_block"], landed);
    assert_eq!(
        one["claimable_from_block"],
        landed + TEST_CHALLENGE_BLOCKS as i64
    );
    assert_eq!(one["chain_final_block"], landed);

    // The guardian cancels it.
    eth::send_call(guardian.cancel_root(1)).await.unwrap();
    let cancelled_in = head().await;
    follower.step().await.unwrap();
    let one = eon(1).await;
    assert_eq!(one["onchain_state"], "cancelled", "{one}");
    assert_eq!(one["cancelled_block"], cancelled_in);

    // Eon 2, then eon 3 inside eon 2's window: eon 2 is replaced.
    eth::send_call(operator.commit_root(2, root, U256::from(100)))
        .await
        .unwrap();
    eth::send_call(operator.commit_root(3, root, U256::from(100)))
        .await
        .unwrap();
    follower.step().await.unwrap();
    let two = eon(2).await;
    assert_eq!(two["onchain_state"], "replaced", "{two}");
    assert_eq!(two["replaced_by_eon"], 3);
    assert_eq!(eon(3).await["onchain_state"], "pending");

    // Eon 3's window passes: claimable, also in the list.
    chain.mature().await.unwrap();
    follower.step().await.unwrap();
    assert_eq!(eon(3).await["onchain_state"], "claimable");
    let list = api.get("/api/v1/eons", None).await.expect(200).clone();
    let states: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["onchain_state"])
        .collect();
    assert_eq!(states, ["claimable", "replaced", "cancelled"]);
}
