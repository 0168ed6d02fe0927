//! Start-up shared by every binary that talks to PostgreSQL and Redis.

use redis::aio::ConnectionManager;

use crate::Result;
use crate::config::CommonConfig;
use crate::db::Database;
use crate::redis_keys::{self, KeyPrefix};

/// The connections a service works with.
#[derive(Clone)]
pub struct Infrastructure {
    /// PostgreSQL pool, migrated.
    pub db: Database,
    /// Redis connection (cheap to clone, reconnects by itself).
    pub redis: ConnectionManager,
    /// The deployment's Redis key space.
    pub keys: KeyPrefix,
}

impl std::fmt::Debug for Infrastructure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Infrastructure")
            .field("db", &self.db)
            .field("keys", &self.keys)
            .finish()
    }
}

impl Infrastructure {
    /// Connects to PostgreSQL (applying pending migrations) and to Redis.
    pub async fn connect(config: &CommonConfig) -> Result<Self> {
        let db = Database::connect(&config.database_url, config.database_pool_size).await?;
        let applied = db.migrate().await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let mut redis = redis_keys::connect(config.redis_url.as_str()).await?;
        let _: String = redis::cmd("PING").query_async(&mut redis).await?;
        Ok(Infrastructure {
            db,
            redis,
            keys: KeyPrefix::new(config.redis_prefix.clone()),
        })
    }
}

/// A binary's settings: the common ones plus its own.
pub trait ServiceConfig: Sized {
    /// Reads and validates every setting the binary uses.
    fn from_env(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError>;
    /// The common part.
    fn common(&self) -> &CommonConfig;
}

impl ServiceConfig for CommonConfig {
    fn from_env(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        CommonConfig::from_env(env)
    }
    fn common(&self) -> &CommonConfig {
        self
    }
}

/// Loads the configuration, starts tracing and connects: the first lines of every
/// service's `main`. A bad setting stops here with an error naming the variable.
pub async fn boot<C: ServiceConfig>() -> Result<(C, Infrastructure)> {
    let config = C::from_env(&crate::config::Env::from_process())?;
    crate::telemetry::init(&config.common().log);
    let infra = Infrastructure::connect(config.common()).await?;
    Ok((config, infra))
}

/// Logs `ready`, waits for SIGINT/SIGTERM, logs `stopped`.
pub async fn ready_until_shutdown(service: &'static str) -> Result<()> {
    let shutdown = crate::shutdown::ShutdownSignal::listen()?;
    tracing::info!(service, "ready");
    shutdown.received().await;
    tracing::info!(service, "stopped");
    Ok(())
}
