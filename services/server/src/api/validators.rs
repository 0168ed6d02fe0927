//! Validators (public): list, detail with earnings, and Merkle proofs of rewards.
//!
//! Nothing here moves while a round is open (rounds are sealed until closed):
//! reputation, the `checks_*` counters and credits are written only by accounting,
//! in the transaction that closes the round; `last_seen_at` changes at signup only.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Integer, Nullable, SmallInt, Text};
use overlaps_shared::merkle::{self, Hash};
use overlaps_shared::models::{MerkleLeaf, Validator as ValidatorRow};
use overlaps_shared::schema::{merkle_leaves, root_commitments, validator_rewards, validators};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admission::{AdmissionStanding, parse_public_key};
use super::errors::{ApiError, ErrorBody};
use super::{PageParams, checksummed, db, hex0x, money, paginate};
use crate::hub::Hub;

/// Mounts the validator routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(list_validators)
        .service(get_validator)
        .service(proof);
}

/// A validator as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidatorSummary {
    /// Validator id.
    pub id: i64,
    /// Ed25519 public key, hex (64 digits).
    #[schema(example = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")]
    pub public_key: String,
    /// EIP-55 payout address, if registered.
    #[schema(example = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")]
    pub payout_address: Option<String>,
    /// Reputation in basis points (0..=10000).
    #[schema(example = 5000)]
    pub reputation: i32,
    /// Connected to some server instance now.
    pub online: bool,
    /// Results that counted.
    pub checks_done: i64,
    /// Results that matched the majority.
    pub checks_agreed: i64,
    /// Assignments missed.
    pub checks_missed: i64,
    /// `checks_agreed / checks_done` in percent (null before any check).
    #[schema(example = 99.5)]
    pub agreed_percent: Option<f64>,
    /// First signup.
    pub first_seen_at: DateTime<Utc>,
    /// Last activity.
    pub last_seen_at: DateTime<Utc>,
}

/// A validator with its earnings (amounts: decimal strings in the chain's smallest unit).
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidatorDetail {
    /// Identity, reputation, activity.
    #[serde(flatten)]
    pub summary: ValidatorSummary,
    /// Everything credited for agreeing results.
    #[schema(example = "123000")]
    pub credited: String,
    /// The part of `credited` committed to its payout address's Merkle leaf so far.
    #[schema(example = "120000")]
    pub committed: String,
    /// The eon of that root (null: never committed).
    pub committed_eon: Option<i64>,
    /// Claimed on-chain to its payout address.
    #[schema(example = "100000")]
    pub claimed: String,
    /// Whether the admission rule lets it be selected now, and its weight.
    pub admission: AdmissionStanding,
}

/// One page of validators.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidatorPage {
    /// Validators by ascending id.
    pub items: Vec<ValidatorSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of the validator list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidatorFilter {
    /// Only the validator with this Ed25519 public key (hex, 64 digits, `0x` optional).
    pub public_key: Option<String>,
}

/// Which eon's proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EonParam {
    /// The eon (default: the latest eon with a leaf for this validator).
    #[param(minimum = 1)]
    pub eon: Option<i64>,
}

/// Everything needed to claim on-chain: the leaf and its path to the committed root.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"eon": 3, "validator_id": 7, "payout_address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "cumulative": "123000", "leaf": "0x6f1c…", "proof": ["0x9a3e…"], "root": "0x2b7d…", "validator_cumulative": "123000", "validator_attributed": "123000"}))]
pub struct Proof {
    /// The eon whose root the proof leads to.
    pub eon: i64,
    /// The validator.
    pub validator_id: i64,
    /// EIP-55 payout address in the leaf.
    pub payout_address: String,
    /// Cumulative reward of the payout address (every validator paid to it), decimal string, smallest unit: what `claim` takes.
    pub cumulative: String,
    /// `keccak256(bytes.concat(keccak256(abi.encode(payout, cumulative))))`, hex.
    pub leaf: String,
    /// Sibling hashes from the leaf up, hex (sorted-pair Keccak-256).
    pub proof: Vec<String>,
    /// The eon's Merkle root, hex.
    pub root: String,
    /// This validator's own cumulative reward at that eon (every address it was
    /// paid to), decimal string: what its acknowledged results should add up to.
    pub validator_cumulative: String,
    /// The part of `validator_cumulative` attributed to a payout address so far
    /// (the rest waits for an address), decimal string.
    pub validator_attributed: String,
}

fn summary(row: ValidatorRow, online: &HashSet<i64>) -> ValidatorSummary {
    let agreed_percent = (row.checks_done > 0).then(|| {
        // Rounded to 0.01 %; a ratio, not money, so a float is fine here.
        let pct = row.checks_agreed as f64 * 100.0 / row.checks_done as f64;
        (pct * 100.0).round() / 100.0
    });
    ValidatorSummary {
        id: row.id,
        public_key: hex::encode(&row.public_key),
        payout_address: row.payout_address.as_deref().and_then(checksummed),
        reputation: row.reputation,
        online: online.contains(&row.id),
        checks_done: row.checks_done,
        checks_agreed: row.checks_agreed,
        checks_missed: row.checks_missed,
        agreed_percent,
        first_seen_at: row.first_seen_at,
        last_seen_at: row.last_seen_at,
    }
}

async fn online_ids(hub: &Hub) -> Result<HashSet<i64>, ApiError> {
    Ok(hub
        .presence
        .online()
        .await?
        .into_iter()
        .map(|v| v.validator_id)
        .collect())
}

/// Validators by ascending id; `public_key` finds one by its key.
#[utoipa::path(
    tag = "validators",
    params(PageParams, ValidatorFilter),
    responses(
        (status = 200, description = "One page", body = ValidatorPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 422, description = "Invalid limit, cursor or public_key", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/validators")]
pub async fn list_validators(
    hub: web::Data<Arc<Hub>>,
    page: web::Query<PageParams>,
    filter: web::Query<ValidatorFilter>,
) -> Result<web::Json<ValidatorPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let key = filter
        .public_key
        .as_deref()
        .map(|k| parse_public_key("public_key", k))
        .transpose()?;
    let rows = db(&hub, move |conn| {
        let mut query = validators::table
            .select(ValidatorRow::as_select())
            .order(validators::id.asc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(key) = key {
            query = query.filter(validators::public_key.eq(key));
        }
        if let Some(cursor) = cursor {
            query = query.filter(validators::id.gt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let online = online_ids(&hub).await?;
    let (rows, next_cursor) = paginate(rows, limit, |v| v.id.to_string());
    Ok(web::Json(ValidatorPage {
        items: rows.into_iter().map(|r| summary(r, &online)).collect(),
        next_cursor,
    }))
}

#[derive(QueryableByName)]
struct Earnings {
    #[diesel(sql_type = Text)]
    credited: String,
    #[diesel(sql_type = Text)]
    committed: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    committed_eon: Option<i64>,
    #[diesel(sql_type = Text)]
    claimed: String,
}

/// One validator with reputation, activity and earnings.
#[utoipa::path(
    tag = "validators",
    params(("id" = i64, Path, description = "Validator id")),
    responses(
        (status = 200, description = "The validator", body = ValidatorDetail),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such validator", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/validators/{id}")]
pub async fn get_validator(
    hub: web::Data<Arc<Hub>>,
    id: web::Path<i64>,
) -> Result<web::Json<ValidatorDetail>, ApiError> {
    let id = id.into_inner();
    let policy = hub.config.admission.clone();
    let (row, earnings, standing) = db(&hub, move |conn| {
        let row: ValidatorRow = validators::table
            .find(id)
            .select(ValidatorRow::as_select())
            .first(conn)
            .optional()?
            .ok_or(ApiError::NotFound("validator"))?;
        // Money stays NUMERIC until it is text: never a float on the way.
        let earnings: Earnings = diesel::sql_query(
            "SELECT \
               (SELECT COALESCE(SUM(amount), 0) FROM validator_credits WHERE validator_id = $1)::text AS credited, \
               COALESCE((SELECT attributed FROM validator_rewards WHERE validator_id = $1 \
                         ORDER BY eon DESC LIMIT 1), 0)::text AS committed, \
               (SELECT max(eon) FROM validator_rewards WHERE validator_id = $1 AND attributed > 0) AS committed_eon, \
               (SELECT COALESCE(SUM(amount), 0) FROM contract_events \
                 WHERE kind = 'claimed' AND $2::bytea IS NOT NULL AND account = $2)::text AS claimed",
        )
        .bind::<BigInt, _>(id)
        .bind::<Nullable<Bytea>, _>(row.payout_address.clone())
        .get_result(conn)?;
        let standing = policy
            .standings(conn, &[id], Utc::now())?
            .into_iter()
            .next()
            .ok_or(ApiError::NotFound("validator"))?;
        Ok((row, earnings, standing))
    })
    .await?;
    let online = online_ids(&hub).await?;
    Ok(web::Json(ValidatorDetail {
        summary: summary(row, &online),
        credited: earnings.credited,
        committed: earnings.committed,
        committed_eon: earnings.committed_eon,
        claimed: earnings.claimed,
        admission: standing.into(),
    }))
}

#[derive(QueryableByName)]
struct TreeNode {
    #[diesel(sql_type = Nullable<Bytea>)]
    hash: Option<Vec<u8>>,
}

/// The leaf's hash and its proof, read from the eon's stored tree layers: one
/// 32-byte slice per layer (`merkle::proof_path`).
fn cut_proof(
    conn: &mut PgConnection,
    leaf: &MerkleLeaf,
    leaf_count: i32,
) -> Result<(Hash, Vec<Hash>), ApiError> {
    let index = usize::try_from(leaf.leaf_index).unwrap_or_default();
    let count = usize::try_from(leaf_count).unwrap_or_default();
    let nodes: Vec<(usize, usize)> = std::iter::once((0, index))
        .chain(merkle::proof_path(index, count))
        .collect();
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let layers: Vec<i16> = nodes
        .iter()
        .map(|&(layer, _)| i16::try_from(layer).unwrap_or(i16::MAX))
        .collect();
    let chunks: Vec<i32> = nodes
        .iter()
        .map(|&(_, node)| int(node / merkle::NODE_CHUNK))
        .collect();
    let offsets: Vec<i32> = nodes
        .iter()
        .map(|&(_, node)| int(node % merkle::NODE_CHUNK * 32))
        .collect();
    let found: Vec<TreeNode> = diesel::sql_query(
        "SELECT substring(n.hashes FROM w.byte + 1 FOR 32) AS hash \
         FROM unnest($2::smallint[], $3::int[], $4::int[]) WITH ORDINALITY AS w(layer, chunk, byte, position) \
         LEFT JOIN merkle_nodes n ON n.eon = $1 AND n.layer = w.layer AND n.chunk = w.chunk \
         ORDER BY w.position",
    )
    .bind::<BigInt, _>(leaf.eon)
    .bind::<Array<SmallInt>, _>(layers)
    .bind::<Array<Integer>, _>(chunks)
    .bind::<Array<Integer>, _>(offsets)
    .load(conn)?;
    let hashes: Option<Vec<Hash>> = found
        .into_iter()
        .map(|node| node.hash.and_then(|h| Hash::try_from(h.as_slice()).ok()))
        .collect();
    let mut hashes = hashes.filter(|h| h.len() == nodes.len()).ok_or_else(|| {
        ApiError::Inconsistent(format!("eon {}'s tree is not stored in full", leaf.eon))
    })?;
    let leaf_hash = hashes.remove(0);
    Ok((leaf_hash, hashes))
}

/// The Merkle proof of a validator's cumulative reward, to claim on-chain.
#[utoipa::path(
    tag = "validators",
    params(("id" = i64, Path, description = "Validator id"), EonParam),
    responses(
        (status = 200, description = "Leaf, proof and root", body = Proof),
        (status = 400, description = "Malformed id or query", body = ErrorBody),
        (status = 404, description = "No such validator (`not_found`), or no leaf for it in that eon (`no_leaf`)", body = ErrorBody),
        (status = 409, description = "Left out of the tree for lack of a payout address (`no_payout_address`)", body = ErrorBody),
        (status = 422, description = "Invalid eon", body = ErrorBody),
    ),
    security(())
)]
#[get("/api/v1/validators/{id}/proof")]
pub async fn proof(
    hub: web::Data<Arc<Hub>>,
    id: web::Path<i64>,
    query: web::Query<EonParam>,
) -> Result<web::Json<Proof>, ApiError> {
    let id = id.into_inner();
    let eon = query.eon;
    if eon.is_some_and(|e| e < 1) {
        return Err(ApiError::invalid("eon", "eon must be at least 1"));
    }
    let (leaf, leaf_hash, proof, root, own_cumulative, own_attributed) = db(&hub, move |conn| {
        let exists: Option<i64> = validators::table
            .find(id)
            .select(validators::id)
            .first(conn)
            .optional()?;
        exists.ok_or(ApiError::NotFound("validator"))?;
        // The validator's share of the eon names the payout address whose leaf pays it.
        let mut shares = validator_rewards::table
            .filter(validator_rewards::validator_id.eq(id))
            .select((
                validator_rewards::eon,
                validator_rewards::payout_address,
                validator_rewards::cumulative,
                validator_rewards::attributed,
            ))
            .order(validator_rewards::eon.desc())
            .into_boxed();
        if let Some(eon) = eon {
            shares = shares.filter(validator_rewards::eon.eq(eon));
        }
        let (leaf_eon, address, own_cumulative, own_attributed): (
            i64,
            Option<Vec<u8>>,
            bigdecimal::BigDecimal,
            bigdecimal::BigDecimal,
        ) = shares
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::Missing {
                code: "no_leaf",
                message: match eon {
                    Some(eon) => format!("validator {id} has no leaf in eon {eon}"),
                    None => format!("validator {id} has no leaf in any eon yet"),
                },
            })?;
        let address = address.ok_or_else(|| ApiError::Conflict {
            code: "no_payout_address",
            message: format!(
                "validator {id} was left out of eon {leaf_eon}'s tree: it had no payout address; \
                 register one by signing up again with it"
            ),
        })?;
        let leaf: MerkleLeaf = merkle_leaves::table
            .filter(merkle_leaves::eon.eq(leaf_eon))
            .filter(merkle_leaves::payout_address.eq(&address))
            .select(MerkleLeaf::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| {
                ApiError::Inconsistent(format!(
                    "eon {leaf_eon} has no leaf for validator {id}'s payout address"
                ))
            })?;
        let (root, leaf_count): (Vec<u8>, i32) = root_commitments::table
            .find(leaf.eon)
            .select((root_commitments::root, root_commitments::leaf_count))
            .first(conn)
            .optional()?
            .ok_or_else(|| ApiError::Missing {
                code: "no_root",
                message: format!("eon {} has no root commitment", leaf.eon),
            })?;
        let (leaf_hash, proof) = cut_proof(conn, &leaf, leaf_count)?;
        Ok((leaf, leaf_hash, proof, root, own_cumulative, own_attributed))
    })
    .await?;
    let payout = checksummed(&leaf.payout_address).ok_or_else(|| {
        ApiError::Inconsistent(format!("eon {}: a malformed payout address", leaf.eon))
    })?;
    Ok(web::Json(Proof {
        eon: leaf.eon,
        validator_id: id,
        payout_address: payout,
        cumulative: money(&leaf.cumulative),
        leaf: hex0x(&leaf_hash),
        proof: proof.iter().map(|h| hex0x(h)).collect(),
        root: hex0x(&root),
        validator_cumulative: money(&own_cumulative),
        validator_attributed: money(&own_attributed),
    }))
}
