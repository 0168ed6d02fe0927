//! `verifier`: sends the operator's on-chain transactions (`submit_root` jobs);
//! `verifier deploy --fund <wei>` deploys the rewards contract on a dev chain;
//! `verifier guardian …` runs the guardian's commands (from the guardian's machine).

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use overlaps_shared::config::Env;
use overlaps_shared::eth;
use overlaps_shared::service;
use overlaps_verifier::config::VerifierConfig;
use overlaps_verifier::deploy::{self, DeployConfig};
use overlaps_verifier::guardian::{Guardian, GuardianConfig};
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
    /// The guardian's commands, signed with GUARDIAN_PRIVATE_KEY (keep that key off
    /// the hub: run them from the guardian's own machine).
    #[command(subcommand)]
    Guardian(GuardianCommand),
}

#[derive(Subcommand)]
enum GuardianCommand {
    /// Show the operator, the guardian, the window, the claimable and the pending root.
    Status,
    /// Cancel eon N's root while it is still in its challenge window.
    CancelRoot {
        /// The pending eon.
        #[arg(long)]
        eon: u64,
    },
    /// Make ADDRESS the only account that may commit roots.
    SetOperator {
        /// The new operator.
        #[arg(long)]
        address: String,
    },
    /// Hand the guardian role to ADDRESS (this key loses it).
    SetGuardian {
        /// The new guardian.
        #[arg(long)]
        address: String,
    },
}

async fn guardian(command: GuardianCommand) -> anyhow::Result<()> {
    let env = Env::from_process();
    overlaps_shared::telemetry::init(&overlaps_shared::config::LogConfig::from_env(&env)?);
    let config = GuardianConfig::from_env(&env)?;
    let guardian = Guardian::connect(&config).await?;
    let address = |text: &str| -> anyhow::Result<eth::Address> {
        let address = eth::parse_address(text).map_err(|e| anyhow::anyhow!("--address: {e}"))?;
        anyhow::ensure!(!address.is_zero(), "--address: the zero address");
        Ok(address)
    };
    match command {
        GuardianCommand::Status => println!("{}", guardian.status().await?),
        GuardianCommand::CancelRoot { eon } => {
            let tx = guardian.cancel_root(eon).await?;
            println!("cancelled the pending root of eon {eon} (transaction {tx})");
        }
        GuardianCommand::SetOperator { address: text } => {
            let operator = address(&text)?;
            let tx = guardian.set_operator(operator).await?;
            println!("operator is now {operator:?} (transaction {tx})");
        }
        GuardianCommand::SetGuardian { address: text } => {
            let next = address(&text)?;
            let tx = guardian.set_guardian(next).await?;
            println!("guardian is now {next:?} (transaction {tx})");
        }
    }
    Ok(())
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
        Some(Command::Guardian(command)) => guardian(command).await,
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
            worker::check_challenge_window(&client, config.chain.contract, &config.eon_clock)
                .await?;
            if config.common.app_env == overlaps_shared::config::AppEnv::Prod
                && std::env::var_os("GUARDIAN_PRIVATE_KEY").is_some()
            {
                // The guardian guards against this very host's operator key.
                tracing::warn!(
                    "GUARDIAN_PRIVATE_KEY is set on the hub: keep the guardian key on another \
                     machine, or whoever takes the hub takes the guardian too"
                );
            }
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
