//! `validator claim` against a local stand-in for the hub's API (serving a proof
//! from a tree built here) and a real contract on anvil.

use std::sync::Arc;
use std::time::Duration;

use overlaps_shared::eth::{self, Address, DEV_PRIVATE_KEYS, Middleware, U256};
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::testing::{ServiceProcess, TestChain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_validator");

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Serves `GET /api/v1/validators?public_key=…` (validator 7) and
/// `GET /api/v1/validators/7/proof` (`proof`); 404 for anything else.
async fn serve_api(public_key: String, proof: serde_json::Value) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (public_key, proof) = (public_key.clone(), proof.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let (status, body) =
                    if path == format!("/api/v1/validators?public_key={public_key}") {
                        (
                            200,
                            serde_json::json!([{"id": 7, "public_key": public_key}]).to_string(),
                        )
                    } else if path == "/api/v1/validators/7/proof" {
                        (200, proof.to_string())
                    } else {
                        (
                            404,
                            r#"{"code":"not_found","message":"no such thing"}"#.to_owned(),
                        )
                    };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

fn hex32(hash: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(hash))
}

/// The API's JSON for leaf `i` of a tree over `accounts` and `amounts`.
fn proof_json(eon: u64, accounts: &[Address], amounts: &[u64], i: usize) -> serde_json::Value {
    let leaves: Vec<_> = accounts
        .iter()
        .zip(amounts)
        .map(|(a, c)| leaf_hash(*a, U256::from(*c)))
        .collect();
    let tree = RewardTree::build(&leaves);
    serde_json::json!({
        "eon": eon,
        "validator_id": 7,
        "payout_address": format!("{:?}", accounts[i]),
        "cumulative": amounts[i].to_string(),
        "leaf": hex32(&leaves[i]),
        "proof": tree.proof(i).iter().map(hex32).collect::<Vec<_>>(),
        "root": hex32(&tree.root()),
    })
}

fn keygen(dir: &std::path::Path) -> Result<(String, String), Box<dyn std::error::Error>> {
    let path = dir.join("validator.key").to_string_lossy().into_owned();
    let mut process = ServiceProcess::spawn(BIN, &["keygen", "--key-file", &path], &[])?;
    let status = process.wait_exit(Duration::from_secs(30))?;
    assert!(
        status.is_some_and(|s| s.success()),
        "{:?}",
        process.output()
    );
    let public_key = process
        .output()
        .into_iter()
        .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or("keygen printed no public key")?;
    Ok((path, public_key))
}

/// Runs `validator claim`; returns (success, output).
fn run_claim(
    key_file: &str,
    api: &str,
    rpc: &str,
    contract: Address,
) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let contract = format!("{contract:?}");
    let mut process = ServiceProcess::spawn(
        BIN,
        &["claim", "--key-file", key_file, "--api-url", api],
        &[
            ("CHAIN_RPC_URL", rpc),
            ("CONTRACT_ADDRESS", &contract),
            ("PAYOUT_PRIVATE_KEY", DEV_PRIVATE_KEYS[1]),
        ],
    )?;
    let status = process.wait_exit(Duration::from_secs(60))?;
    Ok((
        status.is_some_and(|s| s.success()),
        process.output().join("\n"),
    ))
}

struct Setup {
    chain: TestChain,
    contract: eth::OverlapsRewards<eth::SignerClient>,
    dir: std::path::PathBuf,
    accounts: Vec<Address>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    let chain = TestChain::start()?;
    let address = chain.deploy_funded(U256::from(1_000_000)).await?;
    let operator = eth::signer_client(&chain.rpc_url(), &chain.key(0)).await?;
    let dir = std::env::temp_dir()
        .join(format!("overlaps-claim-{}", std::process::id()))
        .join(format!("{:x}", rand_suffix()));
    std::fs::create_dir_all(&dir)?;
    // The node's payout account is anvil's second dev account (it pays the gas).
    let accounts = vec![
        chain.key(1).address(),
        Address::from_low_u64_be(0xB0B),
        Address::from_low_u64_be(0xCAFE),
    ];
    Ok(Setup {
        contract: eth::rewards(address, operator),
        chain,
        dir,
        accounts,
    })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_pays_exactly_the_unclaimed_reward_and_a_second_claim_nothing() -> TestResult {
    let s = setup().await?;
    let amounts = [4_200, 1_000, 500];
    let proof = proof_json(3, &s.accounts, &amounts, 0);
    let root: [u8; 32] = hex::decode(
        proof["root"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("0x"),
    )?
    .try_into()
    .map_err(|_| "root")?;
    eth::send_call(s.contract.commit_root(3, root, U256::from(5_700))).await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let api = serve_api(public_key, proof).await?;
    let rpc = s.chain.rpc_url();
    let client = Arc::new(eth::read_client(&rpc)?);
    let before = eth::balance(&*client, s.contract.address()).await?;

    let (ok, output) =
        tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, s.contract.address()))?;
    assert!(ok, "{output}");
    assert!(output.contains("claimed 4200 wei"), "{output}");
    assert_eq!(
        s.contract.claimed(s.accounts[0]).call().await?,
        U256::from(4_200)
    );
    assert_eq!(
        eth::balance(&*client, s.contract.address()).await?,
        before - U256::from(4_200)
    );

    let (ok, output) =
        tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, s.contract.address()))?;
    assert!(ok, "{output}");
    assert!(output.contains("nothing to claim"), "{output}");
    assert_eq!(
        eth::balance(&*client, s.contract.address()).await?,
        before - U256::from(4_200)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_that_does_not_lead_to_the_onchain_root_is_refused_before_sending() -> TestResult {
    let s = setup().await?;
    // The contract holds the root of one tree; the hub serves a proof from another
    // (an inflated amount for this node).
    let committed = proof_json(3, &s.accounts, &[4_200, 1_000, 500], 0);
    let root: [u8; 32] = hex::decode(
        committed["root"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("0x"),
    )?
    .try_into()
    .map_err(|_| "root")?;
    eth::send_call(s.contract.commit_root(3, root, U256::from(5_700))).await?;
    let served = proof_json(3, &s.accounts, &[9_000, 1_000, 500], 0);
    let (key_file, public_key) = keygen(&s.dir)?;
    let api = serve_api(public_key, served).await?;
    let rpc = s.chain.rpc_url();
    let nonce_before = eth::read_client(&rpc)?
        .get_transaction_count(s.accounts[0], None)
        .await?;

    let (ok, output) =
        tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, s.contract.address()))?;
    assert!(!ok, "{output}");
    assert!(output.contains("on-chain root"), "{output}");
    assert_eq!(
        s.contract.claimed(s.accounts[0]).call().await?,
        U256::zero()
    );
    let nonce_after = eth::read_client(&rpc)?
        .get_transaction_count(s.accounts[0], None)
        .await?;
    assert_eq!(nonce_before, nonce_after, "nothing was sent");
    Ok(())
}

/// Runs `validator run` with the leaf watch on; returns its output once `wanted`
/// appears (or after 30 s).
fn run_node_until(
    key_file: &str,
    api: &str,
    rpc: &str,
    contract: Address,
    payout: Address,
    wanted: &str,
) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let (contract, payout) = (
        format!("{contract:?}"),
        overlaps_shared::signing::PayoutAddress::from_bytes(payout.as_bytes())?.to_string(),
    );
    let mut process = ServiceProcess::spawn(
        BIN,
        &[
            "run",
            "--key-file",
            key_file,
            "--api-url",
            api,
            "--payout-address",
            &payout,
        ],
        &[
            // No hub: the node keeps reconnecting while the watch runs.
            ("HUB_URL", "ws://127.0.0.1:9/ws/validator"),
            ("CHAIN_RPC_URL", rpc),
            ("CONTRACT_ADDRESS", &contract),
            ("LEAF_CHECK_SECONDS", "1"),
        ],
    )?;
    let found = process
        .wait_for_line(Duration::from_secs(30), |l| l.contains(wanted))
        .is_some();
    let _ = process.terminate(Duration::from_secs(5));
    Ok((found, process.output().join("\n")))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_checks_its_own_leaf_against_each_onchain_root() -> TestResult {
    let s = setup().await?;
    let committed = proof_json(3, &s.accounts, &[4_200, 1_000, 500], 0);
    let root: [u8; 32] = hex::decode(
        committed["root"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("0x"),
    )?
    .try_into()
    .map_err(|_| "root")?;
    eth::send_call(s.contract.commit_root(3, root, U256::from(5_700))).await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let rpc = s.chain.rpc_url();

    // The hub's proof matches the chain: noted.
    let api = serve_api(public_key.clone(), committed).await?;
    let (found, output) = tokio::task::block_in_place(|| {
        run_node_until(
            &key_file,
            &api,
            &rpc,
            s.contract.address(),
            s.accounts[0],
            "own leaf is in the on-chain root",
        )
    })?;
    assert!(found, "{output}");

    // The hub serves a leaf that is not in the committed root: a loud warning.
    let left_out = proof_json(3, &s.accounts, &[9_000, 1_000, 500], 0);
    let api = serve_api(public_key, left_out).await?;
    let (found, output) = tokio::task::block_in_place(|| {
        run_node_until(
            &key_file,
            &api,
            &rpc,
            s.contract.address(),
            s.accounts[0],
            "OWN LEAF NOT IN THE ON-CHAIN ROOT",
        )
    })?;
    assert!(found, "{output}");
    Ok(())
}
