//! Admission: the rule that decides who may be selected (public), each
//! validator's standing under it, and the operator's allowlist.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, put, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::admission::{MAX_WEIGHT, Standing};
use overlaps_shared::schema::validator_allowlist;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::db;
use super::errors::{ApiError, ErrorBody};
use crate::hub::Hub;

/// Mounts the admission routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_admission)
        .service(list_allowlist)
        .service(allow_key)
        .service(disallow_key);
}

/// The admission rule and the weight rule in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionRule {
    /// `stake`, `allowlist` or `open`.
    #[schema(example = "stake")]
    pub mode: String,
    /// Under `stake`: the least stake (wei, decimal) that admits a key, staked on it
    /// from its payout address.
    #[schema(example = "1000000000000000000")]
    pub min_stake_wei: String,
    /// Under `stake`: the stake at which the stake no longer caps the weight.
    #[schema(example = "10000000000000000000")]
    pub full_weight_stake_wei: String,
    /// Agreed checks after which warm-up no longer caps the weight.
    #[schema(example = 1000)]
    pub warmup_checks: i64,
    /// A fresh key's weight, and every admitted key's least.
    #[schema(example = 100)]
    pub floor_weight: u32,
    /// The highest weight.
    #[schema(example = 10000)]
    pub max_weight: u32,
}

/// How the admission rule treats a key right now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionStanding {
    /// Whether the scheduler may select it.
    pub admitted: bool,
    /// Its selection weight (0 when not admitted).
    #[schema(example = 100)]
    pub selection_weight: u32,
    /// The stake that counts for it (wei, decimal).
    #[schema(example = "1000000000000000000")]
    pub stake_wei: String,
    /// Why it is not admitted.
    pub refusal: Option<String>,
}

impl From<Standing> for AdmissionStanding {
    fn from(standing: Standing) -> Self {
        AdmissionStanding {
            admitted: standing.admitted,
            selection_weight: standing.weight,
            stake_wei: standing.stake.to_string(),
            refusal: standing.refusal,
        }
    }
}

/// A key on the allowlist.
#[derive(Debug, Serialize, ToSchema, Queryable)]
pub struct AllowlistEntry {
    /// Ed25519 public key, hex (64 digits).
    #[schema(example = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")]
    #[serde(serialize_with = "as_hex")]
    pub public_key: Vec<u8>,
    /// The operator's note.
    #[schema(example = "eu-west probe, ops ticket 42")]
    pub note: String,
    /// The operator account that listed it.
    pub added_by: Option<i64>,
    /// When.
    pub added_at: DateTime<Utc>,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}

/// What the operator says of a listed key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowlistUpdate {
    /// A note (at most 200 characters, no control characters).
    #[schema(example = "eu-west probe, ops ticket 42")]
    #[serde(default)]
    pub note: String,
}

/// An Ed25519 public key from hex (64 digits, `0x` optional), or a 422 on `field`.
pub fn parse_public_key(field: &'static str, text: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text.trim_start_matches("0x"))
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be 64 hex digits")))
}

/// The admission rule: who may be selected and how selection weights are made.
#[utoipa::path(
    tag = "validators",
    responses((status = 200, description = "The rule in force", body = AdmissionRule)),
    security(())
)]
#[get("/api/v1/admission")]
pub async fn get_admission(hub: web::Data<Arc<Hub>>) -> web::Json<AdmissionRule> {
    let policy = &hub.config.admission;
    web::Json(AdmissionRule {
        mode: policy.mode.to_string(),
        min_stake_wei: policy.min_stake.to_string(),
        full_weight_stake_wei: policy.full_weight_stake.to_string(),
        warmup_checks: policy.warmup_checks,
        floor_weight: policy.floor_weight,
        max_weight: MAX_WEIGHT,
    })
}

/// The keys on the allowlist (operators only), newest first.
#[utoipa::path(
    tag = "validators",
    responses(
        (status = 200, description = "Every listed key", body = Vec<AllowlistEntry>),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/admission/allowlist")]
pub async fn list_allowlist(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
) -> Result<web::Json<Vec<AllowlistEntry>>, ApiError> {
    caller.require_operator()?;
    let entries = db(&hub, |conn| {
        Ok(validator_allowlist::table
            .order((
                validator_allowlist::added_at.desc(),
                validator_allowlist::public_key,
            ))
            .load(conn)?)
    })
    .await?;
    Ok(web::Json(entries))
}

/// Lists a key (operators only): under `VALIDATOR_ADMISSION=allowlist` it may be
/// selected from the next round on. Listing it again replaces the note.
#[utoipa::path(
    tag = "validators",
    params(("public_key" = String, Path, description = "Ed25519 public key, 64 hex digits")),
    request_body(content = AllowlistUpdate, example = json!({"note": "eu-west probe, ops ticket 42"})),
    responses(
        (status = 200, description = "The entry", body = AllowlistEntry),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 422, description = "Malformed public key or a note too long", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[put("/api/v1/admission/allowlist/{public_key}")]
pub async fn allow_key(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    public_key: web::Path<String>,
    body: web::Json<AllowlistUpdate>,
) -> Result<web::Json<AllowlistEntry>, ApiError> {
    caller.require_operator()?;
    let key = parse_public_key("public_key", &public_key)?;
    let note = body.into_inner().note;
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "note",
            "note must be at most 200 characters, none of them control characters",
        ));
    }
    let operator = caller.user_id;
    let entry = db(&hub, move |conn| {
        Ok(diesel::insert_into(validator_allowlist::table)
            .values((
                validator_allowlist::public_key.eq(&key),
                validator_allowlist::note.eq(&note),
                validator_allowlist::added_by.eq(operator),
            ))
            .on_conflict(validator_allowlist::public_key)
            .do_update()
            .set(validator_allowlist::note.eq(&note))
            .get_result::<AllowlistEntry>(conn)?)
    })
    .await?;
    tracing::info!(operator, public_key = %hex::encode(&entry.public_key), "key allowlisted");
    Ok(web::Json(entry))
}

/// Removes a key from the allowlist (operators only); it is not selected from the
/// next round on. Its open assignments still count.
#[utoipa::path(
    tag = "validators",
    params(("public_key" = String, Path, description = "Ed25519 public key, 64 hex digits")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "Not on the allowlist", body = ErrorBody),
        (status = 422, description = "Malformed public key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/admission/allowlist/{public_key}")]
pub async fn disallow_key(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    public_key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_operator()?;
    let key = parse_public_key("public_key", &public_key)?;
    let removed = db(&hub, move |conn| {
        Ok(diesel::delete(validator_allowlist::table.find(key)).execute(conn)?)
    })
    .await?;
    if removed == 0 {
        return Err(ApiError::NotFound("allowlist entry"));
    }
    tracing::info!(operator = caller.user_id, "key removed from the allowlist");
    Ok(HttpResponse::NoContent().finish())
}
