//! Maintenance windows of a website: declared by its owner (or an operator),
//! one-off or weekly. Inside one the site is still checked and its results
//! stored, but no alert goes out and its rounds stay out of uptime (accounting
//! decides it with `overlaps_shared::maintenance`). Windows are served with the
//! site's status, so a "maintenance" hiding an outage is there for all to see.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, NaiveTime, Utc};
use diesel::prelude::*;
use overlaps_shared::maintenance::{in_maintenance, parse_zone};
use overlaps_shared::models::MaintenanceWindow as WindowRow;
use overlaps_shared::schema::{maintenance_windows, websites};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::db;
use super::errors::{ApiError, ErrorBody};
use super::websites::accessible;
use crate::hub::Hub;

/// Windows one site may have at once.
pub const MAX_WINDOWS_PER_SITE: i64 = 20;

/// Longest one-off window.
const MAX_ONCE_DAYS: i64 = 7;

/// How far ahead a one-off window may start.
const MAX_LEAD_DAYS: i64 = 366;

/// Mounts the maintenance-window routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_window)
        .service(list_windows)
        .service(delete_window);
}

/// A maintenance window: no alerts and no uptime while it is on.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 4, "website_id": 7, "kind": "weekly", "starts_at": null, "ends_at": null, "weekday": 6, "start_time": "02:00", "duration_minutes": 90, "time_zone": "Europe/Berlin", "note": "weekly backup", "created_at": "2026-11-27T09:00:00Z"}))]
pub struct MaintenanceWindow {
    /// Window id.
    pub id: i64,
    /// Website id.
    pub website_id: i64,
    /// `once` or `weekly`.
    #[schema(example = "weekly")]
    pub kind: String,
    /// `once`: first instant inside (null for `weekly`).
    pub starts_at: Option<DateTime<Utc>>,
    /// `once`: first instant after (null for `weekly`).
    pub ends_at: Option<DateTime<Utc>>,
    /// `weekly`: 0 = Monday … 6 = Sunday, in `time_zone` (null for `once`).
    #[schema(example = 6)]
    pub weekday: Option<i16>,
    /// `weekly`: local start time `HH:MM` in `time_zone` (null for `once`).
    #[schema(example = "02:00")]
    pub start_time: Option<String>,
    /// `weekly`: length in minutes of elapsed time (null for `once`).
    #[schema(example = 90)]
    pub duration_minutes: Option<i32>,
    /// IANA zone of `weekday` and `start_time`.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
    /// The owner's note.
    #[schema(example = "weekly backup")]
    pub note: Option<String>,
    /// When it was declared.
    pub created_at: DateTime<Utc>,
}

impl From<WindowRow> for MaintenanceWindow {
    fn from(w: WindowRow) -> Self {
        MaintenanceWindow {
            id: w.id,
            website_id: w.website_id,
            kind: w.kind,
            starts_at: w.starts_at,
            ends_at: w.ends_at,
            weekday: w.weekday,
            start_time: w.start_time.map(|t| t.format("%H:%M").to_string()),
            duration_minutes: w.duration_minutes,
            time_zone: w.time_zone,
            note: w.note,
            created_at: w.created_at,
        }
    }
}

/// A website's windows and whether one is on now.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceWindows {
    /// Whether the site is inside a window now.
    pub in_maintenance: bool,
    /// The window it is inside now (the lowest id if several).
    pub current_window_id: Option<i64>,
    /// Every window of the site, oldest first.
    pub items: Vec<MaintenanceWindow>,
}

/// A new window: `once` with `starts_at` and `ends_at`, or `weekly` with
/// `weekday`, `start_time` and `duration_minutes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenanceWindow {
    /// `once` or `weekly`.
    #[schema(example = "weekly", pattern = "^(once|weekly)$")]
    pub kind: String,
    /// `once`: RFC 3339 start (at most 366 days ahead).
    #[schema(example = "2026-12-01T22:00:00Z", format = DateTime)]
    pub starts_at: Option<String>,
    /// `once`: RFC 3339 end, after `starts_at`, in the future, at most 7 days after the start.
    #[schema(example = "2026-12-02T01:00:00Z", format = DateTime)]
    pub ends_at: Option<String>,
    /// `weekly`: 0 = Monday … 6 = Sunday.
    #[schema(example = 6, minimum = 0, maximum = 6)]
    pub weekday: Option<i64>,
    /// `weekly`: local start time, `HH:MM`.
    #[schema(example = "02:00", pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start_time: Option<String>,
    /// `weekly`: minutes (1..=1440).
    #[schema(example = 90, minimum = 1, maximum = 1440)]
    pub duration_minutes: Option<i64>,
    /// IANA zone of `weekday` and `start_time` (default `UTC`).
    #[schema(example = "Europe/Berlin", max_length = 64)]
    pub time_zone: Option<String>,
    /// A public note (at most 200 characters, no control characters).
    #[schema(example = "weekly backup", max_length = 200)]
    pub note: Option<String>,
}

/// A window's columns after validation.
struct Checked {
    kind: &'static str,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    weekday: Option<i16>,
    start_time: Option<NaiveTime>,
    duration_minutes: Option<i32>,
    time_zone: String,
    note: Option<String>,
}

/// Refuses a field that does not belong to the window's kind.
fn absent<T>(field: &'static str, value: &Option<T>, kind: &str) -> Result<(), ApiError> {
    match value {
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} does not apply to a {kind} window"),
        )),
        None => Ok(()),
    }
}

fn required<T>(field: &'static str, value: Option<T>, kind: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(field, format!("a {kind} window needs {field}")))
}

fn instant(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("{field} must be an RFC 3339 time such as 2026-12-01T22:00:00Z"),
            )
        })
}

impl NewMaintenanceWindow {
    fn validate(self, now: DateTime<Utc>) -> Result<Checked, ApiError> {
        let time_zone = match self.time_zone.as_deref() {
            None => "UTC".to_owned(),
            Some(zone) => parse_zone(zone)
                .filter(|_| zone.len() <= 64)
                .map(|z| z.name().to_owned())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "time_zone",
                        "time_zone must be an IANA time zone name such as Europe/Berlin",
                    )
                })?,
        };
        let note = self.note.filter(|n| !n.trim().is_empty());
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
        {
            return Err(ApiError::invalid(
                "note",
                "note must be at most 200 printable characters",
            ));
        }
        match self.kind.as_str() {
            "once" => {
                absent("weekday", &self.weekday, "once")?;
                absent("start_time", &self.start_time, "once")?;
                absent("duration_minutes", &self.duration_minutes, "once")?;
                let starts_at =
                    instant("starts_at", &required("starts_at", self.starts_at, "once")?)?;
                let ends_at = instant("ends_at", &required("ends_at", self.ends_at, "once")?)?;
                if starts_at > now + chrono::Duration::days(MAX_LEAD_DAYS) {
                    return Err(ApiError::invalid(
                        "starts_at",
                        format!("starts_at must be at most {MAX_LEAD_DAYS} days ahead"),
                    ));
                }
                if ends_at <= starts_at {
                    return Err(ApiError::invalid(
                        "ends_at",
                        "ends_at must be after starts_at",
                    ));
                }
                if ends_at - starts_at > chrono::Duration::days(MAX_ONCE_DAYS) {
                    return Err(ApiError::invalid(
                        "ends_at",
                        format!("a window lasts at most {MAX_ONCE_DAYS} days"),
                    ));
                }
                // The past is settled: a window cannot take back alerts or uptime.
                if ends_at <= now {
                    return Err(ApiError::invalid(
                        "ends_at",
                        "ends_at must be in the future",
                    ));
                }
                Ok(Checked {
                    kind: "once",
                    starts_at: Some(starts_at),
                    ends_at: Some(ends_at),
                    weekday: None,
                    start_time: None,
                    duration_minutes: None,
                    time_zone,
                    note,
                })
            }
            "weekly" => {
                absent("starts_at", &self.starts_at, "weekly")?;
                absent("ends_at", &self.ends_at, "weekly")?;
                let weekday = required("weekday", self.weekday, "weekly")?;
                let weekday = i16::try_from(weekday)
                    .ok()
                    .filter(|d| (0..=6).contains(d))
                    .ok_or_else(|| {
                        ApiError::invalid("weekday", "weekday must be 0 (Monday) to 6 (Sunday)")
                    })?;
                let raw = required("start_time", self.start_time, "weekly")?;
                let start_time = NaiveTime::parse_from_str(raw.trim(), "%H:%M")
                    .map_err(|_| ApiError::invalid("start_time", "start_time must be HH:MM"))?;
                let minutes = required("duration_minutes", self.duration_minutes, "weekly")?;
                let duration_minutes = i32::try_from(minutes)
                    .ok()
                    .filter(|m| (1..=1440).contains(m))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "duration_minutes",
                            "duration_minutes must be between 1 and 1440",
                        )
                    })?;
                Ok(Checked {
                    kind: "weekly",
                    starts_at: None,
                    ends_at: None,
                    weekday: Some(weekday),
                    start_time: Some(start_time),
                    duration_minutes: Some(duration_minutes),
                    time_zone,
                    note,
                })
            }
            _ => Err(ApiError::invalid("kind", "kind must be once or weekly")),
        }
    }
}

/// A site's windows, oldest first.
pub fn windows_of(conn: &mut PgConnection, website_id: i64) -> QueryResult<Vec<WindowRow>> {
    maintenance_windows::table
        .filter(maintenance_windows::website_id.eq(website_id))
        .order(maintenance_windows::id.asc())
        .select(WindowRow::as_select())
        .load(conn)
}

/// A site's windows as served, with whether one is on at `now`.
pub fn served(rows: Vec<WindowRow>, now: DateTime<Utc>) -> MaintenanceWindows {
    let current_window_id = in_maintenance(&rows, now);
    MaintenanceWindows {
        in_maintenance: current_window_id.is_some(),
        current_window_id,
        items: rows.into_iter().map(MaintenanceWindow::from).collect(),
    }
}

/// Declare a maintenance window: no alerts and no uptime while it is on.
#[utoipa::path(
    tag = "maintenance",
    params(("id" = i64, Path, description = "Website id")),
    request_body(content = NewMaintenanceWindow, examples(
        ("once" = (summary = "One-off, three hours", value = json!({"kind": "once", "starts_at": "2026-12-01T22:00:00Z", "ends_at": "2026-12-02T01:00:00Z", "note": "database upgrade"}))),
        ("weekly" = (summary = "Every Sunday 02:00–03:30 Berlin time", value = json!({"kind": "weekly", "weekday": 6, "start_time": "02:00", "duration_minutes": 90, "time_zone": "Europe/Berlin", "note": "weekly backup"}))),
    )),
    responses(
        (status = 201, description = "Declared", body = MaintenanceWindow),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
        (status = 409, description = "The site has 20 windows already (`too_many_windows`)", body = ErrorBody),
        (status = 422, description = "Invalid field (`details.field` names it)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/websites/{id}/maintenance-windows")]
pub async fn create_window(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<NewMaintenanceWindow>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let row = db(&hub, move |conn| {
        // Another owner's site answers 404 before its body is judged.
        accessible(conn, &caller, id)?;
        let checked = body.validate(Utc::now())?;
        conn.transaction(|conn| {
            // The site's row lock makes the count and the insert one step.
            websites::table
                .find(id)
                .select(websites::id)
                .for_update()
                .first::<i64>(conn)?;
            let existing: i64 = maintenance_windows::table
                .filter(maintenance_windows::website_id.eq(id))
                .count()
                .get_result(conn)?;
            if existing >= MAX_WINDOWS_PER_SITE {
                return Err(ApiError::Conflict {
                    code: "too_many_windows",
                    message: format!(
                        "a website has at most {MAX_WINDOWS_PER_SITE} maintenance windows"
                    ),
                });
            }
            Ok(diesel::insert_into(maintenance_windows::table)
                .values((
                    maintenance_windows::website_id.eq(id),
                    maintenance_windows::kind.eq(checked.kind),
                    maintenance_windows::starts_at.eq(checked.starts_at),
                    maintenance_windows::ends_at.eq(checked.ends_at),
                    maintenance_windows::weekday.eq(checked.weekday),
                    maintenance_windows::start_time.eq(checked.start_time),
                    maintenance_windows::duration_minutes.eq(checked.duration_minutes),
                    maintenance_windows::time_zone.eq(&checked.time_zone),
                    maintenance_windows::note.eq(checked.note.as_deref()),
                ))
                .returning(WindowRow::as_returning())
                .get_result(conn)?)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(MaintenanceWindow::from(row)))
}

/// A website's maintenance windows and whether one is on now.
#[utoipa::path(
    tag = "maintenance",
    params(("id" = i64, Path, description = "Website id")),
    responses(
        (status = 200, description = "Every window, oldest first", body = MaintenanceWindows),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/websites/{id}/maintenance-windows")]
pub async fn list_windows(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<MaintenanceWindows>, ApiError> {
    let id = id.into_inner();
    let rows = db(&hub, move |conn| {
        accessible(conn, &caller, id)?;
        Ok(windows_of(conn, id)?)
    })
    .await?;
    Ok(web::Json(served(rows, Utc::now())))
}

/// Remove a maintenance window (rounds it covered stay counted as maintenance).
#[utoipa::path(
    tag = "maintenance",
    params(
        ("id" = i64, Path, description = "Website id"),
        ("window_id" = i64, Path, description = "Window id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such website of the caller, or no such window of it", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/websites/{id}/maintenance-windows/{window_id}")]
pub async fn delete_window(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, window_id) = path.into_inner();
    db(&hub, move |conn| {
        accessible(conn, &caller, id)?;
        let deleted = diesel::delete(
            maintenance_windows::table
                .filter(maintenance_windows::id.eq(window_id))
                .filter(maintenance_windows::website_id.eq(id)),
        )
        .execute(conn)?;
        if deleted == 0 {
            return Err(ApiError::NotFound("maintenance window"));
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
