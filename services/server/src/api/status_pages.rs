//! Status pages (owner API): an owner publishes some of their own websites at
//! `/status/{slug}` (see [`crate::public`] for the page, its signed records and
//! its badges). Only the sites listed on a page are ever shown publicly.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use overlaps_shared::schema::{status_page_sites, status_pages, websites};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::errors::{ApiError, ErrorBody};
use super::{PageParams, db, paginate, present};
use crate::hub::Hub;

/// Most sites one page shows.
pub const MAX_SITES_PER_PAGE: usize = 50;

/// Slugs that would read as something else in a URL, refused.
const RESERVED_SLUGS: &[&str] = &[
    "api",
    "admin",
    "assets",
    "badges",
    "docs",
    "status",
    "static",
    "new",
    "edit",
    "login",
    "logout",
    "www",
    "healthz",
    "readyz",
    "metrics",
    "overlaps",
    "hub",
    "null",
    "undefined",
];

/// Mounts the status-page routes of the owner API.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_page)
        .service(list_pages)
        .service(get_page)
        .service(update_page)
        .service(delete_page);
}

/// A published status page.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusPage {
    /// Page id.
    pub id: i64,
    /// The owning account.
    pub owner_id: i64,
    /// Its address: `/status/{slug}`.
    #[schema(example = "acme")]
    pub slug: String,
    /// Heading of the page.
    #[schema(example = "Acme services")]
    pub title: String,
    /// A line or two under the heading.
    pub description: Option<String>,
    /// The websites shown, in order.
    pub website_ids: Vec<i64>,
    /// Path of the public page.
    #[schema(example = "/status/acme")]
    pub path: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One page of status pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusPagePage {
    /// Status pages, newest first.
    pub items: Vec<StatusPage>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A status page to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStatusPage {
    /// 3–64 of `a-z`, `0-9` and inner `-`; unique across the hub.
    #[schema(example = "acme", pattern = "^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")]
    pub slug: String,
    /// Heading (1–100 printable characters).
    #[schema(example = "Acme services")]
    pub title: String,
    /// Shown under the heading (at most 1000 characters).
    pub description: Option<String>,
    /// Your websites to show, in order (1–50, no repeats).
    #[schema(example = json!([7, 8]))]
    pub website_ids: Vec<i64>,
}

/// Changes to a status page; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPageUpdate {
    /// New slug (the old address stops working).
    pub slug: Option<String>,
    /// New heading.
    pub title: Option<String>,
    /// New description; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The websites to show, replacing the list.
    pub website_ids: Option<Vec<i64>>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = status_pages)]
struct PageRow {
    id: i64,
    owner_id: i64,
    slug: String,
    title: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Checks a slug: lower-case letters, digits and inner hyphens, 3–64, not reserved.
pub fn check_slug(slug: &str) -> Result<(), ApiError> {
    let shaped = (3..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !shaped {
        return Err(ApiError::invalid(
            "slug",
            "slug must be 3 to 64 of a-z, 0-9 and '-' (not first or last)",
        ));
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err(ApiError::invalid(
            "slug",
            format!("slug '{slug}' is reserved"),
        ));
    }
    Ok(())
}

fn check_title(title: &str) -> Result<String, ApiError> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 100 || title.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "title",
            "title must be 1 to 100 printable characters",
        ));
    }
    Ok(title.to_owned())
}

fn check_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1000 || d.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(ApiError::invalid(
            "description",
            "description must be at most 1000 printable characters",
        ));
    }
    Ok(description)
}

/// Checks the list's shape, then that every site is `owner`'s (another owner's
/// site is refused exactly like a missing one).
fn check_sites(conn: &mut PgConnection, owner: i64, ids: &[i64]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > MAX_SITES_PER_PAGE {
        return Err(ApiError::invalid(
            "website_ids",
            format!("website_ids must list 1 to {MAX_SITES_PER_PAGE} websites"),
        ));
    }
    let mut seen = HashSet::new();
    if let Some(repeated) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(ApiError::invalid(
            "website_ids",
            format!("website {repeated} is listed twice"),
        ));
    }
    let own: HashSet<i64> = websites::table
        .filter(websites::id.eq_any(ids))
        .filter(websites::owner_id.eq(owner))
        .filter(websites::canary.eq(false))
        .select(websites::id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    if let Some(foreign) = ids.iter().find(|id| !own.contains(id)) {
        return Err(ApiError::invalid(
            "website_ids",
            format!("website {foreign} is not one of this account's websites"),
        ));
    }
    Ok(())
}

fn set_sites(conn: &mut PgConnection, page: i64, ids: &[i64]) -> Result<(), ApiError> {
    diesel::delete(status_page_sites::table.filter(status_page_sites::page_id.eq(page)))
        .execute(conn)?;
    let rows: Vec<_> = ids
        .iter()
        .zip(0i32..)
        .map(|(site, position)| {
            (
                status_page_sites::page_id.eq(page),
                status_page_sites::website_id.eq(*site),
                status_page_sites::position.eq(position),
            )
        })
        .collect();
    diesel::insert_into(status_page_sites::table)
        .values(rows)
        .execute(conn)?;
    Ok(())
}

fn sites_of(conn: &mut PgConnection, page: i64) -> QueryResult<Vec<i64>> {
    status_page_sites::table
        .filter(status_page_sites::page_id.eq(page))
        .order(status_page_sites::position.asc())
        .select(status_page_sites::website_id)
        .load(conn)
}

fn served(row: PageRow, website_ids: Vec<i64>) -> StatusPage {
    StatusPage {
        path: format!("/status/{}", row.slug),
        id: row.id,
        owner_id: row.owner_id,
        slug: row.slug,
        title: row.title,
        description: row.description,
        website_ids,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A taken slug (the unique index decides, so two racing requests cannot both win).
fn slug_conflict(err: DieselError) -> ApiError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => ApiError::Conflict {
            code: "slug_taken",
            message: "another status page has this slug".into(),
        },
        other => other.into(),
    }
}

fn load(conn: &mut PgConnection, caller: &Caller, id: i64) -> Result<PageRow, ApiError> {
    let row: Option<PageRow> = status_pages::table
        .find(id)
        .select(PageRow::as_select())
        .first(conn)
        .optional()?;
    row.filter(|p| caller.may_access(p.owner_id))
        .ok_or(ApiError::NotFound("status page"))
}

/// Publish a status page of some of your websites at `/status/{slug}`.
#[utoipa::path(
    tag = "status pages",
    request_body(content = NewStatusPage, example = json!({"slug": "acme", "title": "Acme services", "description": "Checked every minute by independent validators.", "website_ids": [7, 8]})),
    responses(
        (status = 201, description = "Published", body = StatusPage),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 409, description = "The slug is taken (`slug_taken`)", body = ErrorBody),
        (status = 422, description = "Invalid field, or a website that is not yours", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/status-pages")]
pub async fn create_page(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    body: web::Json<NewStatusPage>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_slug(&body.slug)?;
    let title = check_title(&body.title)?;
    let description = check_description(body.description)?;
    let ids = body.website_ids;
    let page = db(&hub, move |conn| {
        conn.transaction(|conn| {
            check_sites(conn, caller.user_id, &ids)?;
            let row: PageRow = diesel::insert_into(status_pages::table)
                .values((
                    status_pages::owner_id.eq(caller.user_id),
                    status_pages::slug.eq(&body.slug),
                    status_pages::title.eq(&title),
                    status_pages::description.eq(description.as_deref()),
                ))
                .returning(PageRow::as_returning())
                .get_result(conn)
                .map_err(slug_conflict)?;
            set_sites(conn, row.id, &ids)?;
            Ok(served(row, ids))
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(page))
}

/// Your status pages (operators: everyone's), newest first.
#[utoipa::path(
    tag = "status pages",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = StatusPagePage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/status-pages")]
pub async fn list_pages(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> Result<web::Json<StatusPagePage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let (rows, next_cursor) = db(&hub, move |conn| {
        let mut query = status_pages::table
            .select(PageRow::as_select())
            .order(status_pages::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if !caller.is_operator() {
            query = query.filter(status_pages::owner_id.eq(caller.user_id));
        }
        if let Some(cursor) = cursor {
            query = query.filter(status_pages::id.lt(cursor));
        }
        let rows: Vec<PageRow> = query.load(conn)?;
        let (rows, next) = paginate(rows, limit, |p| p.id.to_string());
        // Every page's sites in one query.
        let mut sites: std::collections::HashMap<i64, Vec<i64>> = Default::default();
        for (page, site) in status_page_sites::table
            .filter(status_page_sites::page_id.eq_any(rows.iter().map(|r| r.id)))
            .order((status_page_sites::page_id, status_page_sites::position))
            .select((status_page_sites::page_id, status_page_sites::website_id))
            .load::<(i64, i64)>(conn)?
        {
            sites.entry(page).or_default().push(site);
        }
        let items = rows
            .into_iter()
            .map(|row| {
                let ids = sites.remove(&row.id).unwrap_or_default();
                served(row, ids)
            })
            .collect();
        Ok((items, next))
    })
    .await?;
    Ok(web::Json(StatusPagePage {
        items: rows,
        next_cursor,
    }))
}

/// One of your status pages.
#[utoipa::path(
    tag = "status pages",
    params(("id" = i64, Path, description = "Status page id")),
    responses(
        (status = 200, description = "The status page", body = StatusPage),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such status page of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/status-pages/{id}")]
pub async fn get_page(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<StatusPage>, ApiError> {
    let id = id.into_inner();
    let page = db(&hub, move |conn| {
        let row = load(conn, &caller, id)?;
        let ids = sites_of(conn, id)?;
        Ok(served(row, ids))
    })
    .await?;
    Ok(web::Json(page))
}

/// Change a status page; absent fields stay as they are.
#[utoipa::path(
    tag = "status pages",
    params(("id" = i64, Path, description = "Status page id")),
    request_body(content = StatusPageUpdate, example = json!({"title": "Acme status", "website_ids": [8, 7]})),
    responses(
        (status = 200, description = "The updated page", body = StatusPage),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such status page of the caller", body = ErrorBody),
        (status = 409, description = "The slug is taken (`slug_taken`)", body = ErrorBody),
        (status = 422, description = "Invalid field, or a website that is not the page owner's", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[patch("/api/v1/status-pages/{id}")]
pub async fn update_page(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<StatusPageUpdate>,
) -> Result<web::Json<StatusPage>, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    if let Some(slug) = &body.slug {
        check_slug(slug)?;
    }
    let title = body.title.as_deref().map(check_title).transpose()?;
    let description = body.description.map(check_description).transpose()?;
    let page = db(&hub, move |conn| {
        conn.transaction(|conn| {
            let current = load(conn, &caller, id)?;
            if let Some(ids) = &body.website_ids {
                // The page owner's sites, also when an operator edits it.
                check_sites(conn, current.owner_id, ids)?;
                set_sites(conn, id, ids)?;
            }
            let row: PageRow = diesel::update(status_pages::table.find(id))
                .set((
                    status_pages::slug.eq(body.slug.as_deref().unwrap_or(&current.slug)),
                    status_pages::title.eq(title.as_deref().unwrap_or(&current.title)),
                    status_pages::description.eq(match &description {
                        Some(d) => d.as_deref(),
                        None => current.description.as_deref(),
                    }),
                    status_pages::updated_at.eq(diesel::dsl::now),
                ))
                .returning(PageRow::as_returning())
                .get_result(conn)
                .map_err(slug_conflict)?;
            let ids = sites_of(conn, id)?;
            Ok(served(row, ids))
        })
    })
    .await?;
    Ok(web::Json(page))
}

/// Unpublish a status page (its address, records and badges stop answering).
#[utoipa::path(
    tag = "status pages",
    params(("id" = i64, Path, description = "Status page id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such status page of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/status-pages/{id}")]
pub async fn delete_page(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db(&hub, move |conn| {
        load(conn, &caller, id)?;
        diesel::delete(status_pages::table.find(id)).execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_words_with_inner_hyphens_and_not_reserved() {
        for good in ["acme", "a-b", "status-2026", &"a".repeat(64)] {
            assert!(check_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            "a/b",
            "api",
            "docs",
            &"a".repeat(65),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
