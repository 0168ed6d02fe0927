//! End to end on a dev chain with a block a second: the real `verifier` and `chain`
//! binaries commit a root the hub stored and record it; the verifier is killed
//! between broadcast and confirmation and restarted without losing or repeating the
//! commit; a validator's claim is paid exactly once and recorded.
//!
//! Needs the `verifier` binary next to this test (`cargo test --workspace` builds it).

use std::time::Duration;

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Numeric};
use overlaps_shared::eth::{self, Address, BlockNumber, DEV_PRIVATE_KEYS, Middleware, U256};
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::money::to_numeric;
use overlaps_shared::schema::{
    ethereum_transaction_attempts as attempts, ethereum_transactions as txs, root_commitments,
    validators,
};
use overlaps_shared::testing::{
    ServiceProcess, TestChain, TestDatabase, TestRedis, poll_until as wait_until, service_env,
    workspace_binary,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread")]
async fn verifier_and_chain_settle_an_eon_across_a_verifier_crash() -> TestResult {
    let chain = TestChain::start_with(&["--block-time", "1"])?;
    let contract = chain.deploy_funded(U256::from(1_000_000)).await?;
    let (db, redis) = (TestDatabase::new()?, TestRedis::new()?);
    let mut conn = db.connect()?;

    // What accounting would have stored: two validators, eon 1 and its root.
    let payout = chain.key(1).address();
    let accounts = [payout, Address::from_low_u64_be(0xB0B)];
    let amounts = [U256::from(4_200), U256::from(800)];
    let leaves: Vec<_> = accounts
        .iter()
        .zip(&amounts)
        .map(|(a, c)| leaf_hash(*a, *c))
        .collect();
    let tree = RewardTree::build(&leaves);
    for (id, account) in accounts.iter().enumerate() {
        diesel::sql_query(
            "INSERT INTO validators (id, public_key, payout_address) VALUES ($1, $2, $3)",
        )
        .bind::<BigInt, _>(id as i64 + 1)
        .bind::<Bytea, _>(vec![id as u8 + 1; 32])
        .bind::<Bytea, _>(account.as_bytes().to_vec())
        .execute(&mut conn)?;
    }
    diesel::sql_query("INSERT INTO eons (number, first_round, last_round) VALUES (1, 1, 10)")
        .execute(&mut conn)?;
    diesel::sql_query(
        "INSERT INTO root_commitments (eon, root, total, leaf_count) VALUES (1, $1, $2, 2)",
    )
    .bind::<Bytea, _>(tree.root().to_vec())
    .bind::<Numeric, _>(to_numeric(U256::from(5_000)))
    .execute(&mut conn)?;
    // The audit found the eon clean (the verifier commits only audited roots).
    diesel::sql_query("INSERT INTO audit_reports (eon, ok, checked) VALUES (1, TRUE, '{}')")
        .execute(&mut conn)?;

    let mut env = service_env(&db, &redis);
    env.extend(
        [
            ("CHAIN_RPC_URL", chain.rpc_url()),
            ("CONTRACT_ADDRESS", format!("{contract:?}")),
            ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0].to_owned()),
            ("CONFIRMATIONS", "2".to_owned()),
            ("VERIFIER_SWEEP_SECONDS", "1".to_owned()),
            ("CHAIN_POLL_MS", "200".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let verifier_bin = workspace_binary("verifier");
    let chain_bin = env!("CARGO_BIN_EXE_chain");

    let mut follower = ServiceProcess::spawn(chain_bin, &[], &envs)?;
    let mut verifier = ServiceProcess::spawn(&verifier_bin, &[], &envs)?;
    // Killed right after the first broadcast is recorded, before it is confirmed.
    let broadcast = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            attempts::table
                .count()
                .get_result::<i64>(&mut conn)
                .unwrap_or(0)
                > 0
        })
    });
    assert!(broadcast, "no broadcast:\n{}", verifier.output().join("\n"));
    verifier.signal("KILL")?;
    let state: String = txs::table.select(txs::state).first(&mut conn)?;
    assert_ne!(state, "confirmed", "killed too late to test a restart");

    let mut restarted = ServiceProcess::spawn(&verifier_bin, &[], &envs)?;
    let confirmed = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            txs::table
                .select(txs::state)
                .first::<String>(&mut conn)
                .is_ok_and(|s| s == "confirmed")
        })
    });
    assert!(
        confirmed,
        "not confirmed:\n{}",
        restarted.output().join("\n")
    );
    assert_eq!(
        attempts::table.count().get_result::<i64>(&mut conn)?,
        1,
        "sent once"
    );
    let rpc = eth::read_client(&chain.rpc_url())?;
    let operator_nonce = rpc
        .get_transaction_count(chain.key(0).address(), Some(BlockNumber::Latest.into()))
        .await?;
    assert_eq!(operator_nonce.as_u64(), 3, "deploy, fund, one commitRoot");

    // The follower records the commitment once it is final.
    let recorded = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            root_commitments::table
                .find(1i64)
                .select(root_commitments::onchain_root)
                .first::<Option<Vec<u8>>>(&mut conn)
                .is_ok_and(|r| r == Some(tree.root().to_vec()))
        })
    });
    assert!(
        recorded,
        "root not recorded:\n{}",
        follower.output().join("\n")
    );

    // Claims wait out the root's challenge window (mined at once here).
    chain.mature().await?;
    // The validator claims from its payout key: paid exactly once, and recorded.
    let client = eth::signer_client(&chain.rpc_url(), &chain.key(1)).await?;
    let rewards = eth::rewards(contract, client);
    let before = eth::balance(&rpc, contract).await?;
    eth::send_call(rewards.claim(payout, amounts[0], tree.proof(0))).await?;
    eth::send_call(rewards.claim(payout, amounts[0], tree.proof(0))).await?;
    assert_eq!(eth::balance(&rpc, contract).await?, before - amounts[0]);
    let expected = BigDecimal::from(4_200);
    let claimed = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            validators::table
                .find(1i64)
                .select(validators::claimed)
                .first::<BigDecimal>(&mut conn)
                .is_ok_and(|c| c == expected)
        })
    });
    assert!(
        claimed,
        "claim not recorded:\n{}",
        follower.output().join("\n")
    );
    let _ = restarted.terminate(Duration::from_secs(5));
    let _ = follower.terminate(Duration::from_secs(5));
    Ok(())
}
