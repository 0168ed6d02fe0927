//! The compiled `verifier` binary: starts against PostgreSQL, Redis and a dev chain,
//! reports ready and stops on SIGTERM; refuses bad settings; deploys the contract.

use overlaps_shared::eth::{self, DEV_PRIVATE_KEYS, U256};
use overlaps_shared::testing::{
    ServiceProcess, TestChain, assert_refuses_config, assert_starts_and_stops,
};

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread")]
async fn starts_against_real_postgres_redis_and_a_dev_chain_and_stops_on_sigterm() -> TestResult {
    let chain = TestChain::start()?;
    let contract = format!("{:?}", chain.deploy_funded(U256::zero()).await?);
    let url = chain.rpc_url();
    tokio::task::block_in_place(|| {
        assert_starts_and_stops(
            BIN,
            &[
                ("CHAIN_RPC_URL", &url),
                ("CONTRACT_ADDRESS", &contract),
                ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]),
            ],
        )
    });
    Ok(())
}

#[test]
fn refuses_bad_chain_settings_naming_the_variable() {
    let base = [
        ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ];
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "CONTRACT_ADDRESS",
            &[("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0])],
        ),
        (
            "OPERATOR_PRIVATE_KEY",
            &[(
                "CONTRACT_ADDRESS",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            )],
        ),
        (
            "CHAIN_RPC_URL",
            &[
                (
                    "CONTRACT_ADDRESS",
                    "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                ),
                ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]),
                ("CHAIN_RPC_URL", "ftp://x"),
            ],
        ),
    ];
    for (var, extra) in cases {
        let mut envs = base.to_vec();
        envs.extend_from_slice(extra);
        assert_refuses_config(BIN, &[], &envs, var);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_prints_the_address_of_a_funded_contract() -> TestResult {
    let chain = TestChain::start()?;
    let url = chain.rpc_url();
    let mut process = ServiceProcess::spawn(
        BIN,
        &["deploy", "--fund", "12345"],
        &[
            ("CHAIN_RPC_URL", &url),
            ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]),
            ("GUARDIAN_ADDRESS", &format!("{:?}", chain.key(5).address())),
            ("CHALLENGE_BLOCKS", "7"),
            ("CHAIN_BLOCK_SECONDS", "1"),
        ],
    )?;
    let line = tokio::task::block_in_place(|| {
        process.wait_for_line(std::time::Duration::from_secs(60), |l| {
            l.starts_with("CONTRACT_ADDRESS=0x")
        })
    });
    let Some(line) = line else {
        panic!("no address printed:\n{}", process.output().join("\n"));
    };
    let address = eth::parse_address(line.trim_start_matches("CONTRACT_ADDRESS="))?;
    let client = eth::read_client(&url)?;
    assert_eq!(eth::balance(&client, address).await?, U256::from(12345));
    let rewards = eth::rewards(address, std::sync::Arc::new(client));
    assert_eq!(rewards.operator().call().await?, chain.key(0).address());
    assert_eq!(rewards.guardian().call().await?, chain.key(5).address());
    assert_eq!(rewards.challenge_blocks().call().await?, 7);
    Ok(())
}

#[test]
fn deploy_refuses_a_window_longer_than_an_eon_naming_challenge_blocks() {
    assert_refuses_config(
        BIN,
        &["deploy"],
        &[
            ("CHAIN_RPC_URL", "http://127.0.0.1:1"),
            ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]),
            ("CHALLENGE_BLOCKS", "600"),
            ("CHAIN_BLOCK_SECONDS", "1"),
            ("EON_ROUNDS", "6"),
            ("ROUND_SECONDS", "10"),
        ],
        "CHALLENGE_BLOCKS",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_contract_it_does_not_operate_naming_the_setting() -> TestResult {
    let chain = TestChain::start()?;
    let contract = format!("{:?}", chain.deploy_funded(U256::zero()).await?);
    let url = chain.rpc_url();
    let (db, redis) = (
        overlaps_shared::testing::TestDatabase::new()?,
        overlaps_shared::testing::TestRedis::new()?,
    );
    let env = overlaps_shared::testing::service_env(&db, &redis);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.extend([
        ("CHAIN_RPC_URL", url.as_str()),
        ("CONTRACT_ADDRESS", contract.as_str()),
    ]);
    // Another key than the contract's operator.
    let mut wrong_key = envs.clone();
    wrong_key.push(("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[1]));
    tokio::task::block_in_place(|| {
        assert_refuses_config(BIN, &[], &wrong_key, "OPERATOR_PRIVATE_KEY")
    });
    // An address with no contract.
    let mut no_contract = envs.clone();
    no_contract.retain(|(k, _)| *k != "CONTRACT_ADDRESS");
    no_contract.push((
        "CONTRACT_ADDRESS",
        "0x00000000000000000000000000000000000000aa",
    ));
    no_contract.push(("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]));
    tokio::task::block_in_place(|| {
        assert_refuses_config(BIN, &[], &no_contract, "CONTRACT_ADDRESS")
    });
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_contract_whose_challenge_window_outlasts_an_eon() -> TestResult {
    let chain = TestChain::start()?;
    // 120 blocks of 1 s against eons of 6 rounds of 10 s: nothing would ever mature.
    let custody = eth::Custody {
        operator: chain.key(0).address(),
        guardian: chain.guardian().address(),
        challenge_blocks: 120,
        unbonding_seconds: overlaps_shared::testing::TEST_UNBONDING_SECONDS,
    };
    let contract = format!("{:?}", chain.deploy_custody(U256::zero(), custody).await?);
    let url = chain.rpc_url();
    let (db, redis) = (
        overlaps_shared::testing::TestDatabase::new()?,
        overlaps_shared::testing::TestRedis::new()?,
    );
    let env = overlaps_shared::testing::service_env(&db, &redis);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.extend([
        ("CHAIN_RPC_URL", url.as_str()),
        ("CONTRACT_ADDRESS", contract.as_str()),
        ("OPERATOR_PRIVATE_KEY", DEV_PRIVATE_KEYS[0]),
        ("CHAIN_BLOCK_SECONDS", "1"),
        ("EON_ROUNDS", "6"),
        ("ROUND_SECONDS", "10"),
        ("EON_SECONDS", "3600"),
    ]);
    tokio::task::block_in_place(|| {
        assert_refuses_config(BIN, &[], &envs, "nothing would ever become claimable")
    });
    // Eons of an hour fit it: the same contract is accepted.
    let mut long_eons = envs.clone();
    long_eons.retain(|(k, _)| !matches!(*k, "EON_ROUNDS" | "ROUND_SECONDS"));
    long_eons.extend([("EON_ROUNDS", "360"), ("ROUND_SECONDS", "10")]);
    let extra: Vec<(&str, &str)> = long_eons
        .iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    tokio::task::block_in_place(|| assert_starts_and_stops(BIN, &extra));
    Ok(())
}
