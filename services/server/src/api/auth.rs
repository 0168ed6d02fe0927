//! API keys: generated here, shown once, stored as SHA-256, presented as
//! `Authorization: Bearer <key>`; and the caller they identify.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use diesel::prelude::*;
use overlaps_shared::models::{ApiKey, User};
use overlaps_shared::schema::{api_keys, users};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::errors::ApiError;
use crate::hub::Hub;

/// Every key starts with this, so a leaked one is recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "ovl_";

/// Characters of a key kept in clear (prefix included) to tell keys apart in lists.
const SHOWN_CHARS: usize = 12;

/// The role of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees and changes everything.
    Operator,
    /// Sees and changes only their own websites and channels.
    Owner,
}

/// Who is calling: the account behind a valid, unrevoked key.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub user_id: i64,
    /// The key used.
    pub key_id: i64,
    /// What the account may do.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is an operator.
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Whether the caller may see and change a resource owned by `owner_id`.
    pub fn may_access(&self, owner_id: i64) -> bool {
        self.is_operator() || self.user_id == owner_id
    }

    /// Fails unless the caller is an operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only an operator may do this"))
        }
    }
}

/// SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A fresh random key (`ovl_` and 48 hex digits: 192 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Stores `key` (hashed) for `user_id`; returns the row.
pub fn store_key(
    conn: &mut PgConnection,
    user_id: i64,
    name: &str,
    key: &str,
) -> QueryResult<ApiKey> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::user_id.eq(user_id),
            api_keys::name.eq(name),
            api_keys::key_prefix.eq(key.chars().take(SHOWN_CHARS).collect::<String>()),
            api_keys::key_hash.eq(hash_key(key)),
        ))
        .returning(ApiKey::as_returning())
        .get_result(conn)
}

/// Why an operator key could not be made sure of.
#[derive(Debug, thiserror::Error)]
pub enum OperatorKeyError {
    /// The account exists as an owner and promotion was not asked for.
    #[error("the account {0} is an owner account; it is not made an operator implicitly")]
    OwnerAccount(String),
    /// The owner account holds live keys: whoever registered it would become an
    /// operator through them.
    #[error(
        "the account {email} holds {keys} live owner API key(s) made by whoever registered it; \
         promoting it would make those keys operator keys. Revoke them with \
         --revoke-owner-keys (or use another e-mail)"
    )]
    HasOwnerKeys {
        /// The account.
        email: String,
        /// Its live keys.
        keys: i64,
    },
    /// The key's hash is on record as revoked or as another account's key.
    #[error("this key was revoked or belongs to another account; use a new one")]
    Burnt,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Whether an existing owner account may be made an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// Never (`OPERATOR_API_KEY` at start-up: an owner who signed up with that
    /// e-mail never becomes an operator by it).
    Never,
    /// Only if it holds no live key (`server create-operator-key`).
    WithoutOwnerKeys,
    /// After revoking every key it holds (`--revoke-owner-keys`).
    RevokingOwnerKeys,
}

/// Makes sure an operator account with `email` exists and holds `key`; used for
/// `OPERATOR_API_KEY` at start-up and by `server create-operator-key`. Returns the
/// account and how many owner keys were revoked to promote it.
pub fn ensure_operator_key(
    conn: &mut PgConnection,
    email: &str,
    key_name: &str,
    key: &str,
    promotion: Promotion,
) -> Result<(User, usize), OperatorKeyError> {
    conn.transaction(|conn| {
        let existing_user: Option<User> = users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .first(conn)
            .optional()?;
        let mut revoked = 0;
        let user: User = match existing_user {
            Some(user) if user.role == "operator" => user,
            Some(user) if promotion == Promotion::Never => {
                return Err(OperatorKeyError::OwnerAccount(user.email));
            }
            Some(user) => {
                // Whoever registered this e-mail made these keys: they must not
                // become operator keys.
                let live = api_keys::table
                    .filter(api_keys::user_id.eq(user.id))
                    .filter(api_keys::revoked_at.is_null());
                let keys: i64 = live.count().get_result(conn)?;
                if keys > 0 && promotion != Promotion::RevokingOwnerKeys {
                    return Err(OperatorKeyError::HasOwnerKeys {
                        email: user.email,
                        keys,
                    });
                }
                revoked = diesel::update(live)
                    .set(api_keys::revoked_at.eq(diesel::dsl::now))
                    .execute(conn)?;
                diesel::update(users::table.find(user.id))
                    .set(users::role.eq("operator"))
                    .returning(User::as_returning())
                    .get_result(conn)?
            }
            None => diesel::insert_into(users::table)
                .values((
                    users::email.eq(email),
                    users::name.eq("operator"),
                    users::role.eq("operator"),
                ))
                .returning(User::as_returning())
                .get_result(conn)?,
        };
        let existing: Option<ApiKey> = api_keys::table
            .filter(api_keys::key_hash.eq(hash_key(key)))
            .select(ApiKey::as_select())
            .first(conn)
            .optional()?;
        match existing {
            Some(found) if found.user_id == user.id && found.revoked_at.is_none() => {}
            // A revoked or foreign row with this hash: the key is burnt, refuse to revive it.
            Some(_) => return Err(OperatorKeyError::Burnt),
            None => {
                store_key(conn, user.id, key_name, key)?;
            }
        }
        Ok((user, revoked))
    })
}

/// Looks up the caller behind `key`; records its use at most once a minute.
fn authenticate(conn: &mut PgConnection, key_hash: &[u8]) -> Result<Caller, ApiError> {
    let found: Option<(ApiKey, User)> = api_keys::table
        .inner_join(users::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .select((ApiKey::as_select(), User::as_select()))
        .first(conn)
        .optional()?;
    let (api_key, user) = found.ok_or(ApiError::Unauthorized("unknown API key"))?;
    if api_key.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("this API key was revoked"));
    }
    // Throttled so a busy key is not one extra write per request: within a minute
    // of the last one, not even a statement (concurrent requests of one key would
    // queue on its row lock behind the write's commit).
    let recently_used = api_key
        .last_used_at
        .is_some_and(|at| at > chrono::Utc::now() - chrono::Duration::minutes(1));
    if !recently_used {
        diesel::sql_query(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind::<diesel::sql_types::BigInt, _>(api_key.id)
        .execute(conn)?;
    }
    Ok(Caller {
        user_id: user.id,
        key_id: api_key.id,
        role: if user.role == "operator" {
            Role::Operator
        } else {
            Role::Owner
        },
    })
}

/// The bearer token of a request: `None` without an Authorization header.
pub fn bearer(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "expected `Authorization: Bearer <API key>`",
        ))?;
    if token.len() > 256 {
        return Err(ApiError::Unauthorized("malformed API key"));
    }
    Ok(Some(token.to_owned()))
}

async fn caller_of(req: HttpRequest) -> Result<Option<Caller>, ApiError> {
    let Some(token) = bearer(&req)? else {
        return Ok(None);
    };
    let hub = req
        .app_data::<web::Data<Arc<Hub>>>()
        .cloned()
        .ok_or(ApiError::Unauthorized("authentication unavailable"))?;
    let key_hash = hash_key(&token);
    if let Some(hit) = hub.read_cache.caller(&key_hash) {
        // A refusal forgets the kept caller.
        hit.refresh_with(|| async move { look_up_caller(&hub, key_hash).await });
        return Ok(Some(hit.value));
    }
    Ok(Some(look_up_caller(&hub, key_hash).await?))
}

/// Looks up the caller behind `key_hash` and keeps it (forgets it when refused).
async fn look_up_caller(hub: &Hub, key_hash: Vec<u8>) -> Result<Caller, ApiError> {
    let ticket = hub.read_cache.ticket();
    let looked_up = key_hash.clone();
    let found = hub
        .api_db
        .run(move |conn| Ok(authenticate(conn, &looked_up)))
        .await?;
    match found {
        Ok(caller) => {
            hub.read_cache
                .remember_caller(ticket, &key_hash, caller.clone());
            Ok(caller)
        }
        Err(refused) => {
            hub.read_cache.forget_caller(&key_hash);
            Err(refused)
        }
    }
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            caller_of(req).await?.ok_or(ApiError::Unauthorized(
                "missing API key: send `Authorization: Bearer <API key>`",
            ))
        })
    }
}

/// A caller that may be anonymous; a key that is present must still be valid.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(MaybeCaller(caller_of(req).await?)) })
    }
}
