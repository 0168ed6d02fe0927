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
    /// CPU seconds of everything else that ran: PostgreSQL, Redis, the kernel.
    pub rest: f64,
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
    fn a_busy_loop_shows_in_the_drivers_share() {
        let before = CpuReading::now(Some(std::process::id()));
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = before
            .until(&CpuReading::now(Some(std::process::id())))
            .expect("/proc is readable on Linux");
        // The loop ran on this process: at least a tick of it is counted, as the
        // driver's and (the pid given is this one) as the hub's.
        assert!(used.driver >= 0.1, "{used:?}");
        assert!(used.hub >= 0.1, "{used:?}");
        assert!(
            used.busy_fraction > 0.0 && used.busy_fraction <= 1.0,
            "{used:?}"
        );
    }
}
