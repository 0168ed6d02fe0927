//! Public status pages: `/status/{slug}` (server-rendered HTML, its stylesheet and
//! verification script built into the binary, nothing fetched from elsewhere),
//! the signed records behind it and badges. Only what the owner published is shown.

pub mod badges;
pub mod data;
pub mod records;
pub mod render;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use chrono::Utc;

use crate::api::db;
use crate::api::errors::ApiError;
use crate::hub::Hub;

/// Where the page's stylesheet is served.
pub const STYLE_PATH: &str = "/status-assets/status.css";
/// Where the page's verification script is served.
pub const SCRIPT_PATH: &str = "/status-assets/verify.js";

const STYLE: &str = include_str!("assets/status.css");
const SCRIPT: &str = include_str!("assets/verify.js");

/// Scripts and styles only from the hub itself, no inline code, no frames.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long a page may be cached, seconds (a round is longer).
const PAGE_MAX_AGE: u32 = 30;

/// Mounts the page, its assets, its records and the badges.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(status_page)
        .service(asset)
        .configure(records::routes)
        .configure(badges::routes);
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", PAGE_POLICY))
        .insert_header(("Cache-Control", format!("public, max-age={PAGE_MAX_AGE}")))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

/// A public status page: each shown site's state, 90 daily uptime bars, 24 h
/// response time, incidents with their timeline and maintenance windows; every
/// bar and incident links to its signed record, which the page verifies in the
/// browser (Ed25519 via WebCrypto). Readable without JavaScript.
#[utoipa::path(
    tag = "status pages",
    params(("slug" = String, Path, description = "Status page slug", example = "demo")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "Nothing published at this slug", content_type = "text/html", body = String),
    ),
    security(())
)]
#[get("/status/{slug}")]
pub async fn status_page(
    hub: web::Data<Arc<Hub>>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let slug = slug.into_inner();
    let hub_id = hub.config.hub_id.clone();
    let page = db(&hub, move |conn| {
        let Some(page) = data::published(conn, &slug)? else {
            return Ok(None);
        };
        let now = Utc::now();
        let sites = data::sites(conn, &page.sites, now)?;
        Ok(Some(render::page(&hub_id, &page, &sites, now)))
    })
    .await?;
    Ok(match page {
        Some(body) => html(StatusCode::OK, body),
        None => html(StatusCode::NOT_FOUND, render::not_found()),
    })
}

/// The status page's stylesheet and script (built into the binary).
#[utoipa::path(
    tag = "status pages",
    params(("name" = String, Path, description = "`status.css` or `verify.js`", example = "verify.js")),
    responses(
        (status = 200, description = "The asset", content((String = "text/css"), (String = "text/javascript"))),
        (status = 404, description = "No such asset", content_type = "text/plain", body = String),
    ),
    security(())
)]
#[get("/status-assets/{name}")]
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match name.as_str() {
        "status.css" => (STYLE, "text/css; charset=utf-8"),
        "verify.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("no such asset");
        }
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}
