//! Canaries (public, read-only): the chains of canary keys committed ahead, and,
//! once a round is closed, its revealed key and which of its assignments were
//! canaries, with the right answer and the verdict, so anyone can re-derive them
//! (`overlaps_shared::canary::plan_round`). Nothing of an open round's canaries is
//! shown: not even how many there are.

use std::sync::Arc;

use actix_web::{get, web};
use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4};
use overlaps_shared::canary::CanaryMode;
use overlaps_shared::schema::{canary_assignments, canary_chains, rounds};
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::{PageParams, db, hex0x, paginate};
use crate::hub::Hub;

/// Mounts the canary routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list_chains).service(round_canaries);
}

#[derive(QueryableByName)]
struct ChainOfRound {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = Int4)]
    rate_bp: i32,
}

/// A committed chain of canary keys: one key per round of its epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryChain {
    /// Epoch number.
    pub epoch: i64,
    /// Its first round.
    pub first_round: i64,
    /// How many rounds it governs.
    pub rounds: i32,
    /// Basis points of online validators given a canary each round.
    pub rate_bp: i32,
    /// The commitment, hex: round *i* of the epoch reveals `k_i` with
    /// `keccak256("overlaps/v1/canary-chain" || k_i) = k_(i-1)`, `k_(-1)` = this tip.
    pub tip: String,
    /// When it was committed (before any of its rounds opened).
    pub committed_at: DateTime<Utc>,
}

/// One page of chains.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryChainPage {
    /// Chains, newest first.
    pub items: Vec<CanaryChain>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A canary assignment, published once its round closed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundCanary {
    /// The assignment (see the round's assignments for the signed answer).
    pub assignment_id: i64,
    /// Who was sent it.
    pub validator_id: i64,
    /// `ok`, `server_error`, `keyword_missing`, `timeout`, `refused` or `bad_tls`.
    pub mode: String,
    /// The right answer: `up` for `ok`, else `down`.
    pub expected_status: String,
    /// `passed`, `failed` or `missed`.
    pub outcome: Option<String>,
    /// What a failure took back (the eon's credits so far), smallest unit.
    pub forfeited: String,
}

/// A round's canaries: its revealed key and every canary assignment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundCanaries {
    /// Round number.
    pub round: i64,
    /// Whether the round is closed and its canaries revealed.
    pub revealed: bool,
    /// The round's canary key, hex (null until the round closes).
    pub canary_key: Option<String>,
    /// The epoch of the chain the key belongs to.
    pub epoch: Option<i64>,
    /// The rate that chain committed to, basis points.
    pub canary_rate_bp: Option<i32>,
    /// The canary assignments (empty until the round closes).
    pub items: Vec<RoundCanary>,
}

/// The committed chains of canary keys, newest first.
#[utoipa::path(
    tag = "rounds",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = CanaryChainPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/canary-chains")]
pub async fn list_chains(
    hub: web::Data<Arc<Hub>>,
    page: web::Query<PageParams>,
) -> Result<web::Json<CanaryChainPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    type Row = (i64, i64, i32, i32, Vec<u8>, DateTime<Utc>);
    let rows: Vec<Row> = db(&hub, move |conn| {
        // Never the anchor: it is the hub's secret.
        let mut query = canary_chains::table
            .select((
                canary_chains::epoch,
                canary_chains::first_round,
                canary_chains::rounds,
                canary_chains::rate_bp,
                canary_chains::tip,
                canary_chains::committed_at,
            ))
            .order(canary_chains::epoch.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(canary_chains::epoch.lt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |r| r.0.to_string());
    Ok(web::Json(CanaryChainPage {
        items: rows
            .into_iter()
            .map(
                |(epoch, first_round, rounds, rate_bp, tip, committed_at)| CanaryChain {
                    epoch,
                    first_round,
                    rounds,
                    rate_bp,
                    tip: hex0x(&tip),
                    committed_at,
                },
            )
            .collect(),
        next_cursor,
    }))
}

/// A closed round's revealed canary key and canary assignments.
#[utoipa::path(
    tag = "rounds",
    params(("number" = i64, Path, description = "Round number")),
    responses(
        (status = 200, description = "The round's canaries (none shown while it is open)", body = RoundCanaries),
        (status = 400, description = "Malformed number", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/rounds/{number}/canaries")]
pub async fn round_canaries(
    hub: web::Data<Arc<Hub>>,
    number: web::Path<i64>,
) -> Result<web::Json<RoundCanaries>, ApiError> {
    let number = number.into_inner();
    db(&hub, move |conn| {
        let (closed_at, key): (Option<DateTime<Utc>>, Option<Vec<u8>>) = rounds::table
            .find(number)
            .select((rounds::closed_at, rounds::canary_key))
            .first(conn)
            .optional()?
            .ok_or(ApiError::NotFound("round"))?;
        let sealed = RoundCanaries {
            round: number,
            revealed: false,
            canary_key: None,
            epoch: None,
            canary_rate_bp: None,
            items: Vec::new(),
        };
        if closed_at.is_none() {
            return Ok(web::Json(sealed));
        }
        let chain = diesel::sql_query(
            "SELECT epoch, rate_bp FROM canary_chains WHERE first_round <= $1 AND first_round + rounds > $1",
        )
        .bind::<BigInt, _>(number)
        .get_result::<ChainOfRound>(conn)
        .optional()?
        .map(|c| (c.epoch, c.rate_bp));
        type Row = (i64, i64, String, Option<String>, BigDecimal);
        let rows: Vec<Row> = canary_assignments::table
            .filter(canary_assignments::round_number.eq(number))
            .select((
                canary_assignments::assignment_id,
                canary_assignments::validator_id,
                canary_assignments::mode,
                canary_assignments::outcome,
                canary_assignments::forfeited,
            ))
            .order(canary_assignments::assignment_id.asc())
            .load(conn)?;
        Ok(web::Json(RoundCanaries {
            revealed: true,
            canary_key: key.as_deref().map(hex0x),
            epoch: chain.map(|c| c.0),
            canary_rate_bp: chain.map(|c| c.1),
            items: rows
                .into_iter()
                .map(|(assignment_id, validator_id, mode, outcome, forfeited)| RoundCanary {
                    expected_status: CanaryMode::parse(&mode)
                        .map_or("unknown", CanaryMode::expected_status)
                        .to_owned(),
                    assignment_id,
                    validator_id,
                    mode,
                    outcome,
                    forfeited: forfeited.with_scale(0).to_string(),
                })
                .collect(),
            ..sealed
        }))
    })
    .await
}
