//! A Redis key prefix per test on the shared Redis, and a private Redis server a
//! test may kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::base_config;
use crate::redis_keys::KeyPrefix;
use crate::{Error, Result};

/// A Redis key prefix for one test; every key under it is deleted on drop.
pub struct TestRedis {
    url: String,
    keys: KeyPrefix,
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis")
            .field("keys", &self.keys)
            .finish()
    }
}

impl TestRedis {
    /// A fresh, unique prefix.
    pub fn new() -> Result<Self> {
        Ok(Self::on(base_config()?.redis_url.as_str()))
    }

    /// A fresh, unique prefix on the Redis at `url` (a [`PrivateRedis`]).
    pub fn on(url: &str) -> Self {
        let keys = KeyPrefix::new(format!("overlaps-test-{}", uuid::Uuid::new_v4().simple()));
        TestRedis {
            url: url.to_owned(),
            keys,
        }
    }

    /// The Redis URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test's key space.
    pub fn keys(&self) -> &KeyPrefix {
        &self.keys
    }

    /// A connection to the test's Redis.
    pub async fn connect(&self) -> Result<redis::aio::ConnectionManager> {
        crate::redis_keys::connect(&self.url).await
    }

    /// Every key currently under the prefix.
    pub fn existing_keys(&self) -> Result<Vec<String>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_connection()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.keys.as_str()))
            .query(&mut conn)?;
        Ok(keys)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let deleted = self.existing_keys().and_then(|keys| {
            if keys.is_empty() {
                return Ok(());
            }
            let client = redis::Client::open(self.url.as_str())?;
            let mut conn = client.get_connection()?;
            let _: i64 = redis::cmd("DEL").arg(keys).query(&mut conn)?;
            Ok(())
        });
        if let Err(err) = deleted {
            eprintln!(
                "could not clean test redis prefix {}: {err}",
                self.keys.as_str()
            );
        }
    }
}

/// A Redis server of one test's own, on a free port and saving nothing, so the test
/// may kill it and start it again empty without touching the Redis other tests share.
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

impl std::fmt::Debug for PrivateRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateRedis")
            .field("port", &self.port)
            .finish()
    }
}

/// The server binary, from `PATH` (`./run.sh test` installs it).
const REDIS_SERVER: &str = "redis-server";

impl PrivateRedis {
    /// Starts a server on a free port of 127.0.0.1; waits until it answers.
    pub fn start() -> Result<Self> {
        let mut redis = PrivateRedis {
            child: None,
            port: super::free_port()?,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                Error::Io(std::io::Error::other(format!(
                    "{REDIS_SERVER} could not start ({err}): install it (./run.sh test does)"
                )))
            })?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let answered = redis::Client::open(self.url().as_str())
                .and_then(|client| client.get_connection())
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            if answered.is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Io(std::io::Error::other(format!(
            "{REDIS_SERVER} did not answer on port {}",
            self.port
        ))))
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: whatever it held is gone) and starts a new, empty
    /// one on the same port after `down`.
    pub fn restart_empty(&mut self, down: Duration) -> Result<()> {
        self.kill();
        std::thread::sleep(down);
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
