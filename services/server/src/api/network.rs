//! The network's terms: what anyone needs to re-derive rounds and rewards from the
//! public API (the hub id inside every signed payload, the reward per agreeing result).

use std::sync::Arc;

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::hub::Hub;

/// Mounts the network route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(network);
}

/// The terms of this hub's network.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkTerms {
    /// The protocol validators speak.
    #[schema(example = "overlaps/v2")]
    pub protocol: String,
    /// The hub id that every signed signup and result covers.
    #[schema(example = "overlaps-dev")]
    pub hub_id: String,
    /// Reward for one result that agreed with its site's majority, in the chain's
    /// smallest unit (decimal string).
    #[schema(example = "1000000000000")]
    pub reward_per_check: String,
}

/// The hub id and reward per agreeing result, to check rounds and rewards independently.
#[utoipa::path(
    tag = "network",
    responses((status = 200, description = "The network's terms", body = NetworkTerms)),
    security(())
)]
#[get("/api/v1/network")]
pub async fn network(hub: web::Data<Arc<Hub>>) -> web::Json<NetworkTerms> {
    web::Json(NetworkTerms {
        protocol: overlaps_shared::protocol::PROTOCOL.to_owned(),
        hub_id: hub.config.hub_id.clone(),
        reward_per_check: hub.config.reward_per_check.to_string(),
    })
}
