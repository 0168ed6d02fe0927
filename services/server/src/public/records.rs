//! The signed records behind a status page: for rounds of one published site,
//! every result's exact signed bytes, signature and validator key, and what the
//! page claims the round settled. A visitor's browser (`verify.js`) or anyone
//! else checks the signatures and recomputes each majority from this alone.
//!
//! The signed bytes come from [`overlaps_shared::signing::result_bytes`] over
//! [`ResultFields::from_record`] of the stored result: the one definition of the
//! layout (PROTOCOL.md §4). Only closed rounds are served (open rounds are sealed).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{get, web};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Int2, Int4, Nullable, Text, Timestamptz};
use overlaps_shared::models::Incident;
use overlaps_shared::schema::incidents;
use overlaps_shared::signing::{ResultFields, ResultRecord, result_bytes};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::data;
use crate::api::db;
use crate::api::errors::{ApiError, ErrorBody};
use crate::hub::Hub;

/// Most rounds one answer holds.
pub const MAX_ROUNDS: usize = 50;

/// Rounds of a day shown when none of its results was other than up.
const QUIET_DAY_ROUNDS: i64 = 10;

/// Which rounds of a site to serve: exactly one of `round`, `incident`, `day`, or
/// none for the rounds the page verifies (each shown incident's opening and
/// resolving round).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// A website shown on the page.
    #[param(example = 7)]
    pub site: Option<String>,
    /// One closed round.
    pub round: Option<String>,
    /// An incident of the site: its opening and resolving rounds.
    pub incident: Option<String>,
    /// A UTC day `YYYY-MM-DD` of the last 90: its rounds with a result other than
    /// up (at most 50, newest first), or its last 10 rounds when all were up.
    #[param(example = "2026-11-27")]
    pub day: Option<String>,
}

/// One validator's signed result.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedResult {
    /// Validator id.
    pub validator_id: i64,
    /// Its Ed25519 public key, hex (32 bytes).
    pub public_key: String,
    /// The assignment answered (also inside the signed bytes).
    pub assignment_id: i64,
    /// `up`, `down` or `degraded` (also inside the signed bytes).
    #[schema(example = "down")]
    pub status: String,
    /// The exact bytes the validator signed, hex (PROTOCOL.md §4).
    pub signed_bytes: String,
    /// Ed25519 signature over `signed_bytes`, hex (64 bytes).
    pub signature: String,
}

/// One closed round of the site.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundRecord {
    /// Round number.
    pub round: i64,
    /// What the page claims the round settled (`down`: it opened an incident,
    /// `up`: it resolved one); null when the page claims nothing of this round.
    pub claimed_status: Option<String>,
    /// Why it is claimed, e.g. `incident 4 opened`.
    pub claim: Option<String>,
    /// Its results were dropped with their tick partition (older than the hub's
    /// `TICK_RETENTION_DAYS`): `results` is empty and nothing can be checked.
    pub pruned: bool,
    /// Every stored result of the site in that round, by assignment id.
    pub results: Vec<SignedResult>,
}

/// Signed records of one site on a status page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Records {
    /// The hub id inside every signed result.
    pub hub_id: String,
    /// The page.
    pub slug: String,
    /// The website.
    pub website_id: i64,
    /// Majority rule to recompute with: the status of most results; a tie or none
    /// is `unknown`.
    #[schema(example = "plurality; tie or none = unknown")]
    pub majority_rule: String,
    /// The rounds, oldest first.
    pub rounds: Vec<RoundRecord>,
}

#[derive(QueryableByName)]
struct SignedRow {
    #[diesel(sql_type = BigInt)]
    round_number: i64,
    #[diesel(sql_type = BigInt)]
    assignment_id: i64,
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Int2>)]
    http_status: Option<i16>,
    #[diesel(sql_type = Int4)]
    latency_ms: i32,
    #[diesel(sql_type = Nullable<Text>)]
    failure: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    tls_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    checked_at: DateTime<Utc>,
    #[diesel(sql_type = Int2)]
    protocol_version: i16,
    #[diesel(sql_type = Nullable<Bytea>)]
    spec_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Bytea)]
    signature: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    public_key: Vec<u8>,
}

#[derive(QueryableByName)]
struct RoundNumber {
    #[diesel(sql_type = BigInt)]
    round_number: i64,
}

/// Mounts the records route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(records);
}

fn number(field: &'static str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be a positive integer")))
}

/// What the page claims of each round: incidents open on down and close on up.
fn claims(incidents: &[Incident]) -> BTreeMap<i64, (String, String)> {
    let mut claims = BTreeMap::new();
    for i in incidents {
        claims.insert(
            i.opened_round,
            (
                i.opening_status().to_owned(),
                format!("incident {} opened", i.id),
            ),
        );
        if let Some(round) = i.resolved_round {
            claims.insert(
                round,
                ("up".to_owned(), format!("incident {} resolved", i.id)),
            );
        }
    }
    claims
}

/// Rounds of `site` on `day` to serve as the day's evidence.
fn day_rounds(conn: &mut PgConnection, site: i64, day: NaiveDate) -> QueryResult<Vec<i64>> {
    let from = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let to = from + chrono::Duration::days(1);
    // The received time bounds the scan to the day's partition (by its index).
    let pick = |conn: &mut PgConnection, only_failures: bool, limit: i64| {
        diesel::sql_query(format!(
            "SELECT DISTINCT t.round_number FROM ticks t JOIN rounds r ON r.number = t.round_number \
             WHERE t.website_id = $1 AND t.received_at >= $2 AND t.received_at < $3 \
               AND r.closed_at IS NOT NULL {} \
             ORDER BY t.round_number DESC LIMIT $4",
            if only_failures {
                "AND t.status <> 'up'"
            } else {
                ""
            }
        ))
        .bind::<BigInt, _>(site)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<BigInt, _>(limit)
        .load::<RoundNumber>(conn)
    };
    let mut rounds = pick(conn, true, MAX_ROUNDS as i64)?;
    if rounds.is_empty() {
        rounds = pick(conn, false, QUIET_DAY_ROUNDS)?;
    }
    Ok(rounds.into_iter().map(|r| r.round_number).collect())
}

/// The signed results of `site` in the closed rounds among `rounds`.
fn signed(
    conn: &mut PgConnection,
    hub_id: &str,
    site: i64,
    rounds: &[i64],
    claims: &BTreeMap<i64, (String, String)>,
) -> QueryResult<Vec<RoundRecord>> {
    let rows: Vec<SignedRow> = diesel::sql_query(
        "SELECT t.round_number, t.assignment_id, t.validator_id, t.status, t.http_status, \
                t.latency_ms, t.failure, t.tls_expires_at, t.checked_at, t.protocol_version, t.spec_hash, \
                t.signature, v.public_key \
         FROM ticks t JOIN rounds r ON r.number = t.round_number \
         JOIN validators v ON v.id = t.validator_id \
         WHERE t.website_id = $1 AND t.round_number = ANY($2) AND r.closed_at IS NOT NULL \
         ORDER BY t.round_number, t.assignment_id",
    )
    .bind::<BigInt, _>(site)
    .bind::<Array<BigInt>, _>(rounds)
    .load(conn)?;
    let mut by_round: BTreeMap<i64, Vec<SignedResult>> = BTreeMap::new();
    for row in rows {
        let fields = ResultFields::from_record(ResultRecord {
            assignment_id: row.assignment_id,
            status: &row.status,
            http_status: row.http_status,
            latency_ms: row.latency_ms,
            failure: row.failure.as_deref(),
            tls_expires_at: row.tls_expires_at,
            checked_at: row.checked_at,
            protocol_version: row.protocol_version,
            spec_hash: row.spec_hash.as_deref(),
        });
        by_round
            .entry(row.round_number)
            .or_default()
            .push(SignedResult {
                validator_id: row.validator_id,
                public_key: hex::encode(&row.public_key),
                assignment_id: row.assignment_id,
                status: row.status,
                signed_bytes: hex::encode(result_bytes(hub_id, &fields)),
                signature: hex::encode(&row.signature),
            });
    }
    let mut wanted = rounds.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let pruned = pruned_rounds(
        conn,
        &wanted
            .iter()
            .copied()
            .filter(|r| !by_round.contains_key(r) && claims.contains_key(r))
            .collect::<Vec<_>>(),
    )?;
    Ok(wanted
        .into_iter()
        .filter_map(|round| {
            let claim = claims.get(&round);
            let (results, pruned) = match by_round.remove(&round) {
                Some(results) => (results, false),
                // A claimed round whose results are past retention is listed as such
                // (the verifier reports it unchecked); any other is left out.
                None if pruned.contains(&round) => (Vec::new(), true),
                None => return None,
            };
            Some(RoundRecord {
                round,
                claimed_status: claim.map(|c| c.0.clone()),
                claim: claim.map(|c| c.1.clone()),
                pruned,
                results,
            })
        })
        .collect())
}

#[derive(QueryableByName)]
struct Pruned {
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// Which of the closed `rounds` opened before the oldest stored result: their
/// results were dropped with their tick partitions (`TICK_RETENTION_DAYS`).
fn pruned_rounds(conn: &mut PgConnection, rounds: &[i64]) -> QueryResult<Vec<i64>> {
    if rounds.is_empty() {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(
        "SELECT number FROM rounds WHERE number = ANY($1) AND closed_at IS NOT NULL \
           AND opened_at < COALESCE((SELECT min(received_at) FROM ticks), 'infinity')",
    )
    .bind::<Array<BigInt>, _>(rounds)
    .load::<Pruned>(conn)?
    .into_iter()
    .map(|p| p.number)
    .collect())
}

/// The signed records behind a status page: every result of the chosen closed
/// rounds of one shown site, with the bytes signed, the signature, the validator's
/// key and what the page claims of the round. Public; only sites on the page.
#[utoipa::path(
    tag = "status pages",
    params(("slug" = String, Path, description = "Status page slug"), RecordQuery),
    responses(
        (status = 200, description = "The rounds' signed results", body = Records),
        (status = 404, description = "No such page, or the site is not on it, or no such incident of the site", body = ErrorBody),
        (status = 422, description = "Missing or malformed site, round, incident or day; more than one chosen; a day outside the last 90", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/status-pages/{slug}/records")]
pub async fn records(
    hub: web::Data<Arc<Hub>>,
    slug: web::Path<String>,
    query: web::Query<RecordQuery>,
) -> Result<web::Json<Records>, ApiError> {
    let slug = slug.into_inner();
    let query = query.into_inner();
    let site = number(
        "site",
        query
            .site
            .as_deref()
            .ok_or_else(|| ApiError::invalid("site", "site is required"))?,
    )?;
    let chosen = [&query.round, &query.incident, &query.day]
        .iter()
        .filter(|q| q.is_some())
        .count();
    if chosen > 1 {
        return Err(ApiError::invalid(
            "round",
            "choose at most one of round, incident and day",
        ));
    }
    let round = query
        .round
        .as_deref()
        .map(|r| number("round", r))
        .transpose()?;
    let incident = query
        .incident
        .as_deref()
        .map(|i| number("incident", i))
        .transpose()?;
    let today = Utc::now().date_naive();
    let day = query
        .day
        .as_deref()
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|d| *d <= today && *d > today - chrono::Duration::days(data::DAYS))
                .ok_or_else(|| {
                    ApiError::invalid("day", "day must be a date YYYY-MM-DD of the last 90 days")
                })
        })
        .transpose()?;
    let hub_id = hub.config.hub_id.clone();
    let page_slug = slug.clone();
    let rounds = db(&hub, move |conn| {
        let page = data::published(conn, &slug)?.ok_or(ApiError::NotFound("status page"))?;
        if !page.sites.iter().any(|(id, _)| *id == site) {
            return Err(ApiError::NotFound("website on this status page"));
        }
        let shown = data::shown_incidents(conn, &[site], Utc::now())?
            .remove(&site)
            .unwrap_or_default();
        let claims = claims(&shown);
        let mut wanted: Vec<i64> = if let Some(round) = round {
            vec![round]
        } else if let Some(id) = incident {
            let found: Incident = incidents::table
                .filter(incidents::id.eq(id))
                .filter(incidents::website_id.eq(site))
                .select(Incident::as_select())
                .first(conn)
                .optional()?
                .ok_or(ApiError::NotFound("incident of this website"))?;
            let claims = self::claims(std::slice::from_ref(&found));
            return Ok(signed(
                conn,
                &hub_id,
                site,
                &claims.keys().copied().collect::<Vec<_>>(),
                &claims,
            )?);
        } else if let Some(day) = day {
            day_rounds(conn, site, day)?
        } else {
            claims.keys().copied().collect()
        };
        wanted.truncate(MAX_ROUNDS);
        Ok(signed(conn, &hub_id, site, &wanted, &claims)?)
    })
    .await?;
    Ok(web::Json(Records {
        hub_id: hub.config.hub_id.clone(),
        slug: page_slug,
        website_id: site,
        majority_rule: "plurality; tie or none = unknown".into(),
        rounds,
    }))
}
