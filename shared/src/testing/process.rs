//! Running the compiled binaries: spawning, reading their JSON logs, signals,
//! the environment they need and the start-up checks every service shares.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{TestDatabase, TestRedis};
use crate::{Error, Result};

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
        // Tests admit every key unless they test admission (which they set).
        ("VALIDATOR_ADMISSION".into(), "open".into()),
    ]
}

/// Spawns `program` with `env` and waits up to a minute for its `ready` line;
/// panics with what it printed otherwise.
pub fn spawn_ready(program: &str, args: &[&str], env: &[(String, String)]) -> ServiceProcess {
    spawn_until_ready(program, args, env).0
}

/// [`spawn_ready`], also returning the `ready` line.
fn spawn_until_ready(
    program: &str,
    args: &[&str],
    env: &[(String, String)],
) -> (ServiceProcess, serde_json::Value) {
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut process = match ServiceProcess::spawn(program, args, &envs) {
        Ok(process) => process,
        Err(err) => panic!("{program} did not start: {err}"),
    };
    match process.wait_ready(Duration::from_secs(60)) {
        Some(ready) => (process, ready),
        None => panic!("{program} never became ready: {:?}", process.output()),
    }
}

/// Spawns the `server` binary at `program` and returns it with the address its
/// `ready` line reports. Without a `SERVER_BIND` in `env` it binds
/// `127.0.0.1:0`, a port the system picks: unlike a port taken from [`free_port`]
/// and bound later, no other test can take it in between. (A test that restarts a
/// server on the same address sets `SERVER_BIND` itself.)
pub fn spawn_server(program: &str, env: &[(String, String)]) -> (ServiceProcess, String) {
    let mut env = env.to_vec();
    if !env.iter().any(|(k, _)| k == "SERVER_BIND") {
        env.push(("SERVER_BIND".into(), "127.0.0.1:0".into()));
    }
    let (mut process, ready) = spawn_until_ready(program, &[], &env);
    match ready.get("bind").and_then(|bind| bind.as_str()) {
        Some(bind) if !bind.ends_with(":0") => (process, bind.to_owned()),
        _ => panic!(
            "{program} never reported the address it bound: {ready} {:?}",
            process.output()
        ),
    }
}

/// Polls `done` every 200 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `done` every 100 ms for up to `limit`; whether it came to hold (for tests
/// outside an async runtime).
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
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
