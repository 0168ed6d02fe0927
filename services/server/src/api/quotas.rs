//! Per-account quotas: how many websites an owner may have and how many checks a
//! day its enabled websites may ask of the network. Sign-up is open, and every
//! check costs validators work and the hub rewards, so an account cannot take
//! more than its share. The operator sets an account's own limits through the
//! API; otherwise the hub's defaults apply. Operators have no quota.

use std::sync::Arc;

use actix_web::{get, put, web};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use overlaps_shared::schema::users;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::db;
use super::errors::{ApiError, ErrorBody};
use crate::config::AccountQuota;
use crate::hub::Hub;

/// Mounts the quota routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_quota).service(set_quota);
}

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

/// Checks a day one website asks for: its quorum at every check of its interval.
pub fn checks_per_day(quorum: i16, interval_seconds: i32) -> i64 {
    let interval = i64::from(interval_seconds.max(1));
    i64::from(quorum) * ((DAY_SECONDS + interval - 1) / interval)
}

/// A website's settings as far as the quota is concerned.
#[derive(Debug, Clone, Copy)]
pub struct SiteLoad {
    /// Validators per check.
    pub quorum: i16,
    /// Seconds between checks.
    pub interval_seconds: i32,
    /// Disabled sites ask for no checks (they still count as sites).
    pub enabled: bool,
}

impl SiteLoad {
    fn checks_per_day(self) -> i64 {
        if self.enabled {
            checks_per_day(self.quorum, self.interval_seconds)
        } else {
            0
        }
    }
}

/// An account's quota and what it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quota {
    /// The account.
    pub account_id: i64,
    /// Websites it may have (null: no limit, for operators).
    #[schema(example = 50)]
    pub max_sites: Option<i32>,
    /// Checks a day its enabled websites may ask for (null: no limit).
    #[schema(example = 250_000)]
    pub max_checks_per_day: Option<i64>,
    /// Whether the operator set this account's own limits (else the hub's defaults).
    pub custom: bool,
    /// Websites it has, enabled or not.
    #[schema(example = 3)]
    pub sites: i64,
    /// Checks a day its enabled websites ask for: quorum × ⌈86400 / interval⌉ each.
    #[schema(example = 12_960)]
    pub checks_per_day: i64,
}

/// An account's own limits; a null or absent field goes back to the hub's default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    /// Websites it may have (0..=1,000,000).
    #[schema(example = 200)]
    pub max_sites: Option<i32>,
    /// Checks a day its enabled websites may ask for (0..=10^12).
    #[schema(example = 1_000_000)]
    pub max_checks_per_day: Option<i64>,
}

#[derive(QueryableByName)]
struct Usage {
    #[diesel(sql_type = BigInt)]
    sites: i64,
    #[diesel(sql_type = BigInt)]
    checks: i64,
}

#[derive(Queryable)]
struct Limits {
    role: String,
    max_sites: Option<i32>,
    max_checks_per_day: Option<i64>,
}

/// What the account's websites use, leaving out `except` (the site being changed).
fn usage(conn: &mut PgConnection, owner: i64, except: Option<i64>) -> QueryResult<Usage> {
    diesel::sql_query(
        "SELECT count(*)::bigint AS sites, \
                COALESCE(sum(CASE WHEN enabled \
                    THEN quorum::bigint * ((86400 + interval_seconds - 1) / interval_seconds) \
                    ELSE 0 END), 0)::bigint AS checks \
         FROM websites WHERE owner_id = $1 AND id IS DISTINCT FROM $2",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Nullable<BigInt>, _>(except)
    .get_result(conn)
}

/// Locks account `owner` (so concurrent requests are counted one after the other)
/// and fails with `quota_exceeded` if putting `after` in place of site `site` (a
/// new site when `None`) takes the account past its quota. A change that asks for
/// no more than before is always allowed, even past a quota lowered since.
/// Call inside the transaction that writes the change.
pub fn ensure_within(
    conn: &mut PgConnection,
    defaults: &AccountQuota,
    owner: i64,
    site: Option<(i64, SiteLoad)>,
    after: SiteLoad,
) -> Result<(), ApiError> {
    let limits: Limits = users::table
        .find(owner)
        .select((users::role, users::max_sites, users::max_checks_per_day))
        .for_update()
        .first(conn)?;
    if limits.role == "operator" {
        return Ok(());
    }
    let max_sites = limits.max_sites.unwrap_or(defaults.max_sites);
    let max_checks = limits
        .max_checks_per_day
        .unwrap_or(defaults.max_checks_per_day);
    let others = usage(conn, owner, site.map(|(id, _)| id))?;
    if site.is_none() && others.sites + 1 > i64::from(max_sites) {
        return Err(ApiError::QuotaExceeded(format!(
            "this account may have at most {max_sites} websites and has {}; \
             delete one or ask the operator for more",
            others.sites
        )));
    }
    let before = others.checks + site.map_or(0, |(_, load)| load.checks_per_day());
    let total = others.checks + after.checks_per_day();
    if total > max_checks && total > before {
        return Err(ApiError::QuotaExceeded(format!(
            "this would ask for {total} checks a day (quorum × checks a day of every enabled \
             website); this account may ask for at most {max_checks}: lower a quorum, \
             lengthen an interval, disable a website or ask the operator for more"
        )));
    }
    Ok(())
}

fn load_quota(
    conn: &mut PgConnection,
    defaults: &AccountQuota,
    account: i64,
) -> Result<Quota, ApiError> {
    let limits: Limits = users::table
        .find(account)
        .select((users::role, users::max_sites, users::max_checks_per_day))
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("account"))?;
    let used = usage(conn, account, None)?;
    let operator = limits.role == "operator";
    Ok(Quota {
        account_id: account,
        max_sites: (!operator).then(|| limits.max_sites.unwrap_or(defaults.max_sites)),
        max_checks_per_day: (!operator).then(|| {
            limits
                .max_checks_per_day
                .unwrap_or(defaults.max_checks_per_day)
        }),
        custom: limits.max_sites.is_some() || limits.max_checks_per_day.is_some(),
        sites: used.sites,
        checks_per_day: used.checks,
    })
}

/// An account's quota and usage (owners: their own; operators: any).
#[utoipa::path(
    tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    responses(
        (status = 200, description = "The quota and what the account uses", body = Quota),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such account the caller may see", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/accounts/{id}/quota")]
pub async fn get_quota(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Quota>, ApiError> {
    let id = id.into_inner();
    if !caller.may_access(id) {
        return Err(ApiError::NotFound("account"));
    }
    let defaults = hub.config.api.quota;
    let quota = db(&hub, move |conn| load_quota(conn, &defaults, id)).await?;
    Ok(web::Json(quota))
}

fn limit<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: Option<T>,
    (min, max): (T, T),
) -> Result<Option<T>, ApiError> {
    match value {
        Some(v) if v < min || v > max => Err(ApiError::invalid(
            field,
            format!("{field} must be between {min} and {max}, or null for the hub's default"),
        )),
        other => Ok(other),
    }
}

/// Set an account's own quota (operators only); null fields go back to the
/// hub's defaults. Lowering it refuses new requests past it and leaves existing
/// websites running.
#[utoipa::path(
    tag = "accounts",
    params(("id" = i64, Path, description = "Account id")),
    request_body(content = QuotaUpdate, example = json!({"max_sites": 200, "max_checks_per_day": 1_000_000})),
    responses(
        (status = 200, description = "The quota now", body = Quota),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "A limit out of range", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[put("/api/v1/accounts/{id}/quota")]
pub async fn set_quota(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<QuotaUpdate>,
) -> Result<web::Json<Quota>, ApiError> {
    caller.require_operator()?;
    let id = id.into_inner();
    let max_sites = limit("max_sites", body.max_sites, (0, 1_000_000))?;
    let max_checks = limit(
        "max_checks_per_day",
        body.max_checks_per_day,
        (0, 1_000_000_000_000),
    )?;
    let defaults = hub.config.api.quota;
    let quota = db(&hub, move |conn| {
        let updated = diesel::update(users::table.find(id))
            .set((
                users::max_sites.eq(max_sites),
                users::max_checks_per_day.eq(max_checks),
            ))
            .execute(conn)?;
        if updated == 0 {
            return Err(ApiError::NotFound("account"));
        }
        load_quota(conn, &defaults, id)
    })
    .await?;
    tracing::info!(account = id, ?max_sites, ?max_checks, "account quota set");
    Ok(web::Json(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_a_day_round_up_to_whole_checks_at_the_interval() {
        assert_eq!(checks_per_day(3, 60), 3 * 1440);
        assert_eq!(checks_per_day(15, 30), 15 * 2880);
        // 86400 / 7 = 12342.86: a partial check still happens.
        assert_eq!(checks_per_day(1, 7), 12_343);
        assert_eq!(checks_per_day(3, 86_400), 3);
    }
}
