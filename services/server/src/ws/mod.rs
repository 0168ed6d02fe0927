//! `GET /ws/validator`: the validator WebSocket.

mod session;
mod signup;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

use crate::hub::Hub;

/// Mounts the WebSocket route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(validator_socket);
}

#[get("/ws/validator")]
async fn validator_socket(
    req: HttpRequest,
    body: web::Payload,
    hub: web::Data<Arc<Hub>>,
) -> actix_web::Result<HttpResponse> {
    let Some(peer) = req.peer_addr() else {
        return Ok(HttpResponse::BadRequest().json(json!({
            "code": "no_peer_address",
            "message": "the client address is unknown",
        })));
    };
    let Some(slot) = hub.connections.try_acquire(peer.ip()) else {
        tracing::warn!(ip = %peer.ip(), "connection refused: too many from this address");
        return Ok(HttpResponse::TooManyRequests().json(json!({
            "code": "too_many_connections",
            "message": format!(
                "at most {} connections per address",
                hub.config.limits.max_connections_per_ip
            ),
        })));
    };
    let (response, socket, stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(session::run(Arc::clone(&hub), socket, stream, slot));
    Ok(response)
}
