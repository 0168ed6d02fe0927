//! A fresh, migrated PostgreSQL database per test.

use diesel::RunQueryDsl;

use crate::config::{CommonConfig, ConfigError, DatabaseUrl, Env};
use crate::db::{self, Database};
use crate::{Error, Result};

/// The deployment settings the tests were started with.
pub fn base_config() -> Result<CommonConfig, ConfigError> {
    CommonConfig::from_env(&Env::from_process())
}

/// A database created for one test (migrated) and dropped when it goes out of scope.
pub struct TestDatabase {
    name: String,
    url: DatabaseUrl,
    base: DatabaseUrl,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish()
    }
}

impl TestDatabase {
    /// Creates and migrates a fresh database.
    pub fn new() -> Result<Self> {
        let db = Self::empty()?;
        let mut conn = db::connect_once(&db.url)?;
        db::run_migrations(&mut conn)?;
        Ok(db)
    }

    /// Creates a fresh database with no tables at all.
    pub fn empty() -> Result<Self> {
        let base = base_config()?.database_url;
        let name = format!("overlaps_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = db::connect_once(&base)?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
        let mut url = url::Url::parse(base.expose())
            .map_err(|err| Error::DatabaseConnection(err.to_string()))?;
        url.set_path(&name);
        let url: DatabaseUrl = url.as_str().parse().map_err(Error::DatabaseConnection)?;
        Ok(TestDatabase { name, url, base })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its connection URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A new connection to it.
    pub fn connect(&self) -> Result<diesel::PgConnection> {
        db::connect_once(&self.url)
    }

    /// A pool on it.
    pub async fn pool(&self, size: u32) -> Result<Database> {
        Database::connect(&self.url, size).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE: a test may leave pooled connections or a killed binary's behind.
        let dropped = db::connect_once(&self.base).and_then(|mut conn| {
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .map_err(Error::from)
        });
        if let Err(err) = dropped {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}
