//! Hourly rollups (`website_hourly_rollups`): what a closed round adds to its
//! site's hour, so status, uptime and latency never scan raw ticks.

use chrono::{DateTime, Timelike, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Timestamptz};

/// One site's results in one round, as the rollup counts them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundCounts {
    /// Results `up`.
    pub up: usize,
    /// Results `down`.
    pub down: usize,
    /// Results `degraded` (counted apart from up and down).
    pub degraded: usize,
    /// Whether the quorum could not decide.
    pub unknown: bool,
    /// Whether the round opened inside one of the site's maintenance windows.
    pub maintenance: bool,
    /// Whether any result carried a latency.
    pub has_latency: bool,
}

/// Adds the round to the site's rollup for the hour the round opened in.
///
/// A maintenance round's results count in `checks` and `maintenance_checks`,
/// never in `up`/`down`/`degraded_checks`: uptime is `up / (up + down +
/// degraded)`, so the window's time is left out of it, outage or not.
pub fn add_round(
    conn: &mut PgConnection,
    site: i64,
    opened_at: DateTime<Utc>,
    counts: RoundCounts,
) -> QueryResult<()> {
    let hour = opened_at
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(opened_at);
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let answered = counts.up + counts.down + counts.degraded;
    let (up, down, degraded, maintenance) = if counts.maintenance {
        (0, 0, 0, answered)
    } else {
        (counts.up, counts.down, counts.degraded, 0)
    };
    diesel::sql_query(
        "INSERT INTO website_hourly_rollups (website_id, hour, checks, up, down, unknown_rounds, maintenance_checks, degraded_checks) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (website_id, hour) DO UPDATE SET checks = website_hourly_rollups.checks + EXCLUDED.checks, \
           up = website_hourly_rollups.up + EXCLUDED.up, down = website_hourly_rollups.down + EXCLUDED.down, \
           unknown_rounds = website_hourly_rollups.unknown_rounds + EXCLUDED.unknown_rounds, \
           maintenance_checks = website_hourly_rollups.maintenance_checks + EXCLUDED.maintenance_checks, \
           degraded_checks = website_hourly_rollups.degraded_checks + EXCLUDED.degraded_checks",
    )
    .bind::<BigInt, _>(site)
    .bind::<Timestamptz, _>(hour)
    .bind::<Int4, _>(int(answered))
    .bind::<Int4, _>(int(up))
    .bind::<Int4, _>(int(down))
    .bind::<Int4, _>(i32::from(counts.unknown))
    .bind::<Int4, _>(int(maintenance))
    .bind::<Int4, _>(int(degraded))
    .execute(conn)?;
    if counts.has_latency {
        // Percentiles over the ticks of this site's rounds that opened in the hour:
        // the rollup's hour is the round's, not the tick's arrival (a round opened
        // at 11:59:50 is answered after 12:00). A tick is never received before its
        // round opened, so `received_at >= hour` keeps the scan on the site's index.
        diesel::sql_query(
            "UPDATE website_hourly_rollups r SET \
               latency_p50_ms = p.p50, latency_p95_ms = p.p95, latency_p99_ms = p.p99 \
             FROM (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t.latency_ms) AS p50, \
                          percentile_disc(0.95) WITHIN GROUP (ORDER BY t.latency_ms) AS p95, \
                          percentile_disc(0.99) WITHIN GROUP (ORDER BY t.latency_ms) AS p99 \
                   FROM ticks t JOIN rounds o ON o.number = t.round_number \
                   WHERE t.website_id = $1 AND t.received_at >= $2 \
                     AND o.opened_at >= $2 AND o.opened_at < $2 + interval '1 hour') p \
             WHERE r.website_id = $1 AND r.hour = $2",
        )
        .bind::<BigInt, _>(site)
        .bind::<Timestamptz, _>(hour)
        .execute(conn)?;
    }
    Ok(())
}
