//! The REST API under `/api/v1`: accounts and keys, websites, their status and
//! maintenance windows, status pages,
//! alert channels, validators, rounds, eons and the network's terms; documented in [`openapi`].

pub mod accounts;
pub mod admission;
pub mod assertions;
pub mod auth;
pub mod canaries;
pub mod channel_config;
pub mod channels;
pub mod confirmations;
pub mod eons;
pub mod errors;
pub mod maintenance;
pub mod network;
pub mod openapi;
pub mod quotas;
pub mod read_cache;
pub mod rounds;
pub mod status;
pub mod status_pages;
pub mod validators;
pub mod website_settings;
pub mod websites;

use actix_web::web;
use diesel::PgConnection;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::hub::Hub;
use errors::ApiError;

/// Mounts every API route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    accounts::routes(cfg);
    websites::routes(cfg);
    status::routes(cfg);
    status_pages::routes(cfg);
    maintenance::routes(cfg);
    channels::routes(cfg);
    validators::routes(cfg);
    admission::routes(cfg);
    rounds::routes(cfg);
    canaries::routes(cfg);
    eons::routes(cfg);
    network::routes(cfg);
    quotas::routes(cfg);
    confirmations::routes(cfg);
}

/// Runs `work` on a pooled connection off the async threads.
pub async fn db<T, F>(hub: &Hub, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    hub.api_db.run(move |conn| Ok(work(conn))).await?
}

/// Largest page any list returns.
pub const MAX_LIMIT: i64 = 200;

/// Cursor pagination: pass `next_cursor` of one page as `cursor` for the next.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (1..=200, default 50).
    #[param(minimum = 1, maximum = 200, example = 50)]
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The page size, validated.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    /// The cursor as an id (lists ordered by descending id continue below it).
    pub fn id_cursor(&self) -> Result<Option<i64>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ApiError::invalid("cursor", "malformed cursor"))
            })
            .transpose()
    }
}

/// For `Option<Option<T>>` fields with `#[serde(default)]`: absent is `None`,
/// present is `Some` (null included), so null can clear a field.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Splits `limit + 1` rows into a page and the cursor of the next one.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    (rows, next)
}

/// `0x`-prefixed lowercase hex of bytes.
pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The EIP-55 form of a stored 20-byte address (`None` if malformed).
pub fn checksummed(bytes: &[u8]) -> Option<String> {
    overlaps_shared::signing::PayoutAddress::from_bytes(bytes)
        .ok()
        .map(|a| a.to_checksummed())
}

/// An integer amount in the chain's smallest unit as a decimal string (money is
/// `NUMERIC(78,0)`, wider than any float can hold exactly).
pub fn money(value: &bigdecimal::BigDecimal) -> String {
    value.with_scale(0).as_bigint_and_exponent().0.to_string()
}
