//! The jobs that cross processes, and their apalis queues on Redis.
//!
//! Every job is idempotent: its handler must leave the same state when it runs twice.
//! A job carries a batch (one `Dispatch` per round and server instance), so the queue
//! stays far from being the bottleneck.

use std::time::Duration;

use apalis::prelude::{BackendExt, IntervalStrategy, PollWith};
use apalis_redis::{Config, RedisStorage};
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::redis_keys::KeyPrefix;

/// A job type with its own queue.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue's name under the deployment's Redis prefix.
    const QUEUE: &'static str;
}

/// Send a round's assignments to the validators connected to one server instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// The round the assignments belong to.
    pub round: i64,
    /// The server instance holding the validators' sockets.
    pub server_instance: String,
    /// The assignments to push.
    pub assignment_ids: Vec<i64>,
}

impl Job for Dispatch {
    const QUEUE: &'static str = "dispatch";
}

/// Close a round after its deadline: quorum, status, incidents, credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRound {
    /// The round to close.
    pub round: i64,
}

impl Job for CloseRound {
    const QUEUE: &'static str = "close_round";
}

/// Close an eon: cumulative balances, Merkle tree, root commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseEon {
    /// The eon to close.
    pub eon: i64,
}

impl Job for CloseEon {
    const QUEUE: &'static str = "close_eon";
}

/// Send an eon's root commitment to the rewards contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRoot {
    /// The eon whose root to commit.
    pub eon: i64,
}

impl Job for SubmitRoot {
    const QUEUE: &'static str = "submit_root";
}

/// Re-derive and check everything about one eon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEon {
    /// The eon to audit.
    pub eon: i64,
}

impl Job for AuditEon {
    const QUEUE: &'static str = "audit_eon";
}

/// Deliver one alert from the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAlert {
    /// The `alert_outbox` row to deliver.
    pub outbox_id: i64,
}

impl Job for SendAlert {
    const QUEUE: &'static str = "send_alert";
}

/// The full Redis name of queue `queue` in `keys`.
pub fn queue_name(keys: &KeyPrefix, queue: &str) -> String {
    keys.key(&format!("queue:{queue}"))
}

/// The queue of job type `J`.
pub fn storage<J: Job>(conn: ConnectionManager, keys: &KeyPrefix) -> RedisStorage<J> {
    storage_named(conn, queue_name(keys, J::QUEUE))
}

/// The `dispatch` queue of one server instance.
pub fn dispatch_storage(
    conn: ConnectionManager,
    keys: &KeyPrefix,
    server_instance: &str,
) -> RedisStorage<Dispatch> {
    storage_named(
        conn,
        queue_name(keys, &format!("{}:{server_instance}", Dispatch::QUEUE)),
    )
}

/// How often an idle worker looks for new jobs. apalis-redis otherwise waits for
/// its 30 s heartbeat, far too slow for dispatch; a fetch is one small Lua call.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A queue as a worker consumes it: polled every [`POLL_INTERVAL`] when idle.
pub type Consumer<J> = PollWith<RedisStorage<J>, IntervalStrategy>;

/// The `dispatch` queue of one server instance, for its worker.
pub fn dispatch_consumer(
    conn: ConnectionManager,
    keys: &KeyPrefix,
    server_instance: &str,
) -> Consumer<Dispatch> {
    dispatch_storage(conn, keys, server_instance).poll_with_interval(POLL_INTERVAL)
}

/// The queue of job type `J`, for its worker.
pub fn consumer<J: Job>(conn: ConnectionManager, keys: &KeyPrefix) -> Consumer<J> {
    storage::<J>(conn, keys).poll_with_interval(POLL_INTERVAL)
}

/// A worker name unique per start: a restarted process must not wait for its
/// predecessor's worker registration to expire.
pub fn worker_name(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the worker `start` builds until it finishes, rebuilding it after a
/// one-second pause whenever it fails (Redis gone, say).
pub async fn keep_running<F, Fut, E>(name: &str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        match start().await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(worker = name, error = %err, "worker failed; restarting in 1 s")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn storage_named<J: Job>(conn: ConnectionManager, queue: String) -> RedisStorage<J> {
    // Results are never read back and would grow without bound in Redis.
    let config = Config::default()
        .queue(queue)
        .persist_results(false)
        .emit_events(false);
    RedisStorage::new(conn).with_config(config)
}
