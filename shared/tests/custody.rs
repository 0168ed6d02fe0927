//! `OverlapsRewards`' custody on a real dev chain (anvil): roots wait out a
//! challenge window before claims may use them, the guardian cancels pending roots
//! and rotates the roles, and nobody else can.

mod support;

use overlaps_shared::eth::{self, Address, Custody, EthError, RewardsEvent, U256};
use overlaps_shared::testing::{TEST_CHALLENGE_BLOCKS, TestChain};
use support::{Tree, accounts, claim, commit, reverted_with, setup};

type TestResult = support::TestResult;

/// The contract's pending root: (eon, root, total, claimable at).
async fn pending(s: &support::Setup) -> Result<(u64, [u8; 32], U256, u64), EthError> {
    Ok(s.contract.pending().call().await?)
}

#[tokio::test]
async fn a_root_pays_only_after_its_window_and_until_then_the_old_root_pays() -> TestResult {
    let s = setup(1_000_000).await?;
    let accounts = accounts(2);
    let first = Tree::new(&accounts, &[100, 200]);
    let events = commit(&s, 1, &first).await?;
    let landed = s.block().await?;
    let claimable_at = landed + TEST_CHALLENGE_BLOCKS;
    assert_eq!(
        events,
        vec![RewardsEvent::RootCommitted {
            eon: 1,
            root: first.root(),
            total: first.total(),
            claimable_at,
        }]
    );
    assert_eq!(
        pending(&s).await?,
        (1, first.root(), first.total(), claimable_at)
    );
    // In its window there is no claimable root at all.
    assert_eq!(s.contract.eon().call().await?, 0);
    reverted_with(claim(&s, &first, 0).await, "NoRoot");
    // One block short of the end (the refused claim mined none).
    s.chain.mine(claimable_at - s.block().await? - 1).await?;
    assert_eq!(s.contract.eon().call().await?, 0);
    // The window ends: the views report it claimable without any transaction.
    s.chain.mine(1).await?;
    assert_eq!(s.block().await?, claimable_at);
    assert_eq!(s.contract.eon().call().await?, 1);
    assert_eq!(s.contract.root().call().await?, first.root());
    assert_eq!(s.contract.committed_total().call().await?, first.total());
    assert_eq!(pending(&s).await?, (0, [0; 32], U256::zero(), 0));
    claim(&s, &first, 0).await?;
    assert_eq!(
        eth::balance(&*s.operator, accounts[0]).await?,
        U256::from(100u64)
    );

    // Eon 2 is pending: claims still pay against eon 1, never against eon 2.
    let second = Tree::new(&accounts, &[150, 300]);
    commit(&s, 2, &second).await?;
    reverted_with(claim(&s, &second, 0).await, "InvalidProof");
    let events = claim(&s, &first, 1).await?;
    assert_eq!(
        events,
        vec![RewardsEvent::Claimed {
            account: accounts[1],
            amount: U256::from(200u64),
            cumulative: U256::from(200u64),
        }]
    );
    assert_eq!(s.contract.eon().call().await?, 1);
    s.chain.mature().await?;
    assert_eq!(s.contract.eon().call().await?, 2);
    claim(&s, &second, 0).await?;
    claim(&s, &second, 1).await?;
    assert_eq!(
        eth::balance(&*s.operator, accounts[0]).await?,
        U256::from(150u64)
    );
    assert_eq!(
        eth::balance(&*s.operator, accounts[1]).await?,
        U256::from(300u64)
    );
    // The old root no longer proves anything.
    reverted_with(claim(&s, &first, 0).await, "InvalidProof");
    Ok(())
}

#[tokio::test]
async fn a_cancelled_root_never_pays_and_the_operator_commits_the_eon_again() -> TestResult {
    let s = setup(1_000_000).await?;
    let accounts = accounts(2);
    // A root that gives everything to one account (a stolen operator key, say).
    let bad = Tree::new(&accounts, &[1_000_000, 0]);
    commit(&s, 1, &bad).await?;
    reverted_with(
        eth::send_call(s.as_guardian().cancel_root(2)).await,
        "NoPendingRoot",
    );
    let receipt = eth::send_call(s.as_guardian().cancel_root(1)).await?;
    let events: Vec<_> = receipt.logs.iter().filter_map(eth::decode_event).collect();
    assert_eq!(
        events,
        vec![RewardsEvent::RootCancelled {
            eon: 1,
            root: bad.root(),
        }]
    );
    assert_eq!(pending(&s).await?.0, 0);
    // Cancelled twice: nothing is pending any more.
    reverted_with(
        eth::send_call(s.as_guardian().cancel_root(1)).await,
        "NoPendingRoot",
    );
    s.chain.mine(2 * TEST_CHALLENGE_BLOCKS).await?;
    assert_eq!(s.contract.eon().call().await?, 0);
    reverted_with(claim(&s, &bad, 0).await, "NoRoot");

    // The operator commits eon 1 again, rightly this time.
    let good = Tree::new(&accounts, &[400, 600]);
    commit(&s, 1, &good).await?;
    s.chain.mature().await?;
    assert_eq!(s.contract.eon().call().await?, 1);
    reverted_with(claim(&s, &bad, 0).await, "InvalidProof");
    claim(&s, &good, 0).await?;
    claim(&s, &good, 1).await?;
    assert_eq!(
        s.contract.total_claimed().call().await?,
        U256::from(1_000u64)
    );
    Ok(())
}

#[tokio::test]
async fn a_matured_root_cannot_be_cancelled() -> TestResult {
    let s = setup(1_000_000).await?;
    let tree = Tree::new(&accounts(2), &[10, 20]);
    commit(&s, 1, &tree).await?;
    s.chain.mature().await?;
    // Matured but not yet promoted by any transaction: still refused.
    reverted_with(
        eth::send_call(s.as_guardian().cancel_root(1)).await,
        "AlreadyClaimable",
    );
    // Promoted (a claim), then a newer root pending: eon 1 still refused.
    claim(&s, &tree, 0).await?;
    commit(&s, 2, &tree).await?;
    reverted_with(
        eth::send_call(s.as_guardian().cancel_root(1)).await,
        "AlreadyClaimable",
    );
    assert_eq!(s.contract.eon().call().await?, 1);
    assert_eq!(pending(&s).await?.0, 2);
    Ok(())
}

#[tokio::test]
async fn a_newer_commit_replaces_a_pending_root_and_restarts_the_window() -> TestResult {
    let s = setup(1_000_000).await?;
    let accounts = accounts(2);
    let first = Tree::new(&accounts, &[100, 200]);
    commit(&s, 1, &first).await?;
    let first_claimable_at = pending(&s).await?.3;
    s.chain.mine(TEST_CHALLENGE_BLOCKS - 3).await?;
    let second = Tree::new(&accounts, &[300, 400]);
    commit(&s, 2, &second).await?;
    let second_claimable_at = s.block().await? + TEST_CHALLENGE_BLOCKS;
    assert_eq!(
        pending(&s).await?,
        (2, second.root(), second.total(), second_claimable_at)
    );
    assert!(second_claimable_at > first_claimable_at);
    // Past eon 1's end but inside eon 2's window: eon 1 was replaced, never claimable.
    s.chain.mine(first_claimable_at - s.block().await?).await?;
    assert_eq!(s.contract.eon().call().await?, 0);
    reverted_with(claim(&s, &first, 0).await, "NoRoot");
    // Eon 1 cannot come back: the eon must grow past the pending one.
    reverted_with(commit(&s, 1, &first).await, "StaleEon");
    s.chain.mine(second_claimable_at - s.block().await?).await?;
    assert_eq!(s.contract.eon().call().await?, 2);
    claim(&s, &second, 1).await?;
    assert_eq!(
        eth::balance(&*s.operator, accounts[1]).await?,
        U256::from(400u64)
    );
    Ok(())
}

#[tokio::test]
async fn only_the_guardian_cancels_and_rotates() -> TestResult {
    let s = setup(1_000_000).await?;
    let tree = Tree::new(&accounts(2), &[10, 20]);
    commit(&s, 1, &tree).await?;
    let newcomer = s.stranger.address();
    for who in [&s.operator, &s.stranger] {
        let contract = s.as_client(who);
        reverted_with(eth::send_call(contract.cancel_root(1)).await, "NotGuardian");
        reverted_with(
            eth::send_call(contract.set_operator(newcomer)).await,
            "NotGuardian",
        );
        reverted_with(
            eth::send_call(contract.set_guardian(newcomer)).await,
            "NotGuardian",
        );
    }
    reverted_with(
        eth::send_call(s.as_guardian().set_operator(Address::zero())).await,
        "ZeroOperator",
    );
    reverted_with(
        eth::send_call(s.as_guardian().set_guardian(Address::zero())).await,
        "ZeroGuardian",
    );
    assert_eq!(s.contract.operator().call().await?, s.operator.address());
    assert_eq!(s.contract.guardian().call().await?, s.guardian.address());
    assert_eq!(pending(&s).await?.0, 1);
    Ok(())
}

#[tokio::test]
async fn a_rotated_operator_commits_and_the_old_one_is_refused() -> TestResult {
    let s = setup(1_000_000).await?;
    let tree = Tree::new(&accounts(2), &[10, 20]);
    let successor = eth::signer_client(&s.chain.rpc_url(), &s.chain.key(2)).await?;
    let receipt = eth::send_call(s.as_guardian().set_operator(successor.address())).await?;
    let events: Vec<_> = receipt.logs.iter().filter_map(eth::decode_event).collect();
    assert_eq!(
        events,
        vec![RewardsEvent::OperatorChanged {
            previous: s.operator.address(),
            current: successor.address(),
        }]
    );
    reverted_with(commit(&s, 1, &tree).await, "NotOperator");
    eth::send_call(
        s.as_client(&successor)
            .commit_root(1, tree.root(), tree.total()),
    )
    .await?;
    assert_eq!(pending(&s).await?.0, 1);

    // The guardian hands over its role: the old one can no longer cancel.
    let next_guardian = eth::signer_client(&s.chain.rpc_url(), &s.chain.key(3)).await?;
    let receipt = eth::send_call(s.as_guardian().set_guardian(next_guardian.address())).await?;
    let events: Vec<_> = receipt.logs.iter().filter_map(eth::decode_event).collect();
    assert_eq!(
        events,
        vec![RewardsEvent::GuardianChanged {
            previous: s.guardian.address(),
            current: next_guardian.address(),
        }]
    );
    reverted_with(
        eth::send_call(s.as_guardian().cancel_root(1)).await,
        "NotGuardian",
    );
    eth::send_call(s.as_client(&next_guardian).cancel_root(1)).await?;
    assert_eq!(pending(&s).await?.0, 0);
    Ok(())
}

#[tokio::test]
async fn deployment_refuses_zero_roles_and_zero_or_huge_periods() -> TestResult {
    let chain = TestChain::start()?;
    let good = Custody {
        operator: chain.key(0).address(),
        guardian: chain.guardian().address(),
        challenge_blocks: 3,
        unbonding_seconds: 60,
    };
    let cases = [
        (
            Custody {
                operator: Address::zero(),
                ..good
            },
            "ZeroOperator",
        ),
        (
            Custody {
                guardian: Address::zero(),
                ..good
            },
            "ZeroGuardian",
        ),
        (
            Custody {
                challenge_blocks: 0,
                ..good
            },
            "InvalidChallengeBlocks",
        ),
        (
            Custody {
                challenge_blocks: u64::from(u32::MAX) + 1,
                ..good
            },
            "InvalidChallengeBlocks",
        ),
        (
            Custody {
                unbonding_seconds: 0,
                ..good
            },
            "InvalidUnbondingSeconds",
        ),
        (
            Custody {
                unbonding_seconds: u64::from(u32::MAX) + 1,
                ..good
            },
            "InvalidUnbondingSeconds",
        ),
    ];
    for (custody, error) in cases {
        let result = chain.deploy_custody(U256::zero(), custody).await;
        let shown = format!("{:?}", result.err());
        assert!(shown.contains(error), "{error}: {shown}");
    }
    let address = chain.deploy_custody(U256::zero(), good).await?;
    let client = eth::signer_client(&chain.rpc_url(), &chain.key(0)).await?;
    let contract = eth::rewards(address, client);
    assert_eq!(contract.challenge_blocks().call().await?, 3);
    assert_eq!(contract.unbonding_seconds().call().await?, 60);
    assert_eq!(contract.guardian().call().await?, good.guardian);
    Ok(())
}
