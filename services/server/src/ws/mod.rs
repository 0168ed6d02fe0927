//! `GET /ws/validator`: the validator WebSocket.

mod session;
mod signup;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

use crate::hub::{Hub, SlotRefusal};

/// Mounts the WebSocket route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(validator_socket);
}

/// The validator WebSocket (`overlaps/v2` protocol; see the README). Answers 101
/// to a WebSocket upgrade.
#[utoipa::path(
    tag = "validators",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = crate::api::errors::ErrorBody),
        (status = 429, description = "Too many connections from this address or its network (IPv4 /24, IPv6 /64), or too many failed signups from this address", body = crate::api::errors::ErrorBody),
    ),
    security(())
)]
#[get("/ws/validator")]
pub async fn validator_socket(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Arc<Hub>>,
) -> actix_web::Result<HttpResponse> {
    let Some(client) = crate::middleware::client_ip(&req, &hub.config.trusted_proxies) else {
        return Ok(HttpResponse::BadRequest().json(json!({
            "code": "no_peer_address",
            "message": "the client address is unknown",
        })));
    };
    // Refused before the upgrade, so a blocked address costs no signup verification.
    if let Some(wait) = hub.failed_signups.blocked_for(client) {
        tracing::warn!(ip = %client, "connection refused: too many failed signups from this address");
        return Ok(HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", wait.as_secs().max(1).to_string()))
            .json(json!({
                "code": "rate_limited",
                "message": format!(
                    "more than {} failed signups per minute from this address; retry in {} s",
                    hub.config.limits.max_failed_signups_per_minute,
                    wait.as_secs().max(1)
                ),
                "details": null,
            })));
    }
    let slot = match hub.connections.try_acquire(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            let message = match refusal {
                SlotRefusal::Address(max) => format!("at most {max} connections per address"),
                SlotRefusal::Block(max) => {
                    format!("at most {max} connections per network (IPv4 /24, IPv6 /64)")
                }
            };
            tracing::warn!(ip = %client, %message, "connection refused");
            return Ok(HttpResponse::TooManyRequests().json(json!({
                "code": "too_many_connections",
                "message": message,
                "details": null,
            })));
        }
    };
    let (response, socket, stream) = match actix_ws::handle(&req, body) {
        Ok(upgraded) => upgraded,
        // A plain GET (a browser, a fuzzer) gets a JSON answer like every other route.
        Err(err) => {
            return Ok(HttpResponse::BadRequest().json(json!({
                "code": "not_a_websocket",
                "message": err.to_string(),
                "details": null,
            })));
        }
    };
    hub.open
        .spawn(session::run(Arc::clone(&hub), socket, stream, slot));
    Ok(response)
}
