//! Alert channels (Slack, e-mail, webhook) and the "send a test alert" action.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::AlertChannel;
use overlaps_shared::schema::{alert_channels, alert_outbox};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::confirmations::{self, queue_delivery};
use super::errors::{ApiError, ErrorBody};
use super::websites::accessible;
use super::{PageParams, db, paginate};
use crate::hub::Hub;

/// Mounts the channel routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_channel)
        .service(list_channels)
        .service(get_channel)
        .service(update_channel)
        .service(delete_channel)
        .service(test_channel)
        .service(resend_confirmation);
}

/// Where alerts go.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    /// Channel id.
    pub id: i64,
    /// The owning account.
    pub owner_id: i64,
    /// Only this website's alerts; null: all the owner's websites.
    pub website_id: Option<i64>,
    /// `slack`, `email` or `webhook`.
    #[schema(example = "slack")]
    pub kind: String,
    /// Slack incoming-webhook URL, e-mail address or webhook URL.
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub target: String,
    /// Whether webhook bodies are signed (`X-Overlaps-Signature`).
    pub has_secret: bool,
    /// Disabled channels receive nothing.
    pub enabled: bool,
    /// When its address confirmed it; null: an e-mail channel awaiting
    /// confirmation, which receives nothing but the confirmation request.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<AlertChannel> for Channel {
    fn from(c: AlertChannel) -> Self {
        Channel {
            id: c.id,
            owner_id: c.owner_id,
            website_id: c.website_id,
            kind: c.kind,
            target: c.target,
            has_secret: c.secret.is_some(),
            enabled: c.enabled,
            confirmed_at: c.confirmed_at,
            created_at: c.created_at,
        }
    }
}

/// A channel just created; a webhook's signing secret is shown this once. An
/// e-mail channel's address is sent a confirmation link first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedChannel {
    /// The channel.
    #[serde(flatten)]
    pub channel: Channel,
    /// Webhooks: the HMAC-SHA256 key of `X-Overlaps-Signature` (null otherwise).
    pub secret: Option<String>,
}

/// One page of channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelPage {
    /// Channels, newest first.
    pub items: Vec<Channel>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// `slack`, `email` or `webhook`.
    #[schema(example = "slack")]
    pub kind: String,
    /// Slack incoming-webhook URL, e-mail address or webhook URL.
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub target: String,
    /// Only this website's alerts (one of the caller's); omit for all.
    pub website_id: Option<i64>,
    /// Webhooks: your own signing key (16..=128 characters); generated when omitted.
    pub secret: Option<String>,
}

/// Changes to a channel; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    /// New target.
    pub target: Option<String>,
    /// Whether it receives alerts.
    pub enabled: Option<bool>,
}

/// The outbox row a test alert was queued as.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAlertQueued {
    /// The `alert_outbox` row; the accounting service delivers it.
    pub outbox_id: i64,
}

fn validate_target(kind: &str, target: &str) -> Result<String, ApiError> {
    let target = target.trim();
    if target.len() > 2048 || target.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "target",
            "target must be at most 2048 printable characters",
        ));
    }
    match kind {
        "slack" | "webhook" => {
            let url = url::Url::parse(target).map_err(|err| {
                ApiError::invalid("target", format!("target must be an http(s) URL: {err}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ApiError::invalid("target", "target must be an http(s) URL"));
            }
            Ok(url.to_string())
        }
        "email" => {
            let valid = target.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.contains('@')
            }) && !target.chars().any(char::is_whitespace);
            if valid {
                Ok(target.to_owned())
            } else {
                Err(ApiError::invalid(
                    "target",
                    "target must be an e-mail address",
                ))
            }
        }
        _ => Err(ApiError::invalid(
            "kind",
            "kind must be slack, email or webhook",
        )),
    }
}

fn load(conn: &mut PgConnection, caller: &Caller, id: i64) -> Result<AlertChannel, ApiError> {
    let channel: Option<AlertChannel> = alert_channels::table
        .find(id)
        .select(AlertChannel::as_select())
        .first(conn)
        .optional()?;
    channel
        .filter(|c| caller.may_access(c.owner_id))
        .ok_or(ApiError::NotFound("channel"))
}

/// Add an alert channel.
#[utoipa::path(
    tag = "channels",
    request_body(content = NewChannel, example = json!({"kind": "slack", "target": "https://hooks.slack.com/services/T000/B000/XXXX"})),
    responses(
        (status = 201, description = "Created (a webhook's secret shown once; an e-mail address is asked to confirm)", body = CreatedChannel),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Too many e-mail channels await confirmation (`quota_exceeded`)", body = ErrorBody),
        (status = 404, description = "website_id is not one of the caller's", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "The account sent `EMAIL_CONFIRMATIONS_PER_HOUR` confirmation messages this hour", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/channels")]
pub async fn create_channel(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    body: web::Json<NewChannel>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let target = validate_target(&body.kind, &body.target)?;
    let secret = match (body.kind.as_str(), body.secret) {
        ("webhook", Some(s))
            if (16..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Some(s)
        }
        ("webhook", Some(_)) => {
            return Err(ApiError::invalid(
                "secret",
                "secret must be 16 to 128 printable ASCII characters",
            ));
        }
        ("webhook", None) => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            Some(hex::encode(bytes))
        }
        (_, Some(_)) => return Err(ApiError::invalid("secret", "only webhooks have a secret")),
        (_, None) => None,
    };
    let kind = body.kind;
    let website_id = body.website_id;
    if kind == "email" {
        confirmations::spend_allowance(&hub, caller.user_id).await?;
    }
    let confirmation = hub.config.api.email_confirmation;
    let (created, outbox) = db(&hub, move |conn| {
        conn.transaction(|conn| {
            if let Some(site) = website_id {
                accessible(conn, &caller, site)?;
            }
            let mut row = diesel::insert_into(alert_channels::table)
                .values((
                    alert_channels::owner_id.eq(caller.user_id),
                    alert_channels::website_id.eq(website_id),
                    alert_channels::kind.eq(&kind),
                    alert_channels::target.eq(&target),
                    alert_channels::secret.eq(secret.as_deref()),
                ))
                .returning(AlertChannel::as_returning())
                .get_result(conn)?;
            let outbox = if row.kind == "email" {
                let now = Utc::now();
                let outbox =
                    confirmations::request(conn, &confirmation, caller.user_id, row.id, now)?;
                row.confirmed_at = None;
                Some(outbox)
            } else {
                None
            };
            Ok((
                CreatedChannel {
                    channel: row.into(),
                    secret,
                },
                outbox,
            ))
        })
    })
    .await?;
    if let Some(outbox) = outbox {
        queue_delivery(&hub, outbox).await;
    }
    Ok(HttpResponse::Created().json(created))
}

/// The caller's channels (operators: everyone's), newest first.
#[utoipa::path(
    tag = "channels",
    params(PageParams),
    responses(
        (status = 200, description = "One page", body = ChannelPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "Invalid limit or cursor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/channels")]
pub async fn list_channels(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> Result<web::Json<ChannelPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.id_cursor()?;
    let rows = db(&hub, move |conn| {
        let mut query = alert_channels::table
            .select(AlertChannel::as_select())
            .order(alert_channels::id.desc())
            .limit(limit + 1)
            .into_boxed();
        if !caller.is_operator() {
            query = query.filter(alert_channels::owner_id.eq(caller.user_id));
        }
        if let Some(cursor) = cursor {
            query = query.filter(alert_channels::id.lt(cursor));
        }
        Ok(query.load(conn)?)
    })
    .await?;
    let (rows, next_cursor) = paginate(rows, limit, |c| c.id.to_string());
    Ok(web::Json(ChannelPage {
        items: rows.into_iter().map(Channel::from).collect(),
        next_cursor,
    }))
}

/// One channel.
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel", body = Channel),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such channel of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/channels/{id}")]
pub async fn get_channel(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<web::Json<Channel>, ApiError> {
    let id = id.into_inner();
    let row = db(&hub, move |conn| load(conn, &caller, id)).await?;
    Ok(web::Json(row.into()))
}

/// Change a channel's target or switch it on or off; a new e-mail address is
/// asked to confirm before it receives alerts.
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    request_body(content = ChannelUpdate, example = json!({"enabled": false})),
    responses(
        (status = 200, description = "The updated channel", body = Channel),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "Too many e-mail channels await confirmation (`quota_exceeded`)", body = ErrorBody),
        (status = 404, description = "No such channel of the caller", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "The account sent `EMAIL_CONFIRMATIONS_PER_HOUR` confirmation messages this hour", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[patch("/api/v1/channels/{id}")]
pub async fn update_channel(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
    body: web::Json<ChannelUpdate>,
) -> Result<web::Json<Channel>, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let confirmation = hub.config.api.email_confirmation;
    // A new e-mail address is sent a confirmation message: that spends the
    // owner's allowance before anything changes.
    let check_caller = caller.clone();
    let before = db(&hub, move |conn| load(conn, &check_caller, id)).await?;
    if before.kind == "email"
        && body
            .target
            .as_ref()
            .is_some_and(|t| t.trim() != before.target)
    {
        confirmations::spend_allowance(&hub, before.owner_id).await?;
    }
    let (row, outbox) = db(&hub, move |conn| {
        conn.transaction(|conn| {
            let current = load(conn, &caller, id)?;
            let target = match &body.target {
                Some(t) => validate_target(&current.kind, t)?,
                None => current.target.clone(),
            };
            let readdressed = current.kind == "email" && target != current.target;
            let mut row: AlertChannel = diesel::update(alert_channels::table.find(id))
                .set((
                    alert_channels::target.eq(target),
                    alert_channels::enabled.eq(body.enabled.unwrap_or(current.enabled)),
                ))
                .returning(AlertChannel::as_returning())
                .get_result(conn)?;
            let outbox = if readdressed {
                let outbox =
                    confirmations::request(conn, &confirmation, row.owner_id, id, Utc::now())?;
                row.confirmed_at = None;
                Some(outbox)
            } else {
                None
            };
            Ok((row, outbox))
        })
    })
    .await?;
    if let Some(outbox) = outbox {
        queue_delivery(&hub, outbox).await;
    }
    Ok(web::Json(row.into()))
}

/// Delete a channel.
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such channel of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/channels/{id}")]
pub async fn delete_channel(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db(&hub, move |conn| {
        load(conn, &caller, id)?;
        diesel::delete(alert_channels::table.find(id)).execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a test alert through a channel (queued; the accounting service delivers it).
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 202, description = "Queued for delivery", body = TestAlertQueued),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such channel of the caller", body = ErrorBody),
        (status = 409, description = "The e-mail address has not confirmed the channel yet (`channel_unconfirmed`)", body = ErrorBody),
        (status = 429, description = "A test alert went out through this channel less than `API_TEST_ALERT_SECONDS` ago", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/channels/{id}/test")]
pub async fn test_channel(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    // The caller must own the channel before it may spend its test allowance.
    let check_caller = caller.clone();
    let channel = db(&hub, move |conn| load(conn, &check_caller, id)).await?;
    if channel.confirmed_at.is_none() {
        return Err(ApiError::Conflict {
            code: "channel_unconfirmed",
            message: "the e-mail address has not confirmed this channel yet; it receives \
                      nothing but the confirmation request"
                .into(),
        });
    }
    once_per_interval(&hub, &format!("test-alert:{id}")).await?;
    let outbox_id = db(&hub, move |conn| {
        let channel = load(conn, &caller, id)?;
        let payload = serde_json::json!({
            "kind": "test",
            "website_id": channel.website_id,
            "cause": "a test alert requested through the API",
            "at": Utc::now().to_rfc3339(),
        });
        Ok(diesel::insert_into(alert_outbox::table)
            .values((
                alert_outbox::channel_id.eq(id),
                alert_outbox::kind.eq("test"),
                // Each request is its own alert: a fresh key, never deduplicated away.
                alert_outbox::dedup_key.eq(format!("test:{id}:{}", uuid::Uuid::new_v4())),
                alert_outbox::payload.eq(payload),
            ))
            .returning(alert_outbox::id)
            .get_result::<i64>(conn)?)
    })
    .await?;
    queue_delivery(&hub, outbox_id).await;
    Ok(HttpResponse::Accepted().json(TestAlertQueued { outbox_id }))
}

/// Succeeds once per `API_TEST_ALERT_SECONDS` for `what`, across every server
/// instance: a message the API sends goes to someone else's endpoint or inbox,
/// never as a flood.
async fn once_per_interval(hub: &Hub, what: &str) -> Result<(), ApiError> {
    let window = u64::try_from(hub.config.api.test_alert_interval.as_millis()).unwrap_or(u64::MAX);
    let mut redis = hub.infra.redis.clone();
    let first: Option<String> = redis::cmd("SET")
        .arg(hub.infra.keys.key(what))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(window)
        .query_async(&mut redis)
        .await
        .map_err(|e| ApiError::Internal(overlaps_shared::Error::Redis(e)))?;
    first.map(drop).ok_or(ApiError::RateLimited)
}

/// Send an e-mail channel's confirmation link again (a new link; the old one
/// stops working).
#[utoipa::path(
    tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 202, description = "Queued for delivery", body = TestAlertQueued),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such channel of the caller", body = ErrorBody),
        (status = 409, description = "Not an e-mail channel, or confirmed already (`already_confirmed`)", body = ErrorBody),
        (status = 429, description = "A link went to this channel less than `API_TEST_ALERT_SECONDS` ago, or the account sent `EMAIL_CONFIRMATIONS_PER_HOUR` this hour", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/channels/{id}/confirmation")]
pub async fn resend_confirmation(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let check_caller = caller.clone();
    let channel = db(&hub, move |conn| load(conn, &check_caller, id)).await?;
    if channel.kind != "email" || channel.confirmed_at.is_some() {
        return Err(ApiError::Conflict {
            code: "already_confirmed",
            message: "only an e-mail channel awaiting confirmation is sent a link".into(),
        });
    }
    once_per_interval(&hub, &format!("confirmation:{id}")).await?;
    confirmations::spend_allowance(&hub, channel.owner_id).await?;
    let confirmation = hub.config.api.email_confirmation;
    let outbox_id = db(&hub, move |conn| {
        conn.transaction(|conn| {
            let channel = load(conn, &caller, id)?;
            confirmations::request(conn, &confirmation, channel.owner_id, id, Utc::now())
        })
    })
    .await?;
    queue_delivery(&hub, outbox_id).await;
    Ok(HttpResponse::Accepted().json(TestAlertQueued { outbox_id }))
}
