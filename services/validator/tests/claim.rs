//! `validator claim` against a local stand-in for the hub's API (serving a proof
//! from a tree built here) and a real contract on anvil.

mod claim_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use claim_support::{
    BIN, Setup, keygen, proof_json, run_claim, serve, serve_api, setup, validator_routes,
};
use overlaps_shared::eth::{self, Address, Middleware, U256};
use overlaps_shared::testing::ServiceProcess;

type TestResult = Result<(), Box<dyn std::error::Error>>;

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
    s.chain.mature().await?;
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
    s.chain.mature().await?;
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

/// Runs `validator run` with the reward check on (receipts at `receipts`); returns
/// its output once `wanted` appears (or after 30 s).
fn run_node_until(
    key_file: &str,
    receipts: &std::path::Path,
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
    let receipts = receipts.to_string_lossy();
    let mut process = ServiceProcess::spawn(
        BIN,
        &[
            "run",
            "--key-file",
            key_file,
            "--receipts-file",
            &receipts,
            "--api-url",
            api,
            "--payout-address",
            &payout,
        ],
        &[
            // No hub: the node keeps reconnecting while the check runs.
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

impl Setup {
    /// Runs the node paid to the first account against `api` until `wanted` appears.
    fn run_node_until(
        &self,
        key_file: &str,
        receipts: &std::path::Path,
        api: &str,
        wanted: &str,
    ) -> Result<(bool, String), Box<dyn std::error::Error>> {
        tokio::task::block_in_place(|| {
            run_node_until(
                key_file,
                receipts,
                api,
                &self.chain.rpc_url(),
                self.contract.address(),
                self.accounts[0],
                wanted,
            )
        })
    }
}

/// Commits `proof`'s root as eon 3 on the setup's contract.
async fn commit(s: &Setup, proof: &serde_json::Value, total: u64) -> TestResult {
    let root: [u8; 32] = hex::decode(
        proof["root"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("0x"),
    )?
    .try_into()
    .map_err(|_| "root")?;
    eth::send_call(s.contract.commit_root(3, root, U256::from(total))).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_warns_loudly_when_its_leaf_is_not_in_the_onchain_root() -> TestResult {
    let s = setup().await?;
    let committed = proof_json(3, &s.accounts, &[4_200, 1_000, 500], 0);
    commit(&s, &committed, 5_700).await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    // The hub serves a leaf that is not in the committed root (nothing acknowledged).
    let left_out = proof_json(3, &s.accounts, &[9_000, 1_000, 500], 0);
    let mut routes = validator_routes(&public_key, &left_out);
    routes.extend(network_routes(&[]));
    let api = serve(routes).await?;
    let receipts = s.dir.join("left-out.receipts");
    let (found, output) = s.run_node_until(
        &key_file,
        &receipts,
        &api,
        "OWN LEAF NOT IN THE ON-CHAIN ROOT",
    )?;
    assert!(found, "{output}");
    Ok(())
}

/// The reward per agreeing result the stand-in hub publishes.
const REWARD: u64 = 1_000;

/// The terms and eon 3 (rounds 5 and 6), plus `rounds` as (round, assignments).
fn network_routes(rounds: &[(i64, serde_json::Value)]) -> HashMap<String, serde_json::Value> {
    let mut routes = HashMap::from([
        (
            "/api/v1/network".to_owned(),
            serde_json::json!({"protocol": "overlaps/v1", "hub_id": "stand-in", "reward_per_check": REWARD.to_string()}),
        ),
        (
            "/api/v1/eons/3".to_owned(),
            serde_json::json!({"number": 3, "first_round": 5, "last_round": 6, "closed_at": "2026-11-24T00:00:00Z"}),
        ),
    ]);
    for (round, items) in rounds {
        routes.insert(
            format!("/api/v1/rounds/{round}/assignments?limit=200"),
            serde_json::json!({"items": items, "next_cursor": null}),
        );
        // Closed rounds without canaries.
        routes.insert(
            format!("/api/v1/rounds/{round}/canaries"),
            serde_json::json!({"round": round, "revealed": true, "canary_key": null, "epoch": null,
                               "canary_rate_bp": null, "items": []}),
        );
    }
    routes
}

/// Two other validators (8 and 9) whose results the stand-in publishes, signed.
struct Others {
    keys: [overlaps_shared::signing::Keypair; 2],
}

const OWN_SIGNATURE: &str = "0x5151515151515151515151515151515151515151515151515151515151515151\
5151515151515151515151515151515151515151515151515151515151515151";

impl Others {
    fn new() -> Self {
        Others {
            keys: [
                overlaps_shared::signing::Keypair::generate(),
                overlaps_shared::signing::Keypair::generate(),
            ],
        }
    }

    fn routes(&self) -> HashMap<String, serde_json::Value> {
        (0..2)
            .map(|i| {
                let id = 8 + i as i64;
                (
                    format!("/api/v1/validators/{id}"),
                    serde_json::json!({"id": id, "public_key": self.keys[i].public_key().to_string(),
                        "first_seen_at": "2026-01-01T00:00:00Z"}),
                )
            })
            .collect()
    }

    /// Assignment `id` of `site` answered `status` by validator `validator` (7 is the
    /// node under test: its result carries the signature of its receipt).
    fn assignment(
        &self,
        id: i64,
        site: i64,
        validator: i64,
        status: Option<&str>,
    ) -> serde_json::Value {
        let result = status.map(|status| {
            let checked_at = chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap_or_default();
            let failure = (status == "down").then_some("connect");
            let signature = if validator == 7 {
                OWN_SIGNATURE.to_owned()
            } else {
                let fields = overlaps_shared::signing::ResultFields::from_record(
                    overlaps_shared::signing::ResultRecord {
                        assignment_id: id,
                        status,
                        http_status: None,
                        latency_ms: 10,
                        failure,
                        tls_expires_at: None,
                        checked_at,
                        protocol_version: 1,
                        spec_hash: None,
                    },
                );
                let bytes = overlaps_shared::signing::result_bytes("stand-in", &fields);
                format!("0x{}", hex::encode(self.keys[(validator - 8) as usize].sign(&bytes)))
            };
            serde_json::json!({"status": status, "http_status": null, "latency_ms": 10, "failure": failure,
                "checked_at": checked_at, "tls_expires_at": null, "signature": signature})
        });
        serde_json::json!({"id": id, "website_id": site, "validator_id": validator,
            "due_at": "2026-11-24T00:00:00Z", "deadline_at": "2026-11-24T00:00:05Z",
            "state": if status.is_some() { "answered" } else { "missed" }, "result": result})
    }
}

/// The node's receipt file: begun before the hub first saw it, paid to `payout`,
/// with three acknowledged results: 51 (round 5, up), 61 (round 6, up), 62 (round 6, down).
fn write_receipts(path: &std::path::Path, payout: Address) -> TestResult {
    let payout =
        overlaps_shared::signing::PayoutAddress::from_bytes(payout.as_bytes())?.to_string();
    let signature = OWN_SIGNATURE.trim_start_matches("0x");
    let lines = [
        serde_json::json!({"kind": "start", "started_at_ms": 1, "payout_address": payout, "payout_constant": true}),
        serde_json::json!({"kind": "ack", "round": 5, "assignment_id": 51, "status": "up", "signature": signature}),
        serde_json::json!({"kind": "ack", "round": 6, "assignment_id": 61, "status": "up", "signature": signature}),
        serde_json::json!({"kind": "ack", "round": 6, "assignment_id": 62, "status": "down", "signature": signature}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text)?;
    Ok(())
}

/// Rounds 5 and 6 as published: 51 agrees (up 2–1), 61 does not (down 2–1), 62
/// agrees (down 2–1). With `drop_62`, the hub publishes 62 without its result.
fn rounds(others: &Others, drop_62: bool) -> Vec<(i64, serde_json::Value)> {
    vec![
        (
            5,
            serde_json::json!([
                others.assignment(51, 1, 7, Some("up")),
                others.assignment(52, 1, 8, Some("up")),
                others.assignment(53, 1, 9, Some("down")),
            ]),
        ),
        (
            6,
            serde_json::json!([
                others.assignment(61, 1, 7, Some("up")),
                others.assignment(62, 2, 7, if drop_62 { None } else { Some("down") }),
                others.assignment(63, 1, 8, Some("down")),
                others.assignment(64, 2, 8, Some("down")),
                others.assignment(65, 1, 9, Some("down")),
                others.assignment(66, 2, 9, Some("up")),
            ]),
        ),
    ]
}

/// Commits a tree whose leaf for the node holds `leaf`, and serves a stand-in hub
/// publishing rounds 5 and 6 (see [`rounds`]) and that leaf; writes the node's
/// receipts. Returns the key file, the API's URL and the receipt file.
async fn stand_in_hub(
    s: &Setup,
    leaf: u64,
    drop_62: bool,
    name: &str,
) -> Result<(String, String, std::path::PathBuf), Box<dyn std::error::Error>> {
    let committed = proof_json(3, &s.accounts, &[leaf, 1_000, 500], 0);
    commit(s, &committed, leaf + 1_500).await?;
    let (key_file, public_key) = keygen(&s.dir)?;
    let others = Others::new();
    let mut routes = validator_routes(&public_key, &committed);
    routes.extend(network_routes(&rounds(&others, drop_62)));
    routes.extend(others.routes());
    let api = serve(routes).await?;
    let receipts = s.dir.join(format!("{name}.receipts"));
    write_receipts(&receipts, s.accounts[0])?;
    Ok((key_file, api, receipts))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_finds_its_leaf_holding_what_its_acknowledged_results_earn() -> TestResult {
    let s = setup().await?;
    // Two of three acknowledged results agreed: 2 × 1,000 expected.
    let (key_file, api, receipts) = stand_in_hub(&s, 2 * REWARD, false, "exact").await?;

    let (found, output) = s.run_node_until(
        &key_file,
        &receipts,
        &api,
        "reward as expected from this node's acknowledged results",
    )?;
    assert!(found, "{output}");
    assert!(
        output.contains("own leaf is in the on-chain root"),
        "{output}"
    );
    assert!(!output.contains(r#""level":"ERROR""#), "{output}");
    // The receipts are folded into the eon's settled expectation.
    let text = std::fs::read_to_string(&receipts)?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[1]["kind"], "settled");
    assert_eq!(lines[1]["agreed"], 2);
    assert_eq!(lines[1]["expected"], (2 * REWARD).to_string());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_warns_loudly_when_the_hub_drops_a_result_and_underpays() -> TestResult {
    let s = setup().await?;
    // The hub dropped result 62 and credited only result 51.
    let (key_file, api, receipts) = stand_in_hub(&s, REWARD, true, "short").await?;

    let (found, output) = s.run_node_until(&key_file, &receipts, &api, "LEAF BELOW EXPECTED")?;
    assert!(found, "{output}");
    for loud in [
        "ACKNOWLEDGED RESULT NOT IN THE HUB'S RECORD: round 6: assignment 62 has no result",
        "REWARD BELOW EXPECTED: the hub credits 1000, this node's 2 agreeing acknowledged results earn 2000",
    ] {
        assert!(output.contains(loud), "{loud}: {output}");
    }
    assert!(!output.contains("reward as expected"), "{output}");
    Ok(())
}
