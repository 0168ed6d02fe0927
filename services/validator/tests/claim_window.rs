//! `validator claim` while the newest root is in its challenge window: it claims
//! against the claimable root only, says when the newest becomes claimable, and
//! refuses clearly (sending nothing) when no root is claimable yet.

mod claim_support;

use claim_support::{keygen, proof_json, run_claim, serve, setup, validator_routes};
use overlaps_shared::eth::{self, Middleware, U256};
use overlaps_shared::testing::TEST_CHALLENGE_BLOCKS;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root_of(proof: &serde_json::Value) -> Result<[u8; 32], Box<dyn std::error::Error>> {
    let text = proof["root"].as_str().unwrap_or_default();
    Ok(hex::decode(text.trim_start_matches("0x"))?
        .try_into()
        .map_err(|_| "root")?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_uses_only_the_claimable_root_and_says_when_the_newest_pays() -> TestResult {
    let s = setup().await?;
    let eon3 = proof_json(3, &s.accounts, &[4_200, 1_000, 500], 0);
    let eon4 = proof_json(4, &s.accounts, &[6_000, 1_000, 500], 0);
    let (key_file, public_key) = keygen(&s.dir)?;
    let mut routes = validator_routes(&public_key, &eon3);
    routes.extend(validator_routes(&public_key, &eon4));
    let api = serve(routes).await?;
    let rpc = s.chain.rpc_url();
    let address = s.contract.address();
    let payout = s.accounts[0];
    let nonce = || async {
        Ok::<_, Box<dyn std::error::Error>>(
            eth::read_client(&rpc)?
                .get_transaction_count(payout, None)
                .await?,
        )
    };

    // Eon 3 lands: nothing is claimable yet, and the node says until when.
    eth::send_call(
        s.contract
            .commit_root(3, root_of(&eon3)?, U256::from(5_700)),
    )
    .await?;
    let landed = eth::read_client(&rpc)?.get_block_number().await?.as_u64();
    let before = nonce().await?;
    let (ok, output) = tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, address))?;
    assert!(!ok, "{output}");
    let until = format!(
        "eon 3's root is in its challenge window until block {}",
        landed + TEST_CHALLENGE_BLOCKS
    );
    assert!(output.contains("no root is claimable yet"), "{output}");
    assert!(output.contains(&until), "{output}");
    assert_eq!(nonce().await?, before, "nothing was sent");

    // Its window over: paid.
    s.chain.mature().await?;
    let (ok, output) = tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, address))?;
    assert!(ok && output.contains("claimed 4200 wei (eon 3"), "{output}");

    // Eon 4 lands: the claim still proves against eon 3 (nothing new there) and
    // names the block from which eon 4 pays.
    eth::send_call(
        s.contract
            .commit_root(4, root_of(&eon4)?, U256::from(7_500)),
    )
    .await?;
    let landed = eth::read_client(&rpc)?.get_block_number().await?.as_u64();
    let (ok, output) = tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, address))?;
    assert!(ok, "{output}");
    assert!(
        output.contains("nothing to claim: 4200 wei already claimed (eon 3)"),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "eon 4's root is still in its challenge window until block {}",
            landed + TEST_CHALLENGE_BLOCKS
        )),
        "{output}"
    );
    assert_eq!(s.contract.claimed(payout).call().await?, U256::from(4_200));

    // Eon 4's window over: the difference is paid.
    s.chain.mature().await?;
    let (ok, output) = tokio::task::block_in_place(|| run_claim(&key_file, &api, &rpc, address))?;
    assert!(ok && output.contains("claimed 1800 wei (eon 4"), "{output}");
    assert!(!output.contains("challenge window"), "{output}");
    assert_eq!(s.contract.claimed(payout).call().await?, U256::from(6_000));
    Ok(())
}
