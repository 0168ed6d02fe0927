//! What wraps every request: a request id in a tracing span (and the
//! `X-Request-Id` header), rate limits per API key and per client address on
//! `/api/`, CORS, and the request counter of `/metrics`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, ResponseError, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use overlaps_shared::network::TrustedProxies;
use tracing::Instrument;

use crate::api::auth;
use crate::api::errors::ApiError;
use crate::config::ApiSettings;
use crate::hub::Hub;

/// The client's address: the peer's, or behind a trusted proxy the one the proxy
/// reports in `X-Forwarded-For`. None when the peer address is unknown.
pub fn client_ip(req: &HttpRequest, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    Some(proxies.client_ip(peer, forwarded))
}

/// Request-rate limits of the API, per key and per client address.
#[derive(Debug)]
pub struct RateLimits {
    per_key: DefaultKeyedRateLimiter<Vec<u8>>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    proxies: TrustedProxies,
}

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    /// Limits from the settings.
    pub fn new(settings: &ApiSettings, proxies: TrustedProxies) -> Arc<Self> {
        Arc::new(RateLimits {
            proxies,
            per_key: RateLimiter::keyed(quota(settings.rate_limit_per_key)),
            per_ip: RateLimiter::keyed(quota(settings.rate_limit_per_ip)),
        })
    }

    /// Forgets idle keys now and then, so random keys cannot grow the maps forever.
    pub async fn prune_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            self.per_key.retain_recent();
            self.per_ip.retain_recent();
        }
    }

    fn allows(&self, req: &ServiceRequest) -> bool {
        // X-Forwarded-For only from a trusted proxy: any client can forge one.
        if let Some(client) = client_ip(req.request(), &self.proxies)
            && self.per_ip.check_key(&client).is_err()
        {
            return false;
        }
        match auth::bearer(req.request()) {
            // Keyed by the key's hash: the map never holds a usable key.
            Ok(Some(token)) => self.per_key.check_key(&auth::hash_key(&token)).is_ok(),
            _ => true,
        }
    }
}

/// Request id, rate limits and the request counter, around every request.
pub async fn around(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    async move {
        // Status pages too: one costs a handful of grouped queries.
        let limited = (req.path().starts_with("/api/") || req.path().starts_with("/status/"))
            && req
                .app_data::<web::Data<Arc<RateLimits>>>()
                .is_some_and(|limits| !limits.allows(&req));
        // A write through the API forgets the read caches, so its author reads it back.
        let writes = !matches!(
            *req.method(),
            actix_web::http::Method::GET
                | actix_web::http::Method::HEAD
                | actix_web::http::Method::OPTIONS
        ) && req.path().starts_with("/api/");
        let hub = writes
            .then(|| req.app_data::<web::Data<Arc<Hub>>>().cloned())
            .flatten();
        let mut response = if limited {
            tracing::info!("rate limited");
            let response = ApiError::RateLimited.error_response();
            req.into_response(response).map_into_right_body()
        } else {
            next.call(req).await?.map_into_left_body()
        };
        let status = response.status();
        if let Some(hub) = hub
            && !status.is_client_error()
        {
            hub.read_cache.forget_all();
        }
        crate::metrics::request_answered(status.as_u16(), started.elapsed());
        if status.is_server_error() {
            tracing::warn!(%status, "answered");
        } else {
            tracing::debug!(%status, "answered");
        }
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// CORS from `CORS_ALLOWED_ORIGINS`: none, some, or `*` (any origin, no credentials).
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin().send_wildcard()
        } else {
            cors.allowed_origin(origin.trim_end_matches('/'))
        };
    }
    cors
}
