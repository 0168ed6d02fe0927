//! Keeping this instance's validators online: every heartbeat, one refresh for all
//! of them (a call per thousand) instead of one Redis transaction per connection.
//! At 50,000 connections the per-connection refresh was most of Redis' commands
//! (five per connection every heartbeat).
//!
//! A refresh only moves the expiry of validators still online. One whose presence
//! lapsed while its socket is still here (Redis unreachable for longer than the
//! TTL) is announced again; one that left is not, because its session leaves
//! [`Sessions`](crate::hub::Sessions) before it withdraws its presence. The
//! refresh and the withdraw travel on the same Redis connection, in order.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use crate::hub::Hub;

/// Refreshes this instance's validators every heartbeat, until the task is aborted.
pub(crate) async fn refresh_forever(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(hub.config.limits.heartbeat);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        refresh_once(&hub).await;
    }
}

/// One refresh of every validator connected here; announces again those whose
/// presence lapsed. Returns how many were announced again.
pub(crate) async fn refresh_once(hub: &Hub) -> usize {
    let ids = hub.sessions.validator_ids();
    if ids.is_empty() {
        return 0;
    }
    let ttl = hub.config.limits.presence_ttl;
    let lapsed = match hub.presence.refresh(&ids, ttl).await {
        Ok(lapsed) => lapsed,
        Err(err) => {
            tracing::warn!(validators = ids.len(), error = %err, "presence refresh failed");
            return 0;
        }
    };
    let mut announced = 0;
    for validator_id in lapsed {
        // Gone since the snapshot: its session withdrew, or is withdrawing.
        let Some(network) = hub.sessions.network_of(validator_id) else {
            continue;
        };
        match hub
            .presence
            .announce(validator_id, &hub.config.instance_id, &network, ttl)
            .await
        {
            Ok(()) => announced += 1,
            Err(err) => tracing::warn!(validator_id, error = %err, "presence announce failed"),
        }
    }
    if announced > 0 {
        tracing::info!(
            announced,
            "validators whose presence had lapsed announced again"
        );
    }
    announced
}
