//! Settings of the server.

use std::net::SocketAddr;
use std::time::Duration;

use overlaps_shared::admission::AdmissionPolicy;
use overlaps_shared::config::{AppEnv, CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::network::TrustedProxies;
use overlaps_shared::redact::Secret;
use overlaps_shared::service::ServiceConfig;

/// Limits and timings of the validator WebSocket.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// `WS_MAX_FRAME_BYTES`: larger frames close the connection.
    pub max_frame_bytes: usize,
    /// `WS_MAX_MESSAGES_PER_SECOND`: sustained rate per connection (bursts up to 2×).
    pub max_messages_per_second: u32,
    /// `WS_MAX_CONNECTIONS_PER_IP`: per server instance.
    pub max_connections_per_ip: usize,
    /// `WS_MAX_CONNECTIONS_PER_NETWORK`: per IPv4 /24 or IPv6 /64, per server instance.
    pub max_connections_per_block: usize,
    /// `WS_HEARTBEAT_SECONDS`: ping period; three silent periods close the socket.
    pub heartbeat: Duration,
    /// `WS_SIGNUP_DEADLINE_SECONDS`: a connection not signed up by then is closed.
    pub signup_deadline: Duration,
    /// `WS_MAX_FAILED_SIGNUPS_PER_MINUTE`: per client address, on this instance.
    pub max_failed_signups_per_minute: u32,
    /// `PRESENCE_TTL_SECONDS`: how long presence and the session lock outlive a
    /// server that stopped refreshing them.
    pub presence_ttl: Duration,
}

/// How results are written to PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// `INGEST_BATCH_MAX`: results per transaction at most.
    pub batch_max: usize,
    /// `INGEST_BATCH_WAIT_MS`: how long a batch waits to fill.
    pub batch_wait: Duration,
    /// `INGEST_WRITERS`: transactions in flight at once.
    pub writers: usize,
    /// `RESULT_CLOCK_SKEW_MS`: how far a validator's `checked_at_ms` may lie before
    /// its assignment was due or after the hub received it.
    pub clock_skew: chrono::Duration,
}

/// Bounds an owner's website settings must lie within.
#[derive(Debug, Clone, Copy)]
pub struct WebsiteBounds {
    /// `WEBSITE_MIN_INTERVAL_SECONDS` / `WEBSITE_MAX_INTERVAL_SECONDS`.
    pub interval_seconds: (i32, i32),
    /// `WEBSITE_MIN_TIMEOUT_MS` / `WEBSITE_MAX_TIMEOUT_MS`.
    pub timeout_ms: (i32, i32),
    /// 1 / `WEBSITE_MAX_QUORUM`.
    pub quorum: (i16, i16),
}

/// What an owner account may ask of the network unless the operator set its own
/// limits (operators have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountQuota {
    /// `ACCOUNT_MAX_SITES`: websites, enabled or not.
    pub max_sites: i32,
    /// `ACCOUNT_MAX_CHECKS_PER_DAY`: checks a day its enabled websites ask for
    /// (quorum × checks a day at the interval).
    pub max_checks_per_day: i64,
}

/// Settings of e-mail channel confirmation.
#[derive(Debug, Clone, Copy)]
pub struct EmailConfirmation {
    /// `EMAIL_CONFIRMATION_HOURS`: how long a confirmation link works.
    pub valid_for: Duration,
    /// `EMAIL_CONFIRMATION_MAX_PENDING`: unconfirmed e-mail channels per account.
    pub max_pending: i64,
    /// `EMAIL_CONFIRMATIONS_PER_HOUR`: confirmation messages one account may have
    /// sent per hour (adding, readdressing and resending all send one).
    pub per_hour: u32,
}

/// Settings of the REST API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `API_SIGNUP_OPEN`: anyone may create an owner account (else only operators).
    pub signup_open: bool,
    /// `OPERATOR_API_KEY`: an operator key ensured at start-up, if set.
    pub operator_api_key: Option<Secret>,
    /// `OPERATOR_ACCOUNT_EMAIL`: the account `OPERATOR_API_KEY` belongs to.
    pub operator_account_email: String,
    /// `API_RATE_LIMIT_PER_KEY`: requests per second per API key (bursts to 2×).
    pub rate_limit_per_key: u32,
    /// `API_RATE_LIMIT_PER_IP`: requests per second per client address (bursts to 2×).
    pub rate_limit_per_ip: u32,
    /// `API_DATABASE_POOL_SIZE`: connections of the HTTP API's own pool, apart from
    /// the validators' (`DATABASE_POOL_SIZE`), so neither can starve the other.
    pub database_pool_size: u32,
    /// `API_READ_CACHE_MS`: how long a caller, a site's status and a round are
    /// kept in memory (0: not at all); see `api::read_cache`.
    pub read_cache_ttl: Duration,
    /// `API_TEST_ALERT_SECONDS`: one test alert per channel this often, across all
    /// server instances.
    pub test_alert_interval: Duration,
    /// `CORS_ALLOWED_ORIGINS`: origins allowed to call the API from a browser
    /// (`*` for any; empty for none).
    pub cors_allowed_origins: Vec<String>,
    /// Website setting bounds.
    pub websites: WebsiteBounds,
    /// Refuse websites whose host resolves to a private address (`APP_ENV=prod`).
    pub refuse_private_targets: bool,
    /// The default per-account quota.
    pub quota: AccountQuota,
    /// E-mail channels must be confirmed by their address.
    pub email_confirmation: EmailConfirmation,
}

/// Everything `server` reads from the environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// `SERVER_BIND`: address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `SERVER_INSTANCE_ID`: this instance's name in presence and dispatch queues.
    pub instance_id: String,
    /// `HUB_ID`: the hub's name inside every signed payload (same on all instances).
    pub hub_id: String,
    /// WebSocket limits.
    pub limits: SocketLimits,
    /// Result ingest.
    pub ingest: IngestSettings,
    /// REST API.
    pub api: ApiSettings,
    /// `REWARD_PER_CHECK`: published at `/api/v1/network` (accounting credits it).
    pub reward_per_check: overlaps_shared::eth::U256,
    /// Who may be selected, and with what weight (`VALIDATOR_ADMISSION`, …).
    pub admission: AdmissionPolicy,
    /// `TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` names the client, for
    /// the validator socket and the API's limits (addresses or CIDR blocks; empty:
    /// the peer address is the client).
    pub trusted_proxies: TrustedProxies,
}

fn identifier(env: &Env, var: &str, default: &str) -> Result<String, ConfigError> {
    let value: String = env.optional(var, default.to_owned())?;
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            var,
            &value,
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(value)
}

fn bounds(
    env: &Env,
    min_var: &str,
    max_var: &str,
    defaults: (i32, i32),
    range: std::ops::RangeInclusive<i32>,
) -> Result<(i32, i32), ConfigError> {
    let min = env.ranged(min_var, defaults.0, range.clone())?;
    let max = env.ranged(max_var, defaults.1, range)?;
    if max < min {
        return Err(invalid(
            max_var,
            max,
            format!("must be at least {min_var} ({min})"),
        ));
    }
    Ok((min, max))
}

fn api_settings(env: &Env, app_env: AppEnv) -> Result<ApiSettings, ConfigError> {
    let operator_api_key: Option<String> = env.maybe("OPERATOR_API_KEY")?;
    if let Some(key) = &operator_api_key
        && (key.len() < 32 || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()))
    {
        // Never echo a secret back, even a malformed one.
        return Err(invalid(
            "OPERATOR_API_KEY",
            "<hidden>",
            "use 32 to 128 printable ASCII characters (e.g. `server create-operator-key` output)",
        ));
    }
    let cors: String = env.optional("CORS_ALLOWED_ORIGINS", String::new())?;
    let cors_allowed_origins: Vec<String> = cors
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    for origin in &cors_allowed_origins {
        if origin != "*" && url::Url::parse(origin).is_err() {
            return Err(invalid(
                "CORS_ALLOWED_ORIGINS",
                &cors,
                format!("{origin:?} is neither `*` nor an origin like https://example.com"),
            ));
        }
    }
    let max_quorum = env.ranged("WEBSITE_MAX_QUORUM", 15, 1..=100)?;
    // One or two validators would decide a site alone (or tie): three at least,
    // unless a private network or a test says otherwise.
    let min_quorum = env.ranged("WEBSITE_MIN_QUORUM", 3, 1..=100)?;
    if min_quorum > max_quorum {
        return Err(invalid(
            "WEBSITE_MIN_QUORUM",
            min_quorum,
            format!("must not exceed WEBSITE_MAX_QUORUM ({max_quorum})"),
        ));
    }
    Ok(ApiSettings {
        signup_open: env.optional("API_SIGNUP_OPEN", true)?,
        operator_api_key: operator_api_key.map(Secret::new),
        operator_account_email: env.optional(
            "OPERATOR_ACCOUNT_EMAIL",
            "operator@overlaps.local".to_owned(),
        )?,
        rate_limit_per_key: env.ranged("API_RATE_LIMIT_PER_KEY", 50, 1..=1_000_000)?,
        rate_limit_per_ip: env.ranged("API_RATE_LIMIT_PER_IP", 100, 1..=1_000_000)?,
        database_pool_size: env.ranged("API_DATABASE_POOL_SIZE", 10, 1..=500)?,
        read_cache_ttl: Duration::from_millis(env.ranged(
            "API_READ_CACHE_MS",
            1_000,
            0..=60_000,
        )?),
        test_alert_interval: Duration::from_secs(env.ranged(
            "API_TEST_ALERT_SECONDS",
            10,
            1..=86_400,
        )?),
        cors_allowed_origins,
        websites: WebsiteBounds {
            interval_seconds: bounds(
                env,
                "WEBSITE_MIN_INTERVAL_SECONDS",
                "WEBSITE_MAX_INTERVAL_SECONDS",
                (30, 86_400),
                1..=604_800,
            )?,
            timeout_ms: bounds(
                env,
                "WEBSITE_MIN_TIMEOUT_MS",
                "WEBSITE_MAX_TIMEOUT_MS",
                (500, 30_000),
                100..=120_000,
            )?,
            quorum: (min_quorum, max_quorum),
        },
        refuse_private_targets: app_env == AppEnv::Prod,
        quota: AccountQuota {
            max_sites: env.ranged("ACCOUNT_MAX_SITES", 50, 0..=1_000_000)?,
            max_checks_per_day: env.ranged(
                "ACCOUNT_MAX_CHECKS_PER_DAY",
                250_000,
                0..=1_000_000_000_000,
            )?,
        },
        email_confirmation: EmailConfirmation {
            valid_for: Duration::from_secs(
                3600 * env.ranged("EMAIL_CONFIRMATION_HOURS", 72u64, 1..=720)?,
            ),
            max_pending: env.ranged("EMAIL_CONFIRMATION_MAX_PENDING", 5, 1..=1_000)?,
            per_hour: env.ranged("EMAIL_CONFIRMATIONS_PER_HOUR", 10, 1..=100_000)?,
        },
    })
}

impl ServiceConfig for ServerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let api = api_settings(env, common.app_env)?;
        // The default HUB_ID is the dev hub's (CommonConfig refuses it when set).
        if common.app_env == AppEnv::Prod && env.raw("HUB_ID").is_none() {
            return Err(ConfigError::Missing {
                var: "HUB_ID".into(),
            });
        }
        Ok(ServerConfig {
            common,
            api,
            bind: env.optional("SERVER_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            instance_id: identifier(env, "SERVER_INSTANCE_ID", "server-1")?,
            hub_id: identifier(env, "HUB_ID", "overlaps-dev")?,
            reward_per_check: env.reward_per_check()?,
            admission: AdmissionPolicy::from_env(env)?,
            trusted_proxies: env.optional("TRUSTED_PROXIES", TrustedProxies::default())?,
            limits: SocketLimits {
                max_frame_bytes: env.ranged("WS_MAX_FRAME_BYTES", 16 * 1024, 512..=1024 * 1024)?,
                max_messages_per_second: env.ranged(
                    "WS_MAX_MESSAGES_PER_SECOND",
                    200,
                    1..=100_000,
                )?,
                max_connections_per_ip: env.ranged(
                    "WS_MAX_CONNECTIONS_PER_IP",
                    32,
                    1..=1_000_000,
                )?,
                max_connections_per_block: env.ranged(
                    "WS_MAX_CONNECTIONS_PER_NETWORK",
                    64,
                    1..=1_000_000,
                )?,
                heartbeat: Duration::from_secs(env.ranged("WS_HEARTBEAT_SECONDS", 10, 1..=300)?),
                signup_deadline: Duration::from_secs(env.ranged(
                    "WS_SIGNUP_DEADLINE_SECONDS",
                    10,
                    1..=600,
                )?),
                max_failed_signups_per_minute: env.ranged(
                    "WS_MAX_FAILED_SIGNUPS_PER_MINUTE",
                    10,
                    1..=100_000,
                )?,
                presence_ttl: Duration::from_secs(env.ranged(
                    "PRESENCE_TTL_SECONDS",
                    30,
                    2..=3600,
                )?),
            },
            ingest: IngestSettings {
                batch_max: env.ranged("INGEST_BATCH_MAX", 2000, 1..=50_000)?,
                batch_wait: Duration::from_millis(env.ranged(
                    "INGEST_BATCH_WAIT_MS",
                    5,
                    0..=1000,
                )?),
                writers: env.ranged("INGEST_WRITERS", 2, 1..=64)?,
                clock_skew: chrono::Duration::milliseconds(env.ranged(
                    "RESULT_CLOCK_SKEW_MS",
                    2_000,
                    0..=60_000,
                )?),
            },
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
