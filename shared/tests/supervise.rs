//! The supervision `./run.sh` runs its services under (`services/dev/supervise.sh`),
//! driven with toy services: a service that exits is restarted with a growing delay
//! and says so while the others keep running; a crash loop stays at the cap; a
//! service that stayed up starts over at the initial delay; SIGINT or SIGTERM stops
//! every service (one ignoring SIGTERM too) and restarts none; the exit of an
//! essential service stops everything; a bad setting is refused by name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A supervisor (bash sourcing supervise.sh) running toy services.
struct Supervisor {
    child: Child,
    dir: PathBuf,
    /// Unique to this run: in the supervisor's script (so in every loop subshell's
    /// command line) and in every prefixer's (`sed` with `[name]`).
    marker: String,
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
}

/// `name`, the shell command it runs, and whether it is essential.
type Service<'a> = (&'a str, &'a str, bool);

impl Supervisor {
    /// Starts the supervisor with `services`; `$PIDS` in a command is the file its
    /// service appends its pid to.
    fn start(services: &[Service], settings: &[(&str, &str)]) -> Self {
        let marker = format!("sup{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&marker);
        std::fs::create_dir_all(&dir).unwrap();
        let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/dev/supervise.sh");
        assert!(library.exists(), "{} is missing", library.display());
        let mut script = format!(
            "# {marker}\nset -euo pipefail\nsource '{}'\n\
             trap 'trap - INT TERM; supervise_stop; exit 130' INT\n\
             trap 'trap - INT TERM; supervise_stop; exit 143' TERM\n\
             trap supervise_stop EXIT\n",
            library.display()
        );
        for (name, command, essential) in services {
            let pids = dir.join(format!("{name}.pids"));
            let command = command.replace("$PIDS", &pids.display().to_string());
            let flag = if *essential { "--essential " } else { "" };
            script.push_str(&format!(
                "supervise_start {flag}{marker}-{name} bash -c '{command}'\n"
            ));
        }
        script.push_str("supervise_wait\n");
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(&script)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in settings {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (pipe, lines) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        Supervisor {
            child,
            dir,
            marker,
            stderr,
        }
    }

    /// The pids service `name` has had, oldest first.
    fn pids(&self, name: &str) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pids")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Waits up to `limit` for service `name` to have had `n` pids.
    fn wait_pids(&self, name: &str, n: usize, limit: Duration) -> Vec<u32> {
        let started = Instant::now();
        while self.pids(name).len() < n {
            assert!(
                started.elapsed() < limit,
                "{name} had {:?}, not {n} pids, after {limit:?}; supervisor said:\n{}",
                self.pids(name),
                self.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.pids(name)
    }

    /// The supervisor's lines about service `name`, with when they came.
    fn lines_about(&self, name: &str) -> Vec<(Instant, String)> {
        let prefix = format!("==> {}-{name} ", self.marker);
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.starts_with(&prefix))
            .map(|(at, l)| (*at, l.replacen(&format!("{}-", self.marker), "", 1)))
            .collect()
    }

    /// Everything it printed.
    fn said(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends `signal` to the supervisor alone and waits up to `limit` for its exit.
    fn stop_with(&mut self, signal: &str, limit: Duration) -> (ExitStatus, Duration) {
        kill(signal, self.child.id());
        self.wait_exit(limit)
    }

    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the supervisor did not exit within {limit:?}:\n{}",
                self.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Processes still running that belong to this supervisor: its loops and
    /// prefixers (by the marker in their command line).
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&self.marker) && alive(pid) {
                left.push(format!("{pid}: {cmdline}"));
            }
        }
        left
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// After the supervisor exited: no service pid and none of its processes runs.
fn assert_nothing_left(supervisor: &Supervisor, services: &[&str]) {
    // The prefixers end once the last writer closes their pipe: give them a moment.
    let started = Instant::now();
    loop {
        let running: Vec<(String, u32)> = services
            .iter()
            .flat_map(|s| supervisor.pids(s).into_iter().map(|p| (s.to_string(), p)))
            .filter(|(_, pid)| alive(*pid))
            .collect();
        let leftovers = supervisor.leftovers();
        if running.is_empty() && leftovers.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "left running after the supervisor exited: services {running:?}, its own {leftovers:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const STEADY: &str = "echo $$ >> $PIDS; exec sleep 1000";

#[test]
fn a_service_that_exits_is_restarted_with_growing_delay_while_the_others_keep_running() {
    let mut sup = Supervisor::start(
        &[("steady", STEADY, false), ("victim", STEADY, false)],
        &[
            ("RESTART_BACKOFF_INITIAL_SECONDS", "1"),
            ("RESTART_BACKOFF_MAX_SECONDS", "30"),
        ],
    );
    let steady = sup.wait_pids("steady", 1, Duration::from_secs(10))[0];
    let first = sup.wait_pids("victim", 1, Duration::from_secs(10))[0];

    // SIGKILL: restarted after 1 s, said so with the status.
    let killed = Instant::now();
    kill("KILL", first);
    let second = sup.wait_pids("victim", 2, Duration::from_secs(10))[1];
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "restarted after {took:?}"
    );
    assert_ne!(second, first);
    assert!(alive(second));
    // Killed again at once: the delay doubles.
    let killed = Instant::now();
    kill("KILL", second);
    let third = sup.wait_pids("victim", 3, Duration::from_secs(10))[2];
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "restarted after {took:?}"
    );
    assert!(alive(third));
    let lines: Vec<String> = sup
        .lines_about("victim")
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(
        lines,
        [
            "==> victim exited (status 137); restarting in 1 s (restart 1)",
            "==> victim exited (status 137); restarting in 2 s (restart 2)",
        ],
        "{}",
        sup.said()
    );
    // The other service ran on untouched.
    assert_eq!(sup.pids("steady"), [steady]);
    assert!(alive(steady));
    assert!(sup.lines_about("steady").is_empty(), "{}", sup.said());

    let (status, took) = sup.stop_with("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{}", sup.said());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert_nothing_left(&sup, &["steady", "victim"]);
}

#[test]
fn sigint_stops_every_service_even_one_ignoring_sigterm_and_restarts_none() {
    let mut sup = Supervisor::start(
        &[
            ("steady", STEADY, false),
            // Ignores SIGTERM: killed once the stop timeout passes.
            (
                "stubborn",
                "trap \"\" TERM; echo $$ >> $PIDS; while sleep 0.1; do :; done",
                false,
            ),
            // Mid-backoff when the stop comes: must not start again.
            ("crasher", "echo $$ >> $PIDS; exit 3", false),
        ],
        &[
            ("RESTART_BACKOFF_INITIAL_SECONDS", "2"),
            ("RESTART_STOP_TIMEOUT_SECONDS", "1"),
        ],
    );
    sup.wait_pids("steady", 1, Duration::from_secs(10));
    sup.wait_pids("stubborn", 1, Duration::from_secs(10));
    sup.wait_pids("crasher", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));

    let (status, took) = sup.stop_with("INT", Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{}", sup.said());
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    assert!(
        sup.said().contains("==> stopping 3 services"),
        "{}",
        sup.said()
    );
    assert_nothing_left(&sup, &["steady", "stubborn", "crasher"]);
    // Nothing comes back after the stop (the crasher's restart was due meanwhile).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sup.pids("crasher").len(), 1, "restarted after the stop");
    assert_eq!(sup.pids("steady").len(), 1);
    assert_eq!(sup.pids("stubborn").len(), 1);
}

#[test]
fn a_crash_loop_backs_off_up_to_the_cap_and_a_service_that_stayed_up_starts_over() {
    let mut sup = Supervisor::start(
        &[
            ("crasher", "echo $$ >> $PIDS; exit 3", false),
            // Up longer than RESTART_RESET_AFTER_SECONDS each time: always the initial delay.
            ("lasting", "echo $$ >> $PIDS; sleep 1.5; exit 1", false),
        ],
        &[
            ("RESTART_BACKOFF_INITIAL_SECONDS", "1"),
            ("RESTART_BACKOFF_MAX_SECONDS", "2"),
            ("RESTART_RESET_AFTER_SECONDS", "1"),
        ],
    );
    // Starts at 0, then after 1, 2, 2, 2 s.
    sup.wait_pids("crasher", 5, Duration::from_secs(20));
    sup.wait_pids("lasting", 3, Duration::from_secs(20));
    let crasher = sup.lines_about("crasher");
    let texts: Vec<&str> = crasher.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        texts[..4],
        [
            "==> crasher exited (status 3); restarting in 1 s (restart 1)",
            "==> crasher exited (status 3); restarting in 2 s (restart 2)",
            "==> crasher exited (status 3); restarting in 2 s (restart 3)",
            "==> crasher exited (status 3); restarting in 2 s (restart 4)",
        ],
        "{}",
        sup.said()
    );
    // The delays really are waited: consecutive messages are at least 2 s apart
    // once capped (each message follows a restart and an immediate exit).
    for pair in crasher[1..4].windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(1900), "gap {gap:?}");
        assert!(
            gap < Duration::from_millis(3500),
            "gap {gap:?} beyond the cap"
        );
    }
    let lasting: Vec<String> = sup
        .lines_about("lasting")
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(
        lasting[..2],
        [
            "==> lasting exited (status 1); restarting in 1 s (restart 1)",
            "==> lasting exited (status 1); restarting in 1 s (restart 2)",
        ],
        "{}",
        sup.said()
    );
    let (status, _) = sup.stop_with("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(143));
    assert_nothing_left(&sup, &["crasher", "lasting"]);
}

#[test]
fn the_exit_of_an_essential_service_stops_everything_with_its_status() {
    let mut sup = Supervisor::start(
        &[
            ("steady", STEADY, false),
            ("chain", "echo $$ >> $PIDS; sleep 1; exit 4", true),
        ],
        &[],
    );
    let (status, _) = sup.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(4), "{}", sup.said());
    assert!(
        sup.said()
            .contains("chain exited (status 4); it is not restarted: stopping everything"),
        "{}",
        sup.said()
    );
    assert_eq!(sup.pids("chain").len(), 1);
    assert_nothing_left(&sup, &["steady", "chain"]);
}

#[test]
fn a_bad_setting_is_refused_by_name() {
    let mut sup = Supervisor::start(
        &[("steady", STEADY, false)],
        &[("RESTART_BACKOFF_MAX_SECONDS", "soon")],
    );
    let (status, _) = sup.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(
        sup.said()
            .contains("RESTART_BACKOFF_MAX_SECONDS=soon is invalid"),
        "{}",
        sup.said()
    );
    assert!(
        sup.pids("steady").is_empty(),
        "started despite the bad setting"
    );
}
