//! `validator`: the validator node. It connects to a hub over WebSocket, proves its
//! identity with Ed25519, checks websites when asked and returns signed results.

mod check;
mod claim;
mod client;
mod config;
mod hub_api;
mod keys;
mod receipts;
mod reward_check;
mod stake;

use overlaps_shared::dev_values::{DevValue, refuse_in_prod};
use std::sync::{Arc, Mutex};

use clap::Parser;
use overlaps_shared::config::{Env, LogConfig};
use overlaps_shared::{shutdown, telemetry};
use tokio::sync::watch;

use crate::check::Checker;
use crate::client::Node;
use crate::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Same .env handling as the hub services; flags override the environment.
    let env = Env::from_process();
    let cli = Cli::parse();
    telemetry::init(&LogConfig::from_env(&env)?);
    // In production a node refuses the example payout address and anvil's keys.
    let app_env = env.optional("APP_ENV", overlaps_shared::config::AppEnv::Dev)?;
    refuse_in_prod(
        &env,
        app_env,
        &[DevValue::PayoutAddress, DevValue::PayoutPrivateKey],
    )?;
    let flag_payout = match &cli.command {
        Command::Run(args) => Some(args.payout_address),
        Command::Stake(args) => Some(args.payout_address),
        _ => None,
    };
    if let Some(address) = flag_payout {
        // --payout-address may bypass the environment.
        let address = address.to_string();
        let pairs = Env::from_pairs([(DevValue::PayoutAddress.var(), address.as_str())]);
        refuse_in_prod(&pairs, app_env, &[DevValue::PayoutAddress])?;
    }
    // One process-wide TLS provider (ring) for HTTPS checks and wss:// hubs.
    let _ = rustls::crypto::ring::default_provider().install_default();

    match cli.command {
        Command::Keygen { key_file, force } => {
            let key = keys::write_new(&key_file, force)?;
            println!("{}", key.public_key());
            tracing::info!(key_file = %key_file.display(), public_key = %key.public_key(), "key written");
        }
        Command::Claim(args) => {
            let key = keys::read(&args.key_file)?;
            let payout_key = payout_key(&env, args.payout_key_file.as_deref())?;
            let chain = overlaps_shared::eth::settings::ChainSettings::from_env(&env, app_env)?;
            let api = hub_api::HubApi::new(&args.api_url);
            let public_key = key.public_key().to_string();
            let claim::ClaimOutcome {
                proof,
                claimed,
                pending,
            } = claim::claim(
                &api,
                &public_key,
                &chain.rpc_url,
                chain.contract,
                &payout_key,
            )
            .await?;
            match claimed {
                claim::Claimed::Paid { amount, tx_hash } => {
                    println!(
                        "claimed {amount} wei (eon {}, cumulative {}) in {tx_hash}",
                        proof.eon, proof.cumulative
                    );
                }
                claim::Claimed::NothingToClaim => {
                    println!(
                        "nothing to claim: {} wei already claimed (eon {})",
                        proof.cumulative, proof.eon
                    );
                }
            }
            if let Some(pending) = pending {
                println!("{pending}");
            }
        }
        Command::Stake(args) => {
            let key = keys::read(&args.key_file)?;
            let payout_key = payout_key(&env, args.payout_key_file.as_deref())?;
            let chain = overlaps_shared::eth::settings::ChainSettings::from_env(&env, app_env)?;
            let payout = overlaps_shared::eth::Address::from_slice(args.payout_address.as_bytes());
            let public_key = key.public_key();
            let staked = stake::stake(
                &chain.rpc_url,
                chain.contract,
                public_key.to_bytes(),
                payout,
                &payout_key,
                args.amount,
            )
            .await?;
            println!(
                "staked {} wei ({}) on key {public_key} from {} in {}; its position on the key is now {} wei ({})",
                staked.amount,
                stake::show_eth(staked.amount),
                args.payout_address,
                staked.tx_hash,
                staked.total,
                stake::show_eth(staked.total),
            );
        }
        Command::Unstake(args) => {
            let key = keys::read(&args.key_file)?;
            let payout_key = payout_key(&env, args.payout_key_file.as_deref())?;
            let chain = overlaps_shared::eth::settings::ChainSettings::from_env(&env, app_env)?;
            let public_key = key.public_key();
            let outcome = stake::unstake(
                &chain.rpc_url,
                chain.contract,
                public_key.to_bytes(),
                &payout_key,
            )
            .await?;
            println!("key {public_key}: {outcome}");
        }
        Command::Run(args) => {
            let key = keys::read(&args.key_file)?;
            let public_key = key.public_key().to_string();
            if args.allow_private_targets {
                tracing::warn!("private targets allowed: for dev networks only");
            }
            let checker = Checker::new(
                args.max_redirects,
                usize::try_from(args.keyword_scan_kib).unwrap_or(64) * 1024,
                args.allow_private_targets,
            )?
            .with_dns_server(args.dns_server);
            let receipts_path = args.receipts_path();
            let journal =
                receipts::ReceiptJournal::open(&receipts_path, &args.payout_address.to_string())
                    .map_err(|e| {
                        anyhow::anyhow!("VALIDATOR_RECEIPTS_FILE (--receipts-file): {e}")
                    })?;
            let receipts = Arc::new(Mutex::new(journal));
            let node = Node {
                hub_url: args.hub_url.clone(),
                key,
                payout: args.payout_address,
                checker,
                max_concurrent_checks: usize::try_from(args.max_concurrent_checks).unwrap_or(32),
                receipts: Arc::clone(&receipts),
                source_address: args.source_address,
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            // The own-leaf watch needs the chain; without CONTRACT_ADDRESS it is off.
            if env.raw("CONTRACT_ADDRESS").is_some() {
                let chain = overlaps_shared::eth::settings::ChainSettings::from_env(&env, app_env)?;
                let payout =
                    overlaps_shared::eth::Address::from_slice(args.payout_address.as_bytes());
                let watch = reward_check::RewardWatch::new(
                    hub_api::HubApi::new(&args.api_url),
                    public_key,
                    payout,
                    chain.rpc_url,
                    chain.contract,
                    receipts,
                );
                tokio::spawn(watch.run(
                    std::time::Duration::from_secs(args.leaf_check_seconds),
                    stop_rx.clone(),
                ));
            } else {
                tracing::info!("CONTRACT_ADDRESS is not set: the own leaf is not checked on chain");
            }
            let running = tokio::spawn(node.run(stop_rx));
            // Caught from here on: a signal sent right after `ready` stops the node cleanly.
            let stopping = shutdown::ShutdownSignal::listen()?;
            tracing::info!(
                service = "validator",
                hub = %args.hub_url,
                receipts = %receipts_path.display(),
                public_key = %keys::read(&args.key_file)?.public_key(),
                "ready"
            );
            stopping.received().await;
            let _ = stop_tx.send(true);
            let _ = running.await;
            tracing::info!(service = "validator", "stopped");
        }
    }
    Ok(())
}

/// The payout account's key: from `file` when given, else `PAYOUT_PRIVATE_KEY`.
fn payout_key(
    env: &Env,
    file: Option<&std::path::Path>,
) -> anyhow::Result<overlaps_shared::eth::PrivateKey> {
    Ok(match file {
        Some(path) => std::fs::read_to_string(path)?
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => env.required("PAYOUT_PRIVATE_KEY")?,
    })
}
