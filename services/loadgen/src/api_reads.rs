//! API reads during the ingest: `GET /api/v1/websites/{id}/status` and
//! `GET /api/v1/rounds/{n}` offered at a fixed rate by a pool of keep-alive
//! clients, each request's latency recorded (errors and timeouts counted apart).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// What the readers are asked to do.
#[derive(Clone)]
pub struct ReadPlan {
    /// `http://host:port` of the server.
    pub base_url: String,
    /// A key that may read every site's status (the bench's operator key).
    pub api_key: String,
    /// Requests per second offered, both routes together.
    pub per_second: u32,
    /// Sites whose status is read, in turn.
    pub sites: Vec<i64>,
}

/// What the readers saw.
#[derive(Default)]
pub struct ReadStats {
    /// Answers with status 200.
    pub ok: AtomicU64,
    /// Anything else: another status, a transport error or no answer within 5 s.
    pub errors: AtomicU64,
    /// Latency of every answered status request, microseconds.
    pub status_latencies_us: Mutex<Vec<u32>>,
    /// Latency of every answered round request, microseconds.
    pub round_latencies_us: Mutex<Vec<u32>>,
    /// The errors by route and kind (`status 404`, `round timeout`, …).
    pub error_kinds: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl ReadStats {
    /// `"round 404 ×3, status timeout ×1"`, or `none`.
    pub async fn error_summary(&self) -> String {
        let kinds = self.error_kinds.lock().await;
        if kinds.is_empty() {
            return "none".to_owned();
        }
        kinds
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Concurrent readers: each offers `per_second / READERS` requests a second.
const READERS: u32 = 32;

/// Starts the readers on a thread and runtime of their own, so that their timing
/// is not the scheduling of the simulated validators that share the driver's
/// runtime (at 4,000 results/s that added 45 ms to the client's p99 while the
/// server's own p99 was under 1 ms). Join the thread once `stop` is set.
pub fn start(
    plan: ReadPlan,
    round: Arc<AtomicI64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<ReadStats>,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    std::thread::Builder::new()
        .name("api-readers".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run(plan, round, stop, stats))
        })
}

/// Reads until `stop` is set; `round` is the latest opened round, read in turn
/// with the sites' status.
async fn run(
    plan: ReadPlan,
    round: Arc<AtomicI64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<ReadStats>,
) -> anyhow::Result<()> {
    if plan.per_second == 0 || plan.sites.is_empty() {
        return Ok(());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(READERS as usize)
        .build()?;
    let readers = READERS.min(plan.per_second);
    let period = Duration::from_secs_f64(f64::from(readers) / f64::from(plan.per_second));
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let (client, plan, round, stop, stats) = (
            client.clone(),
            plan.clone(),
            Arc::clone(&round),
            Arc::clone(&stop),
            Arc::clone(&stats),
        );
        tasks.push(tokio::spawn(async move {
            // Readers start spread over one period, so requests do not arrive in bursts.
            tokio::time::sleep(period * reader / readers).await;
            let mut tick = tokio::time::interval(period);
            // A slow answer delays the next request instead of bunching them up.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut status_latencies, mut round_latencies) = (Vec::new(), Vec::new());
            let mut n = reader as usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let (route, url) = if n.is_multiple_of(2) {
                    let site = plan.sites[(n / 2) % plan.sites.len()];
                    (
                        "status",
                        format!("{}/api/v1/websites/{site}/status", plan.base_url),
                    )
                } else {
                    let number = round.load(Ordering::Relaxed).max(1);
                    ("round", format!("{}/api/v1/rounds/{number}", plan.base_url))
                };
                n += 1;
                let started = Instant::now();
                // The whole answer, body included, is part of the latency.
                let answer = async {
                    let response = client.get(&url).bearer_auth(&plan.api_key).send().await?;
                    let status = response.status();
                    response.bytes().await?;
                    Ok::<reqwest::StatusCode, reqwest::Error>(status)
                }
                .await;
                let kind = match answer {
                    Ok(status) if status.is_success() => {
                        let latencies = if route == "status" {
                            &mut status_latencies
                        } else {
                            &mut round_latencies
                        };
                        latencies
                            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(status) => format!("{route} {}", status.as_u16()),
                    Err(err) if err.is_timeout() => format!("{route} timeout"),
                    Err(err) if err.is_connect() => format!("{route} connect"),
                    Err(_) => format!("{route} transport"),
                };
                stats.errors.fetch_add(1, Ordering::Relaxed);
                *stats.error_kinds.lock().await.entry(kind).or_default() += 1;
            }
            stats
                .status_latencies_us
                .lock()
                .await
                .append(&mut status_latencies);
            stats
                .round_latencies_us
                .lock()
                .await
                .append(&mut round_latencies);
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// The server's request-duration histogram (`/metrics`): cumulative counts by
/// upper bound in seconds, `+Inf` last.
pub type Buckets = Vec<(f64, u64)>;

/// Reads `overlaps_http_request_duration_seconds` from the server's `/metrics`;
/// `None` when it cannot (the figure is then not printed).
pub async fn server_buckets(base_url: &str) -> Option<Buckets> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let buckets: Buckets = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("overlaps_http_request_duration_seconds_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    (!buckets.is_empty()).then_some(buckets)
}

/// The upper bound (seconds) of the bucket holding quantile `q` of the requests
/// answered between two scrapes; `None` when none were.
pub fn quantile_bound(before: &Buckets, after: &Buckets, q: f64) -> Option<f64> {
    let between: Vec<(f64, u64)> = after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0, |(_, c)| *c);
            (bound, count.saturating_sub(earlier))
        })
        .collect();
    let total = between.last()?.1;
    if total == 0 {
        return None;
    }
    let wanted = (total as f64 * q).ceil() as u64;
    between
        .iter()
        .find(|(_, count)| *count >= wanted)
        .map(|(bound, _)| *bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_is_the_bucket_that_holds_it_between_two_scrapes() {
        let before = vec![(0.001, 5), (0.01, 10), (1.0, 10), (f64::INFINITY, 10)];
        // 100 more: 90 within 1 ms, 9 within 10 ms, 1 over 1 s.
        let after = vec![(0.001, 95), (0.01, 109), (1.0, 109), (f64::INFINITY, 110)];
        assert_eq!(quantile_bound(&before, &after, 0.5), Some(0.001));
        assert_eq!(quantile_bound(&before, &after, 0.95), Some(0.01));
        assert_eq!(quantile_bound(&before, &after, 0.999), Some(f64::INFINITY));
        assert_eq!(quantile_bound(&after, &after, 0.5), None);
    }
}
