//! `/metrics` in the Prometheus text format: validator connections, results
//! stored (rate them for results/s), round lag, job queue depths, alert failures
//! and API requests (by status class, and how long the server took to answer).
//! Counters live in process; gauges are read at scrape time.
//!
//! Rounds are sealed until closed, and `/metrics` is public: results stored are
//! counted only once their round has closed. Counted as they arrive, the counter
//! would tell a scraper when each quorum member of an open round answered (due
//! times are public), hence roughly how long its check took: a timeout is a down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use actix_web::{HttpResponse, get, web};
use diesel::sql_types::{Array, BigInt, Double};
use diesel::{QueryableByName, RunQueryDsl};
use overlaps_shared::jobs::{
    self, AuditEon, CloseEon, CloseRound, Dispatch, Job, SendAlert, SubmitRoot,
};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::hub::Hub;

/// Mounts `/metrics`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics);
}

struct Metrics {
    registry: Registry,
    results_stored: IntCounter,
    /// Results stored per round whose round was open at the last look: not counted yet.
    sealed_results: Mutex<BTreeMap<i64, u64>>,
    requests: IntCounterVec,
    request_seconds: Histogram,
    connections: IntGauge,
    round_lag: Gauge,
    open_rounds: IntGauge,
    queue_depth: IntGaugeVec,
    alerts_failed: IntGauge,
    alerts_pending: IntGauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("overlaps".into()), None)?;
    let results_stored = IntCounter::new(
        "results_stored_total",
        "Signed validator results stored by this server instance, counted once their round has closed",
    )?;
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests answered, by status class",
        ),
        &["class"],
    )?;
    let request_seconds = Histogram::with_opts(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "Time from a request reaching the server's middleware to its answer",
        )
        .buckets(REQUEST_SECONDS_BUCKETS.to_vec()),
    )?;
    let connections = IntGauge::new(
        "validator_connections",
        "Signed-up validator sockets held by this server instance",
    )?;
    let round_lag = Gauge::new(
        "round_lag_seconds",
        "How far past its deadline the oldest unclosed round is (0 when none)",
    )?;
    let open_rounds = IntGauge::new("open_rounds", "Rounds not closed yet")?;
    let queue_depth = IntGaugeVec::new(
        Opts::new("queue_depth", "Jobs waiting in each queue"),
        &["queue"],
    )?;
    let alerts_failed = IntGauge::new(
        "alert_failures",
        "Alerts whose delivery failed for good (alert_outbox state failed)",
    )?;
    let alerts_pending = IntGauge::new("alerts_pending", "Alerts waiting for delivery")?;
    registry.register(Box::new(results_stored.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(connections.clone()))?;
    registry.register(Box::new(round_lag.clone()))?;
    registry.register(Box::new(open_rounds.clone()))?;
    registry.register(Box::new(queue_depth.clone()))?;
    registry.register(Box::new(alerts_failed.clone()))?;
    registry.register(Box::new(alerts_pending.clone()))?;
    Ok(Metrics {
        registry,
        results_stored,
        sealed_results: Mutex::new(BTreeMap::new()),
        requests,
        request_seconds,
        connections,
        round_lag,
        open_rounds,
        queue_depth,
        alerts_failed,
        alerts_pending,
    })
}

fn get_metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match build() {
            Ok(m) => Some(m),
            Err(err) => {
                // Only a programming error (a clashing name) gets here; serve without metrics.
                tracing::error!(error = %err, "metrics registry could not be built");
                None
            }
        })
        .as_ref()
}

/// Notes results stored by the ingest, per round; they are counted once their
/// round has closed (see the module's documentation).
pub fn results_stored(per_round: BTreeMap<i64, u64>) {
    if let Some(m) = get_metrics() {
        let mut sealed = m
            .sealed_results
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (round, n) in per_round {
            *sealed.entry(round).or_default() += n;
        }
        // Unsealed at scrape time; with no scraper, keep the map bounded by
        // counting the oldest rounds, closed long ago unless accounting is stalled.
        while sealed.len() > MAX_SEALED_ROUNDS {
            let Some((_, n)) = sealed.pop_first() else {
                break;
            };
            m.results_stored.inc_by(n);
        }
    }
}

/// Rounds whose results wait in memory for their close before some are counted anyway.
const MAX_SEALED_ROUNDS: usize = 1024;

/// Counts the results of every round that is no longer open.
fn unseal_results(m: &Metrics, open_rounds: &[i64]) {
    let mut sealed = m
        .sealed_results
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    sealed.retain(|round, n| {
        if open_rounds.contains(round) {
            return true;
        }
        m.results_stored.inc_by(*n);
        false
    });
}

/// Upper bounds of the request-duration buckets, seconds (1 ms to 10 s).
const REQUEST_SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Counts one answered HTTP request by status class (`2xx`, `4xx`, ...), and how
/// long the server took to answer it.
pub fn request_answered(status: u16, took: std::time::Duration) {
    if let Some(m) = get_metrics() {
        m.request_seconds.observe(took.as_secs_f64());
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        m.requests.with_label_values(&[class]).inc();
    }
}

#[derive(QueryableByName)]
struct DbGauges {
    #[diesel(sql_type = Double)]
    lag: f64,
    #[diesel(sql_type = BigInt)]
    open_rounds: i64,
    #[diesel(sql_type = Array<BigInt>)]
    open_numbers: Vec<i64>,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    pending: i64,
}

async fn refresh(hub: &Hub, m: &Metrics) {
    m.connections
        .set(i64::try_from(hub.sessions.len()).unwrap_or(i64::MAX));
    let gauges = hub
        .infra
        .db
        .run(|conn| {
            Ok(diesel::sql_query(
                "SELECT \
                   COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(deadline_at)) FROM rounds \
                             WHERE closed_at IS NULL AND deadline_at < now()), 0)::float8 AS lag, \
                   (SELECT count(*) FROM rounds WHERE closed_at IS NULL) AS open_rounds, \
                   ARRAY(SELECT number FROM rounds WHERE closed_at IS NULL) AS open_numbers, \
                   (SELECT count(*) FROM alert_outbox WHERE state = 'failed') AS failed, \
                   (SELECT count(*) FROM alert_outbox WHERE state = 'pending') AS pending",
            )
            .get_result::<DbGauges>(conn)?)
        })
        .await;
    match gauges {
        Ok(g) => {
            unseal_results(m, &g.open_numbers);
            m.round_lag.set(g.lag);
            m.open_rounds.set(g.open_rounds);
            m.alerts_failed.set(g.failed);
            m.alerts_pending.set(g.pending);
        }
        Err(err) => tracing::warn!(error = %err, "metrics: database gauges unavailable"),
    }
    let keys = &hub.infra.keys;
    let queues = [
        (
            format!("{}:{}", Dispatch::QUEUE, hub.config.instance_id),
            jobs::queue_name(
                keys,
                &format!("{}:{}", Dispatch::QUEUE, hub.config.instance_id),
            ),
        ),
        (
            CloseRound::QUEUE.to_owned(),
            jobs::queue_name(keys, CloseRound::QUEUE),
        ),
        (
            CloseEon::QUEUE.to_owned(),
            jobs::queue_name(keys, CloseEon::QUEUE),
        ),
        (
            SubmitRoot::QUEUE.to_owned(),
            jobs::queue_name(keys, SubmitRoot::QUEUE),
        ),
        (
            AuditEon::QUEUE.to_owned(),
            jobs::queue_name(keys, AuditEon::QUEUE),
        ),
        (
            SendAlert::QUEUE.to_owned(),
            jobs::queue_name(keys, SendAlert::QUEUE),
        ),
    ];
    let mut redis = hub.infra.redis.clone();
    for (label, queue) in queues {
        // apalis-redis keeps pushed jobs in `<queue>:scheduled` until due, then in
        // the `<queue>:active` list: both are waiting.
        let depth: Result<(i64, i64), _> = redis::pipe()
            .cmd("LLEN")
            .arg(format!("{queue}:active"))
            .cmd("ZCARD")
            .arg(format!("{queue}:scheduled"))
            .query_async(&mut redis)
            .await;
        match depth {
            Ok((active, scheduled)) => m
                .queue_depth
                .with_label_values(&[label.as_str()])
                .set(active + scheduled),
            Err(err) => tracing::warn!(error = %err, "metrics: queue depth unavailable"),
        }
    }
}

/// Prometheus metrics of this server instance and the deployment it serves.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")),
    security(())
)]
#[get("/metrics")]
pub async fn metrics(hub: web::Data<Arc<Hub>>) -> HttpResponse {
    let Some(m) = get_metrics() else {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "code": "metrics_unavailable", "message": "metrics are unavailable", "details": null
        }));
    };
    refresh(&hub, m).await;
    let mut body = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&m.registry.gather(), &mut body) {
        tracing::error!(error = %err, "metrics could not be encoded");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
