//! The state every part of the server shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use ipnet::IpNet;
use overlaps_shared::db::Database;
use overlaps_shared::network;
use overlaps_shared::presence::Presence;
use overlaps_shared::protocol::HubMessage;
use overlaps_shared::service::Infrastructure;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::read_cache::ReadCache;
use crate::config::ServerConfig;
use crate::ingest::Ingest;

/// The server instance: configuration, connections, live sessions and the ingest.
#[derive(Debug)]
pub struct Hub {
    /// Settings.
    pub config: ServerConfig,
    /// PostgreSQL and Redis (the database pool of validators' traffic: results,
    /// dispatch, signups).
    pub infra: Infrastructure,
    /// The HTTP API's own database pool (`API_DATABASE_POOL_SIZE`).
    pub api_db: Database,
    /// The API's short-lived read caches (`API_READ_CACHE_MS`).
    pub read_cache: ReadCache,
    /// Validators connected to this instance.
    pub sessions: Sessions,
    /// Open connections per client address and address block.
    pub connections: ConnectionLimits,
    /// Failed signups per client address.
    pub failed_signups: FailedSignups,
    /// Batched result storage.
    pub ingest: Ingest,
    /// Who is online where (shared by all instances).
    pub presence: Presence,
    /// Every validator connection's task, to close them all when the server stops.
    pub open: OpenConnections,
}

impl Hub {
    /// Wires the hub together; spawns the ingest task on the current runtime.
    pub fn new(config: ServerConfig, infra: Infrastructure) -> Arc<Self> {
        let ingest = Ingest::start(infra.db.clone(), config.ingest, config.hub_id.clone());
        let api_db = infra.db.separate_pool(config.api.database_pool_size);
        let presence = Presence::new(infra.redis.clone(), &infra.keys);
        let connections = ConnectionLimits::new(
            config.limits.max_connections_per_ip,
            config.limits.max_connections_per_block,
        );
        let failed_signups = FailedSignups::new(config.limits.max_failed_signups_per_minute);
        let read_cache = ReadCache::new(config.api.read_cache_ttl);
        Arc::new(Hub {
            config,
            infra,
            api_db,
            read_cache,
            sessions: Sessions::default(),
            connections,
            failed_signups,
            ingest,
            presence,
            open: OpenConnections::default(),
        })
    }
}

/// The validator connections running on this instance. When the server stops it
/// closes them all and waits until each has released what it holds (session lock,
/// presence, pending assignments), so a restarted hub accepts the same keys at once
/// instead of refusing them `key_in_use` until the locks expire.
#[derive(Debug, Default)]
pub struct OpenConnections {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl OpenConnections {
    /// Runs one connection's task, tracked.
    pub fn spawn(&self, connection: impl std::future::Future<Output = ()> + 'static) {
        actix_web::rt::spawn(self.tasks.track_future(connection));
    }

    /// Cancelled when the server stops: each connection closes on it.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tells every connection to close and waits up to `within` for all to finish;
    /// false if some did not.
    pub async fn close_all(&self, within: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok()
    }

    /// Connections still running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// A message for one validator, serialized as JSON text by whoever queues it.
///
/// Why not the `HubMessage` itself: a tokio channel holds its first block of 32
/// slots from the start, and every idle connection has an outbox; 32 strings are
/// 768 bytes, 32 `HubMessage`s (a `validate` is about 200 bytes) over 6 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(String);

impl Frame {
    /// The JSON text of `msg`.
    pub fn of(msg: &HubMessage) -> Self {
        // Serialising our own message types cannot fail; an empty frame would be refused.
        Frame(serde_json::to_string(msg).unwrap_or_default())
    }

    /// The text to send.
    pub fn into_text(self) -> String {
        self.0
    }
}

/// A signed-up connection's outbox.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Distinguishes a reconnection from the connection it replaced.
    pub connection_id: u64,
    /// Messages to push to the validator.
    pub outbox: mpsc::Sender<Frame>,
    /// The network it connects from, for announcing it again if its presence lapsed.
    pub network: String,
}

/// Validators whose socket this instance holds.
#[derive(Debug, Default)]
pub struct Sessions {
    by_validator: Mutex<HashMap<i64, SessionHandle>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, SessionHandle>> {
        // A panic elsewhere must not take every session down with it.
        self.by_validator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a signed-up connection.
    pub fn insert(&self, validator_id: i64, handle: SessionHandle) {
        self.map().insert(validator_id, handle);
    }

    /// Removes the session, if it is still this connection's.
    pub fn remove(&self, validator_id: i64, connection_id: u64) {
        let mut map = self.map();
        if map
            .get(&validator_id)
            .is_some_and(|h| h.connection_id == connection_id)
        {
            map.remove(&validator_id);
        }
    }

    /// The outbox of a connected validator.
    pub fn outbox(&self, validator_id: i64) -> Option<mpsc::Sender<Frame>> {
        self.map().get(&validator_id).map(|h| h.outbox.clone())
    }

    /// The validators connected here.
    pub fn validator_ids(&self) -> Vec<i64> {
        self.map().keys().copied().collect()
    }

    /// The network a connected validator connects from.
    pub fn network_of(&self, validator_id: i64) -> Option<String> {
        self.map().get(&validator_id).map(|h| h.network.clone())
    }

    /// How many validators are connected here.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

/// Counts open connections per client address and per address block (IPv4 /24,
/// IPv6 /64), each against its maximum: one host, or one party holding a block,
/// cannot take every slot by spreading over its addresses.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_per_ip: usize,
    max_per_block: usize,
    open: Arc<Mutex<OpenCounts>>,
}

/// Open connections per address and per block.
#[derive(Debug, Default)]
struct OpenCounts {
    per_ip: HashMap<IpAddr, usize>,
    per_block: HashMap<IpNet, usize>,
}

/// Why a connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// The address has its maximum.
    Address(usize),
    /// The address's /24 or /64 has its maximum.
    Block(usize),
}

impl ConnectionLimits {
    /// At most `max_per_ip` connections per address and `max_per_block` per block.
    pub fn new(max_per_ip: usize, max_per_block: usize) -> Self {
        ConnectionLimits {
            max_per_ip,
            max_per_block,
            open: Arc::default(),
        }
    }

    /// Takes a slot for a client at `ip`, or says which limit it reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, SlotRefusal> {
        let ip = network::canonical(ip);
        let block = network::connection_block(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(SlotRefusal::Address(self.max_per_ip));
        }
        if open.per_block.get(&block).copied().unwrap_or(0) >= self.max_per_block {
            return Err(SlotRefusal::Block(self.max_per_block));
        }
        *open.per_ip.entry(ip).or_insert(0) += 1;
        *open.per_block.entry(block).or_insert(0) += 1;
        Ok(ConnectionSlot {
            ip,
            block,
            open: Arc::clone(&self.open),
        })
    }
}

/// One open connection; frees its slots when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    block: IpNet,
    open: Arc<Mutex<OpenCounts>>,
}

impl ConnectionSlot {
    /// The client address (behind a trusted proxy, the one it reported).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The validator network of the client (its /24 or /48).
    pub fn network(&self) -> String {
        network::network_of(self.ip)
    }
}

/// Counts one fewer in `counts[key]`, forgetting the key at zero.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        release(&mut open.per_ip, &self.ip);
        release(&mut open.per_block, &self.block);
    }
}

/// Failed signups per client address: each costs the hub an Ed25519 verification,
/// so an address past its budget is refused before the next one is verified.
#[derive(Debug)]
pub struct FailedSignups {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses that exhausted their budget, and until when they stay refused.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

/// Addresses remembered by the limiter before idle ones are forgotten.
const FAILED_SIGNUP_KEYS_BEFORE_PRUNE: usize = 10_000;

impl FailedSignups {
    /// At most `per_minute` failed signups per address (all at once, then one every
    /// `60 / per_minute` seconds).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        FailedSignups {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: Mutex::default(),
        }
    }

    /// How long `ip` stays refused, if it is over its budget now.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = blocked.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts one failed signup of `ip`; `Err` with the wait when it was over budget.
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > FAILED_SIGNUP_KEYS_BEFORE_PRUNE {
            self.limiter.retain_recent();
        }
        let Err(not_until) = self.limiter.check_key(&ip) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked.retain(|_, until| *until > now);
        blocked.insert(ip, now + wait);
        Err(wait)
    }
}

#[cfg(test)]
mod tests {
    use overlaps_shared::protocol::ErrorCode;

    use super::*;

    #[test]
    fn a_frame_is_the_message_as_the_validator_reads_it() {
        let msg = HubMessage::Error {
            code: ErrorCode::Unavailable,
            message: "not stored; resend later".into(),
            assignment_id: Some(7),
        };
        let text = Frame::of(&msg).into_text();
        assert_eq!(serde_json::from_str::<HubMessage>(&text).ok(), Some(msg));
    }

    #[test]
    fn an_outbox_slot_is_a_string_not_a_message() {
        // Every idle connection holds a block of 32 slots: keep a slot small.
        assert_eq!(std::mem::size_of::<Frame>(), std::mem::size_of::<String>());
        assert!(std::mem::size_of::<HubMessage>() > 4 * std::mem::size_of::<Frame>());
    }
}
