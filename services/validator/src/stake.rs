//! `validator stake` and `validator unstake`: ETH staked on the rewards contract,
//! bound to this node's Ed25519 key. Each address holds its own position on a key
//! and the hub counts only the payout address's, so `stake` refuses any other
//! sender before anything is sent (other addresses' positions on the key do not
//! matter); `unstake` takes back the sender's own position, after the contract's
//! unbonding delay.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use overlaps_shared::eth::{
    self, Address, BlockNumber, EthError, Middleware, PrivateKey, RewardsEvent, U256,
};
use overlaps_shared::signing::PayoutAddress;

/// Why a stake or unstake was not sent.
#[derive(Debug, thiserror::Error)]
pub enum StakeError {
    /// The sending key is not the node's payout account.
    #[error(
        "the Ethereum key's address {} is not the payout address {}: the hub counts a stake \
         only from the key's payout address, so it must be sent from that account (give its \
         key in PAYOUT_PRIVATE_KEY or --payout-key-file, or run the node with \
         --payout-address {})",
        show_address(.sender), show_address(.payout), show_address(.sender)
    )]
    NotPayoutAccount {
        /// The key's address.
        sender: Address,
        /// The node's payout address.
        payout: Address,
    },
    /// Nothing to send.
    #[error("--amount must be more than 0 wei")]
    ZeroAmount,
    /// The position is unbonding: nothing can be added until it is paid out.
    #[error(
        "the stake on key {key} is unbonding until {}: it cannot be added to; run \
         `validator unstake` from then on to take it back, then stake again",
        show_time(*.unlock_at)
    )]
    Unbonding {
        /// The validator's public key (hex).
        key: String,
        /// When `unstake` pays (Unix seconds).
        unlock_at: u64,
    },
    /// The sender holds no position on this key.
    #[error("nothing is staked on key {key} from {}", show_address(.staker))]
    NoStake {
        /// The validator's public key (hex).
        key: String,
        /// The address whose position was looked for.
        staker: Address,
    },
    /// The transaction went through but its event is missing.
    #[error("transaction {0} emitted no {1} event")]
    NoEvent(String, &'static str),
    /// The chain.
    #[error(transparent)]
    Eth(#[from] EthError),
}

/// A stake that went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staked {
    /// Wei added by this transaction.
    pub amount: U256,
    /// The sender's position on the key afterwards.
    pub total: U256,
    /// The transaction.
    pub tx_hash: String,
}

/// What `validator unstake` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unstake {
    /// Unbonding started: the stake counts until `unlock_at`, and pays from then on.
    Requested {
        /// The whole stake.
        amount: U256,
        /// When `unstake` pays (Unix seconds, block time).
        unlock_at: u64,
        /// The transaction.
        tx_hash: String,
    },
    /// Still unbonding: nothing was sent.
    Waiting {
        /// The whole stake.
        amount: U256,
        /// When `unstake` pays (Unix seconds, block time).
        unlock_at: u64,
        /// The latest block's time.
        now: u64,
    },
    /// Paid back to the staker; the position is gone.
    Paid {
        /// What was paid.
        amount: U256,
        /// Who was paid.
        staker: Address,
        /// The transaction.
        tx_hash: String,
    },
}

/// An address in its EIP-55 checksummed form, as `--payout-address` takes it.
pub fn show_address(address: &Address) -> String {
    PayoutAddress::from_bytes(address.as_bytes())
        .map_or_else(|_| format!("{address:?}"), |a| a.to_string())
}

/// A Unix time as `2026-12-05 10:00:00 UTC`.
pub fn show_time(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .map_or_else(
            || format!("Unix time {unix}"),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// `wei` in ETH, exactly (`1.5 ETH`).
pub fn show_eth(wei: U256) -> String {
    let unit = U256::exp10(18);
    let (whole, fraction) = (wei / unit, wei % unit);
    if fraction.is_zero() {
        return format!("{whole} ETH");
    }
    let digits = format!("{:0>18}", fraction.to_string());
    format!("{whole}.{} ETH", digits.trim_end_matches('0'))
}

fn decoded(receipt: &eth::TransactionReceipt) -> Vec<RewardsEvent> {
    receipt.logs.iter().filter_map(eth::decode_event).collect()
}

/// Stakes `amount` wei on `key` from `sender`, which must be `payout`.
pub async fn stake(
    rpc_url: &str,
    contract: Address,
    key: [u8; 32],
    payout: Address,
    sender: &PrivateKey,
    amount: U256,
) -> Result<Staked, StakeError> {
    // Before any connection: a stake from another account would never count.
    if sender.address() != payout {
        return Err(StakeError::NotPayoutAccount {
            sender: sender.address(),
            payout,
        });
    }
    if amount.is_zero() {
        return Err(StakeError::ZeroAmount);
    }
    let client = eth::signer_client(rpc_url, sender).await?;
    let rewards = eth::rewards(contract, Arc::clone(&client));
    // Only the payout address's own position: other addresses' positions on the key
    // are separate and never stand in the way. The contract refuses adding to an
    // unbonding position too; checked first to say why in plain words.
    let (_, unlock_at) = rewards
        .stake_of(key, payout)
        .call()
        .await
        .map_err(EthError::from)?;
    if unlock_at != 0 {
        return Err(StakeError::Unbonding {
            key: hex::encode(key),
            unlock_at,
        });
    }
    let receipt = eth::send_call(rewards.stake(key).value(amount)).await?;
    let tx_hash = format!("{:?}", receipt.transaction_hash);
    decoded(&receipt)
        .into_iter()
        .find_map(|event| match event {
            RewardsEvent::Staked { amount, total, .. } => Some(Staked {
                amount,
                total,
                tx_hash: tx_hash.clone(),
            }),
            _ => None,
        })
        .ok_or(StakeError::NoEvent(tx_hash, "Staked"))
}

/// Asks for `sender`'s own position on `key` back: starts unbonding when none was
/// requested, pays it out once unbonding is over (by the latest block's time, as
/// the contract counts), and otherwise sends nothing.
pub async fn unstake(
    rpc_url: &str,
    contract: Address,
    key: [u8; 32],
    sender: &PrivateKey,
) -> Result<Unstake, StakeError> {
    let client = eth::signer_client(rpc_url, sender).await?;
    let rewards = eth::rewards(contract, Arc::clone(&client));
    let (amount, unlock_at) = rewards
        .stake_of(key, sender.address())
        .call()
        .await
        .map_err(EthError::from)?;
    // `stake` refuses zero, so a position without an amount does not exist.
    if amount.is_zero() {
        return Err(StakeError::NoStake {
            key: hex::encode(key),
            staker: sender.address(),
        });
    }
    if unlock_at == 0 {
        let receipt = eth::send_call(rewards.request_unstake(key)).await?;
        let tx_hash = format!("{:?}", receipt.transaction_hash);
        return decoded(&receipt)
            .into_iter()
            .find_map(|event| match event {
                RewardsEvent::UnstakeRequested {
                    amount, unlock_at, ..
                } => Some(Unstake::Requested {
                    amount,
                    unlock_at,
                    tx_hash: tx_hash.clone(),
                }),
                _ => None,
            })
            .ok_or(StakeError::NoEvent(tx_hash, "UnstakeRequested"));
    }
    let now = client
        .get_block(BlockNumber::Latest)
        .await
        .map_err(|err| EthError::Rpc(overlaps_shared::redact::strip_urls(&err.to_string())))?
        .map(|block| block.timestamp.low_u64())
        .unwrap_or_default();
    if now < unlock_at {
        return Ok(Unstake::Waiting {
            amount,
            unlock_at,
            now,
        });
    }
    let receipt = eth::send_call(rewards.unstake(key)).await?;
    let tx_hash = format!("{:?}", receipt.transaction_hash);
    decoded(&receipt)
        .into_iter()
        .find_map(|event| match event {
            RewardsEvent::Unstaked { amount, staker, .. } => Some(Unstake::Paid {
                amount,
                staker,
                tx_hash: tx_hash.clone(),
            }),
            _ => None,
        })
        .ok_or(StakeError::NoEvent(tx_hash, "Unstaked"))
}

impl std::fmt::Display for Unstake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unstake::Requested {
                amount,
                unlock_at,
                tx_hash,
            } => write!(
                f,
                "unstake requested for {amount} wei ({}) in {tx_hash}: the hub counts the stake \
                 until {}, and it can be paid out from then on; run `validator unstake` again \
                 then",
                show_eth(*amount),
                show_time(*unlock_at)
            ),
            Unstake::Waiting {
                amount,
                unlock_at,
                now,
            } => write!(
                f,
                "the stake of {amount} wei ({}) is unbonding until {} (chain time now {}): \
                 nothing sent; run `validator unstake` again then",
                show_eth(*amount),
                show_time(*unlock_at),
                show_time(*now)
            ),
            Unstake::Paid {
                amount,
                staker,
                tx_hash,
            } => write!(
                f,
                "unstaked: {amount} wei ({}) paid to {} in {tx_hash}",
                show_eth(*amount),
                show_address(staker)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_in_eth_exactly() {
        assert_eq!(show_eth(U256::exp10(18)), "1 ETH");
        assert_eq!(show_eth(U256::exp10(17) * 15), "1.5 ETH");
        assert_eq!(show_eth(U256::from(1)), "0.000000000000000001 ETH");
        assert_eq!(show_eth(U256::zero()), "0 ETH");
    }

    #[test]
    fn times_show_in_utc() {
        assert_eq!(show_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(show_time(u64::MAX), format!("Unix time {}", u64::MAX));
    }
}
