//! A website's status and history: current state, uptime, hourly latency
//! (all from `website_hourly_rollups`, never raw ticks), incidents and ticks.
//!
//! Nothing here shows a result of a round that is not closed yet (rounds are
//! sealed until closed): `website_status`, `incidents` and the hourly rollups are
//! written only by accounting, in the same transaction that sets the round's
//! `closed_at`; raw ticks are listed only for closed rounds.

use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable};
use overlaps_shared::models::{
    Incident as IncidentRow, Tick as TickRow, Website as WebsiteRow, WebsiteStatus,
};
use overlaps_shared::schema::{
    incidents, rounds, ticks, website_hourly_rollups, website_status, websites,
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::maintenance::{self, MaintenanceWindow};
use super::websites::accessible;
use super::{PageParams, db, hex0x, paginate};
use crate::hub::Hub;

/// Mounts the status routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(status)
        .service(latency)
        .service(list_incidents)
        .service(list_ticks);
}

/// Share of checks that found the site up, in percent, of the results up, down
/// and degraded (a slow site is not up); null: no checks in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uptime {
    /// Last 24 hours.
    #[schema(example = 99.95)]
    pub last_24h: Option<f64>,
    /// Last 7 days.
    pub last_7d: Option<f64>,
    /// Last 30 days.
    pub last_30d: Option<f64>,
}

/// Where a website stands now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Website id.
    pub website_id: i64,
    /// `up`, `down`, `degraded` (answering correctly but over its
    /// `max_response_ms`) or `unknown` (not yet decided by a quorum).
    #[schema(example = "up")]
    pub state: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// The last round that decided it.
    pub last_round: Option<i64>,
    /// A state seen but not yet confirmed.
    pub pending_state: Option<String>,
    /// When the TLS certificate expires, if known.
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// The open incident, if any.
    pub open_incident_id: Option<i64>,
    /// Uptime over 24 h / 7 d / 30 d (rounds inside maintenance windows left out).
    pub uptime: Uptime,
    /// Whether the site is inside a maintenance window now (checked, not alerted).
    pub in_maintenance: bool,
    /// The window it is inside now.
    pub maintenance_window_id: Option<i64>,
    /// Every maintenance window the owner declared, oldest first.
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

/// One hour of a website's checks.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourlyStats {
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Results received.
    pub checks: i32,
    /// Results `up`.
    pub up: i32,
    /// Results `down`.
    pub down: i32,
    /// Results `degraded` (correct answers over the response-time limit).
    pub degraded_checks: i32,
    /// Rounds the quorum could not decide.
    pub unknown_rounds: i32,
    /// Results of rounds inside a maintenance window (in `checks`, not in `up`/`down`).
    pub maintenance_checks: i32,
    /// Median latency, ms.
    pub latency_p50_ms: Option<i32>,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: Option<i32>,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: Option<i32>,
}

/// How many hours of latency to return.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoursParam {
    /// Hours back from now (1..=720, default 24).
    #[param(minimum = 1, maximum = 720, example = 24)]
    pub hours: Option<i64>,
}

/// An outage: opened and (maybe) resolved by the quorum, with the evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Incident {
    /// Incident id.
    pub id: i64,
    /// Website id.
    pub website_id: i64,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// The round that confirmed it.
    pub opened_round: i64,
    /// When it was resolved (null while open).
    pub resolved_at: Option<DateTime<Utc>>,
    /// The round that confirmed the recovery.
    pub resolved_round: Option<i64>,
    /// The most common failure (`timeout`, `http_status`, ...).
    #[schema(example = "http_status")]
    pub cause: String,
    /// Every validator's result that decided it.
    #[schema(value_type = Object)]
    pub evidence: Json,
    /// Confirmed inside a maintenance window: no alert went out.
    pub opened_in_maintenance: bool,
}

impl From<IncidentRow> for Incident {
    fn from(i: IncidentRow) -> Self {
        Incident {
            id: i.id,
            website_id: i.website_id,
            opened_at: i.opened_at,
            opened_round: i.opened_round,
            resolved_at: i.resolved_at,
            resolved_round: i.resolved_round,
            cause: i.cause,
            evidence: i.evidence,
            opened_in_maintenance: i.opened_in_maintenance,
        }
    }
}

/// One page of incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    /// Incidents, newest first.
    pub items: Vec<Incident>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One signed result of one validator, in a closed round.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tick {
    /// The assignment it answers.
    pub assignment_id: i64,
    /// Round.
    pub round_number: i64,
    /// Validator.
    pub validator_id: i64,
    /// `up`, `down` or `degraded`.
    pub status: String,
    /// HTTP status, if a response came.
    pub http_status: Option<i16>,
    /// Latency, ms.
    pub latency_ms: i32,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// TLS certificate expiry seen.
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// When the validator checked.
    pub checked_at: DateTime<Utc>,
    /// When the hub received it.
    pub received_at: DateTime<Utc>,
    /// The validator's Ed25519 signature, hex.
    pub signature: String,
    /// The layout signed: 1 (`overlaps/v1/result`, before spec hashes) or 2
    /// (`overlaps/v2/result`, with `spec_hash` appended).
    pub protocol_version: i16,
    /// SHA-256 of the check spec the validator evaluated (v2), hex.
    pub spec_hash: Option<String>,
}

/// One page of ticks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TickPage {
    /// Ticks, newest first.
    pub items: Vec<Tick>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(QueryableByName)]
struct UptimeRow {
    #[diesel(sql_type = Nullable<Double>)]
    d1: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    d7: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    d30: Option<f64>,
}

fn uptime(conn: &mut PgConnection, website_id: i64) -> Result<Uptime, ApiError> {
    // Rollups only: 30 days are at most 720 rows of one site, by primary key.
    let row: UptimeRow = diesel::sql_query(
        "SELECT \
           round((100.0 * SUM(up) FILTER (WHERE hour >= now() - interval '24 hours') \
             / NULLIF(SUM(up + down + degraded_checks) FILTER (WHERE hour >= now() - interval '24 hours'), 0))::numeric, 3)::float8 AS d1, \
           round((100.0 * SUM(up) FILTER (WHERE hour >= now() - interval '7 days') \
             / NULLIF(SUM(up + down + degraded_checks) FILTER (WHERE hour >= now() - interval '7 days'), 0))::numeric, 3)::float8 AS d7, \
           round((100.0 * SUM(up) / NULLIF(SUM(up + down + degraded_checks), 0))::numeric, 3)::float8 AS d30 \
         FROM website_hourly_rollups \
         WHERE website_id = $1 AND hour >= date_trunc('hour', now() - interval '30 days')",
    )
    .bind::<BigInt, _>(website_id)
    .get_result(conn)?;
    Ok(Uptime {
        last_24h: row.d1,
        last_7d: row.d7,
        last_30d: row.d30,
    })
}

/// A website's current state and uptime over 24 h, 7 d and 30 d.
#[utoipa::path(
    tag = "status",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 200, description = "Current state and uptime", body = Status),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}/status")]
pub async fn status(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if let Some(hit) = hub.read_cache.status(id, &caller) {
        hit.refresh_with(|| {
            let hub = Arc::clone(&hub);
            async move { load_status(&hub, id, None).await }
        });
        return hit.value;
    }
    load_status(&hub, id, Some(caller))
        .await?
        .ok_or(ApiError::NotFound("website"))
}

/// Reads site `id`'s status and keeps it: `caller`'s answer (another owner's site
/// is not found, before anything else is read), or for a background refresh
/// (`None`) the answer kept for its readers; `Ok(None)` when the site is gone.
async fn load_status(
    hub: &Hub,
    id: i64,
    caller: Option<Caller>,
) -> Result<Option<HttpResponse>, ApiError> {
    let ticket = hub.read_cache.ticket();
    let found = db(hub, move |conn| {
        let site: Option<WebsiteRow> = websites::table
            .find(id)
            .select(WebsiteRow::as_select())
            .first(conn)
            .optional()?;
        let Some(site) = site else {
            return Ok(None);
        };
        if caller
            .as_ref()
            .is_some_and(|c| !c.may_access(site.owner_id))
        {
            // Another owner's site is answered exactly like a missing one.
            return Err(ApiError::NotFound("website"));
        }
        let row: Option<WebsiteStatus> = website_status::table
            .find(id)
            .select(WebsiteStatus::as_select())
            .first(conn)
            .optional()?;
        let open_incident_id: Option<i64> = incidents::table
            .filter(incidents::website_id.eq(id))
            .filter(incidents::resolved_at.is_null())
            .select(incidents::id)
            .first(conn)
            .optional()?;
        let uptime = uptime(conn, id)?;
        let windows = maintenance::served(maintenance::windows_of(conn, id)?, Utc::now());
        Ok(Some((
            site.owner_id,
            match row {
                Some(s) => Status {
                    website_id: id,
                    state: s.state,
                    since: s.since,
                    last_round: s.last_round,
                    pending_state: s.pending_state,
                    tls_expires_at: s.tls_expires_at,
                    open_incident_id,
                    uptime,
                    in_maintenance: windows.in_maintenance,
                    maintenance_window_id: windows.current_window_id,
                    maintenance_windows: windows.items,
                },
                // No round has decided anything about this site yet.
                None => Status {
                    website_id: id,
                    state: "unknown".into(),
                    since: site.created_at,
                    last_round: None,
                    pending_state: None,
                    tls_expires_at: None,
                    open_incident_id,
                    uptime,
                    in_maintenance: windows.in_maintenance,
                    maintenance_window_id: windows.current_window_id,
                    maintenance_windows: windows.items,
                },
            },
        )))
    })
    .await?;
    match found {
        Some((owner_id, answer)) => hub
            .read_cache
            .remember_status(ticket, id, owner_id, &answer)
            .map(Some),
        None => {
            hub.read_cache.forget_status(id);
            Ok(None)
        }
    }
}

/// Checks, outcomes and latency p50/p95/p99 per hour, oldest first.
#[utoipa::path(
    tag = "status",
    params(("id" = i64, Path, description = "Website id"), HoursParam),
    responses(
        (status = 200, description = "One row per hour that had checks", body = Vec<HourlyStats>),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
        (status = 422, description = "hours out of range", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}/latency")]
pub async fn latency(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    query: web::Query<HoursParam>,
) -> Result<web::Json<Vec<HourlyStats>>, ApiError> {
    let id = id.into_inner();
    let hours = query.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid(
            "hours",
            "hours must be between 1 and 720",
        ));
    }
    let from = Utc::now() - chrono::Duration::hours(hours);
    let rows = db(&hub, move |conn| {
        accessible(conn, &caller, id)?;
        type Row = (
            DateTime<Utc>,
            i32,
            i32,
            i32,
            i32,
            i32,
            i32,
            Option<i32>,
            Option<i32>,
            Option<i32>,
        );
        let rows: Vec<Row> = website_hourly_rollups::table
            .filter(website_hourly_rollups::website_id.eq(id))
            .filter(website_hourly_rollups::hour.ge(from))
            .order(website_hourly_rollups::hour.asc())
            .select((
                website_hourly_rollups::hour,
                website_hourly_rollups::checks,
                website_hourly_rollups::up,
                website_hourly_rollups::down,
                website_hourly_rollups::degraded_checks,
                website_hourly_rollups::unknown_rounds,
                website_hourly_rollups::maintenance_checks,
                website_hourly_rollups::latency_p50_ms,
                website_hourly_rollups::latency_p95_ms,
                website_hourly_rollups::latency_p99_ms,
            ))
            .load(conn)?;
        Ok(rows)
    })
    .await?;
    Ok(web::Json(
        rows.into_iter()
            .map(
                |(
                    hour,
                    checks,
                    up,
                    down,
                    degraded_checks,
                    unknown_rounds,
                    maintenance_checks,
                    p50,
                    p95,
                    p99,
                )| {
                    HourlyStats {
                        hour,
                        checks,
                        up,
                        down,
                        degraded_checks,
                        unknown_rounds,
                        maintenance_checks,
                        latency_p50_ms: p50,
                        latency_p95_ms: p95,
                        latency_p99_ms: p99,
                    }
                },
            )
            .collect(),
    ))
}

/// A website's incidents with their evidence, newest first.
#[utoipa::path(
    tag = "status",
    params(("id" = i64, Path, description = "Website id"), PageParams),
    responses(
        (status = 200, description = "One page", body = IncidentPage),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}/incidents")]
pub async fn list_incidents(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    page: web::Query<PageParams>,
) -> Result<web::Json<IncidentPage>, ApiError> {
    let id = id.into_inner();
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let rows = db(&hub, move |conn| {
        accessible(conn, &caller, id)?;
        let mut query = incidents::table
            .filter(incidents::website_id.eq(id))
            .order(incidents::id.desc())
            .limit(limit + 1)
            .select(IncidentRow::as_select())
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(incidents::id.lt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |i| i.id.to_string());
    Ok(web::Json(IncidentPage {
        items: rows.into_iter().map(Incident::from).collect(),
        next_cursor,
    }))
}

/// A tick cursor: the receive time in microseconds and the assignment id.
fn tick_cursor(raw: Option<&str>) -> Result<Option<(DateTime<Utc>, i64)>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || ApiError::invalid("cursor", "malformed cursor");
    let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let id: i64 = id.parse().map_err(|_| bad())?;
    let at = Utc.timestamp_micros(micros).single().ok_or_else(bad)?;
    Ok(Some((at, id)))
}

/// A website's raw signed results, newest first, a page at a time; only those of
/// closed rounds (an open round's results are sealed until it closes).
#[utoipa::path(
    tag = "status",
    params(("id" = i64, Path, description = "Website id"), PageParams),
    responses(
        (status = 200, description = "One page", body = TickPage),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}/ticks")]
pub async fn list_ticks(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    page: web::Query<PageParams>,
) -> Result<web::Json<TickPage>, ApiError> {
    let id = id.into_inner();
    let limit = page.limit()?;
    let cursor = tick_cursor(page.cursor.as_deref())?;
    let rows = db(&hub, move |conn| {
        accessible(conn, &caller, id)?;
        // Sealed rounds: skip ticks of rounds not closed yet. The open rounds are
        // few (a partial index holds them), so this anti-join costs a probe per
        // tick and does not depend on rounds closing in order.
        let open_round = rounds::table
            .filter(rounds::number.eq(ticks::round_number))
            .filter(rounds::closed_at.is_null());
        let mut query = ticks::table
            .filter(ticks::website_id.eq(id))
            .filter(diesel::dsl::not(diesel::dsl::exists(open_round)))
            .order((ticks::received_at.desc(), ticks::assignment_id.desc()))
            .limit(limit + 1)
            .select(TickRow::as_select())
            .into_boxed();
        if let Some((at, assignment)) = cursor {
            query = query.filter(
                ticks::received_at.lt(at).or(ticks::received_at
                    .eq(at)
                    .and(ticks::assignment_id.lt(assignment))),
            );
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |t| {
        format!("{}.{}", t.received_at.timestamp_micros(), t.assignment_id)
    });
    Ok(web::Json(TickPage {
        items: rows
            .into_iter()
            .map(|t| Tick {
                assignment_id: t.assignment_id,
                round_number: t.round_number,
                validator_id: t.validator_id,
                status: t.status,
                http_status: t.http_status,
                latency_ms: t.latency_ms,
                failure: t.failure,
                tls_expires_at: t.tls_expires_at,
                checked_at: t.checked_at,
                received_at: t.received_at,
                signature: hex0x(&t.signature),
                protocol_version: t.protocol_version,
                spec_hash: t.spec_hash.as_deref().map(hex0x),
            })
            .collect(),
        next_cursor,
    }))
}
