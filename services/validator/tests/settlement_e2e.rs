//! End to end on a dev chain with every real process: validators earn credits over
//! real rounds, an eon closes, the verifier commits its root (killed between
//! broadcast and confirmation and restarted: the commit is neither lost nor
//! repeated), the chain service records the event, the audit finds the on-chain
//! root equal, and a validator's claim transfers exactly its reward; a second
//! claim transfers nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
use overlaps_shared::eth::{self, U256};
use overlaps_shared::signing::PayoutAddress;
use overlaps_shared::testing::e2e::{
    owned_env, scalar as number, spawn_binary as spawn, spawn_hub_server, start_validator,
    text as word,
};
use overlaps_shared::testing::{
    HttpTarget, ServiceProcess, TestChain, TestDatabase, TestRedis, service_env, wait_until,
};

const VALIDATOR: &str = env!("CARGO_BIN_EXE_validator");

/// Runs `validator claim` for node `key_file` paid to dev key `payout`; returns its output.
fn claim(key_file: &str, api: &str, chain: &TestChain, contract: &str, payout: usize) -> String {
    let payout_key = eth::DEV_PRIVATE_KEYS[payout];
    let env = [
        ("API_URL", api),
        ("CHAIN_RPC_URL", &chain.rpc_url()),
        ("CONTRACT_ADDRESS", contract),
        ("PAYOUT_PRIVATE_KEY", payout_key),
    ];
    let mut process =
        ServiceProcess::spawn(VALIDATOR, &["claim", "--key-file", key_file], &env).unwrap();
    let status = process.wait_exit(Duration::from_secs(60)).unwrap().unwrap();
    let output = process.output().join("\n");
    assert!(status.success(), "claim failed: {output}");
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_earned_in_rounds_are_committed_on_chain_audited_and_claimed_once() {
    overlaps_shared::testing::install_tls_provider();
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    // One block a second, so a commit waits a few seconds for its confirmations.
    let chain = TestChain::start_with(&["--block-time", "1"]).unwrap();
    let funding = U256::exp10(19); // 10 ETH
    let contract = chain.deploy_funded(funding).await.unwrap();
    let contract_hex = format!("{contract:?}");
    let rpc = eth::read_client(&chain.rpc_url()).unwrap();
    let site = HttpTarget::start(200, "all healthy").await.unwrap();
    let operator_key = eth::DEV_PRIVATE_KEYS[0];

    let mut env = service_env(&db, &redis);
    env.extend(
        [
            ("HUB_ID", "e2e-settlement"),
            ("ROUND_SECONDS", "2"),
            ("SCHEDULER_LOCK_TTL_SECONDS", "3"),
            ("EON_ROUNDS", "3"),
            ("EON_SECONDS", "3600"),
            ("REWARD_PER_CHECK", "1000000000000"),
            ("CHAIN_RPC_URL", chain.rpc_url().as_str()),
            ("CONTRACT_ADDRESS", contract_hex.as_str()),
            ("OPERATOR_PRIVATE_KEY", operator_key),
            ("CONFIRMATIONS", "3"),
            ("VERIFIER_SWEEP_SECONDS", "1"),
            ("CHAIN_POLL_MS", "300"),
            ("AUDIT_SWEEP_SECONDS", "5"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (_server, bind) = spawn_hub_server(&env);
    let _accounting = spawn("accounting", &[], &env);
    let _chain_follower = spawn("chain", &[], &env);
    let _audit = spawn("audit", &[], &env);
    let mut verifier = spawn("verifier", &[], &env);

    let mut conn = db.connect().unwrap();
    diesel::sql_query("INSERT INTO users (email) VALUES ('owner@shop.example')")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum) \
         SELECT id, 'Shop', $1, 2, 800, 3 FROM users",
    )
    .bind::<Text, _>(site.url())
    .execute(&mut conn)
    .unwrap();

    // Three nodes, each paid to its own dev account (keys 1, 2, 3).
    let hub = format!("ws://{bind}/ws/validator");
    let mut nodes = Vec::new();
    for n in 1..=3 {
        let payout = PayoutAddress::from_bytes(chain.key(n).address().as_bytes())
            .unwrap()
            .to_checksummed();
        // Each node checks its reward at every on-chain eon, from its own receipts.
        let node_env = owned_env(&[
            ("API_URL", &format!("http://{bind}")),
            ("CHAIN_RPC_URL", &chain.rpc_url()),
            ("CONTRACT_ADDRESS", &contract_hex),
            ("LEAF_CHECK_SECONDS", "1"),
        ]);
        nodes.push(start_validator(&hub, &payout, &node_env));
    }
    wait_until("three validators", Duration::from_secs(20), || {
        number(&db, "SELECT count(*) FROM validators") == 3
    })
    .await;
    let mut scheduler = spawn("scheduler", &[], &env);

    wait_until("eon 1 closed", Duration::from_secs(60), || {
        number(&db, "SELECT count(*) FROM root_commitments WHERE eon = 1") == 1
    })
    .await;
    // No further eon: the claims below are against eon 1's root.
    scheduler.terminate(Duration::from_secs(10)).unwrap();

    // Kill the verifier once the commit is broadcast, before it is confirmed.
    wait_until("the commit broadcast", Duration::from_secs(30), || {
        number(
            &db,
            "SELECT count(*) FROM ethereum_transaction_attempts a JOIN ethereum_transactions t \
             ON t.id = a.transaction_id WHERE t.tag = 'commit_root:1'",
        ) >= 1
    })
    .await;
    verifier.signal("KILL").unwrap();
    verifier.wait_exit(Duration::from_secs(10)).unwrap();
    assert_ne!(
        word(
            &db,
            "SELECT state FROM ethereum_transactions WHERE tag = 'commit_root:1'"
        )
        .as_deref(),
        Some("confirmed"),
        "killed before its confirmations"
    );
    let _verifier = spawn("verifier", &[], &env);
    wait_until("the commit confirmed", Duration::from_secs(60), || {
        word(
            &db,
            "SELECT state FROM ethereum_transactions WHERE tag = 'commit_root:1'",
        )
        .as_deref()
            == Some("confirmed")
    })
    .await;
    // Sent once: one transaction row, every attempt with its nonce, one event.
    assert_eq!(number(&db, "SELECT count(*) FROM ethereum_transactions"), 1);
    assert_eq!(
        number(
            &db,
            "SELECT count(DISTINCT nonce) FROM ethereum_transaction_attempts"
        ),
        1
    );

    // The chain service records the committed root; the audit finds it equal.
    wait_until(
        "the on-chain root recorded",
        Duration::from_secs(30),
        || {
            number(
                &db,
                "SELECT count(*) FROM root_commitments WHERE eon = 1 AND onchain_root = root",
            ) == 1
        },
    )
    .await;
    assert_eq!(
        number(
            &db,
            "SELECT count(*) FROM contract_events WHERE kind = 'root_committed' AND eon = 1"
        ),
        1
    );
    wait_until(
        "the audit to match the chain",
        Duration::from_secs(30),
        || {
            word(
                &db,
                "SELECT checked->>'onchain' FROM audit_reports WHERE eon = 1",
            )
            .as_deref()
                == Some("matches")
        },
    )
    .await;
    assert_eq!(
        word(&db, "SELECT ok FROM audit_reports WHERE eon = 1").as_deref(),
        Some("true"),
        "{:?}",
        word(&db, "SELECT mismatches FROM audit_reports WHERE eon = 1")
    );

    // Every node found its leaf in the on-chain root holding exactly what its own
    // acknowledged results earned, recomputed from the public round record.
    for (n, (node, _)) in (1..).zip(&mut nodes) {
        let expected = word(
            &db,
            &format!(
                "SELECT r.cumulative FROM validator_rewards r JOIN validators v ON v.id = r.validator_id \
                 WHERE r.eon = 1 AND v.payout_address = '\\x{}'",
                hex::encode(chain.key(n).address().as_bytes())
            ),
        )
        .unwrap_or_default();
        assert!(
            !expected.is_empty() && expected != "0",
            "node {n} earned in eon 1"
        );
        let line = tokio::task::block_in_place(|| {
            node.wait_for_line(Duration::from_secs(30), |l| {
                l.contains("reward as expected from this node's acknowledged results")
            })
        });
        let output = node.output().join("\n");
        let line = line.unwrap_or_else(|| panic!("no reward check: {output}"));
        assert!(
            line.contains(&format!(r#""expected":"{expected}""#)),
            "{line}"
        );
        assert!(!output.contains(r#""level":"ERROR""#), "{output}");
    }

    // Claims wait out the root's challenge window (mined at once here).
    chain.mature().await.unwrap();
    // Node 1 claims exactly its leaf; a second claim transfers nothing.
    let payout_1 = chain.key(1).address();
    let owed: i64 = {
        #[derive(QueryableByName)]
        struct Owed {
            #[diesel(sql_type = Text)]
            amount: String,
        }
        let owed: Owed = diesel::sql_query(
            "SELECT cumulative::text AS amount FROM merkle_leaves WHERE eon = 1 AND payout_address = $1",
        )
        .bind::<Bytea, _>(payout_1.as_bytes().to_vec())
        .get_result(&mut conn)
        .unwrap();
        owed.amount.parse().unwrap()
    };
    assert!(owed > 0, "node 1 earned credits");
    let api = format!("http://{bind}");
    let before = eth::balance(&rpc, contract).await.unwrap();
    let first = claim(nodes[0].1.path(), &api, &chain, &contract_hex, 1);
    let after = eth::balance(&rpc, contract).await.unwrap();
    assert_eq!(before - after, U256::from(owed), "{first}");
    let second = claim(nodes[0].1.path(), &api, &chain, &contract_hex, 1);
    assert!(second.contains("nothing to claim"), "{second}");
    assert_eq!(eth::balance(&rpc, contract).await.unwrap(), after);
    // The chain service applies the claim once it is final.
    wait_until("the claim recorded", Duration::from_secs(30), || {
        word(
            &db,
            &format!(
                "SELECT sum(claimed) FROM validators WHERE payout_address = '\\x{}'",
                hex::encode(payout_1.as_bytes())
            ),
        )
        .and_then(|s| s.parse::<i64>().ok())
            == Some(owed)
    })
    .await;
}
