//! Test support: a fresh database and Redis key prefix per test, and running the
//! compiled binaries. Enabled by the `testing` feature (dev-dependencies only).
//!
//! Tests read `DATABASE_URL` and `REDIS_URL` from the environment or `.env`, as the
//! services do. The database role needs `CREATEDB`; `./run.sh test` sets that up.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};

use crate::config::{CommonConfig, ConfigError, DatabaseUrl, Env};
use crate::db::{self, Database};
use crate::redis_keys::KeyPrefix;
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
        Ok(diesel::PgConnection::establish(self.url.expose())?)
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
        let url = base_config()?.redis_url.as_str().to_owned();
        let keys = KeyPrefix::new(format!("overlaps-test-{}", uuid::Uuid::new_v4().simple()));
        Ok(TestRedis { url, keys })
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

/// A compiled binary started by a test, with its stdout (JSON logs) captured.
pub struct ServiceProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl std::fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl ServiceProcess {
    /// Starts `program` with `args` and the environment `envs` (JSON logs forced).
    pub fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            // Away from the repository, so the binary cannot pick up its `.env`:
            // the test decides every variable.
            .current_dir(std::env::temp_dir())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let (tx, rx) = mpsc::channel();
        // stdout and stderr both feed the same line channel.
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(ServiceProcess {
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for an output line matching `pred`; returns it.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Waits for the JSON log line whose message is `ready`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.wait_for_line(timeout, |line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|v| v.get("message").and_then(|m| m.as_str()) == Some("ready"))
        })?;
        serde_json::from_str(&line).ok()
    }

    /// Every line printed so far.
    pub fn output(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<(ExitStatus, Duration)>> {
        self.signal("TERM")?;
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some((status, started.elapsed())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`, ...) with `kill`.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Io(std::io::Error::other(format!(
                "kill -{name} failed"
            ))))
        }
    }

    /// Waits for the process to exit on its own, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                // The readers deliver what the process printed last until both
                // pipes close: collect it, so `output` has every line.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(line);
                }
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (for a binary the test starts).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The environment a service binary needs to run against `db` and `redis`.
pub fn service_env(db: &TestDatabase, redis: &TestRedis) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), db.url().expose().to_owned()),
        ("REDIS_URL".into(), redis.url().to_owned()),
        ("REDIS_PREFIX".into(), redis.keys().as_str().to_owned()),
        ("DATABASE_POOL_SIZE".into(), "2".into()),
    ]
}

/// Spawns `program` with `env` and waits up to a minute for its `ready` line;
/// panics with what it printed otherwise.
pub fn spawn_ready(program: &str, args: &[&str], env: &[(String, String)]) -> ServiceProcess {
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut process = match ServiceProcess::spawn(program, args, &envs) {
        Ok(process) => process,
        Err(err) => panic!("{program} did not start: {err}"),
    };
    assert!(
        process.wait_ready(Duration::from_secs(60)).is_some(),
        "{program} never became ready: {:?}",
        process.output()
    );
    process
}

/// Polls `done` every 200 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A validator key made by `validator keygen` in the temp directory; removed on drop
/// with the receipt file a node keeps next to it.
#[derive(Debug)]
pub struct ValidatorKeyFile(String);

impl ValidatorKeyFile {
    /// Runs `{validator} keygen` into a fresh file.
    pub fn generate(validator: &str) -> Self {
        let path = std::env::temp_dir()
            .join(format!(
                "overlaps-test-{}.key",
                uuid::Uuid::new_v4().simple()
            ))
            .to_string_lossy()
            .into_owned();
        let made = ServiceProcess::spawn(validator, &["keygen", "--key-file", &path], &[])
            .and_then(|mut keygen| keygen.wait_exit(Duration::from_secs(10)));
        assert!(
            matches!(made, Ok(Some(status)) if status.success()),
            "validator keygen failed: {made:?}"
        );
        ValidatorKeyFile(path)
    }

    /// Its path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

impl Drop for ValidatorKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(format!("{}.receipts", self.0));
    }
}

/// Starts `program` against a fresh database and Redis prefix, waits for `ready`,
/// sends SIGTERM and checks that it exits cleanly within 5 s.
pub fn assert_starts_and_stops(program: &str, extra_env: &[(&str, &str)]) {
    let (db, redis) = match (TestDatabase::empty(), TestRedis::new()) {
        (Ok(db), Ok(redis)) => (db, redis),
        (db, redis) => panic!("test infrastructure: {:?} {:?}", db.err(), redis.err()),
    };
    let env = service_env(&db, &redis);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.extend_from_slice(extra_env);
    let mut process = match ServiceProcess::spawn(program, &[], &envs) {
        Ok(process) => process,
        Err(err) => panic!("could not start {program}: {err}"),
    };
    let ready = process.wait_ready(Duration::from_secs(60));
    assert!(
        ready.is_some(),
        "{program} never logged ready:\n{}",
        process.output().join("\n")
    );
    match process.terminate(Duration::from_secs(5)) {
        Ok(Some((status, _))) => assert!(
            status.success(),
            "{program} exited with {status}:\n{}",
            process.output().join("\n")
        ),
        other => panic!("{program} did not stop within 5 s of SIGTERM: {other:?}"),
    }
    let output = process.output();
    assert!(
        output.iter().any(|line| line.contains("\"stopped\"")),
        "{program} did not log stopped:\n{}",
        output.join("\n")
    );
}

/// Starts `program args` with `envs` and checks that it refuses to start, naming `var`.
pub fn assert_refuses_config(program: &str, args: &[&str], envs: &[(&str, &str)], var: &str) {
    let mut process = match ServiceProcess::spawn(program, args, envs) {
        Ok(process) => process,
        Err(err) => panic!("could not start {program}: {err}"),
    };
    match process.wait_exit(Duration::from_secs(10)) {
        Ok(Some(status)) => assert!(!status.success(), "{program} accepted a bad {var}"),
        other => panic!("{program} kept running with a bad {var}: {other:?}"),
    }
    let output = process.output().join("\n");
    assert!(
        output.contains(var),
        "{program}'s error does not name {var}:\n{output}"
    );
}

/// Installs the ring TLS provider for the test process, as the binaries do at start.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The path of a workspace binary built next to the running test (`cargo test
/// --workspace` builds every binary before running any test).
pub fn workspace_binary(name: &str) -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .unwrap_or_default();
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo test --workspace` (or `cargo build --bins` first)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// A local HTTP target for checks: answers every request with `status` and `body`.
pub struct HttpTarget {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpTarget {
    /// Starts serving on a free port of 127.0.0.1.
    pub async fn start(status: u16, body: &str) -> Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = std::sync::Arc::new(std::sync::Mutex::new((status, body.to_owned())));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (shared, counter) = (state.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    // Read the request head; the body of a GET/HEAD is empty.
                    while read < buf.len() {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (status, body) = shared
                        .lock()
                        .map(|g| g.clone())
                        .unwrap_or((500, String::new()));
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(HttpTarget {
            addr,
            state,
            hits,
            task,
        })
    }

    /// `http://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Changes what every later request gets.
    pub fn set(&self, status: u16, body: &str) {
        if let Ok(mut guard) = self.state.lock() {
            *guard = (status, body.to_owned());
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The start-up tests every hub service shares: it starts against real PostgreSQL
/// and Redis, logs `ready`, stops within 5 s of SIGTERM, and refuses to start
/// without `DATABASE_URL`. Use in `tests/startup.rs`: `service_startup_tests!("name");`.
#[macro_export]
macro_rules! service_startup_tests {
    ($bin:literal) => {
        #[test]
        fn starts_against_real_postgres_and_redis_and_stops_on_sigterm_within_5s() {
            $crate::testing::assert_starts_and_stops(env!(concat!("CARGO_BIN_EXE_", $bin)), &[]);
        }

        #[test]
        fn refuses_to_start_without_database_url() {
            $crate::testing::assert_refuses_config(
                env!(concat!("CARGO_BIN_EXE_", $bin)),
                &[],
                &[("REDIS_URL", "redis://127.0.0.1:6379")],
                "DATABASE_URL",
            );
        }
    };
}

/// One request an [`HttpSink`] received.
#[derive(Debug, Clone)]
pub struct SinkRequest {
    /// Request line, e.g. `POST /hook HTTP/1.1`.
    pub request_line: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl SinkRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server recording every request (a Slack or webhook sink), answering
/// with a settable status.
pub struct HttpSink {
    addr: std::net::SocketAddr,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    received: std::sync::Arc<std::sync::Mutex<Vec<SinkRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl HttpSink {
    /// Starts recording on a free port of 127.0.0.1, answering 200.
    pub async fn start() -> Result<Self> {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (status_in, received_in) = (status.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (status, received) = (status_in.clone(), received_in.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    let request = loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&data[..end]).into_owned();
                        let mut lines = head.split("\r\n");
                        let request_line = lines.next().unwrap_or_default().to_owned();
                        let headers: Vec<(String, String)> = lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect();
                        let length = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .and_then(|(_, v)| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break SinkRequest {
                                request_line,
                                headers,
                                body: data[end + 4..end + 4 + length].to_vec(),
                            };
                        }
                    };
                    if let Ok(mut all) = received.lock() {
                        all.push(request);
                    }
                    let code = status.load(Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(HttpSink {
            addr,
            status,
            received,
            task,
        })
    }

    /// `http://127.0.0.1:port/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers later requests with `status`.
    pub fn respond_with(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<SinkRequest> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real SMTP server (Python's aiosmtpd, as `./run.sh test` installs it) storing
/// every message in a Maildir.
pub struct SmtpSink {
    process: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .finish()
    }
}

impl SmtpSink {
    /// Starts aiosmtpd on a free port; waits until it accepts connections.
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let maildir =
            std::env::temp_dir().join(format!("overlaps-mail-{}", uuid::Uuid::new_v4().simple()));
        let process = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let sink = SmtpSink {
            process,
            port,
            maildir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(Error::Io(std::io::Error::other(
                    "aiosmtpd did not start (is it installed? ./run.sh test installs it)",
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sink)
    }

    /// `smtp://127.0.0.1:port` (plain, as for a dev sink).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// The anvil binary that `npm install` in `shared/contracts` installs.
pub fn anvil_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// A private anvil dev chain for one test, on a free port; killed on drop.
pub struct TestChain {
    child: Child,
    port: u16,
}

impl std::fmt::Debug for TestChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestChain")
            .field("port", &self.port)
            .finish()
    }
}

impl TestChain {
    /// Starts anvil (auto-mining each transaction) and waits until it answers.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts anvil with extra arguments (e.g. `--no-mining`).
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let path = anvil_path();
        if !path.exists() {
            return Err(Error::Io(std::io::Error::other(format!(
                "{} is missing: run `npm install` in shared/contracts (./run.sh test does)",
                path.display()
            ))));
        }
        // A port taken between free_port and anvil's bind makes anvil exit: retry.
        for _ in 0..5 {
            let port = free_port()?;
            let child = Command::new(&path)
                .args([
                    "--port",
                    &port.to_string(),
                    "--host",
                    "127.0.0.1",
                    "--silent",
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut chain = TestChain { child, port };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = chain.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(chain);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = chain.child.kill();
        }
        Err(Error::Io(std::io::Error::other("anvil did not start")))
    }

    /// The JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Dev key `i` (0 is the dev operator), funded with 10 000 ETH by anvil.
    pub fn key(&self, i: usize) -> crate::eth::PrivateKey {
        match crate::eth::DEV_PRIVATE_KEYS[i % crate::eth::DEV_PRIVATE_KEYS.len()].parse() {
            Ok(key) => key,
            Err(err) => panic!("dev key {i}: {err}"),
        }
    }

    /// The guardian of contracts deployed by [`TestChain::deploy_funded`] (dev key 9,
    /// as in `.env.example`).
    pub fn guardian(&self) -> crate::eth::PrivateKey {
        self.key(GUARDIAN_KEY)
    }

    /// Deploys the rewards contract with dev key 0 as operator, dev key 9 as
    /// guardian and [`TEST_CHALLENGE_BLOCKS`], funds it with `funding`, and returns
    /// its address.
    pub async fn deploy_funded(&self, funding: crate::eth::U256) -> Result<crate::eth::Address> {
        self.deploy_custody(
            funding,
            crate::eth::Custody {
                operator: self.key(0).address(),
                guardian: self.guardian().address(),
                challenge_blocks: TEST_CHALLENGE_BLOCKS,
            },
        )
        .await
    }

    /// Deploys the rewards contract (sent by dev key 0) with `custody`, funds it
    /// with `funding`, and returns its address.
    pub async fn deploy_custody(
        &self,
        funding: crate::eth::U256,
        custody: crate::eth::Custody,
    ) -> Result<crate::eth::Address> {
        let client = crate::eth::signer_client(&self.rpc_url(), &self.key(0))
            .await
            .map_err(chain_error)?;
        let address = crate::eth::deploy(client.clone(), custody)
            .await
            .map_err(chain_error)?;
        if !funding.is_zero() {
            crate::eth::fund(&client, address, funding)
                .await
                .map_err(chain_error)?;
        }
        Ok(address)
    }

    /// Mines `blocks` empty blocks at once (`anvil_mine`): an auto-mining chain
    /// otherwise only moves with transactions, and a root waits blocks to mature.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        let client = crate::eth::read_client(&self.rpc_url()).map_err(chain_error)?;
        let _: serde_json::Value =
            crate::eth::raw_request(&client, "anvil_mine", [format!("0x{blocks:x}")])
                .await
                .map_err(chain_error)?;
        Ok(())
    }

    /// Mines past the challenge window of every root committed so far on a
    /// contract deployed by [`TestChain::deploy_funded`].
    pub async fn mature(&self) -> Result<()> {
        self.mine(TEST_CHALLENGE_BLOCKS).await
    }
}

/// The dev key that guards test contracts (anvil's last account, as in
/// `.env.example`).
pub const GUARDIAN_KEY: usize = 9;

/// The challenge window of test contracts: short, since tests mine it away.
pub const TEST_CHALLENGE_BLOCKS: u64 = 5;

fn chain_error(err: crate::eth::EthError) -> Error {
    Error::Io(std::io::Error::other(err.to_string()))
}

impl Drop for TestChain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
