//! Accounts and their API keys.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use overlaps_shared::models::{ApiKey, User};
use overlaps_shared::schema::{api_keys, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, Caller, MaybeCaller};
use super::db;
use super::errors::{ApiError, ErrorBody};
use crate::hub::Hub;

/// Mounts the account routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(create_account)
        .service(me)
        .service(update_account)
        .service(create_key)
        .service(list_keys)
        .service(revoke_key);
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    /// Account id.
    pub id: i64,
    /// Login e-mail.
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// Display name.
    pub name: String,
    /// `operator` or `owner`.
    #[schema(example = "owner")]
    pub role: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// IANA time zone alerts show beside UTC; null: UTC only.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
}

impl From<User> for Account {
    fn from(u: User) -> Self {
        Account {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
            time_zone: u.time_zone,
        }
    }
}

/// A new owner account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Login e-mail (unique).
    #[schema(example = "alice@example.com")]
    pub email: String,
    /// Display name.
    #[schema(example = "Alice")]
    #[serde(default)]
    pub name: String,
    /// IANA time zone for alert times (beside UTC), e.g. `Europe/Berlin`.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: Option<String>,
}

/// Changes to the caller's account; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountUpdate {
    /// IANA time zone for alert times (beside UTC); null: UTC only.
    #[schema(value_type = Option<String>, example = "Europe/Berlin")]
    #[serde(default, deserialize_with = "super::present")]
    pub time_zone: Option<Option<String>>,
}

/// An IANA zone name chrono-tz knows (`Europe/Berlin`, `UTC`), as given.
fn validate_time_zone(zone: &str) -> Result<String, ApiError> {
    zone.parse::<chrono_tz::Tz>()
        .map(|z| z.name().to_owned())
        .map_err(|_| {
            ApiError::invalid(
                "time_zone",
                "time_zone must be an IANA time zone name such as Europe/Berlin",
            )
        })
}

/// An API key as listed (the key itself is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Key id.
    pub id: i64,
    /// Label.
    pub name: String,
    /// First characters of the key.
    #[schema(example = "ovl_3f9a2c1b")]
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyInfo {
    fn from(k: ApiKey) -> Self {
        KeyInfo {
            id: k.id,
            name: k.name,
            prefix: k.key_prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A key just created: `key` is shown this once; only its hash is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key's details.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The key. Send it as `Authorization: Bearer <key>`.
    #[schema(example = "ovl_3f9a2c1b5e7d90a1b2c3d4e5f60718293a4b5c6d7e8f9012")]
    pub key: String,
}

/// A new account with its first API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAccount {
    /// The account.
    pub account: Account,
    /// Its first key, shown this once.
    pub api_key: CreatedKey,
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Label, to tell keys apart.
    #[schema(example = "ci")]
    #[serde(default)]
    pub name: String,
}

fn validate_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let valid = (3..=320).contains(&email.len())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid(
            "email",
            "email must be an address like name@example.com",
        ))
    }
}

fn validate_label(field: &'static str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.chars().count() > 100 || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most 100 printable characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Create an owner account and its first API key.
///
/// Open to anyone unless `API_SIGNUP_OPEN=false`, then only to operators. The key
/// in the answer is shown once: keep it.
#[utoipa::path(
    tag = "accounts",
    request_body(content = NewAccount, example = json!({"email": "alice@example.com", "name": "Alice"})),
    responses(
        (status = 201, description = "Account and first key", body = CreatedAccount),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "A key was sent and is not valid", body = ErrorBody),
        (status = 403, description = "Sign-up is closed to non-operators", body = ErrorBody),
        (status = 409, description = "E-mail taken", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security((), ("api_key" = []))
)]
#[post("/api/v1/accounts")]
pub async fn create_account(
    hub: web::Data<Arc<Hub>>,
    caller: MaybeCaller,
    body: web::Json<NewAccount>,
) -> Result<HttpResponse, ApiError> {
    if !hub.config.api.signup_open && !caller.0.as_ref().is_some_and(Caller::is_operator) {
        return Err(ApiError::Forbidden(
            "sign-up is closed: ask an operator for an account",
        ));
    }
    let email = validate_email(&body.email)?;
    let name = validate_label("name", &body.name)?;
    let time_zone = body
        .time_zone
        .as_deref()
        .map(validate_time_zone)
        .transpose()?;
    let created = db(&hub, move |conn| {
        conn.transaction(|conn| {
            let user: Option<User> = diesel::insert_into(users::table)
                .values((
                    users::email.eq(&email),
                    users::name.eq(&name),
                    users::role.eq("owner"),
                    users::time_zone.eq(&time_zone),
                ))
                .on_conflict_do_nothing()
                .returning(User::as_returning())
                .get_result(conn)
                .optional()?;
            let Some(user) = user else {
                return Err(ApiError::Conflict {
                    code: "email_taken",
                    message: "an account with this e-mail exists".into(),
                });
            };
            let key = auth::generate_key();
            let row = auth::store_key(conn, user.id, "first key", &key)?;
            Ok(CreatedAccount {
                account: user.into(),
                api_key: CreatedKey {
                    info: row.into(),
                    key,
                },
            })
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// The caller's account.
#[utoipa::path(
    tag = "accounts",
    responses(
        (status = 200, description = "The account behind the key", body = Account),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/account")]
pub async fn me(hub: web::Data<Arc<Hub>>, caller: Caller) -> Result<web::Json<Account>, ApiError> {
    let user = db(&hub, move |conn| {
        Ok(users::table
            .find(caller.user_id)
            .select(User::as_select())
            .first(conn)?)
    })
    .await?;
    Ok(web::Json(user.into()))
}

/// Change the caller's account (its time zone).
#[utoipa::path(
    tag = "accounts",
    request_body(content = AccountUpdate, example = json!({"time_zone": "Europe/Berlin"})),
    responses(
        (status = 200, description = "The updated account", body = Account),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[patch("/api/v1/account")]
pub async fn update_account(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    body: web::Json<AccountUpdate>,
) -> Result<web::Json<Account>, ApiError> {
    let body = body.into_inner();
    let time_zone = body
        .time_zone
        .map(|z| z.as_deref().map(validate_time_zone).transpose())
        .transpose()?;
    let user = db(&hub, move |conn| {
        if let Some(zone) = &time_zone {
            diesel::update(users::table.find(caller.user_id))
                .set(users::time_zone.eq(zone))
                .execute(conn)?;
        }
        Ok(users::table
            .find(caller.user_id)
            .select(User::as_select())
            .first(conn)?)
    })
    .await?;
    Ok(web::Json(user.into()))
}

/// Create another API key for the caller's account (shown once).
#[utoipa::path(
    tag = "accounts",
    request_body(content = NewKey, example = json!({"name": "ci"})),
    responses(
        (status = 201, description = "The new key, shown once", body = CreatedKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/api/v1/keys")]
pub async fn create_key(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let name = validate_label("name", &body.name)?;
    let created = db(&hub, move |conn| {
        let key = auth::generate_key();
        let row = auth::store_key(conn, caller.user_id, &name, &key)?;
        Ok(CreatedKey {
            info: row.into(),
            key,
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(created))
}

/// The caller's API keys (revoked ones included, never the keys themselves).
#[utoipa::path(
    tag = "accounts",
    responses(
        (status = 200, description = "The caller's keys, newest first", body = Vec<KeyInfo>),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/api/v1/keys")]
pub async fn list_keys(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
) -> Result<web::Json<Vec<KeyInfo>>, ApiError> {
    let keys = db(&hub, move |conn| {
        Ok(api_keys::table
            .filter(api_keys::user_id.eq(caller.user_id))
            .order(api_keys::id.desc())
            .limit(1000)
            .select(ApiKey::as_select())
            .load(conn)?)
    })
    .await?;
    Ok(web::Json(keys.into_iter().map(KeyInfo::from).collect()))
}

/// Revoke one of the caller's keys (operators: any key). It never works again.
#[utoipa::path(
    tag = "accounts",
    params(("id" = i64, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "No such key of the caller", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/api/v1/keys/{id}")]
pub async fn revoke_key(
    hub: web::Data<Arc<Hub>>,
    caller: Caller,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    db(&hub, move |conn| {
        let key: Option<ApiKey> = api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .first(conn)
            .optional()?;
        match key {
            Some(key) if caller.may_access(key.user_id) => {
                diesel::update(
                    api_keys::table
                        .find(id)
                        .filter(api_keys::revoked_at.is_null()),
                )
                .set(api_keys::revoked_at.eq(diesel::dsl::now))
                .execute(conn)?;
                Ok(())
            }
            _ => Err(ApiError::NotFound("key")),
        }
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
