//! Eons (public, read-only): Merkle roots of cumulative rewards, their on-chain
//! commitment and the audit of each.

use std::sync::Arc;

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::{AuditReport, Eon as EonRow, EthereumTransaction, RootCommitment};
use overlaps_shared::root_state::OnchainRootState;
use overlaps_shared::schema::{
    audit_reports, chain_blocks, eons, ethereum_transaction_attempts, ethereum_transactions,
    root_commitments,
};
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::{PageParams, db, hex0x, money, paginate};
use crate::hub::Hub;

/// Mounts the eon routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list_eons).service(get_eon).service(get_audit);
}

/// An eon as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EonSummary {
    /// Eon number.
    pub number: i64,
    /// First round it covers.
    pub first_round: i64,
    /// Last round it covers.
    pub last_round: i64,
    /// When accounting closed it.
    pub closed_at: DateTime<Utc>,
    /// Merkle root, hex (null until committed).
    pub root: Option<String>,
    /// Sum of all cumulative rewards in the tree (decimal string, smallest unit).
    #[schema(example = "123000")]
    pub total: Option<String>,
    /// The root's on-chain state (see `GET /api/v1/eons/{number}`); null until its
    /// commit is final.
    #[schema(example = "claimable")]
    pub onchain_state: Option<String>,
}

/// The on-chain transaction that commits an eon's root.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitTransaction {
    /// `pending`, `mined`, `confirmed` or `failed`.
    #[schema(example = "confirmed")]
    pub state: String,
    /// Its nonce, once assigned.
    pub nonce: Option<i64>,
    /// The block it was mined in.
    pub mined_block: Option<i64>,
    /// Hash of the latest broadcast, hex.
    pub tx_hash: Option<String>,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// An eon with its root commitment and on-chain state.
#[derive(Debug, Serialize, ToSchema)]
pub struct EonDetail {
    /// Eon number.
    pub number: i64,
    /// First round it covers.
    pub first_round: i64,
    /// Last round it covers.
    pub last_round: i64,
    /// When accounting closed it.
    pub closed_at: DateTime<Utc>,
    /// Merkle root, hex (null until committed).
    pub root: Option<String>,
    /// Sum of cumulative rewards in the tree (decimal string, smallest unit).
    #[schema(example = "123000")]
    pub total: Option<String>,
    /// Leaves in the tree.
    pub leaf_count: Option<i32>,
    /// Validators left out for lack of a payout address.
    pub excluded_count: Option<i32>,
    /// The root committed on-chain for this eon, hex (once final; kept when it was
    /// later cancelled or replaced).
    pub onchain_root: Option<String>,
    /// The block of `RootCommitted`.
    pub onchain_block: Option<i64>,
    /// Where the on-chain root stands, as of `chain_final_block`: `pending` (in its
    /// challenge window: the guardian may still cancel it, claims cannot use it
    /// before `claimable_from_block`), `claimable` (its window ended; claims use the
    /// newest claimable root, whose cumulative amounts include older eons'),
    /// `cancelled` (by the guardian, in `cancelled_block`: it never pays) or
    /// `replaced` (a newer eon, `replaced_by_eon`, was committed inside its window:
    /// it never pays, the newer root carries its amounts). Null until the commit is
    /// final.
    #[schema(example = "pending")]
    pub onchain_state: Option<String>,
    /// The first block where claims may use this root (its window's end).
    pub claimable_from_block: Option<i64>,
    /// The block where the guardian cancelled it.
    pub cancelled_block: Option<i64>,
    /// The eon whose commit replaced it while it was pending.
    pub replaced_by_eon: Option<i64>,
    /// The newest final block the hub's chain follower has seen: the state above
    /// holds as of it.
    pub chain_final_block: Option<i64>,
    /// The `commitRoot` transaction (tag `commit_root:<eon>`), if created.
    pub transaction: Option<CommitTransaction>,
}

/// One page of eons.
#[derive(Debug, Serialize, ToSchema)]
pub struct EonPage {
    /// Eons, newest first.
    pub items: Vec<EonSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The audit service's report on one eon.
#[derive(Debug, Serialize, ToSchema)]
pub struct Audit {
    /// Eon number.
    pub eon: i64,
    /// When the audit ran.
    pub created_at: DateTime<Utc>,
    /// No mismatch found.
    pub ok: bool,
    /// Counts of what was re-derived.
    #[schema(value_type = Object)]
    pub checked: Json,
    /// Each mismatch with the ids involved.
    #[schema(value_type = Object)]
    pub mismatches: Json,
}

/// Eons, newest first.
#[utoipa::path(
    tag = "eons",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = EonPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/eons")]
pub async fn list_eons(
    hub: web::Data<Arc<Hub>>,
    page: web::Query<PageParams>,
) -> Result<web::Json<EonPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let (rows, head) = db(&hub, move |conn| {
        let head = final_head(conn)?;
        let mut query = eons::table
            .left_join(root_commitments::table)
            .select((EonRow::as_select(), Option::<RootCommitment>::as_select()))
            .order(eons::number.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(cursor) = cursor {
            query = query.filter(eons::number.lt(cursor));
        }
        Ok((query.load::<(EonRow, Option<RootCommitment>)>(conn)?, head))
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |(e, _)| e.number.to_string());
    Ok(web::Json(EonPage {
        items: rows
            .into_iter()
            .map(|(e, c)| EonSummary {
                number: e.number,
                first_round: e.first_round,
                last_round: e.last_round,
                closed_at: e.closed_at,
                root: c.as_ref().map(|c| hex0x(&c.root)),
                total: c.as_ref().map(|c| money(&c.total)),
                onchain_state: c
                    .as_ref()
                    .and_then(|c| c.onchain_state(head))
                    .map(|s| s.name().to_owned()),
            })
            .collect(),
        next_cursor,
    }))
}

/// The newest final block the chain follower stored.
fn final_head(conn: &mut PgConnection) -> Result<Option<i64>, ApiError> {
    Ok(chain_blocks::table
        .filter(chain_blocks::finalized.eq(true))
        .select(diesel::dsl::max(chain_blocks::number))
        .first::<Option<i64>>(conn)?)
}

/// One eon: root, total, leaves, and the state of its on-chain commitment
/// (pending in its challenge window, claimable, cancelled by the guardian, or
/// replaced by a newer root).
#[utoipa::path(
    tag = "eons",
    params(("number" = i64, Path, description = "Eon number")),
    responses(
        (status = 200, description = "The eon", body = EonDetail),
        (status = 400, description = "Malformed number", body = ErrorBody),
        (status = 404, description = "No such eon", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/eons/{number}")]
pub async fn get_eon(
    hub: web::Data<Arc<Hub>>,
    number: web::Path<i64>,
) -> Result<web::Json<EonDetail>, ApiError> {
    let number = number.into_inner();
    let (eon, commitment, tx, tx_hash, head) = db(&hub, move |conn| {
        let (eon, commitment): (EonRow, Option<RootCommitment>) = eons::table
            .left_join(root_commitments::table)
            .filter(eons::number.eq(number))
            .select((EonRow::as_select(), Option::<RootCommitment>::as_select()))
            .first(conn)
            .optional()?
            .ok_or(ApiError::NotFound("eon"))?;
        let tx: Option<EthereumTransaction> = ethereum_transactions::table
            .filter(ethereum_transactions::tag.eq(format!("commit_root:{number}")))
            .select(EthereumTransaction::as_select())
            .first(conn)
            .optional()?;
        let tx_hash: Option<Vec<u8>> = match &tx {
            Some(tx) => ethereum_transaction_attempts::table
                .filter(ethereum_transaction_attempts::transaction_id.eq(tx.id))
                .order(ethereum_transaction_attempts::id.desc())
                .select(ethereum_transaction_attempts::tx_hash)
                .first(conn)
                .optional()?,
            None => None,
        };
        Ok((eon, commitment, tx, tx_hash, final_head(conn)?))
    })
    .await?;
    let state = commitment.as_ref().and_then(|c| c.onchain_state(head));
    Ok(web::Json(EonDetail {
        number: eon.number,
        first_round: eon.first_round,
        last_round: eon.last_round,
        closed_at: eon.closed_at,
        root: commitment.as_ref().map(|c| hex0x(&c.root)),
        total: commitment.as_ref().map(|c| money(&c.total)),
        leaf_count: commitment.as_ref().map(|c| c.leaf_count),
        excluded_count: commitment.as_ref().map(|c| c.excluded_count),
        onchain_root: commitment
            .as_ref()
            .and_then(|c| c.onchain_root.as_deref())
            .map(hex0x),
        onchain_block: commitment.as_ref().and_then(|c| c.onchain_block),
        onchain_state: state.map(|s| s.name().to_owned()),
        claimable_from_block: commitment.as_ref().and_then(|c| c.onchain_claimable_block),
        cancelled_block: match state {
            Some(OnchainRootState::Cancelled { block }) => Some(block),
            _ => None,
        },
        replaced_by_eon: match state {
            Some(OnchainRootState::Replaced { by_eon }) => Some(by_eon),
            _ => None,
        },
        chain_final_block: head,
        transaction: tx.map(|tx| CommitTransaction {
            state: tx.state,
            nonce: tx.nonce,
            mined_block: tx.mined_block,
            tx_hash: tx_hash.as_deref().map(hex0x),
            last_error: tx.last_error,
        }),
    }))
}

/// The audit report of one eon.
#[utoipa::path(
    tag = "eons",
    params(("number" = i64, Path, description = "Eon number")),
    responses(
        (status = 200, description = "The report", body = Audit),
        (status = 400, description = "Malformed number", body = ErrorBody),
        (status = 404, description = "No such eon, or not audited yet (`no_audit`)", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/eons/{number}/audit")]
pub async fn get_audit(
    hub: web::Data<Arc<Hub>>,
    number: web::Path<i64>,
) -> Result<web::Json<Audit>, ApiError> {
    let number = number.into_inner();
    let report = db(&hub, move |conn| {
        let exists: Option<i64> = eons::table
            .find(number)
            .select(eons::number)
            .first(conn)
            .optional()?;
        exists.ok_or(ApiError::NotFound("eon"))?;
        audit_reports::table
            .find(number)
            .select(AuditReport::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::Missing {
                code: "no_audit",
                message: format!("eon {number} has not been audited yet"),
            })
    })
    .await?;
    Ok(web::Json(Audit {
        eon: report.eon,
        created_at: report.created_at,
        ok: report.ok,
        checked: report.checked,
        mismatches: report.mismatches,
    }))
}
