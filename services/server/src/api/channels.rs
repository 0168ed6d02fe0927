//! Alert channels (Slack, e-mail, webhooks, Discord, Telegram, Microsoft Teams,
//! PagerDuty, ntfy, Mattermost, Pushover) and the "send a test alert" action;
//! what each kind needs is checked in [`super::channel_config`].

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::AlertChannel;
use overlaps_shared::schema::{alert_channels, alert_outbox};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::channel_config::{
    secret_hint, validate_kind, validate_reminders, validate_secret, validate_target,
};
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
    /// `slack`, `email`, `webhook`, `discord`, `telegram`, `teams`,
    /// `pagerduty`, `ntfy`, `mattermost` or `pushover`.
    #[schema(example = "slack")]
    pub kind: String,
    /// Slack, Discord, Teams or Mattermost webhook URL, e-mail address, webhook
    /// URL, ntfy topic URL, Telegram chat id, Pushover user key; `events-v2`
    /// for PagerDuty.
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub target: String,
    /// Whether the channel holds a credential (a webhook's signing key, a bot
    /// token, a routing key, an application or access token).
    pub has_secret: bool,
    /// The credential's last four characters (`…WXYZ`), never the whole of it;
    /// null for webhooks and channels without one.
    #[schema(example = "…3f9a")]
    pub secret_hint: Option<String>,
    /// While a site stays down, repeat the alert every this many minutes.
    pub reminder_minutes: Option<i32>,
    /// At most this many reminders per incident.
    pub reminder_max: Option<i32>,
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
            secret_hint: secret_hint(&c.kind, c.secret.as_deref()),
            kind: c.kind,
            target: c.target,
            has_secret: c.secret.is_some(),
            reminder_minutes: c.reminder_minutes,
            reminder_max: c.reminder_max,
            enabled: c.enabled,
            confirmed_at: c.confirmed_at,
            created_at: c.created_at,
        }
    }
}

/// A channel just created; a webhook's signing secret is shown this once (other
/// credentials never are). An e-mail channel's address is sent a confirmation
/// link first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedChannel {
    /// The channel.
    #[serde(flatten)]
    pub channel: Channel,
    /// Webhooks: the HMAC-SHA256 key of `X-Overlaps-Signature` (null for every
    /// other kind: a bot token, routing key or application token is never
    /// returned, only its `secret_hint`).
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
    /// `slack`, `email`, `webhook`, `discord`, `telegram`, `teams`,
    /// `pagerduty`, `ntfy`, `mattermost` or `pushover`.
    #[schema(example = "slack")]
    pub kind: String,
    /// Slack/Discord/Teams/Mattermost incoming-webhook URL, e-mail address,
    /// webhook URL, ntfy topic URL, Telegram chat id (`-100…` or
    /// `@channel`), Pushover user or group key; omit for PagerDuty.
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub target: Option<String>,
    /// Only this website's alerts (one of the caller's); omit for all.
    pub website_id: Option<i64>,
    /// Webhooks: your own signing key (16..=128 characters; generated when
    /// omitted). Telegram: the bot token. PagerDuty: the Events API v2 routing
    /// key. Pushover: the application token. ntfy: an access token (optional).
    /// Other kinds: none.
    pub secret: Option<String>,
    /// While a site stays down, repeat the alert every this many minutes
    /// (1..=10080); omit for no reminders.
    pub reminder_minutes: Option<i32>,
    /// At most this many reminders per incident (1..=100; 3 when omitted).
    pub reminder_max: Option<i32>,
}

/// Changes to a channel; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    /// New target.
    pub target: Option<String>,
    /// Whether it receives alerts.
    pub enabled: Option<bool>,
    /// A new credential (same rules as at creation; webhooks' keys stay).
    pub secret: Option<String>,
    /// New reminder interval; null: no reminders.
    #[schema(value_type = Option<i32>)]
    #[serde(default, deserialize_with = "super::present")]
    pub reminder_minutes: Option<Option<i32>>,
    /// New reminder limit (needs reminders on).
    pub reminder_max: Option<i32>,
}

/// The outbox row a test alert was queued as.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAlertQueued {
    /// The `alert_outbox` row; the accounting service delivers it.
    pub outbox_id: i64,
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
    request_body(content = NewChannel, examples(
        ("slack" = (summary = "Slack incoming webhook", value = json!({"kind": "slack", "target": "https://hooks.slack.com/services/T000/B000/XXXX"}))),
        ("email" = (summary = "E-mail (confirmed by the address first)", value = json!({"kind": "email", "target": "ops@example.com"}))),
        ("webhook" = (summary = "Signed webhook", value = json!({"kind": "webhook", "target": "https://example.com/hooks/overlaps"}))),
        ("discord" = (summary = "Discord webhook", value = json!({"kind": "discord", "target": "https://discord.com/api/webhooks/123456789012345678/abcDEF"}))),
        ("telegram" = (summary = "Telegram bot and chat", value = json!({"kind": "telegram", "target": "-1001234567890", "secret": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"}))),
        ("teams" = (summary = "Microsoft Teams workflow or incoming webhook", value = json!({"kind": "teams", "target": "https://example.webhook.office.com/webhookb2/abc"}))),
        ("pagerduty" = (summary = "PagerDuty Events API v2, with reminders", value = json!({"kind": "pagerduty", "secret": "0123456789abcdef0123456789abcdef", "reminder_minutes": 30, "reminder_max": 4}))),
        ("ntfy" = (summary = "ntfy topic", value = json!({"kind": "ntfy", "target": "https://ntfy.sh/my-sites-alerts"}))),
        ("mattermost" = (summary = "Mattermost incoming webhook", value = json!({"kind": "mattermost", "target": "https://chat.example.com/hooks/xxxgeneratedkeyxxx"}))),
        ("pushover" = (summary = "Pushover user key and application token", value = json!({"kind": "pushover", "target": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "secret": "azGDORePK8gMaC0QOYAMyEEuzJnyUi"}))),
    )),
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
    validate_kind(&body.kind)?;
    let target = validate_target(&body.kind, body.target.as_deref())?;
    let secret = validate_secret(&body.kind, body.secret)?;
    let (reminder_minutes, reminder_max) =
        validate_reminders(body.reminder_minutes, body.reminder_max)?;
    // Only a webhook's own signing key is shown (once); other credentials came
    // from the caller and are never returned.
    let shown_secret = secret.clone().filter(|_| body.kind == "webhook");
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
                    alert_channels::reminder_minutes.eq(reminder_minutes),
                    alert_channels::reminder_max.eq(reminder_max),
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
                    secret: shown_secret,
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

/// Change a channel's target, credential or reminders, or switch it on or off;
/// a new e-mail address is asked to confirm before it receives alerts.
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
                Some(t) => validate_target(&current.kind, Some(t))?,
                None => current.target.clone(),
            };
            let secret = match (&body.secret, current.kind.as_str()) {
                (None, _) => current.secret.clone(),
                (Some(_), "webhook") => {
                    return Err(ApiError::invalid(
                        "secret",
                        "a webhook's signing key cannot be changed: make a new channel",
                    ));
                }
                (Some(s), kind) => validate_secret(kind, Some(s.clone()))?,
            };
            let (reminder_minutes, reminder_max) = match body.reminder_minutes {
                Some(None) if body.reminder_max.is_some() => {
                    validate_reminders(None, body.reminder_max)?
                }
                Some(None) => (None, None),
                Some(Some(m)) => {
                    validate_reminders(Some(m), body.reminder_max.or(current.reminder_max))?
                }
                None => match body.reminder_max {
                    Some(n) => validate_reminders(current.reminder_minutes, Some(n))?,
                    None => (current.reminder_minutes, current.reminder_max),
                },
            };
            let readdressed = current.kind == "email" && target != current.target;
            let mut row: AlertChannel = diesel::update(alert_channels::table.find(id))
                .set((
                    alert_channels::target.eq(target),
                    alert_channels::enabled.eq(body.enabled.unwrap_or(current.enabled)),
                    alert_channels::secret.eq(secret),
                    alert_channels::reminder_minutes.eq(reminder_minutes),
                    alert_channels::reminder_max.eq(reminder_max),
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
