//! The compiled `chain` binary starts against PostgreSQL, Redis and a dev chain,
//! reports ready and stops on SIGTERM; it refuses a bad contract address.

use overlaps_shared::eth::U256;
use overlaps_shared::testing::{TestChain, assert_refuses_config, assert_starts_and_stops};

const BIN: &str = env!("CARGO_BIN_EXE_chain");

#[tokio::test(flavor = "multi_thread")]
async fn starts_against_real_postgres_redis_and_a_dev_chain_and_stops_on_sigterm()
-> Result<(), Box<dyn std::error::Error>> {
    let chain = TestChain::start()?;
    let contract = format!("{:?}", chain.deploy_funded(U256::zero()).await?);
    let url = chain.rpc_url();
    tokio::task::block_in_place(|| {
        assert_starts_and_stops(
            BIN,
            &[("CHAIN_RPC_URL", &url), ("CONTRACT_ADDRESS", &contract)],
        )
    });
    Ok(())
}

#[test]
fn refuses_a_bad_contract_address() {
    assert_refuses_config(
        BIN,
        &[],
        &[
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("CONTRACT_ADDRESS", "0xnot-an-address"),
        ],
        "CONTRACT_ADDRESS",
    );
}
