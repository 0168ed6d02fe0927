//! The compiled `verifier` consumes a `submit_root` job from the Redis queue.

use std::time::{Duration, Instant};

use apalis::prelude::TaskSink;
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Numeric};
use overlaps_shared::eth::{self, DEV_PRIVATE_KEYS, U256};
use overlaps_shared::jobs::{self, SubmitRoot};
use overlaps_shared::money::to_numeric;
use overlaps_shared::schema::ethereum_transaction_attempts as attempts;
use overlaps_shared::testing::{ServiceProcess, TestChain, TestDatabase, TestRedis, service_env};

#[tokio::test(flavor = "multi_thread")]
async fn a_submit_root_job_is_sent_to_the_contract() -> Result<(), Box<dyn std::error::Error>> {
    let chain = TestChain::start()?;
    let contract = chain.deploy_funded(U256::from(1_000_000)).await?;
    let (db, redis) = (TestDatabase::new()?, TestRedis::new()?);
    let mut env = service_env(&db, &redis);
    env.extend(
        [
            ("CHAIN_RPC_URL", chain.rpc_url()),
            ("CONTRACT_ADDRESS", format!("{contract:?}")),
            ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0].to_owned()),
            // The sweep runs once at start and then not for an hour: only the job
            // can send what is stored afterwards.
            ("VERIFIER_SWEEP_SECONDS", "3600".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut verifier = ServiceProcess::spawn(env!("CARGO_BIN_EXE_verifier"), &[], &envs)?;
    let ready = tokio::task::block_in_place(|| verifier.wait_ready(Duration::from_secs(60)));
    assert!(ready.is_some(), "{}", verifier.output().join("\n"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut conn = db.connect()?;
    diesel::sql_query("INSERT INTO eons (number, first_round, last_round) VALUES (1, 1, 1)")
        .execute(&mut conn)?;
    diesel::sql_query(
        "INSERT INTO root_commitments (eon, root, total, leaf_count) VALUES (1, $1, $2, 1)",
    )
    .bind::<Bytea, _>(vec![9u8; 32])
    .bind::<Numeric, _>(to_numeric(U256::from(100)))
    .execute(&mut conn)?;
    diesel::sql_query("INSERT INTO audit_reports (eon, ok, checked) VALUES (1, TRUE, '{}')")
        .execute(&mut conn)?;
    let mut queue = jobs::storage::<SubmitRoot>(redis.connect().await?, redis.keys());
    queue.push(SubmitRoot { eon: 1 }).await?;

    let rewards = eth::rewards(
        contract,
        std::sync::Arc::new(eth::read_client(&chain.rpc_url())?),
    );
    // Committed: pending in its challenge window.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rewards.pending().call().await?.0 != 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (eon, root, _, _) = rewards.pending().call().await?;
    assert_eq!(
        (eon, root),
        (1, [9u8; 32]),
        "{}",
        verifier.output().join("\n")
    );
    assert_eq!(attempts::table.count().get_result::<i64>(&mut conn)?, 1);

    // The job itself was consumed (not only the root sent by some other path): the
    // one task pushed left the queue for a verifier worker's in-flight set (results
    // are not persisted, so a handled task is never moved to `:done`), and nothing
    // is left waiting.
    let queue_key = jobs::queue_name(redis.keys(), <SubmitRoot as jobs::Job>::QUEUE);
    let mut keys = redis.connect().await?;
    let tasks: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{queue_key}:data"))
        .query_async(&mut keys)
        .await?;
    assert_eq!(tasks.len(), 1, "one job pushed");
    let inflight: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue_key}:inflight:submit-root-*"))
        .query_async(&mut keys)
        .await?;
    assert_eq!(inflight.len(), 1, "one verifier worker: {inflight:?}");
    let taken: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&inflight[0])
        .query_async(&mut keys)
        .await?;
    assert_eq!(taken, tasks, "the verifier's worker took the pushed job");
    let (active, scheduled): (i64, i64) = redis::pipe()
        .cmd("LLEN")
        .arg(format!("{queue_key}:active"))
        .cmd("ZCARD")
        .arg(format!("{queue_key}:scheduled"))
        .query_async(&mut keys)
        .await?;
    assert_eq!((active, scheduled), (0, 0));
    let _ = verifier.terminate(Duration::from_secs(5));
    Ok(())
}
