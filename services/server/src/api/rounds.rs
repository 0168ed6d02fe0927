//! Rounds (public, read-only): seed, seed-chain reveal, candidates, assignments and
//! results, so a third party can check each seed, re-derive who was chosen and
//! check what they answered; and the committed seed chains (tips, never anchors).
//!
//! A round is sealed until accounting closes it: while `closed_at` is null its
//! assignments show neither results nor which were answered, so no validator can
//! read the others' answers (or learn who answered) and copy the majority.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::{
    CheckAssignment, Round as RoundRow, SeedChain as SeedChainRow, Tick,
};
use overlaps_shared::schema::{check_assignments, rounds, seed_chains, ticks};
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::{PageParams, db, hex0x, paginate};
use crate::hub::Hub;

/// Mounts the round routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list_rounds)
        .service(get_round)
        .service(list_assignments)
        .service(list_seed_chains);
}

/// A check round.
#[derive(Debug, Serialize, ToSchema)]
pub struct Round {
    /// Round number.
    pub number: i64,
    /// Public seed, hex: `keccak256("overlaps/v2/round-seed" || previous seed ||
    /// seed_reveal)` (round 1's previous seed: `keccak256("overlaps/v1/genesis" ||
    /// hub id)`). Rounds without a `seed_reveal` were opened under the old rule:
    /// `keccak256("overlaps/v1/round-seed" || previous seed || results hash of
    /// seed_results_round)`.
    pub seed: String,
    /// The link of its epoch's seed chain this round revealed, hex:
    /// `keccak256("overlaps/v1/seed-chain" || seed_reveal)` is the previous round's
    /// reveal, or the epoch's `tip` at its first round (null: old rule).
    pub seed_reveal: Option<String>,
    /// The seed epoch (`/api/v1/seed-chains`) whose chain it revealed from (null: old rule).
    pub seed_epoch: Option<i64>,
    /// Old rule only: the closed round whose results hash went into the seed (null: zeros).
    pub seed_results_round: Option<i64>,
    /// Validators online at opening and admitted, with their selection weight and
    /// network: `[[validator_id, weight, "203.0.113.0/24"], ...]` (rounds before
    /// networks were recorded: `[[validator_id, weight], ...]`).
    #[schema(value_type = Object)]
    pub candidates: Json,
    /// Opening time.
    pub opened_at: DateTime<Utc>,
    /// Results are due by then.
    pub deadline_at: DateTime<Utc>,
    /// When accounting closed it (null: open, its results sealed).
    pub closed_at: Option<DateTime<Utc>>,
    /// Fewer validators online than some site's quorum.
    pub degraded: bool,
    /// Hash of the closed results, hex.
    pub results_hash: Option<String>,
    /// `keccak256(previous chain_hash || results_hash)`, hex.
    pub chain_hash: Option<String>,
}

impl Round {
    /// The round as published, its epoch found among `chains`.
    fn new(r: RoundRow, chains: &[SeedChainRow]) -> Self {
        let seed_epoch = r.seed_reveal.as_ref().and_then(|_| {
            chains
                .iter()
                .find(|c| {
                    c.first_round <= r.number && r.number < c.first_round + i64::from(c.rounds)
                })
                .map(|c| c.epoch)
        });
        Round {
            number: r.number,
            seed: hex0x(&r.seed),
            seed_reveal: r.seed_reveal.as_deref().map(hex0x),
            seed_epoch,
            seed_results_round: r.seed_results_round,
            candidates: r.candidates,
            opened_at: r.opened_at,
            deadline_at: r.deadline_at,
            closed_at: r.closed_at,
            degraded: r.degraded,
            results_hash: r.results_hash.as_deref().map(hex0x),
            chain_hash: r.chain_hash.as_deref().map(hex0x),
        }
    }
}

/// The seed chains that may hold rounds `lowest..=highest`.
fn chains_for(
    conn: &mut PgConnection,
    lowest: i64,
    highest: i64,
) -> QueryResult<Vec<SeedChainRow>> {
    // Epochs are long (SEED_CHAIN_ROUNDS), so a page of rounds touches one or two.
    seed_chains::table
        .filter(seed_chains::first_round.le(highest))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "seed_chains.first_round + seed_chains.rounds > ",
            )
            .bind::<diesel::sql_types::BigInt, _>(lowest),
        )
        .select(SeedChainRow::as_select())
        .load(conn)
}

/// One page of rounds.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundPage {
    /// Rounds, newest first.
    pub items: Vec<Round>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A validator's signed answer to an assignment.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentResult {
    /// `up` or `down`.
    pub status: String,
    /// HTTP status, if any.
    pub http_status: Option<i16>,
    /// Latency, ms.
    pub latency_ms: i32,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// When the validator checked.
    pub checked_at: DateTime<Utc>,
    /// When the site's TLS certificate expires, if the validator saw one (signed too).
    pub tls_expires_at: Option<DateTime<Utc>>,
    /// Ed25519 signature over the canonical result bytes, hex.
    pub signature: String,
    /// The layout signed: 1 (`overlaps/v1/result`) or 2 (`overlaps/v2/result`,
    /// with `spec_hash` appended).
    pub protocol_version: i16,
    /// SHA-256 of the check spec evaluated (v2), hex.
    pub spec_hash: Option<String>,
}

/// Who was asked to check what in a round, and what they answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Assignment {
    /// Assignment id.
    pub id: i64,
    /// Website.
    pub website_id: i64,
    /// Validator.
    pub validator_id: i64,
    /// When the check was due.
    pub due_at: DateTime<Utc>,
    /// Answer deadline.
    pub deadline_at: DateTime<Utc>,
    /// `answered` or `missed` once the round is closed; `sealed` for every
    /// assignment of an open round (answered or not: that is not shown until the close).
    #[schema(example = "answered")]
    pub state: String,
    /// The stored result: null while the round is open (sealed), and in a closed
    /// round unless answered (or its day's ticks were dropped).
    pub result: Option<AssignmentResult>,
}

/// One page of a round's assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentPage {
    /// Assignments by ascending id.
    pub items: Vec<Assignment>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Rounds, newest first.
#[utoipa::path(
    tag = "rounds",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = RoundPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/rounds")]
pub async fn list_rounds(
    hub: web::Data<Arc<Hub>>,
    page: web::Query<PageParams>,
) -> Result<web::Json<RoundPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let (rows, chains) = db(&hub, move |conn| {
        let mut query = rounds::table
            .select(RoundRow::as_select())
            .order(rounds::number.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(rounds::number.lt(cursor));
        }
        let rows: Vec<RoundRow> = query.load(conn)?;
        let chains = match (rows.last(), rows.first()) {
            (Some(low), Some(high)) => chains_for(conn, low.number, high.number)?,
            _ => Vec::new(),
        };
        Ok((rows, chains))
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |r| r.number.to_string());
    Ok(web::Json(RoundPage {
        items: rows.into_iter().map(|r| Round::new(r, &chains)).collect(),
        next_cursor,
    }))
}

/// One round: seed and candidates (enough to re-derive its assignments).
#[utoipa::path(
    tag = "rounds",
    params(("number" = i64, Path, description = "Round number")),
    responses(
        (status = 200, description = "The round", body = Round),
        (status = 400, description = "Malformed number", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/rounds/{number}")]
pub async fn get_round(
    hub: web::Data<Arc<Hub>>,
    number: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let number = number.into_inner();
    if let Some(hit) = hub.read_cache.round(number) {
        hit.refresh_with(|| {
            let hub = Arc::clone(&hub);
            async move { load_round(&hub, number).await }
        });
        return Ok(hit.value);
    }
    load_round(&hub, number).await
}

/// Reads round `number` and keeps its answer.
async fn load_round(hub: &Hub, number: i64) -> Result<HttpResponse, ApiError> {
    let ticket = hub.read_cache.ticket();
    let (row, chains) = db(hub, move |conn| {
        let row = rounds::table
            .find(number)
            .select(RoundRow::as_select())
            .first(conn)
            .optional()?
            .ok_or(ApiError::NotFound("round"))?;
        let chains = chains_for(conn, number, number)?;
        Ok((row, chains))
    })
    .await?;
    hub.read_cache
        .remember_round(ticket, number, &Round::new(row, &chains))
}

/// The `state` of every assignment of a round that is not closed yet.
pub const SEALED: &str = "sealed";

/// A round's assignments with their signed results, a page at a time; while the
/// round is open every assignment is `sealed`, with no result.
#[utoipa::path(
    tag = "rounds",
    params(("number" = i64, Path, description = "Round number"), PageParams),
    responses(
        (status = 200, description = "One page", body = AssignmentPage),
        (status = 400, description = "Malformed number or query", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/rounds/{number}/assignments")]
pub async fn list_assignments(
    hub: web::Data<Arc<Hub>>,
    number: web::Path<i64>,
    page: web::Query<PageParams>,
) -> Result<web::Json<AssignmentPage>, ApiError> {
    let number = number.into_inner();
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let (rows, results, sealed) = db(&hub, move |conn| {
        let closed_at: Option<Option<DateTime<Utc>>> = rounds::table
            .find(number)
            .select(rounds::closed_at)
            .first(conn)
            .optional()?;
        let sealed = closed_at.ok_or(ApiError::NotFound("round"))?.is_none();
        let mut query = check_assignments::table
            .filter(check_assignments::round_number.eq(number))
            .select(CheckAssignment::as_select())
            .order(check_assignments::id.asc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(check_assignments::id.gt(cursor));
        }
        let rows: Vec<CheckAssignment> = query.load(conn)?;
        if sealed {
            // Not even read: nothing of an open round's results leaves the database.
            return Ok((rows, Vec::new(), true));
        }
        let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
        let results: Vec<Tick> = ticks::table
            .filter(ticks::round_number.eq(number))
            .filter(ticks::assignment_id.eq_any(ids))
            .select(Tick::as_select())
            .load(conn)?;
        Ok((rows, results, false))
    })
    .await?;
    let mut by_assignment: HashMap<i64, Tick> =
        results.into_iter().map(|t| (t.assignment_id, t)).collect();
    let (rows, next_cursor) = paginate(rows, limit, |a| a.id.to_string());
    Ok(web::Json(AssignmentPage {
        items: rows
            .into_iter()
            .map(|a| Assignment {
                result: by_assignment.remove(&a.id).map(|t| AssignmentResult {
                    status: t.status,
                    http_status: t.http_status,
                    latency_ms: t.latency_ms,
                    failure: t.failure,
                    checked_at: t.checked_at,
                    tls_expires_at: t.tls_expires_at,
                    signature: hex0x(&t.signature),
                    protocol_version: t.protocol_version,
                    spec_hash: t.spec_hash.as_deref().map(hex0x),
                }),
                id: a.id,
                website_id: a.website_id,
                validator_id: a.validator_id,
                due_at: a.due_at,
                deadline_at: a.deadline_at,
                // Pending, answered and missed all look alike until the close.
                state: if sealed { SEALED.to_owned() } else { a.state },
            })
            .collect(),
        next_cursor,
    }))
}

/// A committed seed chain: its tip, published before its epoch's first round.
/// The anchor (the hub's secret) is never served.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeedChain {
    /// Epoch number, from 1.
    pub epoch: i64,
    /// The round that reveals the link just below the tip.
    pub first_round: i64,
    /// Rounds in the epoch: round `first_round + i` reveals `h_(rounds-1-i)`.
    pub rounds: i32,
    /// The commitment `h_rounds`, hex: the first round's reveal hashes to it.
    pub tip: String,
    /// When the hub committed it (a whole epoch before `first_round`, except for
    /// the first epoch, committed with its own first round).
    pub committed_at: DateTime<Utc>,
}

/// One page of seed chains.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeedChainPage {
    /// Seed chains, newest epoch first.
    pub items: Vec<SeedChain>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Committed seed chains, newest epoch first: each round's `seed_reveal` is checked
/// against them.
#[utoipa::path(
    tag = "rounds",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = SeedChainPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/seed-chains")]
pub async fn list_seed_chains(
    hub: web::Data<Arc<Hub>>,
    page: web::Query<PageParams>,
) -> Result<web::Json<SeedChainPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let rows = db(&hub, move |conn| {
        // Only the public columns are selected (the model has no anchor field).
        let mut query = seed_chains::table
            .select(SeedChainRow::as_select())
            .order(seed_chains::epoch.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(seed_chains::epoch.lt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |c: &SeedChainRow| c.epoch.to_string());
    Ok(web::Json(SeedChainPage {
        items: rows
            .into_iter()
            .map(|c| SeedChain {
                epoch: c.epoch,
                first_round: c.first_round,
                rounds: c.rounds,
                tip: hex0x(&c.tip),
                committed_at: c.committed_at,
            })
            .collect(),
        next_cursor,
    }))
}
