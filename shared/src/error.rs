//! The error type of the shared crate.

use crate::config::ConfigError;

/// Everything that can go wrong in shared code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A PostgreSQL query failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// No PostgreSQL connection could be made or taken from the pool.
    #[error("database connection: {0}")]
    DatabaseConnection(String),
    /// Applying or reverting migrations failed.
    #[error("migrations: {0}")]
    Migration(String),
    /// A Redis command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The job queue refused a job.
    #[error("job queue: {0}")]
    Queue(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The hub's seed chains cannot give the round to open its reveal (a gap or
    /// overlap in `seed_chains`, or no randomness from the operating system).
    #[error("seed chain: {0}")]
    SeedChain(String),
    /// An operating-system call failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        Error::DatabaseConnection(err.to_string())
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(err: diesel::ConnectionError) -> Self {
        Error::DatabaseConnection(err.to_string())
    }
}

/// Result with the shared [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
