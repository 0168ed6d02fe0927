//! `/healthz` (the process answers) and `/readyz` (PostgreSQL and Redis answer).

use actix_web::{HttpResponse, get, web};
use diesel::RunQueryDsl;
use overlaps_shared::service::Infrastructure;
use serde_json::json;

const READINESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Mounts the health routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Liveness: the process answers.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Up", body = Object, example = json!({"status": "ok"}))),
    security(())
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: PostgreSQL and Redis answer within 2 s.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"postgres": {"ok": true}, "redis": {"ok": true}})),
        (status = 503, description = "A dependency is down", body = Object),
    ),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(infra: web::Data<Infrastructure>) -> HttpResponse {
    let postgres = within_deadline(async {
        infra
            .db
            .run(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn)?))
            .await
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
    .await;
    let mut redis = infra.redis.clone();
    let redis = within_deadline(async {
        redis::cmd("PING")
            .query_async::<String>(&mut redis)
            .await
            .map(|_| ())
            .map_err(|err| err.to_string())
    })
    .await;
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(err) => json!({ "ok": false, "error": err }),
    };
    let body = json!({ "postgres": verdict(&postgres), "redis": verdict(&redis) });
    if postgres.is_ok() && redis.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A readiness probe must answer quickly even when a dependency hangs.
pub async fn within_deadline(
    check: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(READINESS_DEADLINE, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {READINESS_DEADLINE:?}")))
}
