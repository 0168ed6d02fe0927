//! Where the machine's CPU went while the load ran, from `/proc`: the hub's server
//! process, this driver, and the rest (PostgreSQL, Redis, the kernel's own work),
//! so the cost per result can be carried to a machine of another size.

/// Ticks per second in `/proc` (`USER_HZ`, 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds spent so far, read at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    /// The server process (user + system), when its pid is known.
    hub: Option<f64>,
    /// This driver process, API readers included.
    driver: Option<f64>,
    /// Every core's busy time (all but idle and I/O wait).
    machine_busy: Option<f64>,
    /// Every core's time, busy or not.
    machine_total: Option<f64>,
}

/// What the machine did between two readings.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// CPU seconds of the server process.
    pub hub: f64,
    /// CPU seconds of this driver.
    pub driver: f64,
    /// CPU seconds of everything else that ran: PostgreSQL, Redis, the kernel (and,
    /// where several servers and drivers share the machine, the others).
    pub rest: f64,
    /// CPU seconds of every core together, whatever ran.
    pub machine_busy: f64,
    /// The share of the machine's cores that was busy.
    pub busy_fraction: f64,
}

impl CpuReading {
    /// Reads the CPU spent so far by `server_pid`, this process and the machine.
    pub fn now(server_pid: Option<u32>) -> Self {
        let (machine_busy, machine_total) = machine_seconds().unzip();
        CpuReading {
            hub: server_pid.and_then(|pid| process_seconds(&pid.to_string())),
            driver: process_seconds("self"),
            machine_busy,
            machine_total,
        }
    }

    /// What was spent from `self` until `later`; `None` when a figure could not be read.
    pub fn until(&self, later: &CpuReading) -> Option<CpuUse> {
        let hub = later.hub? - self.hub?;
        let driver = later.driver? - self.driver?;
        let busy = later.machine_busy? - self.machine_busy?;
        let total = later.machine_total? - self.machine_total?;
        Some(CpuUse {
            hub,
            driver,
            // Ticks are read at slightly different moments: never below zero.
            rest: (busy - hub - driver).max(0.0),
            machine_busy: busy,
            busy_fraction: if total > 0.0 { busy / total } else { f64::NAN },
        })
    }
}

/// A process's user + system CPU seconds, from `/proc/{pid}/stat`.
fn process_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Every core's busy and total CPU seconds, from the first line of `/proc/stat`.
fn machine_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let [user, nice, system, idle, iowait, irq, softirq, steal, ..] = ticks[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some((
        busy / TICKS_PER_SECOND,
        (busy + idle + iowait) / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn this_process_busy_shows_as_the_drivers_share_and_in_the_machines() {
        // PID 1 stands in for the server: it exists wherever this runs.
        let before = CpuReading::now(Some(1));
        let started = std::time::Instant::now();
        let mut x = 0u64;
        // Spin until this process has used a quarter second of CPU, however
        // loaded the machine is (a bound of wall time only against a hang).
        while process_seconds("self").unwrap_or(f64::MAX) - before.driver.unwrap_or(0.0) < 0.25
            && started.elapsed() < std::time::Duration::from_secs(60)
        {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let used = before
            .until(&CpuReading::now(Some(1)))
            .expect("/proc is readable on Linux");
        assert!(used.driver >= 0.25, "{used:?}");
        // /proc/stat counts the same work, whole-machine: at least as much, give or
        // take a tick on each core.
        assert!(used.machine_busy >= used.driver - 0.05, "{used:?}");
        assert!(
            used.busy_fraction > 0.0 && used.busy_fraction <= 1.0,
            "{used:?}"
        );
        assert!(used.hub >= 0.0 && used.rest >= 0.0, "{used:?}");
    }
}
