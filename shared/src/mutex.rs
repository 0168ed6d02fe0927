//! The one Redis mutex: token-owned, expiring, released only by its owner, with a
//! renewable lease.
//!
//! `SET key token NX PX ttl` takes it; release and renewal are Lua scripts that act
//! only while the key still holds the caller's token, so a holder whose lease expired
//! can never release or extend the lock of whoever took it next.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Result;
use crate::redis_keys::KeyPrefix;

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// A named lock shared by every process of a deployment.
#[derive(Clone)]
pub struct RedisMutex {
    conn: ConnectionManager,
    key: String,
    ttl: Duration,
}

impl std::fmt::Debug for RedisMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMutex")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisMutex {
    /// The lock `name` in `keys`; a holder that stops renewing loses it after `ttl`.
    pub fn new(conn: ConnectionManager, keys: &KeyPrefix, name: &str, ttl: Duration) -> Self {
        RedisMutex {
            conn,
            key: keys.key(&format!("lock:{name}")),
            ttl,
        }
    }

    /// The Redis key of this lock.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes the lock if nobody holds it.
    pub async fn try_lock(&self) -> Result<Option<MutexGuard>> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&self.key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(self.ttl))
            .query_async(&mut conn)
            .await?;
        Ok(taken.map(|_| MutexGuard {
            conn,
            key: self.key.clone(),
            token,
            ttl: self.ttl,
        }))
    }

    /// Waits up to `wait` for the lock, polling every `ttl / 10` (at most 250 ms).
    pub async fn lock(&self, wait: Duration) -> Result<Option<MutexGuard>> {
        let deadline = tokio::time::Instant::now() + wait;
        let poll = (self.ttl / 10).clamp(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            if let Some(guard) = self.try_lock().await? {
                return Ok(Some(guard));
            }
            if tokio::time::Instant::now() + poll > deadline {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Proof of holding a [`RedisMutex`]; identified by a random token.
pub struct MutexGuard {
    conn: ConnectionManager,
    key: String,
    token: String,
    ttl: Duration,
}

impl std::fmt::Debug for MutexGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutexGuard")
            .field("key", &self.key)
            .finish()
    }
}

impl MutexGuard {
    /// The random token that owns the lock.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Extends the lease by the full ttl; `false` means the lock was lost.
    pub async fn renew(&self) -> Result<bool> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(&self.key)
            .arg(&self.token)
            .arg(ttl_millis(self.ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Releases the lock; `false` means it had already expired (and maybe been retaken).
    pub async fn release(self) -> Result<bool> {
        let mut conn = self.conn.clone();
        let released: i64 = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// Keeps the lock alive in the background, renewing every third of the ttl.
    pub fn into_lease(self) -> Lease {
        let guard = Arc::new(self);
        let (lost_tx, lost_rx) = watch::channel(false);
        let renewer = {
            let guard = Arc::clone(&guard);
            tokio::spawn(async move {
                let period = guard.ttl / 3;
                let mut renewed_at = tokio::time::Instant::now();
                let mut wait = period;
                loop {
                    tokio::time::sleep(wait).await;
                    match guard.renew().await {
                        Ok(true) => {
                            renewed_at = tokio::time::Instant::now();
                            wait = period;
                        }
                        Ok(false) => {
                            tracing::warn!(lock = %guard.key, "lease lost: the lock expired or was taken");
                            break;
                        }
                        // A failed call is not a lost lock: retry until the ttl has
                        // really run out, after which others may take it.
                        Err(err) if renewed_at.elapsed() + guard.ttl / 10 < guard.ttl => {
                            tracing::debug!(lock = %guard.key, error = %err, "lease renewal failed; retrying");
                            wait = guard.ttl / 10;
                        }
                        Err(err) => {
                            tracing::warn!(lock = %guard.key, error = %err, "lease renewal failed until the ttl ran out");
                            break;
                        }
                    }
                }
                let _ = lost_tx.send(true);
            })
        };
        Lease {
            key: guard.key.clone(),
            guard: Some(guard),
            renewer: Some(renewer),
            lost: lost_rx,
        }
    }
}

/// A held lock that renews itself until dropped or released.
pub struct Lease {
    key: String,
    // Both are `Some` until `release` takes them.
    guard: Option<Arc<MutexGuard>>,
    renewer: Option<JoinHandle<()>>,
    lost: watch::Receiver<bool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

impl Lease {
    /// Resolves once the lease could not be renewed; the holder must stop then.
    pub async fn lost(&mut self) {
        // An error means the renewer is gone, which also means the lease is lost.
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Whether the lease is known to be lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and releases the lock if still held.
    pub async fn release(mut self) -> Result<bool> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
            let _ = renewer.await;
        }
        match self.guard.take().map(Arc::try_unwrap) {
            Some(Ok(guard)) => guard.release().await,
            // The renewer is stopped, so nobody else holds the guard; were it otherwise
            // the lock would still lapse after one ttl.
            _ => Ok(false),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Without an explicit release the lock simply expires after one ttl.
        if let Some(renewer) = &self.renewer {
            renewer.abort();
        }
    }
}
