//! Websites: create, read, update, disable, delete, with validation.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::Website as WebsiteRow;
use overlaps_shared::schema::websites;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::assertions::{Assertions, AssertionsInput, AssertionsView};
use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::quotas::{self, SiteLoad};
use super::website_settings::{Settings, Valid, guard_target};
use super::{PageParams, db, paginate};
use crate::hub::Hub;

/// Mounts the website routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_website)
        .service(list_websites)
        .service(get_website)
        .service(update_website)
        .service(disable_website)
        .service(enable_website)
        .service(delete_website);
}

/// A monitored website.
#[derive(Debug, Serialize, ToSchema)]
pub struct Website {
    /// Website id.
    pub id: i64,
    /// The owning account.
    pub owner_id: i64,
    /// Display name.
    #[schema(example = "Shop")]
    pub name: String,
    /// The http(s) URL checked, `tcp://host:port` for a TCP port check, or
    /// `dns://name/TYPE` (A, AAAA, CNAME, MX, TXT, NS) for a DNS record check.
    #[schema(example = "https://example.com/health")]
    pub url: String,
    /// `GET` or `HEAD`.
    #[schema(example = "GET")]
    pub method: String,
    /// Seconds between checks.
    #[schema(example = 60)]
    pub interval_seconds: i32,
    /// Per-check timeout in milliseconds.
    #[schema(example = 5000)]
    pub timeout_ms: i32,
    /// Validators that check it each time.
    #[schema(example = 3)]
    pub quorum: i16,
    /// Text the body must contain (or, with `keyword_absent`, must not), if any;
    /// for a `dns://` site, the answer expected among the records (canonical: an
    /// address, a lower-case name, `preference exchange` or the exchange for MX,
    /// the joined strings for TXT).
    pub keyword: Option<String>,
    /// The other assertions.
    #[serde(flatten)]
    pub assertions: AssertionsView,
    /// Disabled sites are not checked.
    pub enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<WebsiteRow> for Website {
    fn from(w: WebsiteRow) -> Self {
        let assertions = AssertionsView::from(&w);
        Website {
            assertions,
            id: w.id,
            owner_id: w.owner_id,
            name: w.name,
            url: w.url,
            method: w.method,
            interval_seconds: w.interval_seconds,
            timeout_ms: w.timeout_ms,
            quorum: w.quorum,
            keyword: w.keyword,
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// One page of websites.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebsitePage {
    /// Websites, newest first.
    pub items: Vec<Website>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A website to monitor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebsite {
    /// Display name.
    #[serde(default)]
    #[schema(example = "Shop")]
    pub name: String,
    /// http(s) URL to check; `tcp://host:port`: up when a TCP connection to the
    /// port completes within the timeout; or `dns://name/TYPE` (TYPE one of A,
    /// AAAA, CNAME, MX, TXT, NS): up when the name has a record of the type (and
    /// `keyword`, the expected answer, is among them). TCP and DNS checks take only
    /// `max_response_ms` besides.
    #[schema(example = "https://example.com/health")]
    pub url: String,
    /// `GET` (default) or `HEAD`.
    #[schema(example = "GET")]
    pub method: Option<String>,
    /// Seconds between checks (within the operator's bounds; default 60).
    #[schema(example = 60)]
    pub interval_seconds: Option<i32>,
    /// Per-check timeout in ms (within bounds, below the interval; default 5000).
    #[schema(example = 5000)]
    pub timeout_ms: Option<i32>,
    /// Validators per check (1..=WEBSITE_MAX_QUORUM; default 3).
    #[schema(example = 3)]
    pub quorum: Option<i16>,
    /// Text the body must contain (or, with `keyword_absent`, must not); for a
    /// `dns://` site, the expected answer: an IPv4/IPv6 address (A/AAAA), a name
    /// (CNAME, NS), `mx.example.com` or `10 mx.example.com` (MX), the record's
    /// joined strings (TXT).
    #[schema(example = "healthy")]
    pub keyword: Option<String>,
    /// Status codes counted as up: codes or ranges such as `"200-299"` (1 to 16;
    /// default `["200-399"]`).
    #[schema(example = json!(["200-299"]))]
    pub accepted_status: Option<Vec<String>>,
    /// True: the site is down when `keyword` is in the body (needs `keyword`).
    pub keyword_absent: Option<bool>,
    /// JSONPath subset (`$`, `.name`, `["name"]`, `[index]`, at most 256 bytes) into
    /// the JSON body, whose value must equal `json_expected`.
    #[schema(example = "$.status")]
    pub json_path: Option<String>,
    /// The JSON value expected at `json_path` (at most 1,024 bytes as JSON).
    #[schema(value_type = Object, example = json!("ok"))]
    pub json_expected: Option<serde_json::Value>,
    /// A response slower than this (ms to the headers, below `timeout_ms`) is
    /// `degraded`.
    #[schema(example = 1000)]
    pub max_response_ms: Option<i32>,
}

/// Changes to a website; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebsiteUpdate {
    /// Display name.
    pub name: Option<String>,
    /// http(s) URL to check.
    #[schema(example = "https://example.com/")]
    pub url: Option<String>,
    /// `GET` or `HEAD`.
    pub method: Option<String>,
    /// Seconds between checks.
    pub interval_seconds: Option<i32>,
    /// Per-check timeout in ms.
    pub timeout_ms: Option<i32>,
    /// Validators per check.
    pub quorum: Option<i16>,
    /// Text the body must contain (for a `dns://` site: the expected answer); an
    /// empty string removes it.
    pub keyword: Option<String>,
    /// Status codes counted as up: codes or ranges such as `"200-299"` (1 to 16;
    /// default `["200-399"]`).
    #[schema(example = json!(["200-299"]))]
    pub accepted_status: Option<Vec<String>>,
    /// True: the site is down when `keyword` is in the body (needs `keyword`).
    pub keyword_absent: Option<bool>,
    /// JSONPath subset (`$`, `.name`, `["name"]`, `[index]`, at most 256 bytes) into
    /// the JSON body, whose value must equal `json_expected`. An empty string removes it.
    #[schema(example = "$.status")]
    pub json_path: Option<String>,
    /// The JSON value expected at `json_path` (at most 1,024 bytes as JSON).
    #[schema(value_type = Object, example = json!("ok"))]
    pub json_expected: Option<serde_json::Value>,
    /// A response slower than this (ms to the headers, below `timeout_ms`) is
    /// `degraded`. 0 removes it.
    #[schema(example = 1000)]
    pub max_response_ms: Option<i32>,
    /// Whether the site is checked.
    pub enabled: Option<bool>,
}

/// Filters of the website list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebsiteFilter {
    /// Operators only: only this owner's websites.
    pub owner_id: Option<i64>,
}

fn load(conn: &mut PgConnection, caller: &Caller, id: i64) -> Result<WebsiteRow, ApiError> {
    let site: Option<WebsiteRow> = websites::table
        .find(id)
        .select(WebsiteRow::as_select())
        .first(conn)
        .optional()?;
    // Another owner's site is answered exactly like a missing one: no existence leak.
    site.filter(|s| caller.may_access(s.owner_id))
        .ok_or(ApiError::NotFound("website"))
}

/// Loads a website the caller may access (for the status routes).
pub fn accessible(
    conn: &mut PgConnection,
    caller: &Caller,
    id: i64,
) -> Result<WebsiteRow, ApiError> {
    load(conn, caller, id)
}

/// Add a website to monitor.
#[utoipa::path(
    tag = "websites",
    request_body(content = NewWebsite, example = json!({"name": "Shop", "url": "https://example.com/health", "interval_seconds": 60, "timeout_ms": 5000, "quorum": 3, "accepted_status": ["200-299"], "json_path": "$.status", "json_expected": "ok", "max_response_ms": 1000})),
    responses(
        (status = 201, description = "Created", body = Website),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The account's quota (`quota_exceeded`)", body = ErrorBody),
        (status = 422, description = "Invalid field (URL, bounds, private target in prod)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/websites")]
pub async fn create_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    body: web::Json<NewWebsite>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (settings, parsed) = Settings {
        name: body.name,
        url: body.url,
        method: body.method.unwrap_or_else(|| "GET".into()),
        interval_seconds: body.interval_seconds.unwrap_or(60),
        timeout_ms: body.timeout_ms.unwrap_or(5000),
        quorum: body.quorum.unwrap_or(3),
        keyword: body.keyword,
        assertions: Assertions::default(),
        assertions_input: AssertionsInput {
            accepted_status: body.accepted_status,
            keyword_absent: body.keyword_absent,
            json_path: body.json_path,
            json_expected: body.json_expected,
            max_response_ms: body.max_response_ms,
        },
    }
    .validate(&hub.config.api.websites)?;
    guard_target(&hub.config.api, &parsed).await?;
    let quota = hub.config.api.quota;
    let load = SiteLoad {
        quorum: settings.quorum,
        interval_seconds: settings.interval_seconds,
        enabled: true,
    };
    let row = db(&hub, move |conn| {
        conn.transaction(|conn| {
            quotas::ensure_within(conn, &quota, caller.user_id, None, load)?;
            insert(conn, caller.user_id, &settings)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(Website::from(row)))
}

/// Stores a new website of `owner`.
fn insert(conn: &mut PgConnection, owner: i64, settings: &Valid) -> Result<WebsiteRow, ApiError> {
    Ok(diesel::insert_into(websites::table)
        .values((
            websites::owner_id.eq(owner),
            websites::name.eq(&settings.name),
            websites::url.eq(&settings.url),
            websites::method.eq(&settings.method),
            websites::interval_seconds.eq(settings.interval_seconds),
            websites::timeout_ms.eq(settings.timeout_ms),
            websites::quorum.eq(settings.quorum),
            websites::keyword.eq(settings.keyword.as_deref()),
            websites::assertions.eq(settings.assertions.to_stored()),
        ))
        .returning(WebsiteRow::as_returning())
        .get_result(conn)?)
}

/// What `site` asks of the quota.
fn load_of(site: &WebsiteRow) -> SiteLoad {
    SiteLoad {
        quorum: site.quorum,
        interval_seconds: site.interval_seconds,
        enabled: site.enabled,
    }
}

/// The caller's websites (operators: everyone's), newest first.
#[utoipa::path(
    tag = "websites",
    params(PageParams, WebsiteFilter),
    responses(
        (status = 200, description = "One page", body = WebsitePage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites")]
pub async fn list_websites(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    page: web::Query<PageParams>,
    filter: web::Query<WebsiteFilter>,
) -> Result<web::Json<WebsitePage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let owner = if caller.is_operator() {
        filter.owner_id
    } else {
        Some(caller.user_id)
    };
    let rows = db(&hub, move |conn| {
        let mut query = websites::table
            .select(WebsiteRow::as_select())
            .order(websites::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if let Some(owner) = owner {
            query = query.filter(websites::owner_id.eq(owner));
        }
        if let Some(cursor) = cursor {
            query = query.filter(websites::id.lt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |w| w.id.to_string());
    Ok(web::Json(WebsitePage {
        items: rows.into_iter().map(Website::from).collect(),
        next_cursor,
    }))
}

/// One website.
#[utoipa::path(
    tag = "websites",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 200, description = "The website", body = Website),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}")]
pub async fn get_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Website>, ApiError> {
    let id = id.into_inner();
    let row = db(&hub, move |conn| load(conn, &caller, id)).await?;
    Ok(web::Json(row.into()))
}

/// Change a website; absent fields stay as they are.
#[utoipa::path(
    tag = "websites",
    params(("id" = i64, Path, description = "Website id")),
    request_body(content = WebsiteUpdate, example = json!({"interval_seconds": 120})),
    responses(
        (status = 200, description = "The updated website", body = Website),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The account's quota (`quota_exceeded`)", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[patch("/api/v1/websites/{id}")]
pub async fn update_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<WebsiteUpdate>,
) -> Result<web::Json<Website>, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let current = {
        let caller = caller.clone();
        db(&hub, move |conn| load(conn, &caller, id)).await?
    };
    let url_changed = body.url.is_some();
    let assertions = current.site_assertions();
    let (settings, parsed) = Settings {
        name: body.name.unwrap_or(current.name),
        url: body.url.unwrap_or(current.url),
        method: body.method.unwrap_or(current.method),
        interval_seconds: body.interval_seconds.unwrap_or(current.interval_seconds),
        timeout_ms: body.timeout_ms.unwrap_or(current.timeout_ms),
        quorum: body.quorum.unwrap_or(current.quorum),
        keyword: match body.keyword {
            Some(k) => Some(k),
            None => current.keyword,
        },
        assertions,
        assertions_input: AssertionsInput {
            accepted_status: body.accepted_status,
            keyword_absent: body.keyword_absent,
            json_path: body.json_path,
            json_expected: body.json_expected,
            max_response_ms: body.max_response_ms,
        },
    }
    .validate(&hub.config.api.websites)?;
    if url_changed {
        guard_target(&hub.config.api, &parsed).await?;
    }
    let enabled = body.enabled.unwrap_or(current.enabled);
    let quota = hub.config.api.quota;
    let after = SiteLoad {
        quorum: settings.quorum,
        interval_seconds: settings.interval_seconds,
        enabled,
    };
    let row = db(&hub, move |conn| {
        conn.transaction(|conn| {
            // Re-read under the account lock: what the quota compares with is current.
            let locked = load(conn, &caller, id)?;
            quotas::ensure_within(
                conn,
                &quota,
                locked.owner_id,
                Some((id, load_of(&locked))),
                after,
            )?;
            let updated: Option<WebsiteRow> = diesel::update(websites::table.find(id))
                .set((
                    websites::name.eq(&settings.name),
                    websites::url.eq(&settings.url),
                    websites::method.eq(&settings.method),
                    websites::interval_seconds.eq(settings.interval_seconds),
                    websites::timeout_ms.eq(settings.timeout_ms),
                    websites::quorum.eq(settings.quorum),
                    websites::keyword.eq(settings.keyword.as_deref()),
                    websites::assertions.eq(settings.assertions.to_stored()),
                    websites::enabled.eq(enabled),
                    websites::updated_at.eq(diesel::dsl::now),
                ))
                .returning(WebsiteRow::as_returning())
                .get_result(conn)
                .optional()?;
            updated.ok_or(ApiError::NotFound("website"))
        })
    })
    .await?;
    Ok(web::Json(row.into()))
}

async fn set_enabled(
    hub: &Hub,
    caller: Caller,
    id: i64,
    enabled: bool,
) -> Result<web::Json<Website>, ApiError> {
    let quota = hub.config.api.quota;
    let row = db(hub, move |conn| {
        conn.transaction(|conn| {
            let current = load(conn, &caller, id)?;
            let after = SiteLoad {
                enabled,
                ..load_of(&current)
            };
            quotas::ensure_within(
                conn,
                &quota,
                current.owner_id,
                Some((id, load_of(&current))),
                after,
            )?;
            Ok(diesel::update(websites::table.find(id))
                .set((
                    websites::enabled.eq(enabled),
                    websites::updated_at.eq(diesel::dsl::now),
                ))
                .returning(WebsiteRow::as_returning())
                .get_result(conn)?)
        })
    })
    .await?;
    Ok(web::Json(row.into()))
}

/// Stop checking a website (kept with its history).
#[utoipa::path(
    tag = "websites",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 200, description = "The disabled website", body = Website),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/websites/{id}/disable")]
pub async fn disable_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Website>, ApiError> {
    set_enabled(&hub, caller, id.into_inner(), false).await
}

/// Resume checking a disabled website.
#[utoipa::path(
    tag = "websites",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 200, description = "The enabled website", body = Website),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "The account's quota (`quota_exceeded`)", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/websites/{id}/enable")]
pub async fn enable_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Website>, ApiError> {
    set_enabled(&hub, caller, id.into_inner(), true).await
}

/// Delete a website with its status, incidents and channels bound to it.
#[utoipa::path(
    tag = "websites",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/websites/{id}")]
pub async fn delete_website(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db(&hub, move |conn| {
        load(conn, &caller, id)?;
        diesel::delete(websites::table.find(id)).execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
