//! `loadgen`: the load driver of `./run.sh bench`. It opens many simulated
//! validators against a running server (real keys, real signatures, real
//! WebSockets), plays the scheduler (a round per second, one `dispatch` job per
//! round), answers every `validate` at once, and reports what PostgreSQL stored,
//! while reading the API at a fixed rate.

mod api_reads;
mod cpu;
mod limits;
mod prepare;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apalis::prelude::TaskSink;
use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Text};
use futures::{SinkExt, StreamExt};
use overlaps_shared::config::{CommonConfig, Env};
use overlaps_shared::jobs::{self, Dispatch};
use overlaps_shared::protocol::{CLIENT_READ_BUFFER_BYTES, HubMessage, ValidatorMessage};
use overlaps_shared::redis_keys::{self, KeyPrefix};
use overlaps_shared::signing::{self, Keypair, PayoutAddress};
use overlaps_shared::site_check::SiteCheck;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What the run is asked to do.
struct Plan {
    hub_url: String,
    hub_id: String,
    instance: String,
    connections: usize,
    checks_per_validator: usize,
    seconds: u64,
    round_seconds: u64,
    server_pid: Option<u32>,
    api_base_url: String,
    api_key: Option<String>,
    api_reads_per_second: u32,
    measure_limits: bool,
    round_base: Option<i64>,
    prepare_insert_rows_per_s: u32,
}

/// Counters shared by every simulated validator.
#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    latencies_ms: Mutex<Vec<u32>>,
    /// Results signed when none was prepared (there should be none).
    signed_on_the_spot: AtomicU64,
}

/// Assignment id → its signed `result` frame, set once preparation is done.
type PreparedResults = Arc<OnceLock<HashMap<i64, Message>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The API readers' HTTP client needs a TLS provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = Env::from_process();
    let common = CommonConfig::from_env(&env)?;
    let plan = Plan {
        hub_url: env.optional("HUB_URL", "ws://127.0.0.1:8080/ws/validator".to_owned())?,
        hub_id: env.optional("HUB_ID", "overlaps-dev".to_owned())?,
        instance: env.optional("SERVER_INSTANCE_ID", "server-1".to_owned())?,
        connections: env.ranged("BENCH_CONNECTIONS", 2000, 1..=200_000)?,
        checks_per_validator: env.ranged("BENCH_CHECKS_PER_VALIDATOR", 5, 1..=100)?,
        seconds: env.ranged("BENCH_SECONDS", 20, 1..=3600)?,
        round_seconds: env.ranged("BENCH_ROUND_SECONDS", 1, 1..=600)?,
        server_pid: env.maybe("SERVER_PID")?,
        api_base_url: env.optional("BENCH_API_URL", "http://127.0.0.1:8080".to_owned())?,
        api_key: env.maybe("BENCH_API_KEY")?,
        api_reads_per_second: env.ranged("BENCH_API_READS_PER_S", 2000, 0..=100_000)?,
        // Several drivers at once (one per server instance) measure the limits once.
        measure_limits: env.optional("BENCH_MEASURE_LIMITS", true)?,
        // ... and number their rounds apart.
        round_base: env.maybe("BENCH_ROUND_BASE")?,
        // Inserting runs at 10,000–100,000 rows/s on this machine: plan for the slow end.
        prepare_insert_rows_per_s: env.ranged(
            "BENCH_PREPARE_INSERT_ROWS_PER_S",
            20_000,
            100..=100_000_000,
        )?,
    };
    let mut conn = overlaps_shared::db::connect_once(&common.database_url).context("database")?;
    let redis = redis_keys::connect(common.redis_url.as_str()).await?;
    let keys = KeyPrefix::new(common.redis_prefix.clone());

    let (raw_verify, raw_verify_all, raw_verify_batch, raw_copy) = if plan.measure_limits {
        println!("measuring the machine's limits ...");
        let one = tokio::task::spawn_blocking(limits::raw_verifications_per_second).await?;
        let (all, batch) =
            tokio::task::spawn_blocking(limits::raw_verifications_all_cores_per_second).await?;
        (
            one,
            all,
            batch,
            limits::raw_copy_rows_per_second(&mut conn, 200_000)?,
        )
    } else {
        (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
    };
    println!("  raw Ed25519 verify (1 core): {raw_verify:>10.0} /s");
    println!("  raw Ed25519 verify (all cores, strict one by one): {raw_verify_all:>10.0} /s");
    println!(
        "  raw Ed25519 verify (all cores, batches of 64):     {raw_verify_batch:>10.0} /s  (not strict: not a limit the hub may use)"
    );
    println!("  raw PostgreSQL COPY ticks:   {raw_copy:>10.0} rows/s");

    let rss_before = plan.server_pid.and_then(rss_kib);
    println!("opening {} validator connections ...", plan.connections);
    let stats = Arc::new(Stats::default());
    let opened = Instant::now();
    let prepared_results = PreparedResults::default();
    let validators = open_validators(&plan, &stats, &prepared_results).await?;
    println!(
        "  {} signed up in {:.1} s",
        validators.len(),
        opened.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = plan.server_pid.and_then(rss_kib);

    let sites = create_sites(&mut conn, plan.checks_per_validator)?;
    let per_round = validators.len() * sites.ids.len();
    let first_round = match plan.round_base {
        Some(base) => base + 1,
        None => next_round(&mut conn)?,
    };
    let rounds = (plan.seconds / plan.round_seconds).max(1);
    println!(
        "preparing {rounds} rounds of {per_round} checks: assignments, results signed ahead ..."
    );
    let round_plan = prepare::RoundPlan {
        first_round,
        rounds,
        round_seconds: plan.round_seconds,
        instance: &plan.instance,
        hub_id: &plan.hub_id,
        insert_rows_per_s: f64::from(plan.prepare_insert_rows_per_s),
    };
    let prepared = tokio::task::block_in_place(|| {
        prepare::prepare_rounds(&mut conn, &round_plan, &validators, &sites)
    })?;
    println!(
        "  assignments inserted in {:.1} s, results signed in {:.1} s{}",
        prepared.insert_time.as_secs_f64(),
        prepared.sign_time.as_secs_f64(),
        if prepared.shifted_by.is_zero() {
            String::new()
        } else {
            format!(
                " (the estimate was short: the schedule moved {:.1} s later)",
                prepared.shifted_by.as_secs_f64()
            )
        }
    );
    let prepare_s = (prepared.insert_time + prepared.sign_time).as_secs_f64();
    let prepare::PreparedRounds {
        rounds: schedule,
        results,
        ..
    } = prepared;
    if prepared_results.set(results).is_err() {
        anyhow::bail!("results were prepared twice");
    }
    let Some(opens_at) = schedule.first().map(|r| r.opens_at) else {
        anyhow::bail!("no round was prepared");
    };
    if let Ok(wait) = (opens_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    println!(
        "driving {} s: a round every {} s, {per_round} checks per round ...",
        plan.seconds, plan.round_seconds
    );
    let mut queue = jobs::dispatch_storage(redis.clone(), &keys, &plan.instance);
    let latest_round = Arc::new(AtomicI64::new(first_round));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let read_stats = Arc::new(api_reads::ReadStats::default());
    let readers = plan.api_key.clone().map(|api_key| {
        api_reads::start(
            api_reads::ReadPlan {
                base_url: plan.api_base_url.clone(),
                api_key,
                per_second: plan.api_reads_per_second,
                sites: sites.ids.clone(),
            },
            Arc::clone(&latest_round),
            Arc::clone(&stop_reading),
            Arc::clone(&read_stats),
        )
    });
    let readers = readers.transpose()?;
    let cpu_before = cpu::CpuReading::now(plan.server_pid);
    // The server's own timing of the reads (its `/metrics` histogram), to tell its
    // time from the wait on the way (sockets, the driver's own scheduling).
    let server_timing_before = match &readers {
        Some(_) => api_reads::server_buckets(&plan.api_base_url).await,
        None => None,
    };
    let driving = Instant::now();
    let mut dispatched = 0usize;
    let mut setup = Duration::ZERO;
    let mut last_opened = opens_at;
    for prepared_round in schedule {
        last_opened = prepared_round.opens_at;
        if let Ok(wait) = (prepared_round.opens_at - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let setup_started = Instant::now();
        let round = prepared_round.number;
        let ids = prepared_round.assignment_ids;
        dispatched += ids.len();
        latest_round.store(round, Ordering::Relaxed);
        let job = Dispatch {
            round,
            server_instance: plan.instance.clone(),
            assignment_ids: ids,
        };
        // Redis answers late under this load now and then: try again rather than
        // abandon the run. (A push that timed out may have landed: the hub then
        // dispatches the round twice, and resends nothing already answered.)
        let mut attempt = 1;
        while let Err(err) = queue.push(job.clone()).await {
            if attempt == 3 {
                anyhow::bail!("dispatch of round {round}: {err}");
            }
            eprintln!("dispatch of round {round}: {err}; trying again");
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        setup += setup_started.elapsed();
    }
    // The last round runs its full length, as every other one did.
    let last_closes = last_opened + chrono::Duration::seconds(plan.round_seconds as i64);
    if let Ok(wait) = (last_closes - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    // Let the last rounds settle.
    let settle = Instant::now();
    while stats.acked.load(Ordering::Relaxed) + stats.refused.load(Ordering::Relaxed)
        < stats.sent.load(Ordering::Relaxed)
        || (stats.sent.load(Ordering::Relaxed) as usize) < dispatched
    {
        // Past every deadline, the hub has either stored or refused each result.
        if settle.elapsed() > Duration::from_millis(prepare::DEADLINE_AFTER_MS as u64 + 30_000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = driving.elapsed().as_secs_f64();
    let cpu_used = cpu_before.until(&cpu::CpuReading::now(plan.server_pid));
    stop_reading.store(true, Ordering::Relaxed);
    if let Some(readers) = readers {
        tokio::task::spawn_blocking(move || readers.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the API readers' thread panicked"))??;
    }
    // (Only read before when there were readers.)
    let server_timing = match &server_timing_before {
        Some(before) => api_reads::server_buckets(&plan.api_base_url)
            .await
            .map(|after| {
                let bound = |q| api_reads::quantile_bound(before, &after, q).map(|s| s * 1000.0);
                (bound(0.50), bound(0.99))
            }),
        None => None,
    };
    let stored = count_ticks(&mut conn, first_round, first_round + rounds as i64 - 1)?;
    let sent = stats.sent.load(Ordering::Relaxed);
    let acked = stats.acked.load(Ordering::Relaxed);
    let refused = stats.refused.load(Ordering::Relaxed);
    // Lost: sent, never refused, yet not in PostgreSQL. Refused results (late under
    // overload) were answered with a reason and are counted apart.
    let lost = sent.saturating_sub(refused).saturating_sub(stored as u64);
    let rate = stored as f64 / elapsed;
    let mut latencies = stats.latencies_ms.lock().await.clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let rss_per_conn = match (rss_before, rss_after) {
        (Some(before), Some(after)) if !validators.is_empty() => {
            after.saturating_sub(before) as f64 / validators.len() as f64
        }
        _ => f64::NAN,
    };
    // The machine's limit: Ed25519 on every core as the hub must verify (strict, one
    // by one), or COPY, whichever is lower. Batches are faster but are not strict:
    // they take some mixed-order signatures the audit refuses (README, Trust model),
    // so their rate is printed for comparison only.
    let limit = raw_verify_all.min(raw_copy);
    // CPU seconds per 1,000 stored results: what carries to a machine of another size.
    let per_1k = |seconds: f64| {
        if stored > 0 {
            seconds / (stored as f64 / 1000.0)
        } else {
            f64::NAN
        }
    };
    let hub_cpu_per_1k = cpu_used.map_or(f64::NAN, |used| per_1k(used.hub));
    let driver_cpu_per_1k = cpu_used.map_or(f64::NAN, |used| per_1k(used.driver));
    let rest_cpu_per_1k = cpu_used.map_or(f64::NAN, |used| per_1k(used.rest));
    let machine_cpu_per_1k = cpu_used.map_or(f64::NAN, |used| per_1k(used.machine_busy));
    let busy_pct = cpu_used.map_or(f64::NAN, |used| used.busy_fraction * 100.0);
    // Cores the hub's side (server, PostgreSQL, Redis; not the driver, whose
    // validators are elsewhere in a real network) needs for 20,000 results/s at
    // this run's cost per result.
    let hub_side_cores_at_20k = 20.0 * (hub_cpu_per_1k + rest_cpu_per_1k);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut status_latencies = read_stats.status_latencies_us.lock().await.clone();
    let mut round_latencies = read_stats.round_latencies_us.lock().await.clone();
    let mut read_latencies = [status_latencies.clone(), round_latencies.clone()].concat();
    for latencies in [
        &mut read_latencies,
        &mut status_latencies,
        &mut round_latencies,
    ] {
        latencies.sort_unstable();
    }
    // Percentile `p` of sorted microseconds, in ms.
    let pct_ms = |sorted: &[u32], p: f64| {
        sorted
            .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
            .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
    };
    let read_pct = |p: f64| pct_ms(&read_latencies, p);
    let reads_ok = read_stats.ok.load(Ordering::Relaxed);
    let read_errors = read_stats.errors.load(Ordering::Relaxed);
    let read_error_kinds = read_stats.error_summary().await;

    println!();
    println!("connections held        {:>10}", validators.len());
    println!(
        "offered load            {:>10.0} checks/s",
        dispatched as f64 / elapsed
    );
    println!("assignments dispatched  {dispatched:>10}");
    println!(
        "round set-up (avg)      {:>10.0} ms  (loadgen as scheduler: push the dispatch job)",
        setup.as_secs_f64() * 1000.0 / rounds as f64
    );
    println!(
        "preparation (untimed)   {prepare_s:>10.1} s   (insert every round's assignments, sign every result)"
    );
    println!("results sent            {sent:>10}");
    println!("results acknowledged    {acked:>10}");
    println!("results refused (late)  {refused:>10}");
    println!("results stored (PG)     {stored:>10}");
    println!("results lost            {lost:>10}");
    println!("results/s stored        {rate:>10.0}");
    println!(
        "dispatched->stored p50  {:>10} ms  (validate sent at its due time -> ack after commit)",
        pct(0.50)
    );
    println!("dispatched->stored p99  {:>10} ms", pct(0.99));
    println!("server RSS / connection {rss_per_conn:>10.1} KiB");
    println!("hub CPU s / 1k results  {hub_cpu_per_1k:>10.3}  (server process, user + system)");
    println!(
        "  beside it, per 1k       {driver_cpu_per_1k:>10.3}  driver, {rest_cpu_per_1k:.3} the rest \
         (PostgreSQL, Redis, kernel); machine {busy_pct:.0} % busy on {cores} cores, \
         {machine_cpu_per_1k:.3} in all"
    );
    println!(
        "  at 20,000/s the hub's side would need {hub_side_cores_at_20k:.2} cores (server + the rest, driver apart)"
    );
    println!(
        "API reads               {:>10.0} /s answered, {read_errors} errors ({read_error_kinds}), p50 {:.1} ms, p99 {:.1} ms",
        reads_ok as f64 / elapsed,
        read_pct(0.50),
        read_pct(0.99)
    );
    println!(
        "  of which status         p50 {:.1} ms, p99 {:.1} ms; rounds p50 {:.1} ms, p99 {:.1} ms",
        pct_ms(&status_latencies, 0.50),
        pct_ms(&status_latencies, 0.99),
        pct_ms(&round_latencies, 0.50),
        pct_ms(&round_latencies, 0.99)
    );
    if let Some((Some(p50), Some(p99))) = server_timing {
        println!(
            "API reads, server's own time  p50 ≤ {p50} ms, p99 ≤ {p99} ms  (bucket bounds of /metrics)"
        );
    }
    println!("raw verify /s (1 core)  {raw_verify:>10.0}");
    println!("raw verify /s (strict, all cores) {raw_verify_all:>8.0}");
    println!("raw COPY rows/s         {raw_copy:>10.0}");
    println!("ratio to lower limit    {:>10.3}", rate / limit);
    println!();
    println!("ingest_offered_per_s={:.0}", dispatched as f64 / elapsed);
    println!("ingest_results_per_s={rate:.0}");
    println!("ingest_lost={lost}");
    println!("ingest_refused={refused}");
    println!("ingest_prepare_s={prepare_s:.1}");
    println!(
        "ingest_signed_on_the_spot={}",
        stats.signed_on_the_spot.load(Ordering::Relaxed)
    );
    println!("ingest_p50_ms={}", pct(0.50));
    println!("ingest_p99_ms={}", pct(0.99));
    println!("connections={}", validators.len());
    println!("hub_cpu_s_per_1k={hub_cpu_per_1k:.3}");
    println!("driver_cpu_s_per_1k={driver_cpu_per_1k:.3}");
    println!("rest_cpu_s_per_1k={rest_cpu_per_1k:.3}");
    println!("machine_cpu_s_per_1k={machine_cpu_per_1k:.3}");
    println!("machine_busy_pct={busy_pct:.0}");
    println!("machine_cores={cores}");
    println!("hub_side_cores_at_20k={hub_side_cores_at_20k:.2}");
    println!("api_reads_per_s={:.0}", reads_ok as f64 / elapsed);
    println!("api_read_errors={read_errors}");
    println!("api_read_p50_ms={:.2}", read_pct(0.50));
    println!("api_read_p99_ms={:.2}", read_pct(0.99));
    println!(
        "api_read_status_p99_ms={:.2}",
        pct_ms(&status_latencies, 0.99)
    );
    println!(
        "api_read_round_p99_ms={:.2}",
        pct_ms(&round_latencies, 0.99)
    );
    if let Some((Some(p50), Some(p99))) = server_timing {
        println!("api_read_server_p50_le_ms={p50}");
        println!("api_read_server_p99_le_ms={p99}");
    }
    println!("rss_per_conn_kib={rss_per_conn:.1}");
    println!("raw_verify_per_s={raw_verify:.0}");
    println!("raw_verify_all_cores_per_s={raw_verify_all:.0}");
    println!("raw_verify_batch_all_cores_per_s={raw_verify_batch:.0}");
    println!("raw_copy_rows_per_s={raw_copy:.0}");
    println!("ingest_ratio_to_limit={:.3}", rate / limit);
    Ok(())
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connects and signs up `plan.connections` validators, each then serving until
/// the end; returns each one's id and key.
async fn open_validators(
    plan: &Plan,
    stats: &Arc<Stats>,
    prepared: &PreparedResults,
) -> anyhow::Result<HashMap<i64, Keypair>> {
    let payout: PayoutAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse()?;
    let (ids_tx, mut ids_rx) = tokio::sync::mpsc::channel(plan.connections);
    // Connect in waves so the accept queue is not flooded.
    let wave = tokio::sync::Semaphore::new(256);
    let wave = Arc::new(wave);
    for _ in 0..plan.connections {
        let permit = Arc::clone(&wave).acquire_owned().await?;
        let (url, hub_id, stats, ids_tx, prepared) = (
            plan.hub_url.clone(),
            plan.hub_id.clone(),
            Arc::clone(stats),
            ids_tx.clone(),
            Arc::clone(prepared),
        );
        tokio::spawn(async move {
            let simulated = SimulatedValidator {
                stats,
                prepared,
                key: Keypair::generate(),
            };
            match simulated.run(&url, &hub_id, payout, permit, ids_tx).await {
                Ok(()) => {}
                Err(err) => eprintln!("simulated validator failed: {err}"),
            }
        });
    }
    drop(ids_tx);
    let mut validators = HashMap::with_capacity(plan.connections);
    while let Some((id, seed)) = ids_rx.recv().await {
        validators.insert(id, Keypair::from_seed(&seed));
        if validators.len() == plan.connections {
            break;
        }
    }
    Ok(validators)
}

/// One simulated validator: signs up, then answers every `validate` at once with
/// the result signed ahead for it.
struct SimulatedValidator {
    stats: Arc<Stats>,
    prepared: PreparedResults,
    key: Keypair,
}

impl SimulatedValidator {
    /// Serves until the hub closes the connection.
    async fn run(
        self,
        url: &str,
        hub_id: &str,
        payout: PayoutAddress,
        permit: tokio::sync::OwnedSemaphorePermit,
        ids: tokio::sync::mpsc::Sender<(i64, [u8; 32])>,
    ) -> anyhow::Result<()> {
        let SimulatedValidator {
            stats,
            prepared,
            key,
        } = self;
        let mut permit = Some(permit);
        // As the validator node connects: reads sized for the hub's messages, no Nagle.
        let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
        let nonce = loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                if let HubMessage::Hello { nonce, .. } = serde_json::from_str(&text)? {
                    let mut bytes = [0u8; 32];
                    hex::decode_to_slice(nonce, &mut bytes)?;
                    break bytes;
                }
            } else {
                anyhow::bail!("no hello");
            }
        };
        let signup = ValidatorMessage::Signup {
            public_key: key.public_key().to_string(),
            payout_address: payout.to_string(),
            signature: hex::encode(key.sign(&signing::signup_bytes(hub_id, &nonce, &payout))),
        };
        socket
            .send(Message::text(serde_json::to_string(&signup)?))
            .await?;
        // When each `validate` arrived: the hub sends it at the assignment's due time.
        let mut received: HashMap<i64, Instant> = HashMap::new();
        let mut latencies = Vec::new();
        while let Some(frame) = socket.next().await {
            let Message::Text(text) = frame? else {
                continue;
            };
            match serde_json::from_str::<HubMessage>(&text)? {
                HubMessage::SignedUp { validator_id } => {
                    ids.send((validator_id, key.seed())).await?;
                    // Set-up done: let the next connection start.
                    permit.take();
                }
                HubMessage::Validate(request) => {
                    received.insert(request.assignment_id, Instant::now());
                    let ready = prepared
                        .get()
                        .and_then(|results| results.get(&request.assignment_id));
                    let frame = match ready {
                        Some(frame) => frame.clone(),
                        None => {
                            stats.signed_on_the_spot.fetch_add(1, Ordering::Relaxed);
                            prepare::result_frame(
                                request.assignment_id,
                                Utc::now().timestamp_millis(),
                                hex::encode(request.spec().hash()),
                                hub_id,
                                &key,
                            )?
                        }
                    };
                    socket.send(frame).await?;
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                HubMessage::Ack { assignment_ids } => {
                    for id in assignment_ids {
                        if let Some(at) = received.remove(&id) {
                            latencies
                                .push(u32::try_from(at.elapsed().as_millis()).unwrap_or(u32::MAX));
                        }
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    if latencies.len() >= 64 {
                        stats.latencies_ms.lock().await.append(&mut latencies);
                    }
                }
                HubMessage::Error { .. } => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                }
                HubMessage::Hello { .. } => {}
            }
            if !latencies.is_empty() && received.is_empty() {
                stats.latencies_ms.lock().await.append(&mut latencies);
            }
        }
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Results stored for rounds `first..=last` (other drivers' rounds are not counted).
fn count_ticks(conn: &mut PgConnection, first: i64, last: i64) -> anyhow::Result<i64> {
    Ok(
        diesel::sql_query("SELECT count(*) AS id FROM ticks WHERE round_number BETWEEN $1 AND $2")
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(last)
            .get_result::<Id>(conn)?
            .id,
    )
}

fn next_round(conn: &mut PgConnection) -> anyhow::Result<i64> {
    Ok(
        diesel::sql_query("SELECT coalesce(max(number), 0) + 1 AS id FROM rounds")
            .get_result::<Id>(conn)?
            .id,
    )
}

/// The bench's websites, with the spec hash each one's assignments record (as the
/// scheduler records it).
pub struct BenchSites {
    /// The websites' ids.
    pub ids: Vec<i64>,
    /// Each website's spec hash, in the same order.
    pub spec_hashes: Vec<Vec<u8>>,
}

/// `count` websites owned by a bench account.
fn create_sites(conn: &mut PgConnection, count: usize) -> anyhow::Result<BenchSites> {
    let owner = diesel::sql_query(
        "INSERT INTO users (email, name) VALUES ('bench-' || gen_random_uuid() || '@example.com', 'bench') RETURNING id",
    )
    .get_result::<Id>(conn)?
    .id;
    let mut sites = Vec::with_capacity(count);
    let mut spec_hashes = Vec::with_capacity(count);
    for i in 0..count {
        let check = SiteCheck {
            url: format!("https://bench-{i}.example.com/"),
            method: "GET".into(),
            timeout_ms: 1000,
            keyword: None,
            assertions: serde_json::json!({}),
        };
        sites.push(
            diesel::sql_query(
                "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) \
                 VALUES ($1, $2, 1, $3, 3) RETURNING id",
            )
            .bind::<BigInt, _>(owner)
            .bind::<Text, _>(&check.url)
            .bind::<Int4, _>(check.timeout_ms)
            .get_result::<Id>(conn)?
            .id,
        );
        spec_hashes.push(check.spec_hash().to_vec());
    }
    Ok(BenchSites {
        ids: sites,
        spec_hashes,
    })
}
