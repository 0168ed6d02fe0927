//! PostgreSQL: the connection pool, embedded migrations and tick partitions.
//!
//! Diesel is synchronous; [`Database::run`] moves each unit of work onto tokio's
//! blocking pool so async code never blocks a worker thread on a query.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::sql_types::{BigInt, Date, Integer};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;
use crate::{Error, Result};

/// PostgreSQL advisory lock taken by a closing eon and by a round close that
/// takes back credits (a failed canary): an eon never commits credits that a
/// concurrent close is taking back.
pub const EON_BOUNDARY_LOCK: i64 = 0x6f76_6c70_656f_6e01;

/// Every migration in `migrations/`, built into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Session-level advisory lock that serialises migrations across processes.
const MIGRATION_LOCK: i64 = 0x6f76_6c61_7073_6d67; // "ovlapsmg"

/// A pool of PostgreSQL connections.
pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// A connection taken from the pool.
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

/// The database of one deployment.
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    /// Where its connections go (for a separate pool to the same database).
    url: DatabaseUrl,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("state", &self.pool.state())
            .finish()
    }
}

/// Initialises OpenSSL, which libpq uses for TLS, without its exit-time cleanup.
///
/// OpenSSL otherwise frees its global state in an `atexit` handler while other
/// threads may still use it (a pool thread ending as the process exits): the heap
/// was corrupted, an abort or SIGSEGV, at about one server stop in three after
/// thousands of validator connections had closed (openssl/openssl#6214).
/// rust-openssl's `init` asks for no such handler; whichever initialisation comes
/// first counts, so it runs before every first connection here (`connect`,
/// `connect_once`; a `separate_pool` comes from a connected `Database`).
fn init_tls_without_exit_cleanup() {
    openssl_sys::init();
}

impl Database {
    /// Opens a pool of up to `size` connections; fails if PostgreSQL is unreachable.
    pub async fn connect(url: &DatabaseUrl, size: u32) -> Result<Self> {
        init_tls_without_exit_cleanup();
        let manager = ConnectionManager::<PgConnection>::new(url.expose());
        let kept = url.clone();
        let pool = tokio::task::spawn_blocking(move || {
            pool_builder(size).min_idle(Some(1)).build(manager)
        })
        .await??;
        Ok(Database { pool, url: kept })
    }

    /// A second pool of up to `size` connections to the same database, opened as
    /// it is used: one part of a process (the HTTP API, say) then cannot take every
    /// connection another part (storing results) waits for.
    pub fn separate_pool(&self, size: u32) -> Self {
        let pool = pool_builder(size)
            .min_idle(Some(0))
            .build_unchecked(ConnectionManager::new(self.url.expose()));
        Database {
            pool,
            url: self.url.clone(),
        }
    }

    /// A connection of its own, outside the pool: for work beside a pooled
    /// connection (an eon's close loads on two at once) that must not wait for, or
    /// starve, the pool.
    pub fn connect_dedicated(&self) -> Result<PgConnection> {
        connect_once(&self.url)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `work` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&mut PgConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            work(&mut conn)
        })
        .await?
    }

    /// Applies pending migrations under a cross-process lock; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        self.run(|conn| run_migrations(conn).map(|applied| applied.len()))
            .await
    }
}

/// How every pool is built: up to `size` connections, each tested when taken
/// (one PostgreSQL restarted since is not handed out), 10 s to wait for one.
fn pool_builder(size: u32) -> diesel::r2d2::Builder<ConnectionManager<PgConnection>> {
    Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(10))
        .test_on_check_out(true)
}

/// Applies every pending migration while holding the migration lock.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>> {
    with_migration_lock(conn, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|err| Error::Migration(err.to_string()))
    })
}

/// Reverts every applied migration (newest first) while holding the migration lock.
pub fn revert_all_migrations(conn: &mut PgConnection) -> Result<Vec<String>> {
    with_migration_lock(conn, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
            .map_err(|err| Error::Migration(err.to_string()))
    })
}

fn with_migration_lock<T>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T>,
) -> Result<T> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)?;
    let result = work(conn);
    // Unlock even if the work failed; a lost connection releases it anyway.
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn);
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Opens one unpooled connection (migrations in tests, COPY).
pub fn connect_once(url: &DatabaseUrl) -> Result<PgConnection> {
    init_tls_without_exit_cleanup();
    Ok(PgConnection::establish(url.expose())?)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Integer)]
    n: i32,
}

/// What one pass of tick-partition upkeep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionUpkeep {
    /// Daily partitions created ahead.
    pub created: i32,
    /// Partitions dropped for being older than the retention.
    pub dropped: i32,
}

/// Creates tick partitions from yesterday to `ahead_days` ahead of `today` and drops
/// those older than `retention_days`.
pub fn maintain_tick_partitions(
    conn: &mut PgConnection,
    today: chrono::NaiveDate,
    ahead_days: i32,
    retention_days: i32,
) -> Result<PartitionUpkeep> {
    conn.transaction(|conn| {
        let created = diesel::sql_query("SELECT ensure_tick_partitions($1, $2) AS n")
            .bind::<Date, _>(today - chrono::Days::new(1))
            .bind::<Integer, _>(ahead_days + 2)
            .get_result::<Count>(conn)?
            .n;
        let oldest_kept = today - chrono::Days::new(u64::try_from(retention_days).unwrap_or(0));
        let dropped = diesel::sql_query("SELECT drop_tick_partitions($1) AS n")
            .bind::<Date, _>(oldest_kept)
            .get_result::<Count>(conn)?
            .n;
        Ok(PartitionUpkeep { created, dropped })
    })
}
