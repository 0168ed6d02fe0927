//! `audit`: re-derives each closed eon from stored data (audit_eon jobs and a
//! sweep), stores a report per eon and alerts the operator on any mismatch.

use std::sync::Arc;
use std::time::Duration;

use overlaps_audit::config::AuditConfig;
use overlaps_audit::worker::{self, Auditor};
use overlaps_shared::service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, infra) = service::boot::<AuditConfig>().await?;
    let auditor = Arc::new(Auditor {
        infra,
        policy: config.policy.clone(),
    });
    let working = tokio::spawn(worker::run(
        auditor,
        Duration::from_secs(config.sweep_seconds),
    ));
    service::ready_until_shutdown("audit").await?;
    working.abort();
    Ok(())
}
