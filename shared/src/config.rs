//! Configuration from the environment (and `.env`), validated at start-up.
//!
//! Every setting is read through [`Env`], so a missing or malformed value always
//! stops the process with a [`ConfigError`] that names the variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// A missing or malformed setting, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("configuration: {var} is required but not set (see .env.example)")]
    Missing {
        /// The variable's name.
        var: String,
    },
    /// A variable is set to a value that cannot be used.
    #[error("configuration: {var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: String,
        /// The value found.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

impl ConfigError {
    /// The name of the variable at fault.
    pub fn var(&self) -> &str {
        match self {
            ConfigError::Missing { var } | ConfigError::Invalid { var, .. } => var,
        }
    }
}

/// A snapshot of the environment variables that settings are read from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads the process environment, after loading `.env` (real variables win).
    pub fn from_process() -> Self {
        // A missing .env is normal (production sets real variables); a malformed one
        // is not silently half-read: dotenvy stops at the bad line and we say so.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            eprintln!("warning: .env could not be read completely: {err}");
        }
        Self::from_pairs(std::env::vars())
    }

    /// Builds an environment from explicit pairs (used by tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of `var`, treating an empty value as unset.
    pub fn raw(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Parses a required variable.
    pub fn required<T>(&self, var: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(var) {
            Some(value) => parse(var, value),
            None => Err(ConfigError::Missing { var: var.into() }),
        }
    }

    /// Parses an optional variable, falling back to `default` when unset.
    pub fn optional<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.maybe(var)?.unwrap_or(default))
    }

    /// Parses an optional variable that has no default.
    pub fn maybe<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.raw(var).map(|value| parse(var, value)).transpose()
    }

    /// Parses an optional amount in the chain's smallest unit (an integer below 2^256).
    pub fn amount(
        &self,
        var: &str,
        default: crate::eth::U256,
    ) -> Result<crate::eth::U256, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(text) => crate::money::parse(text)
                .map_err(|_| invalid(var, text, "an integer amount in the chain's smallest unit")),
        }
    }

    /// `REWARD_PER_CHECK`: the reward for one result that agreed with its site's
    /// majority, in the chain's smallest unit. Accounting credits it, the audit
    /// re-derives with it and the API publishes it, so all read it here.
    pub fn reward_per_check(&self) -> Result<crate::eth::U256, ConfigError> {
        self.amount("REWARD_PER_CHECK", crate::eth::U256::exp10(12))
    }

    /// Parses an optional integer that must lie in `range`.
    pub fn ranged<T>(
        &self,
        var: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.optional(var, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(
                var,
                value,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }
}

fn parse<T>(var: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .parse()
        .map_err(|err: T::Err| invalid(var, value, err))
}

/// Builds a [`ConfigError::Invalid`].
pub fn invalid(var: &str, value: impl Display, reason: impl Display) -> ConfigError {
    ConfigError::Invalid {
        var: var.into(),
        // A URL's credentials, path and query may be secrets: never echo them.
        value: crate::redact::strip_urls(&value.to_string()),
        reason: reason.to_string(),
    }
}

/// Where the process runs: a dev network or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local development: dev chain, dev sinks, private targets allowed.
    Dev,
    /// Production: real chain, no dev defaults accepted.
    Prod,
}

impl FromStr for AppEnv {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" | "development" => Ok(AppEnv::Dev),
            "prod" | "production" => Ok(AppEnv::Prod),
            _ => Err("expected `dev` or `prod`"),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `pretty` or `json`"),
        }
    }
}

/// A PostgreSQL connection URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as a string, including any password.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                write!(f, "{url}")
            }
            Err(_) => f.write_str("<invalid url>"),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("expected a postgres:// URL".into());
        }
        if url.path().trim_start_matches('/').is_empty() {
            return Err("the URL names no database".into());
        }
        Ok(DatabaseUrl(s.to_owned()))
    }
}

/// A Redis connection URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.write_str(&crate::redact::redact_url(&self.0))
    }
}

impl RedisUrl {
    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RedisUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err("expected a redis:// or rediss:// URL".into());
        }
        Ok(RedisUrl(s.to_owned()))
    }
}

/// How a binary logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `LOG_FORMAT`: pretty or json.
    pub format: LogFormat,
    /// `LOG_LEVEL`: a tracing filter such as `info` or `info,overlaps_server=debug`.
    pub level: String,
}

impl LogConfig {
    /// Reads and validates the logging settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let level: String = env.optional("LOG_LEVEL", "info".to_owned())?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&level) {
            return Err(invalid("LOG_LEVEL", &level, err));
        }
        Ok(LogConfig {
            format: env.optional("LOG_FORMAT", LogFormat::Pretty)?,
            level,
        })
    }
}

/// Settings every binary that touches PostgreSQL and Redis reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `APP_ENV`: dev or prod.
    pub app_env: AppEnv,
    /// `LOG_FORMAT` and `LOG_LEVEL`.
    pub log: LogConfig,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: connections per process.
    pub database_pool_size: u32,
    /// `REDIS_URL`.
    pub redis_url: RedisUrl,
    /// `REDIS_PREFIX`: every Redis key and queue of this deployment starts with it.
    pub redis_prefix: String,
}

impl CommonConfig {
    /// Reads and validates the common settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let redis_prefix: String = env.optional("REDIS_PREFIX", "overlaps".to_owned())?;
        if !redis_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(invalid(
                "REDIS_PREFIX",
                &redis_prefix,
                "use letters, digits and _ - . : only",
            ));
        }
        let app_env = env.optional("APP_ENV", AppEnv::Dev)?;
        // Every hub binary refuses the public dev values of the hub's shared settings.
        crate::dev_values::refuse_in_prod(env, app_env, &crate::dev_values::DevValue::HUB)?;
        Ok(CommonConfig {
            app_env,
            log: LogConfig::from_env(env)?,
            database_url: env.required("DATABASE_URL")?,
            database_pool_size: env.ranged("DATABASE_POOL_SIZE", 10, 1..=500)?,
            redis_url: env.required("REDIS_URL")?,
            redis_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ]
    }

    fn with(overrides: &[(&'static str, &'static str)]) -> Result<CommonConfig, ConfigError> {
        let mut pairs = base();
        pairs.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
        pairs.extend(overrides.iter().filter(|(_, v)| !v.is_empty()));
        CommonConfig::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn defaults_apply_when_only_required_values_are_set() -> Result<(), ConfigError> {
        let config = with(&[])?;
        assert_eq!(config.app_env, AppEnv::Dev);
        assert_eq!(config.log.format, LogFormat::Pretty);
        assert_eq!(config.database_pool_size, 10);
        assert_eq!(config.redis_prefix, "overlaps");
        Ok(())
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for var in ["DATABASE_URL", "REDIS_URL"] {
            let err = with(&[(var, "")]).err();
            assert_eq!(err, Some(ConfigError::Missing { var: var.into() }));
        }
    }

    #[test]
    fn each_malformed_variable_is_named() {
        let cases = [
            ("DATABASE_URL", "mysql://x/y"),
            ("DATABASE_URL", "postgres://127.0.0.1:5432"),
            ("DATABASE_URL", "not a url"),
            ("REDIS_URL", "http://127.0.0.1:6379"),
            ("DATABASE_POOL_SIZE", "0"),
            ("DATABASE_POOL_SIZE", "ten"),
            ("APP_ENV", "staging"),
            ("LOG_FORMAT", "xml"),
            ("LOG_LEVEL", "info,=[["),
            ("REDIS_PREFIX", "has space"),
        ];
        for (var, value) in cases {
            match with(&[(var, value)]) {
                Err(err @ ConfigError::Invalid { .. }) => {
                    assert_eq!(err.var(), var, "{value}");
                    assert!(err.to_string().contains(var), "{err}");
                }
                other => panic!("{var}={value} gave {other:?}"),
            }
        }
    }

    #[test]
    fn database_url_debug_hides_the_password() -> Result<(), String> {
        let url: DatabaseUrl = "postgres://user:secret@host/db".parse()?;
        let shown = format!("{url:?}");
        assert!(!shown.contains("secret"), "{shown}");
        Ok(())
    }

    #[test]
    fn every_hub_binary_refuses_each_dev_value_in_prod() {
        use crate::dev_values::{
            ANVIL_PRIVATE_KEYS, DEV_CANARY_SECRET, DEV_HUB_ID, DEV_OPERATOR_API_KEY,
        };
        for (var, value) in [
            ("OPERATOR_API_KEY", DEV_OPERATOR_API_KEY),
            ("OPERATOR_PRIVATE_KEY", ANVIL_PRIVATE_KEYS[0]),
            ("OPERATOR_PRIVATE_KEY", ANVIL_PRIVATE_KEYS[7]),
            ("HUB_ID", DEV_HUB_ID),
            ("CANARY_SECRET", DEV_CANARY_SECRET),
        ] {
            let mut pairs = base();
            pairs.push((var, value));
            assert!(CommonConfig::from_env(&Env::from_pairs(pairs.clone())).is_ok());
            pairs.push(("APP_ENV", "prod"));
            let err = CommonConfig::from_env(&Env::from_pairs(pairs)).expect_err(var);
            assert_eq!(err.var(), var);
            if var != "HUB_ID" {
                assert!(!err.to_string().contains(&value[4..]), "{err}");
            }
        }
    }

    #[test]
    fn redis_url_debug_and_url_errors_hide_credentials() {
        let url: RedisUrl = "redis://:secret-pass@127.0.0.1:6379/2"
            .parse()
            .expect("a URL");
        let shown = format!("{url:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let mut pairs = base();
        pairs[0] = ("DATABASE_URL", "mysql://u:secret-pass@127.0.0.1/overlaps");
        let err = CommonConfig::from_env(&Env::from_pairs(pairs)).expect_err("refused");
        assert_eq!(err.var(), "DATABASE_URL");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
