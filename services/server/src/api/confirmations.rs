//! E-mail channels are confirmed by their address before alerts go to it.
//!
//! Anyone may open an account and add an e-mail channel, so without this the hub
//! would send alerts to any address on a stranger's say-so. Adding (or retargeting)
//! an e-mail channel sends one message with a link holding a random token; only its
//! SHA-256 is stored. The link opens a page with a Confirm button: the POST that
//! button sends confirms, so a mail scanner that follows links confirms nothing.
//! Until then the channel receives nothing else. So that nobody can use the hub to
//! mail strangers, an account may have only `EMAIL_CHANNEL_CONFIRMATION_MAX_PENDING`
//! channels awaiting confirmation and send only `EMAIL_CHANNEL_CONFIRMATIONS_PER_HOUR`
//! confirmation messages an hour (creating and deleting channels does not reset it).

use std::sync::Arc;

use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use apalis::prelude::TaskSink;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::html::escape;
use overlaps_shared::jobs::{self, SendAlert};
use overlaps_shared::models::CHANNEL_CONFIRMATION;
use overlaps_shared::schema::{alert_channels, alert_outbox};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::db;
use super::errors::ApiError;
use crate::config::EmailConfirmation;
use crate::hub::Hub;

/// Mounts the public confirmation page.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(confirmation_page).service(confirm);
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Asks the address of e-mail channel `channel` (owned by `owner`) to confirm it:
/// marks the channel unconfirmed with a fresh token and queues the message. Fails
/// with `quota_exceeded` when the owner has too many channels awaiting
/// confirmation. Returns the outbox row to deliver. Call inside the transaction
/// that creates or retargets the channel.
pub fn request(
    conn: &mut PgConnection,
    settings: &EmailConfirmation,
    owner: i64,
    channel: i64,
    now: DateTime<Utc>,
) -> Result<i64, ApiError> {
    let pending: i64 = alert_channels::table
        .filter(alert_channels::owner_id.eq(owner))
        .filter(alert_channels::id.ne(channel))
        .filter(alert_channels::confirmed_at.is_null())
        .filter(alert_channels::confirmation_expires_at.gt(now))
        .count()
        .get_result(conn)?;
    if pending >= settings.max_pending {
        return Err(ApiError::QuotaExceeded(format!(
            "{pending} e-mail channels of this account await confirmation (at most {}); \
             confirm or delete one first",
            settings.max_pending
        )));
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let valid_for = chrono::Duration::from_std(settings.valid_for).unwrap_or(chrono::Duration::MAX);
    diesel::update(alert_channels::table.find(channel))
        .set((
            alert_channels::confirmed_at.eq(None::<DateTime<Utc>>),
            alert_channels::confirmation_hash.eq(Some(token_hash(&token))),
            alert_channels::confirmation_expires_at.eq(Some(now + valid_for)),
        ))
        .execute(conn)?;
    Ok(diesel::insert_into(alert_outbox::table)
        .values((
            alert_outbox::channel_id.eq(channel),
            alert_outbox::kind.eq(CHANNEL_CONFIRMATION),
            alert_outbox::dedup_key.eq(format!(
                "{CHANNEL_CONFIRMATION}:{channel}:{}",
                uuid::Uuid::new_v4()
            )),
            alert_outbox::payload.eq(serde_json::json!({
                "kind": CHANNEL_CONFIRMATION,
                "confirmation_token": token,
                "at": now.to_rfc3339(),
            })),
        ))
        .returning(alert_outbox::id)
        .get_result::<i64>(conn)?)
}

/// Counts one confirmation message against `owner`'s hourly allowance (a Redis
/// counter per account, so across server instances); `rate_limited` when spent.
pub async fn spend_allowance(hub: &Hub, owner: i64) -> Result<(), ApiError> {
    let key = hub.infra.keys.key(&format!("email-confirmations:{owner}"));
    let mut redis = hub.infra.redis.clone();
    // A fixed window: the first message of the hour starts it.
    let (sent,): (u64,) = redis::pipe()
        .cmd("SET")
        .arg(&key)
        .arg(0)
        .arg("NX")
        .arg("EX")
        .arg(3600)
        .ignore()
        .cmd("INCR")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .map_err(|e| ApiError::Internal(overlaps_shared::Error::Redis(e)))?;
    if sent > u64::from(hub.config.api.email_confirmation.per_hour) {
        return Err(ApiError::RateLimited);
    }
    Ok(())
}

/// Queues the delivery job of outbox row `outbox_id` (after its transaction
/// committed). Losing the job loses nothing: accounting's sweep sends pending rows.
pub async fn queue_delivery(hub: &Hub, outbox_id: i64) {
    let mut queue = jobs::storage::<SendAlert>(hub.infra.redis.clone(), &hub.infra.keys);
    if let Err(err) = queue.push(SendAlert { outbox_id }).await {
        tracing::warn!(outbox_id, error = %err, "send_alert job not queued; the sweep will deliver it");
    }
}

/// A small self-contained page (no scripts, no outside assets).
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;\
             margin:3rem auto;padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.25rem}}</style>\
             </head><body><main><h1>{title}</h1>{body}</main></body></html>"
        ))
}

fn unknown_or_expired() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "<p>This confirmation link is unknown, was used already, or has expired. \
         Ask the account owner to send a new one.</p>",
    )
}

/// The stored hash to look `token` up by, if it looks like one the hub makes
/// (64 hex digits); anything else is answered without a query.
fn lookup_hash(token: &str) -> Option<Vec<u8>> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token_hash(token))
}

/// The page a confirmation link opens: what is asked, and a Confirm button.
#[utoipa::path(
    tag = "channels",
    params(("token" = String, Path, description = "The token from the confirmation e-mail")),
    responses(
        (status = 200, description = "A page with a Confirm button", content_type = "text/html", body = String),
        (status = 404, description = "Unknown, used or expired link", content_type = "text/html", body = String),
    ),
    security(())
)]
#[get("/api/v1/channel-confirmations/{token}")]
pub async fn confirmation_page(
    hub: web::Data<Arc<Hub>>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(hash) = lookup_hash(&token.into_inner()) else {
        return Ok(unknown_or_expired());
    };
    let target: Option<String> = db(&hub, move |conn| {
        Ok(alert_channels::table
            .filter(alert_channels::confirmation_hash.eq(hash))
            .filter(alert_channels::confirmation_expires_at.gt(Utc::now()))
            .select(alert_channels::target)
            .first(conn)
            .optional()?)
    })
    .await?;
    let Some(target) = target else {
        return Ok(unknown_or_expired());
    };
    Ok(page(
        StatusCode::OK,
        "Confirm alerts to this address",
        &format!(
            "<p>An Overlaps account asked to send website alerts to <strong>{}</strong>. \
             Confirm only if you expect them; otherwise close this page and nothing more \
             is sent.</p><form method=\"post\"><button type=\"submit\">Confirm</button></form>",
            escape(&target)
        ),
    ))
}

/// Confirms an e-mail channel (the page's button posts here).
#[utoipa::path(
    tag = "channels",
    params(("token" = String, Path, description = "The token from the confirmation e-mail")),
    responses(
        (status = 200, description = "Confirmed: alerts go to the address from now on", content_type = "text/html", body = String),
        (status = 404, description = "Unknown, used or expired link", content_type = "text/html", body = String),
    ),
    security(())
)]
#[post("/api/v1/channel-confirmations/{token}")]
pub async fn confirm(
    hub: web::Data<Arc<Hub>>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(hash) = lookup_hash(&token.into_inner()) else {
        return Ok(unknown_or_expired());
    };
    let confirmed: Option<(i64, String)> = db(&hub, move |conn| {
        let now = Utc::now();
        Ok(diesel::update(
            alert_channels::table
                .filter(alert_channels::confirmation_hash.eq(hash))
                .filter(alert_channels::confirmation_expires_at.gt(now)),
        )
        .set((
            alert_channels::confirmed_at.eq(Some(now)),
            alert_channels::confirmation_hash.eq(None::<Vec<u8>>),
            alert_channels::confirmation_expires_at.eq(None::<DateTime<Utc>>),
        ))
        .returning((alert_channels::id, alert_channels::target))
        .get_result(conn)
        .optional()?)
    })
    .await?;
    let Some((channel, target)) = confirmed else {
        return Ok(unknown_or_expired());
    };
    tracing::info!(channel, "e-mail channel confirmed");
    Ok(page(
        StatusCode::OK,
        "Confirmed",
        &format!(
            "<p>Website alerts will now reach <strong>{}</strong>.</p>",
            escape(&target)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_the_hub_makes_are_looked_up() {
        assert_eq!(
            lookup_hash(&"ab".repeat(32)),
            Some(token_hash(&"ab".repeat(32)))
        );
        assert_eq!(lookup_hash(&"ab".repeat(31)), None);
        assert_eq!(lookup_hash(&format!("{}zz", "ab".repeat(31))), None);
        assert_eq!(lookup_hash(""), None);
    }
}
