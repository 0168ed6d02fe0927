//! `accounting`: consumes `close_round`, `close_eon` and `send_alert` jobs and keeps the tick
//! table's daily partitions (created ahead, dropped after `TICK_RETENTION_DAYS`).

use std::sync::Arc;

use overlaps_accounting::alerts::OperatorChannels;
use overlaps_accounting::alerts::channels::Sender;
use overlaps_accounting::config::AccountingConfig;
use overlaps_accounting::partitions;
use overlaps_accounting::worker::{self, Accounting};
use overlaps_shared::service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<AccountingConfig>().await?;
    // One process-wide TLS provider (ring) for HTTPS webhooks and SMTP over TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let alerts = &config.alerts;
    // The SSRF guard applies to every owner channel's HTTP delivery in production.
    let allow_private = config.common.app_env != overlaps_shared::config::AppEnv::Prod;
    let sender = Sender::new(
        alerts.smtp_url.as_deref(),
        &alerts.smtp_from,
        &alerts.public_url,
        allow_private,
    )?
    .with_provider_urls(alerts.provider_urls.clone());
    let operator = OperatorChannels {
        slack_hook: alerts.notification_hook_url.clone(),
        email: alerts.operator_email.clone(),
    };
    let upkeep = tokio::spawn(partitions::keep_tick_partitions(
        infra.clone(),
        config.partitions,
    ));
    let accounting = Arc::new(Accounting {
        infra,
        policy: config.close.clone(),
        eons: config.eons,
        sender,
        operator,
    });
    let working = tokio::spawn(worker::run(accounting));
    service::ready_until_shutdown("accounting").await?;
    upkeep.abort();
    working.abort();
    Ok(())
}
