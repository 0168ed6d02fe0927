//! What the `validator claim` tests share: a stand-in for the hub's API, proofs
//! from trees built here, a key file, and a contract on anvil.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use overlaps_shared::eth::{self, Address, DEV_PRIVATE_KEYS, U256};
use overlaps_shared::merkle::{RewardTree, leaf_hash};
use overlaps_shared::testing::{ServiceProcess, TestChain, read_request_head};
use tokio::io::AsyncWriteExt;

pub const BIN: &str = env!("CARGO_BIN_EXE_validator");

/// A stand-in for the hub's API: `routes` maps a path with its query to a JSON body;
/// anything else is a 404. It plays the hub the node must not trust.
pub async fn serve(routes: HashMap<String, serde_json::Value>) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                let Some(head) = read_request_head(&mut stream).await else {
                    return;
                };
                let path = head.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = match routes.get(path) {
                    Some(body) => (200, body.to_string()),
                    None => (
                        404,
                        r#"{"code":"not_found","message":"no such thing"}"#.to_owned(),
                    ),
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

/// The routes naming validator 7 (`public_key`, first seen on 1 January 2026) and
/// serving `proof` as its proof for eon `proof.eon`.
pub fn validator_routes(
    public_key: &str,
    proof: &serde_json::Value,
) -> HashMap<String, serde_json::Value> {
    let me = serde_json::json!({"id": 7, "public_key": public_key, "first_seen_at": "2026-01-01T00:00:00Z"});
    HashMap::from([
        (
            format!("/api/v1/validators?public_key={public_key}"),
            serde_json::json!({"items": [me], "next_cursor": null}),
        ),
        ("/api/v1/validators/7".to_owned(), me),
        (
            format!("/api/v1/validators/7/proof?eon={}", proof["eon"]),
            proof.clone(),
        ),
    ])
}

/// Serves validator 7 (`public_key`) and its `proof`; 404 for anything else.
pub async fn serve_api(public_key: String, proof: serde_json::Value) -> std::io::Result<String> {
    serve(validator_routes(&public_key, &proof)).await
}

pub fn hex32(hash: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(hash))
}

/// The API's JSON for leaf `i` of a tree over `accounts` and `amounts`.
pub fn proof_json(eon: u64, accounts: &[Address], amounts: &[u64], i: usize) -> serde_json::Value {
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
        "validator_cumulative": amounts[i].to_string(),
        "validator_attributed": amounts[i].to_string(),
    })
}

pub fn keygen(dir: &std::path::Path) -> Result<(String, String), Box<dyn std::error::Error>> {
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
pub fn run_claim(
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

pub struct Setup {
    pub chain: TestChain,
    pub contract: eth::OverlapsRewards<eth::SignerClient>,
    pub dir: std::path::PathBuf,
    pub accounts: Vec<Address>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
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

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
