//! `verifier`: sends the operator's on-chain transactions (`submit_root` jobs), and
//! `verifier deploy --fund <wei>` deploys the rewards contract on a dev chain.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use overlaps_shared::config::Env;
use overlaps_shared::eth;
use overlaps_shared::service;
use overlaps_verifier::config::VerifierConfig;
use overlaps_verifier::deploy::{self, DeployConfig};
use overlaps_verifier::worker::{self, Verifier};

#[derive(Parser)]
#[command(about = "Sends the operator's on-chain transactions")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Deploy OverlapsRewards (operator: OPERATOR_PRIVATE_KEY) on CHAIN_RPC_URL, fund
    /// it, and print `CONTRACT_ADDRESS=0x…`.
    Deploy {
        /// Wei sent to the contract after deployment.
        #[arg(long, default_value = "0")]
        fund: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Some(Command::Deploy { fund }) => {
            let config = DeployConfig::from_env(&Env::from_process())?;
            let funding = deploy::parse_wei(&fund)?;
            let address = deploy::deploy_and_fund(&config, funding).await?;
            println!("CONTRACT_ADDRESS={address:?}");
            Ok(())
        }
        None => {
            let (config, infra) = service::boot::<VerifierConfig>().await?;
            let client = eth::signer_client(&config.chain.rpc_url, &config.operator_key)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "CHAIN_RPC_URL={}: {e}",
                        overlaps_shared::redact::redact_url(&config.chain.rpc_url)
                    )
                })?;
            worker::check_operator(&client, config.chain.contract).await?;
            let verifier = Arc::new(Verifier::new(
                infra,
                client,
                config.chain.contract,
                config.policy.clone(),
                config.chain.confirmations,
            ));
            let working = tokio::spawn(worker::run(
                verifier,
                Duration::from_secs(config.sweep_seconds),
            ));
            service::ready_until_shutdown("verifier").await?;
            working.abort();
            Ok(())
        }
    }
}
