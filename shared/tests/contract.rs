//! `OverlapsRewards` on a real dev chain (anvil), with proofs built by the Rust
//! reward tree; and the committed artifact against what the source compiles to.

mod support;

use std::process::Command;

use overlaps_shared::eth::{self, Address, RewardsEvent, U256};
use support::{Tree, accounts, claim, commit, reverted_with, setup};

type TestResult = support::TestResult;

fn contracts_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

#[test]
fn committed_artifact_matches_the_source() -> TestResult {
    let out = Command::new("node")
        .args(["compile.js", "--print"])
        .current_dir(contracts_dir())
        .output()?;
    assert!(
        out.status.success(),
        "compile.js failed (run `npm ci` in shared/contracts):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let committed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        contracts_dir().join("artifacts/OverlapsRewards.json"),
    )?)?;
    for field in ["abi", "bytecode", "deployedBytecode", "compiler"] {
        assert_eq!(
            fresh[field], committed[field],
            "artifacts/OverlapsRewards.json is stale ({field}): run `node compile.js` in shared/contracts and commit it"
        );
    }
    Ok(())
}

#[test]
fn npm_run_check_compares_the_artifact_without_writing_it() -> TestResult {
    let artifact = contracts_dir().join("artifacts/OverlapsRewards.json");
    let before = std::fs::metadata(&artifact)?.modified()?;
    let out = Command::new("node")
        .args(["compile.js", "--check"])
        .current_dir(contracts_dir())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("matches the source"), "{stderr}");
    assert_eq!(std::fs::metadata(&artifact)?.modified()?, before, "written");
    Ok(())
}

#[tokio::test]
async fn rust_built_proofs_claim_exactly_once_per_cumulative_amount() -> TestResult {
    let s = setup(1_000_000).await?;
    let accounts = accounts(5);
    let tree = Tree::new(&accounts, &[100, 200, 300, 400, 500]);
    commit(&s, 1, &tree).await?;
    s.chain.mature().await?;
    assert_eq!(s.contract.eon().call().await?, 1);
    assert_eq!(s.contract.root().call().await?, tree.tree.root());

    for (i, account) in accounts.iter().enumerate() {
        let events = claim(&s, &tree, i).await?;
        assert_eq!(
            events,
            vec![RewardsEvent::Claimed {
                account: *account,
                amount: tree.amounts[i],
                cumulative: tree.amounts[i],
            }]
        );
        assert_eq!(eth::balance(&*s.operator, *account).await?, tree.amounts[i]);
    }
    // A second claim of the same cumulative amount pays nothing.
    let events = claim(&s, &tree, 2).await?;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        eth::balance(&*s.operator, accounts[2]).await?,
        U256::from(300)
    );

    // Next eon: cumulative amounts grow; a claim pays only the difference.
    let next = Tree::new(&accounts, &[150, 200, 1_000, 400, 500]);
    commit(&s, 2, &next).await?;
    s.chain.mature().await?;
    let events = claim(&s, &next, 2).await?;
    assert_eq!(
        events,
        vec![RewardsEvent::Claimed {
            account: accounts[2],
            amount: U256::from(700),
            cumulative: U256::from(1_000),
        }]
    );
    assert_eq!(
        eth::balance(&*s.operator, accounts[2]).await?,
        U256::from(1_000)
    );
    assert_eq!(s.contract.total_claimed().call().await?, U256::from(2_200));
    Ok(())
}

#[tokio::test]
async fn forged_proofs_and_other_leaves_revert() -> TestResult {
    let s = setup(1_000_000).await?;
    let accounts = accounts(4);
    let tree = Tree::new(&accounts, &[10, 20, 30, 40]);
    commit(&s, 1, &tree).await?;
    s.chain.mature().await?;

    // An inflated amount with a genuine proof.
    reverted_with(
        eth::send_call(s.contract.claim(accounts[0], U256::from(11), tree.proof(0))).await,
        "InvalidProof",
    );
    // A forged sibling.
    let mut forged = tree.proof(0);
    forged[0][0] ^= 1;
    reverted_with(
        eth::send_call(s.contract.claim(accounts[0], U256::from(10), forged)).await,
        "InvalidProof",
    );
    // Someone else's leaf (amount and proof) for my account.
    reverted_with(
        eth::send_call(
            s.contract
                .claim(accounts[0], tree.amounts[1], tree.proof(1)),
        )
        .await,
        "InvalidProof",
    );
    // A stranger's account with a real leaf's proof.
    let outsider = Address::from_low_u64_be(0xBAD);
    reverted_with(
        eth::send_call(s.contract.claim(outsider, tree.amounts[1], tree.proof(1))).await,
        "InvalidProof",
    );
    assert_eq!(s.contract.total_claimed().call().await?, U256::zero());
    Ok(())
}

#[tokio::test]
async fn only_the_operator_commits_increasing_eons_it_can_pay() -> TestResult {
    let s = setup(1_000).await?;
    let tree = Tree::new(&accounts(2), &[400, 500]);

    let as_stranger = eth::rewards(s.contract.address(), s.stranger.clone());
    reverted_with(
        eth::send_call(as_stranger.commit_root(1, tree.tree.root(), tree.total())).await,
        "NotOperator",
    );

    commit(&s, 5, &tree).await?;
    // Stale against the pending eon 5 too, not only the claimable one (none yet).
    reverted_with(commit(&s, 5, &tree).await, "StaleEon");
    reverted_with(commit(&s, 4, &tree).await, "StaleEon");

    // 1 000 held, nothing claimed: a total of 1 001 cannot be paid.
    let insolvent = Tree::new(&accounts(2), &[500, 501]);
    reverted_with(commit(&s, 6, &insolvent).await, "Insolvent");
    let exact = Tree::new(&accounts(2), &[500, 500]);
    commit(&s, 6, &exact).await?;

    // After funding, the bigger total goes through.
    let receipt = eth::fund(&s.operator, s.contract.address(), U256::from(1)).await?;
    let funded: Vec<_> = receipt.logs.iter().filter_map(eth::decode_event).collect();
    assert_eq!(
        funded,
        vec![RewardsEvent::Funded {
            from: s.operator.address(),
            amount: U256::from(1)
        }]
    );
    commit(&s, 7, &insolvent).await?;
    s.chain.mature().await?;
    assert_eq!(s.contract.eon().call().await?, 7);
    Ok(())
}

#[tokio::test]
async fn a_tree_summing_to_more_than_its_total_cannot_drain_the_contract() -> TestResult {
    let s = setup(10_000).await?;
    let accounts = accounts(2);
    let tree = Tree::new(&accounts, &[600, 600]);
    // The operator under-reports the total (1 000 < 1 200).
    eth::send_call(
        s.contract
            .commit_root(1, tree.tree.root(), U256::from(1_000)),
    )
    .await?;
    s.chain.mature().await?;
    claim(&s, &tree, 0).await?;
    reverted_with(claim(&s, &tree, 1).await, "ExceedsCommittedTotal");
    Ok(())
}
