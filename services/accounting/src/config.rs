//! Settings of the accounting service.

use crate::alerts::providers::ProviderUrls;
use crate::eon::EonPolicy;
use bigdecimal::BigDecimal;
use overlaps_shared::config::{CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::redact::redact_url;
use overlaps_shared::service::ServiceConfig;

/// How the tick partitions are kept.
#[derive(Debug, Clone, Copy)]
pub struct PartitionPolicy {
    /// `TICK_RETENTION_DAYS`: days of raw ticks kept.
    pub retention_days: i32,
    /// `TICK_PARTITIONS_AHEAD_DAYS`: daily partitions created in advance.
    pub ahead_days: i32,
}

/// How rounds are closed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosePolicy {
    /// `REWARD_PER_CHECK`: credited per result that matched the majority, in the
    /// chain's smallest unit (an integer; no floats near money).
    pub reward_per_check: BigDecimal,
    /// `CONFIRMATIONS_DOWN`: consecutive down rounds before an incident opens.
    pub confirmations_down: i32,
    /// `CONFIRMATIONS_UP`: consecutive up rounds before it is resolved.
    pub confirmations_up: i32,
    /// `REPUTATION_GAIN`: basis points gained per agreeing result.
    pub reputation_gain: i32,
    /// `REPUTATION_LOSS`: basis points lost per disagreeing or missing result.
    pub reputation_loss: i32,
    /// `TLS_EXPIRY_WARNING_DAYS`: alert when a certificate expires within this.
    pub tls_warning_days: i32,
    /// `CANARY_REPUTATION_PENALTY_BP`: share of its reputation (basis points) a
    /// validator loses for a wrong canary answer, besides the eon's credits so far.
    pub canary_penalty_bp: i32,
}

impl ClosePolicy {
    /// Reads and validates the closing settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let reward = env.reward_per_check()?;
        Ok(ClosePolicy {
            reward_per_check: overlaps_shared::money::to_numeric(reward),
            confirmations_down: env.ranged("CONFIRMATIONS_DOWN", 2, 1..=100)?,
            confirmations_up: env.ranged("CONFIRMATIONS_UP", 1, 1..=100)?,
            reputation_gain: env.ranged("REPUTATION_GAIN", 10, 0..=10_000)?,
            reputation_loss: env.ranged("REPUTATION_LOSS", 50, 0..=10_000)?,
            tls_warning_days: env.ranged("TLS_EXPIRY_WARNING_DAYS", 14, 1..=365)?,
            canary_penalty_bp: env.ranged("CANARY_REPUTATION_PENALTY_BP", 5_000, 0..=10_000)?,
        })
    }
}

/// Where alerts go out from.
#[derive(Clone)]
pub struct AlertSettings {
    /// `SMTP_URL`: `smtp://host:port` (plain, dev), `smtp://host:587?tls=required`
    /// (STARTTLS) or `smtps://host:465` (TLS); unset: e-mail channels fail.
    pub smtp_url: Option<String>,
    /// `SMTP_FROM`: the sender of alert e-mails.
    pub smtp_from: String,
    /// `PUBLIC_URL`: the hub's API address, linked from alerts.
    pub public_url: String,
    /// `NOTIFICATION_HOOK_URL`: Slack incoming webhook for operator alerts.
    pub notification_hook_url: Option<String>,
    /// `OPERATOR_EMAIL`: where operator alerts are mailed.
    pub operator_email: Option<String>,
    /// `TELEGRAM_API_URL`, `PAGERDUTY_EVENTS_URL`, `PUSHOVER_API_URL`.
    pub provider_urls: ProviderUrls,
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SMTP URL may hold a password and a Slack hook URL is itself a secret.
        let hidden = |url: &Option<String>| url.as_deref().map(redact_url);
        f.debug_struct("AlertSettings")
            .field("smtp_url", &hidden(&self.smtp_url))
            .field("smtp_from", &self.smtp_from)
            .field("public_url", &self.public_url)
            .field(
                "notification_hook_url",
                &hidden(&self.notification_hook_url),
            )
            .field("operator_email", &self.operator_email)
            // Relays an operator runs may carry credentials in their URLs.
            .field(
                "telegram_api_url",
                &redact_url(&self.provider_urls.telegram),
            )
            .field(
                "pagerduty_events_url",
                &redact_url(&self.provider_urls.pagerduty),
            )
            .field(
                "pushover_api_url",
                &redact_url(&self.provider_urls.pushover),
            )
            .finish()
    }
}

impl AlertSettings {
    /// Reads and validates the alert settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp_url: Option<String> = env.maybe("SMTP_URL")?;
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(invalid("SMTP_URL", url, "expected smtp:// or smtps://"));
        }
        let public_url: url::Url = env.optional(
            "PUBLIC_URL",
            url::Url::parse("http://127.0.0.1:8080").map_err(|e| invalid("PUBLIC_URL", "", e))?,
        )?;
        let hook: Option<url::Url> = env.maybe("NOTIFICATION_HOOK_URL")?;
        let defaults = ProviderUrls::default();
        let provider_url = |name: &str, default: String| -> Result<String, ConfigError> {
            let url: url::Url = env.optional(
                name,
                url::Url::parse(&default).map_err(|e| invalid(name, &default, e))?,
            )?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(name, url.as_str(), "expected an http(s) URL"));
            }
            Ok(url.as_str().trim_end_matches('/').to_owned())
        };
        let provider_urls = ProviderUrls {
            telegram: provider_url("TELEGRAM_API_URL", defaults.telegram)?,
            pagerduty: provider_url("PAGERDUTY_EVENTS_URL", defaults.pagerduty)?,
            pushover: provider_url("PUSHOVER_API_URL", defaults.pushover)?,
        };
        Ok(AlertSettings {
            smtp_url,
            smtp_from: env.optional("SMTP_FROM", "Overlaps <alerts@overlaps.local>".to_owned())?,
            public_url: public_url.to_string(),
            notification_hook_url: hook.map(|u| u.to_string()),
            operator_email: env.maybe("OPERATOR_EMAIL")?,
            provider_urls,
        })
    }
}

/// Everything `accounting` reads from the environment.
#[derive(Debug, Clone)]
pub struct AccountingConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// Tick partition upkeep.
    pub partitions: PartitionPolicy,
    /// Closing rounds.
    pub close: ClosePolicy,
    /// Sending alerts.
    pub alerts: AlertSettings,
    /// Closing eons.
    pub eons: EonPolicy,
}

impl ServiceConfig for AccountingConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(AccountingConfig {
            common: CommonConfig::from_env(env)?,
            partitions: PartitionPolicy {
                retention_days: env.ranged("TICK_RETENTION_DAYS", 30, 1..=3650)?,
                ahead_days: env.ranged("TICK_PARTITIONS_AHEAD_DAYS", 7, 1..=60)?,
            },
            close: ClosePolicy::from_env(env)?,
            alerts: AlertSettings::from_env(env)?,
            eons: EonPolicy {
                rounds: env.ranged("EON_ROUNDS", 120, 1..=1_000_000)?,
                max_age: chrono::Duration::seconds(env.ranged(
                    "EON_SECONDS",
                    3600,
                    10..=31_536_000,
                )?),
            },
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}
