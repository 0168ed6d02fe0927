//! Badges of sites on a status page, in the shields.io style (`label | value`,
//! coloured by the value): `/badges/{slug}/{site}/{kind}.svg`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use diesel::prelude::*;
use overlaps_shared::html::escape;
use overlaps_shared::schema::website_status;

use super::data;
use crate::api::db;
use crate::api::errors::ApiError;
use crate::hub::Hub;

/// How long a badge may be cached (browsers, GitHub's image proxy), seconds.
pub const BADGE_MAX_AGE: u32 = 60;

/// The kinds of badge, as they appear in the path.
pub const KINDS: [&str; 5] = [
    "status",
    "uptime-24h",
    "uptime-7d",
    "uptime-30d",
    "latency-24h",
];

const GREEN: &str = "#2e7d32";
const LIME: &str = "#5c8f00";
const YELLOW: &str = "#8a6d00";
const ORANGE: &str = "#c25100";
const RED: &str = "#c62828";
const GREY: &str = "#616161";

/// Mounts the badge route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(badge);
}

/// Roughly the rendered width of `text` in 11 px Verdana.
fn text_width(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '|' | '!' | '\'' => 4,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum()
}

/// A flat badge `label | value` with the value on `color`.
pub fn svg(label: &str, value: &str, color: &str) -> String {
    let label_width = text_width(label) + 12;
    let value_width = text_width(value) + 12;
    let width = label_width + value_width;
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{label}: {value}</title>\
         <linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/>\
         <stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
         <clipPath id=\"r\"><rect width=\"{width}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
         <g clip-path=\"url(#r)\"><rect width=\"{label_width}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{label_width}\" width=\"{value_width}\" height=\"20\" fill=\"{color}\"/>\
         <rect width=\"{width}\" height=\"20\" fill=\"url(#s)\"/></g>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">\
         <text x=\"{lx}\" y=\"14\">{label}</text><text x=\"{vx}\" y=\"14\">{value}</text></g></svg>",
        lx = label_width / 2,
        vx = label_width + value_width / 2,
    )
}

fn uptime_color(value: f64) -> &'static str {
    match value {
        v if v >= 99.9 => GREEN,
        v if v >= 99.0 => LIME,
        v if v >= 95.0 => YELLOW,
        v if v >= 90.0 => ORANGE,
        _ => RED,
    }
}

fn uptime_value(value: Option<f64>) -> (String, &'static str) {
    match value {
        // Floored: 99.996 % is not shown as 100 %.
        Some(v) if v < 100.0 => (
            format!("{:.2}%", ((v * 100.0).floor() / 100.0).min(99.99)),
            uptime_color(v),
        ),
        Some(_) => ("100%".into(), GREEN),
        None => ("no data".into(), GREY),
    }
}

/// The label and value of badge `kind` for `site` named `name`.
fn badge_text(
    kind: &str,
    name: &str,
    state: &str,
    figures: &data::Uptimes,
) -> (String, String, &'static str) {
    let (label, (value, color)) = match kind {
        "status" => (
            name.chars().take(40).collect::<String>(),
            match state {
                "up" => ("up".to_owned(), GREEN),
                "down" => ("down".to_owned(), RED),
                "degraded" => ("degraded".to_owned(), ORANGE),
                _ => ("unknown".to_owned(), GREY),
            },
        ),
        "uptime-24h" => ("uptime 24h".into(), uptime_value(figures.d1)),
        "uptime-7d" => ("uptime 7d".into(), uptime_value(figures.d7)),
        "uptime-30d" => ("uptime 30d".into(), uptime_value(figures.d30)),
        _ => (
            "latency 24h".into(),
            match figures.p50_24h {
                Some(ms) if ms < 300 => (format!("{ms} ms"), GREEN),
                Some(ms) if ms < 1000 => (format!("{ms} ms"), YELLOW),
                Some(ms) => (format!("{ms} ms"), RED),
                None => ("no data".into(), GREY),
            },
        ),
    };
    (label, value, color)
}

fn answer(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("image/svg+xml")
        .insert_header(("Cache-Control", format!("public, max-age={BADGE_MAX_AGE}")))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(body)
}

fn not_found() -> HttpResponse {
    answer(StatusCode::NOT_FOUND, svg("badge", "not found", GREY))
}

/// A badge of a site on a status page: `status`, `uptime-24h`, `uptime-7d`,
/// `uptime-30d` or `latency-24h` (mean of the hourly medians), as SVG.
#[utoipa::path(
    tag = "status pages",
    params(
        ("slug" = String, Path, description = "Status page slug"),
        ("site" = String, Path, description = "Website id, on that page"),
        ("file" = String, Path, description = "`{kind}.svg`: status, uptime-24h, uptime-7d, uptime-30d or latency-24h", example = "status.svg"),
    ),
    responses(
        (status = 200, description = "The badge (cached 60 s)", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such page, site on it, or kind: a grey `not found` badge", content_type = "image/svg+xml", body = String),
    ),
    security(())
)]
#[get("/badges/{slug}/{site}/{file}")]
pub async fn badge(
    hub: web::Data<Arc<Hub>>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, site, file) = path.into_inner();
    let Some(kind) = file
        .strip_suffix(".svg")
        .filter(|k| KINDS.contains(k))
        .map(str::to_owned)
    else {
        return Ok(not_found());
    };
    let Some(site) = site.parse::<i64>().ok() else {
        return Ok(not_found());
    };
    let found = db(&hub, move |conn| {
        let Some(page) = data::published(conn, &slug)? else {
            return Ok(None);
        };
        let Some((_, name)) = page.sites.into_iter().find(|(id, _)| *id == site) else {
            return Ok(None);
        };
        let state: Option<String> = website_status::table
            .find(site)
            .select(website_status::state)
            .first(conn)
            .optional()?;
        let figures = data::uptimes(conn, site)?;
        Ok(Some(badge_text(
            &kind,
            &name,
            state.as_deref().unwrap_or("unknown"),
            &figures,
        )))
    })
    .await?;
    Ok(match found {
        Some((label, value, color)) => answer(StatusCode::OK, svg(&label, &value, color)),
        None => not_found(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_floored_and_coloured_by_its_value() {
        assert_eq!(uptime_value(Some(100.0)), ("100%".into(), GREEN));
        assert_eq!(uptime_value(Some(99.996)), ("99.99%".into(), GREEN));
        assert_eq!(uptime_value(Some(99.5)), ("99.50%".into(), LIME));
        assert_eq!(uptime_value(Some(80.0)), ("80.00%".into(), RED));
        assert_eq!(uptime_value(None), ("no data".into(), GREY));
    }

    #[test]
    fn labels_and_values_are_escaped_in_the_svg() {
        let drawn = svg("<script>", "a&b", GREEN);
        assert!(drawn.contains("&lt;script&gt;"));
        assert!(drawn.contains("a&amp;b"));
        assert!(!drawn.contains("<script>"));
    }
}
