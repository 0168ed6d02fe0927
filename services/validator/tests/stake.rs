//! `validator stake` and `validator unstake` against a real contract on anvil: the
//! stake goes from the payout account only (a stranger's earlier stake on the key
//! stands in nobody's way), adds up, unbonds on request and is paid back whole
//! once, each sender taking back only its own position.

mod claim_support;

use std::time::Duration;

use claim_support::{BIN, keygen, setup};
use overlaps_shared::eth::{self, Address, DEV_PRIVATE_KEYS, H256, Middleware, U256};
use overlaps_shared::signing::PayoutAddress;
use overlaps_shared::testing::{ServiceProcess, TEST_UNBONDING_SECONDS};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Boxed<T> = Result<T, Box<dyn std::error::Error>>;

const ONE_ETH: &str = "1000000000000000000";

/// Runs `validator <args>` with the chain settings and dev key `sender` as
/// `PAYOUT_PRIVATE_KEY`; returns (success, output).
fn run(args: &[&str], rpc: &str, contract: Address, sender: usize) -> Boxed<(bool, String)> {
    let contract = format!("{contract:?}");
    let mut process = ServiceProcess::spawn(
        BIN,
        args,
        &[
            ("CHAIN_RPC_URL", rpc),
            ("CONTRACT_ADDRESS", &contract),
            ("PAYOUT_PRIVATE_KEY", DEV_PRIVATE_KEYS[sender]),
        ],
    )?;
    let status = process.wait_exit(Duration::from_secs(60))?;
    Ok((
        status.is_some_and(|s| s.success()),
        process.output().join("\n"),
    ))
}

/// Runs `validator stake --key-file <key_file> --payout-address <payout> --amount
/// <amount>` signed by dev key `sender`; returns (success, output).
fn stake_cli(
    key_file: &str,
    payout: &str,
    amount: &str,
    rpc: &str,
    contract: Address,
    sender: usize,
) -> Boxed<(bool, String)> {
    let args = [
        "stake",
        "--key-file",
        key_file,
        "--payout-address",
        payout,
        "--amount",
        amount,
    ];
    tokio::task::block_in_place(|| run(&args, rpc, contract, sender))
}

/// The checksummed form of `address`, as `--payout-address` takes it.
fn checksummed(address: Address) -> Boxed<String> {
    Ok(PayoutAddress::from_bytes(address.as_bytes())?.to_string())
}

/// The public key's 32 bytes, as the contract binds them.
fn key_bytes(public_key: &str) -> Boxed<[u8; 32]> {
    hex::decode(public_key)?
        .try_into()
        .map_err(|_| "not 32 bytes".into())
}

/// The transaction hash `output` names (the last 0x… of 32 bytes).
fn tx_hash(output: &str) -> Boxed<H256> {
    let hash = output
        .split(|c: char| !c.is_ascii_alphanumeric())
        .rfind(|w| w.len() == 66 && w.starts_with("0x"))
        .ok_or("no transaction hash printed")?;
    Ok(hash.parse()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn stake_sends_from_the_payout_account_and_a_second_stake_adds() -> TestResult {
    let s = setup().await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let (rpc, contract) = (s.chain.rpc_url(), s.contract.address());
    let payout = s.chain.key(1).address();
    let payout_flag = checksummed(payout)?;
    let client = eth::read_client(&rpc)?;
    let before = eth::balance(&client, contract).await?;

    let (ok, output) = stake_cli(&key_file, &payout_flag, ONE_ETH, &rpc, contract, 1)?;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!(
            "staked {ONE_ETH} wei (1 ETH) on key {public_key} from {payout_flag}"
        )),
        "{output}"
    );
    tx_hash(&output)?;
    let key = key_bytes(&public_key)?;
    assert_eq!(
        s.contract.stake_of(key, payout).call().await?,
        (U256::exp10(18), 0)
    );

    let (ok, output) = stake_cli(
        &key_file,
        &payout_flag,
        "500000000000000000",
        &rpc,
        contract,
        1,
    )?;
    assert!(ok, "{output}");
    assert!(
        output.contains("its position on the key is now 1500000000000000000 wei (1.5 ETH)"),
        "{output}"
    );
    assert_eq!(
        eth::balance(&client, contract).await? - before,
        U256::exp10(17) * 15
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stake_from_a_key_that_is_not_the_payout_address_is_refused_before_sending() -> TestResult {
    let s = setup().await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let (rpc, contract) = (s.chain.rpc_url(), s.contract.address());
    let payout = checksummed(s.chain.key(1).address())?;
    let sender = s.chain.key(2).address();
    let client = eth::read_client(&rpc)?;
    let nonce_before = client.get_transaction_count(sender, None).await?;
    // Dev key 2 signs, but the node is paid to dev account 1.
    let (ok, output) = stake_cli(&key_file, &payout, ONE_ETH, &rpc, contract, 2)?;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "the Ethereum key's address {} is not the payout address {payout}",
            checksummed(sender)?
        )),
        "{output}"
    );
    assert!(
        output.contains("counts a stake only from the key's payout address"),
        "{output}"
    );
    assert_eq!(
        client.get_transaction_count(sender, None).await?,
        nonce_before,
        "nothing was sent"
    );
    let key = key_bytes(&public_key)?;
    for address in [sender, s.chain.key(1).address()] {
        assert_eq!(
            s.contract.stake_of(key, address).call().await?,
            (U256::zero(), 0)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unstake_requests_then_says_when_then_pays_the_stake_back_once() -> TestResult {
    let s = setup().await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let (rpc, contract) = (s.chain.rpc_url(), s.contract.address());
    let staker = s.chain.key(1).address();
    let payout = checksummed(staker)?;
    let (ok, output) = stake_cli(&key_file, &payout, ONE_ETH, &rpc, contract, 1)?;
    assert!(ok, "{output}");
    let unstake = ["unstake", "--key-file", &key_file];
    let client = eth::read_client(&rpc)?;

    // Another account holds no position of its own there: nothing to take back,
    // nothing is sent.
    let other = s.chain.key(2).address();
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 2))?;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "nothing is staked on key {public_key} from {}",
            checksummed(other)?
        )),
        "{output}"
    );
    assert_eq!(client.get_transaction_count(other, None).await?, 0.into());

    // First: the request, with the time the payout becomes possible.
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 1))?;
    assert!(ok, "{output}");
    let (_, unlock_at) = s
        .contract
        .stake_of(key_bytes(&public_key)?, staker)
        .call()
        .await?;
    assert_ne!(unlock_at, 0, "unbonding started");
    let when = chrono::DateTime::from_timestamp(i64::try_from(unlock_at)?, 0)
        .ok_or("unlock time")?
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    assert!(
        output.contains(&format!(
            "key {public_key}: unstake requested for {ONE_ETH} wei (1 ETH)"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "the hub counts the stake until {when}, and it can be paid out from then on"
        )),
        "{output}"
    );

    // Again before the unlock: it says when, and sends nothing.
    let nonce = client.get_transaction_count(staker, None).await?;
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 1))?;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("is unbonding until {when}")),
        "{output}"
    );
    assert_eq!(client.get_transaction_count(staker, None).await?, nonce);

    // After the unlock: the whole stake comes back, gas aside.
    s.chain.advance_time(TEST_UNBONDING_SECONDS).await?;
    let before = eth::balance(&client, staker).await?;
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 1))?;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("unstaked: {ONE_ETH} wei (1 ETH) paid to {payout}")),
        "{output}"
    );
    let receipt = client
        .get_transaction_receipt(tx_hash(&output)?)
        .await?
        .ok_or("no receipt")?;
    let gas =
        receipt.gas_used.unwrap_or_default() * receipt.effective_gas_price.unwrap_or_default();
    assert_eq!(
        eth::balance(&client, staker).await? + gas,
        before + U256::exp10(18)
    );

    // Once more: nothing is staked any more, nothing is paid.
    let after = eth::balance(&client, staker).await?;
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 1))?;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "nothing is staked on key {public_key} from {payout}"
        )),
        "{output}"
    );
    assert_eq!(eth::balance(&client, staker).await?, after);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stake_and_unstake_work_on_a_key_a_stranger_staked_on_first() -> TestResult {
    let s = setup().await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let (rpc, contract) = (s.chain.rpc_url(), s.contract.address());
    let key = key_bytes(&public_key)?;
    // The stranger (dev key 3) stakes 1 wei on the node's public key first.
    let stranger = eth::signer_client(&rpc, &s.chain.key(3)).await?;
    let as_stranger = eth::rewards(contract, stranger.clone());
    eth::send_call(as_stranger.stake(key).value(U256::from(1))).await?;

    let payout = s.chain.key(1).address();
    let payout_flag = checksummed(payout)?;
    let (ok, output) = stake_cli(&key_file, &payout_flag, ONE_ETH, &rpc, contract, 1)?;
    assert!(ok, "{output}");
    assert!(
        output.contains("its position on the key is now 1000000000000000000 wei (1 ETH)"),
        "{output}"
    );
    assert_eq!(
        s.contract.stake_of(key, payout).call().await?,
        (U256::exp10(18), 0)
    );
    assert_eq!(
        s.contract.stake_of(key, stranger.address()).call().await?,
        (U256::from(1), 0)
    );

    // The payout account's unstake starts unbonding its own position only.
    let unstake = ["unstake", "--key-file", &key_file];
    let (ok, output) = tokio::task::block_in_place(|| run(&unstake, &rpc, contract, 1))?;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!(
            "key {public_key}: unstake requested for {ONE_ETH} wei (1 ETH)"
        )),
        "{output}"
    );
    let (amount, unlock_at) = s.contract.stake_of(key, payout).call().await?;
    assert_eq!(amount, U256::exp10(18));
    assert_ne!(unlock_at, 0);
    assert_eq!(
        s.contract.stake_of(key, stranger.address()).call().await?,
        (U256::from(1), 0),
        "the stranger's position is untouched"
    );
    Ok(())
}
