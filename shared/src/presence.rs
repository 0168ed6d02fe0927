//! Which validators are online, and through which server instance.
//!
//! A sorted set holds each online validator with the instant its presence expires
//! (refreshed by the server holding its socket at every heartbeat, all of its
//! validators in one call per thousand); a hash maps it
//! to that server instance, another to the network it connects from
//! ([`crate::network::network_of`]). A crashed server's validators drop out by
//! themselves after one TTL, so the scheduler never assigns work to a socket nobody
//! holds.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::Result;
use crate::redis_keys::KeyPrefix;

/// Drops the instance mapping only if this instance still owns it.
const WITHDRAW: &str = r"
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[1], ARGV[1])
    return 1
end
return 0";

/// Forgets validators whose presence expired (their server died without withdrawing).
const PRUNE: &str = r"
local expired = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE')
for _, id in ipairs(expired) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
end
return #expired";

/// Extends the expiry (ARGV[1]) of each validator in ARGV[2..] that is still
/// online and returns the others: only the score moves, so a refresh can neither
/// bring back a withdrawn validator nor repoint one that reconnected elsewhere.
const REFRESH: &str = r"
local missing = {}
for i = 2, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
        redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    else
        missing[#missing + 1] = ARGV[i]
    end
end
return missing";

/// Validators per refresh call: bounds how long Redis runs one script.
const REFRESH_CHUNK: usize = 1_000;

/// A validator seen online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineValidator {
    /// Its id.
    pub validator_id: i64,
    /// The server instance holding its socket.
    pub server_instance: String,
    /// The network it connects from (`203.0.113.0/24`, `2001:db8:7::/48`); None
    /// only for entries written before networks were recorded.
    pub network: Option<String>,
}

/// The presence registry of one deployment.
#[derive(Clone)]
pub struct Presence {
    conn: ConnectionManager,
    online_key: String,
    instance_key: String,
    network_key: String,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("online_key", &self.online_key)
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Presence {
    /// The registry under `keys`.
    pub fn new(conn: ConnectionManager, keys: &KeyPrefix) -> Self {
        Presence {
            conn,
            online_key: keys.key("presence:online"),
            instance_key: keys.key("presence:instance"),
            network_key: keys.key("presence:network"),
        }
    }

    /// Marks `validator_id` online on `instance`, connected from `network`, for `ttl`.
    pub async fn announce(
        &self,
        validator_id: i64,
        instance: &str,
        network: &str,
        ttl: Duration,
    ) -> Result<()> {
        let expires = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(&self.online_key, validator_id, expires)
            .ignore()
            .hset(&self.instance_key, validator_id, instance)
            .ignore()
            .hset(&self.network_key, validator_id, network)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Keeps `validator_ids` online for another `ttl`, in one call per thousand
    /// (one refresh per validator and heartbeat was most of Redis' work at 50,000
    /// connections). Returns those that are no longer online (expired or
    /// withdrawn), whose holder decides whether to announce them again.
    pub async fn refresh(&self, validator_ids: &[i64], ttl: Duration) -> Result<Vec<i64>> {
        let expires = now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let script = redis::Script::new(REFRESH);
        let mut conn = self.conn.clone();
        let mut missing = Vec::new();
        for chunk in validator_ids.chunks(REFRESH_CHUNK) {
            let mut invocation = script.key(&self.online_key);
            invocation.arg(expires);
            for id in chunk {
                invocation.arg(*id);
            }
            let gone: Vec<i64> = invocation.invoke_async(&mut conn).await?;
            missing.extend(gone);
        }
        Ok(missing)
    }

    /// Marks `validator_id` offline, if `instance` is still the one holding it.
    pub async fn withdraw(&self, validator_id: i64, instance: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let removed: i64 = redis::Script::new(WITHDRAW)
            .key(&self.online_key)
            .key(&self.instance_key)
            .key(&self.network_key)
            .arg(validator_id)
            .arg(instance)
            .invoke_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// Every validator whose presence has not expired, sorted by id. Expired
    /// entries are removed on the way, so a dead server leaves nothing behind.
    pub async fn online(&self) -> Result<Vec<OnlineValidator>> {
        let mut conn = self.conn.clone();
        let _pruned: i64 = redis::Script::new(PRUNE)
            .key(&self.online_key)
            .key(&self.instance_key)
            .key(&self.network_key)
            .arg(now_ms())
            .invoke_async(&mut conn)
            .await?;
        let ids: Vec<i64> = redis::cmd("ZRANGE")
            .arg(&self.online_key)
            .arg(now_ms())
            .arg("+inf")
            .arg("BYSCORE")
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let instances: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.instance_key)
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        let networks: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.network_key)
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        let mut online: Vec<OnlineValidator> = ids
            .into_iter()
            .zip(instances)
            .zip(networks)
            .filter_map(|((validator_id, instance), network)| {
                instance.map(|server_instance| OnlineValidator {
                    validator_id,
                    server_instance,
                    network,
                })
            })
            .collect();
        online.sort_by_key(|v| v.validator_id);
        Ok(online)
    }
}
