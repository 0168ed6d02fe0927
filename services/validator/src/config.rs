//! Command line and settings of the validator node. Every flag can also come from
//! the environment (or `.env`) under the name shown.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use overlaps_shared::signing::PayoutAddress;

/// The Overlaps validator node.
#[derive(Debug, Parser)]
#[command(name = "validator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new Ed25519 key file (mode 0600).
    Keygen {
        /// Where to write it.
        #[arg(long, env = "VALIDATOR_KEY_FILE", default_value = "validator.key")]
        key_file: PathBuf,
        /// Replace an existing key file (its identity and unclaimed rewards are lost).
        #[arg(long)]
        force: bool,
    },
    /// Connect to the hub and serve checks until stopped.
    Run(RunArgs),
    /// Fetch this node's latest proof from the hub, check it against the on-chain
    /// root, and claim the unclaimed reward (reads CHAIN_RPC_URL, CONTRACT_ADDRESS).
    Claim(ClaimArgs),
    /// Stake ETH on this node's key from its payout account, which the hub counts
    /// for admission (reads CHAIN_RPC_URL, CONTRACT_ADDRESS).
    Stake(StakeArgs),
    /// Take this node's stake back: starts the unbonding, or pays the stake out once
    /// the unbonding is over (reads CHAIN_RPC_URL, CONTRACT_ADDRESS).
    Unstake(UnstakeArgs),
}

/// Settings of `validator stake`.
#[derive(Debug, Clone, Args)]
pub struct StakeArgs {
    /// The key file written by `validator keygen` (the key the stake is bound to).
    #[arg(long, env = "VALIDATOR_KEY_FILE", default_value = "validator.key")]
    pub key_file: PathBuf,
    /// The node's EIP-55 payout address: the stake must come from it.
    #[arg(long, env = "PAYOUT_ADDRESS")]
    pub payout_address: PayoutAddress,
    /// Wei to stake (an integer in the chain's smallest unit, as MIN_STAKE_WEI).
    #[arg(long, value_parser = parse_wei)]
    pub amount: overlaps_shared::eth::U256,
    /// A file holding the payout account's private key (hex); else PAYOUT_PRIVATE_KEY.
    #[arg(long)]
    pub payout_key_file: Option<PathBuf>,
}

/// Settings of `validator unstake`.
#[derive(Debug, Clone, Args)]
pub struct UnstakeArgs {
    /// The key file written by `validator keygen` (the key the stake is bound to).
    #[arg(long, env = "VALIDATOR_KEY_FILE", default_value = "validator.key")]
    pub key_file: PathBuf,
    /// A file holding the staker's private key (hex); else PAYOUT_PRIVATE_KEY.
    #[arg(long)]
    pub payout_key_file: Option<PathBuf>,
}

/// Settings of `validator claim`.
#[derive(Debug, Clone, Args)]
pub struct ClaimArgs {
    /// The key file written by `validator keygen` (identifies the node to the hub).
    #[arg(long, env = "VALIDATOR_KEY_FILE", default_value = "validator.key")]
    pub key_file: PathBuf,
    /// The hub's HTTP API.
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: url::Url,
    /// A file holding the payout account's private key (hex); else PAYOUT_PRIVATE_KEY.
    #[arg(long)]
    pub payout_key_file: Option<PathBuf>,
}

/// Settings of `validator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The key file written by `validator keygen`.
    #[arg(long, env = "VALIDATOR_KEY_FILE", default_value = "validator.key")]
    pub key_file: PathBuf,
    /// The hub's WebSocket endpoint.
    #[arg(long, env = "HUB_URL", default_value = "ws://127.0.0.1:8080/ws/validator", value_parser = parse_hub_url)]
    pub hub_url: url::Url,
    /// EIP-55 checksummed Ethereum address rewards are paid to.
    #[arg(long, env = "PAYOUT_ADDRESS")]
    pub payout_address: PayoutAddress,
    /// Checks run at once at most.
    #[arg(long, env = "VALIDATOR_MAX_CONCURRENT_CHECKS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_checks: u32,
    /// How much of a body is searched for the keyword, in KiB.
    #[arg(long, env = "VALIDATOR_KEYWORD_SCAN_KIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_240))]
    pub keyword_scan_kib: u32,
    /// Redirects followed at most.
    #[arg(long, env = "VALIDATOR_MAX_REDIRECTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_redirects: u32,
    /// Allow checking loopback, private and link-local addresses (dev networks only).
    #[arg(long, env = "VALIDATOR_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// The DNS server (`ip:port`) asked in `dns://` record checks; default: the
    /// system's resolvers (`/etc/resolv.conf`).
    #[arg(long, env = "VALIDATOR_DNS_SERVER")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// The hub's HTTP API, where the node fetches its proof to check its own leaf.
    #[arg(long, env = "API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: url::Url,
    /// Seconds between checks of the own leaf against the on-chain root (only when
    /// CONTRACT_ADDRESS is set).
    #[arg(long, env = "LEAF_CHECK_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub leaf_check_seconds: u64,
    /// Where the node records the results the hub acknowledged, to compute the reward
    /// it expects (default: the key file's path with `.receipts` appended).
    #[arg(long, env = "VALIDATOR_RECEIPTS_FILE")]
    pub receipts_file: Option<PathBuf>,
    /// The local address the hub connection comes from (default: the system's
    /// choice). The hub spreads each quorum over networks (/24, /48) by this address.
    #[arg(long, env = "VALIDATOR_SOURCE_ADDRESS")]
    pub source_address: Option<std::net::IpAddr>,
}

impl RunArgs {
    /// The receipt file: as given, or next to the key file.
    pub fn receipts_path(&self) -> PathBuf {
        self.receipts_file.clone().unwrap_or_else(|| {
            let mut path = self.key_file.clone().into_os_string();
            path.push(".receipts");
            PathBuf::from(path)
        })
    }
}

fn parse_wei(value: &str) -> Result<overlaps_shared::eth::U256, String> {
    overlaps_shared::money::parse(value.trim())
        .map_err(|_| "expected an integer amount of wei (1 ETH = 1000000000000000000)".into())
}

fn parse_hub_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err("expected a ws:// or wss:// URL".into());
    }
    Ok(url)
}
