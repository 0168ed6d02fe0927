//! Short-lived copies of the API's most-read answers (`API_READ_CACHE_MS`): the
//! caller behind an API key, a site's status and a round, so a dashboard or badge
//! polled by many does not cost PostgreSQL a handful of queries each time.
//!
//! What is kept is exactly what the database answered, for at most the TTL: a
//! round closed by accounting, or a key revoked through another server instance,
//! shows here at most that late. A write through this instance's API forgets
//! everything at once (see [`ReadCache::forget_all`]), so a caller reads its own
//! writes. Authorization is checked on every hit: a cached status remembers its
//! site's owner and is served only to that owner or an operator. Unknown keys and
//! errors are never kept, so a random key costs a lookup as it always did.
//!
//! An entry read past half its TTL is refreshed in the background by the first
//! reader that sees it (the others keep being served), so a steadily polled answer
//! never expires under its readers and none of them waits for a busy database.
//! The bound holds all the same: nothing served is older than the TTL.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use moka::sync::Cache;
use serde::Serialize;

use super::auth::Caller;
use super::errors::ApiError;

/// Entries each cache holds at most (least recently used go first).
const MAX_ENTRIES: u64 = 100_000;

/// A kept value, with when it was read and whether a refresh was started.
#[derive(Clone)]
struct Kept<V> {
    value: V,
    read_at: Instant,
    refreshing: Arc<AtomicBool>,
}

/// A value from a cache, and whether this reader should refresh it.
pub struct Hit<V> {
    /// The kept value.
    pub value: V,
    /// True for exactly one reader once the entry is past half its TTL.
    pub refresh: bool,
}

impl<V> Hit<V> {
    /// Runs `reload` in the background if this reader is the one to refresh the
    /// entry; a failed reload leaves the kept answer to its TTL.
    pub fn refresh_with<F>(&self, reload: impl FnOnce() -> F)
    where
        F: Future + 'static,
    {
        if self.refresh {
            let reload = reload();
            actix_web::rt::spawn(async move {
                let _ = reload.await;
            });
        }
    }
}

/// One bounded cache whose entries expire; absent when caching is off.
struct Recent<K, V> {
    cache: Option<Cache<K, Kept<V>>>,
    refresh_after: Duration,
}

impl<K, V> Recent<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration) -> Self {
        Recent {
            cache: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(MAX_ENTRIES)
                    .time_to_live(ttl)
                    .build()
            }),
            refresh_after: ttl / 2,
        }
    }

    fn get(&self, key: &K) -> Option<Hit<V>> {
        let kept = self.cache.as_ref()?.get(key)?;
        let refresh = kept.read_at.elapsed() >= self.refresh_after
            && !kept.refreshing.swap(true, Ordering::SeqCst);
        Some(Hit {
            value: kept.value,
            refresh,
        })
    }

    fn remove(&self, key: &K) {
        if let Some(cache) = &self.cache {
            cache.invalidate(key);
        }
    }

    /// Keeps `value` unless the caches were cleared since `ticket` was taken: an
    /// answer read before a write must not outlive the write's clearing. Checked
    /// after the insert too, so a clearing between check and insert still wins.
    fn insert(&self, ticket: Ticket, generation: &AtomicU64, key: K, value: V)
    where
        K: Clone,
    {
        let Some(cache) = &self.cache else {
            return;
        };
        if generation.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        let kept = Kept {
            value,
            read_at: ticket.1,
            refreshing: Arc::new(AtomicBool::new(false)),
        };
        cache.insert(key.clone(), kept);
        if generation.load(Ordering::SeqCst) != ticket.0 {
            cache.invalidate(&key);
        }
    }

    fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }
}

/// A status answer, serialized, with the owner of its site.
#[derive(Clone)]
struct OwnedAnswer {
    owner_id: i64,
    body: Bytes,
}

/// Taken before reading the database: what was read may be kept only if nothing
/// was written through the API in between.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64, Instant);

/// The API's read caches (one per server instance).
pub struct ReadCache {
    /// By the key's SHA-256.
    callers: Recent<[u8; 32], Caller>,
    statuses: Recent<i64, OwnedAnswer>,
    rounds: Recent<i64, Bytes>,
    /// Bumped by every [`ReadCache::forget_all`].
    generation: AtomicU64,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("enabled", &self.callers.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl ReadCache {
    /// Caches keeping answers for `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        ReadCache {
            callers: Recent::new(ttl),
            statuses: Recent::new(ttl),
            rounds: Recent::new(ttl),
            generation: AtomicU64::new(0),
        }
    }

    /// Take before reading what is to be kept.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::SeqCst), Instant::now())
    }

    /// The caller behind the key with SHA-256 `key_hash`, if looked up lately.
    pub fn caller(&self, key_hash: &[u8]) -> Option<Hit<Caller>> {
        self.callers.get(&<[u8; 32]>::try_from(key_hash).ok()?)
    }

    /// Forgets the caller behind `key_hash` (its key was found revoked or gone).
    pub fn forget_caller(&self, key_hash: &[u8]) {
        if let Ok(key) = <[u8; 32]>::try_from(key_hash) {
            self.callers.remove(&key);
        }
    }

    /// Keeps the caller found behind `key_hash`.
    pub fn remember_caller(&self, ticket: Ticket, key_hash: &[u8], caller: Caller) {
        if let Ok(key) = <[u8; 32]>::try_from(key_hash) {
            self.callers.insert(ticket, &self.generation, key, caller);
        }
    }

    /// Site `id`'s status answer for `caller`: `Some(Ok)` when kept and the caller
    /// may see it, `Some(Err(not found))` when kept for a site of someone else
    /// (answered like a missing site, as the database path does), `None` when not kept.
    /// `refresh` is true for the one reader that should reload it.
    pub fn status(&self, id: i64, caller: &Caller) -> Option<Hit<Result<HttpResponse, ApiError>>> {
        let hit = self.statuses.get(&id)?;
        Some(Hit {
            value: if caller.may_access(hit.value.owner_id) {
                Ok(json_response(hit.value.body))
            } else {
                Err(ApiError::NotFound("website"))
            },
            refresh: hit.refresh,
        })
    }

    /// Forgets site `id`'s status (the site was found gone).
    pub fn forget_status(&self, id: i64) {
        self.statuses.remove(&id);
    }

    /// Keeps site `id`'s status (owned by `owner_id`) and returns it as an answer.
    pub fn remember_status<T: Serialize>(
        &self,
        ticket: Ticket,
        id: i64,
        owner_id: i64,
        status: &T,
    ) -> Result<HttpResponse, ApiError> {
        let body = to_bytes(status)?;
        self.statuses.insert(
            ticket,
            &self.generation,
            id,
            OwnedAnswer {
                owner_id,
                body: body.clone(),
            },
        );
        Ok(json_response(body))
    }

    /// Round `number`'s answer, if kept.
    pub fn round(&self, number: i64) -> Option<Hit<HttpResponse>> {
        self.rounds.get(&number).map(|hit| Hit {
            value: json_response(hit.value),
            refresh: hit.refresh,
        })
    }

    /// Keeps round `number` and returns it as an answer.
    pub fn remember_round<T: Serialize>(
        &self,
        ticket: Ticket,
        number: i64,
        round: &T,
    ) -> Result<HttpResponse, ApiError> {
        let body = to_bytes(round)?;
        self.rounds
            .insert(ticket, &self.generation, number, body.clone());
        Ok(json_response(body))
    }

    /// Forgets everything: called after every successful write through the API
    /// (a revoked key, a deleted site, a new maintenance window show at once).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.callers.clear();
        self.statuses.clear();
        self.rounds.clear();
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ApiError::Inconsistent(format!("encoding an answer: {err}")))
}

fn json_response(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::Role;

    fn caller(user_id: i64, role: Role) -> Caller {
        Caller {
            user_id,
            key_id: user_id,
            role,
        }
    }

    #[test]
    fn a_kept_status_is_served_only_to_its_owner_or_an_operator() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let owner = caller(1, Role::Owner);
        assert!(cache.status(7, &owner).is_none());
        cache.remember_status(cache.ticket(), 7, 1, &"up").ok();
        let served = |who: &Caller| cache.status(7, who).map(|hit| hit.value);
        assert!(matches!(served(&owner), Some(Ok(_))));
        assert!(matches!(served(&caller(9, Role::Operator)), Some(Ok(_))));
        assert!(matches!(
            served(&caller(2, Role::Owner)),
            Some(Err(ApiError::NotFound("website")))
        ));
        cache.forget_all();
        assert!(cache.status(7, &owner).is_none());
    }

    #[test]
    fn an_answer_read_before_a_write_is_not_kept_after_it() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let before = cache.ticket();
        cache.forget_all();
        cache.remember_round(before, 3, &"stale").ok();
        assert!(cache.round(3).is_none());
        cache.remember_round(cache.ticket(), 3, &"fresh").ok();
        assert!(cache.round(3).is_some());
    }

    #[test]
    fn past_half_its_ttl_exactly_one_reader_refreshes_an_entry() {
        let cache = ReadCache::new(Duration::from_millis(200));
        cache.remember_round(cache.ticket(), 3, &"round").ok();
        assert!(!cache.round(3).is_some_and(|hit| hit.refresh), "fresh");
        std::thread::sleep(Duration::from_millis(120));
        let refreshes = (0..10)
            .filter(|_| cache.round(3).is_some_and(|hit| hit.refresh))
            .count();
        assert_eq!(refreshes, 1);
        // The refreshed answer starts a new life; past the TTL nothing is served.
        cache.remember_round(cache.ticket(), 3, &"round").ok();
        assert!(!cache.round(3).is_some_and(|hit| hit.refresh));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.round(3).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = ReadCache::new(Duration::ZERO);
        cache.remember_caller(cache.ticket(), &[1; 32], caller(1, Role::Owner));
        cache.remember_round(cache.ticket(), 3, &"round").ok();
        assert!(cache.caller(&[1; 32]).is_none());
        assert!(cache.round(3).is_none());
    }
}
