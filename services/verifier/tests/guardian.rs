//! `verifier guardian …` (the compiled binary) against a contract on anvil: the
//! guardian key cancels a pending root and rotates the operator; any other key is
//! refused before anything is sent; the key never shows in the output.

use std::sync::Arc;
use std::time::Duration;

use overlaps_shared::eth::{self, DEV_PRIVATE_KEYS, Middleware, U256};
use overlaps_shared::testing::{GUARDIAN_KEY, ServiceProcess, TestChain};

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `verifier guardian args…` with `key`; (exit success, output).
fn guardian(chain: &TestChain, contract: &str, key: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["guardian"];
    all.extend_from_slice(args);
    let url = chain.rpc_url();
    let envs = [
        ("CHAIN_RPC_URL", url.as_str()),
        ("CONTRACT_ADDRESS", contract),
        ("GUARDIAN_PRIVATE_KEY", key),
    ];
    let mut process = match ServiceProcess::spawn(BIN, &all, &envs) {
        Ok(process) => process,
        Err(err) => panic!("could not start {BIN}: {err}"),
    };
    let status = process.wait_exit(Duration::from_secs(60));
    let output = process.output().join("\n");
    let ok = matches!(status, Ok(Some(s)) if s.success());
    for secret in DEV_PRIVATE_KEYS {
        assert!(
            !output.contains(secret.trim_start_matches("0x")),
            "a key was printed:\n{output}"
        );
    }
    (ok, output)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guardian_cancels_a_pending_root_and_rotates_the_operator() -> TestResult {
    let chain = TestChain::start()?;
    let address = chain.deploy_funded(U256::from(1_000)).await?;
    let contract = format!("{address:?}");
    let operator = eth::rewards(
        address,
        eth::signer_client(&chain.rpc_url(), &chain.key(0)).await?,
    );
    eth::send_call(operator.commit_root(1, [7u8; 32], U256::from(10))).await?;
    let guardian_key = DEV_PRIVATE_KEYS[GUARDIAN_KEY];

    let (ok, output) =
        tokio::task::block_in_place(|| guardian(&chain, &contract, guardian_key, &["status"]));
    assert!(ok, "{output}");
    assert!(output.contains("pending:          eon 1"), "{output}");
    assert!(output.contains("cancel-root --eon 1"), "{output}");

    // The operator's key is not the guardian's: refused, nothing sent.
    let nonce = |who: usize| {
        let rpc = eth::read_client(&chain.rpc_url());
        let who = chain.key(who).address();
        async move { Ok::<_, Box<dyn std::error::Error>>(rpc?.get_transaction_count(who, None).await?) }
    };
    let before = nonce(0).await?;
    let (ok, output) = tokio::task::block_in_place(|| {
        guardian(
            &chain,
            &contract,
            DEV_PRIVATE_KEYS[0],
            &["cancel-root", "--eon", "1"],
        )
    });
    assert!(!ok, "{output}");
    assert!(output.contains("the contract's guardian is"), "{output}");
    assert_eq!(nonce(0).await?, before);

    let (ok, output) = tokio::task::block_in_place(|| {
        guardian(
            &chain,
            &contract,
            guardian_key,
            &["cancel-root", "--eon", "1"],
        )
    });
    assert!(ok, "{output}");
    assert!(
        output.contains("cancelled the pending root of eon 1"),
        "{output}"
    );
    assert_eq!(operator.pending().call().await?.0, 0);
    // Again: nothing is pending; the contract's reason comes back.
    let (ok, output) = tokio::task::block_in_place(|| {
        guardian(
            &chain,
            &contract,
            guardian_key,
            &["cancel-root", "--eon", "1"],
        )
    });
    assert!(!ok && output.contains("NoPendingRoot"), "{output}");

    let successor = chain.key(2).address();
    let (ok, output) = tokio::task::block_in_place(|| {
        guardian(
            &chain,
            &contract,
            guardian_key,
            &["set-operator", "--address", &format!("{successor:?}")],
        )
    });
    assert!(ok, "{output}");
    let reader = eth::rewards(address, Arc::new(eth::read_client(&chain.rpc_url())?));
    assert_eq!(reader.operator().call().await?, successor);
    let refused = eth::send_call(operator.commit_root(1, [8u8; 32], U256::from(10))).await;
    assert!(
        format!("{refused:?}").contains("NotOperator"),
        "{refused:?}"
    );
    Ok(())
}
