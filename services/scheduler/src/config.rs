//! Settings of the scheduler.

use std::time::Duration;

use overlaps_shared::canary::{CanaryEndpoints, CanarySecret};
use overlaps_shared::config::{AppEnv, CommonConfig, ConfigError, Env, invalid};
use overlaps_shared::service::ServiceConfig;

use crate::canaries::{CanaryPolicy, CanaryServing};
use crate::rounds::RoundRules;
use overlaps_shared::admission::AdmissionPolicy;

/// Everything `scheduler` reads from the environment.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Database, Redis, logging.
    pub common: CommonConfig,
    /// `HUB_ID`, `ROUND_SECONDS` (a round opens this often; its results are due
    /// by its end), `SEED_CHAIN_ROUNDS`, `CANARY_*` and
    /// `TARGET_HOST_MAX_CHECKS_PER_MINUTE`.
    pub rules: RoundRules,
    /// `SCHEDULER_LOCK_TTL_SECONDS`: a dead leader is replaced within this.
    pub leader_ttl: Duration,
}

impl ServiceConfig for SchedulerConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env)?;
        let canaries = canary_policy(env, common.app_env)?;
        let rules = RoundRules {
            length: Duration::from_secs(env.ranged("ROUND_SECONDS", 30, 2..=3600)?),
            hub_id: env.optional("HUB_ID", "overlaps-dev".to_owned())?,
            // Opening a round hashes up to this many times; 100,000 is still a few
            // milliseconds, and an epoch is how far ahead each chain is committed.
            seed_chain_rounds: env.ranged("SEED_CHAIN_ROUNDS", 1024, 1..=100_000)?,
            canaries,
            host_checks_per_minute: env.ranged(
                "TARGET_HOST_MAX_CHECKS_PER_MINUTE",
                600,
                1..=10_000_000,
            )?,
            admission: AdmissionPolicy::from_env(env)?,
        };
        Ok(SchedulerConfig {
            common,
            rules,
            leader_ttl: Duration::from_secs(env.ranged(
                "SCHEDULER_LOCK_TTL_SECONDS",
                10,
                2..=300,
            )?),
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// `CANARY_SECRET` with the three `CANARY_*_URL` endpoints turn canaries on; prod
/// refuses to run without them unless `CANARY_RATE_BP=0` says so explicitly.
fn canary_policy(env: &Env, app_env: AppEnv) -> Result<CanaryPolicy, ConfigError> {
    let rate_bp = env.ranged("CANARY_RATE_BP", 1_000u32, 0..=10_000)?;
    let chain_rounds = env.ranged("CANARY_CHAIN_ROUNDS", 1_024u32, 1..=1_000_000)?;
    let timeout_ms = env.ranged("CANARY_TIMEOUT_MS", 10_000u32, 100..=60_000)?;
    // Parsed by hand: an error must not print the secret.
    let secret = match env.raw("CANARY_SECRET") {
        None => None,
        Some(text) => Some(
            text.parse::<CanarySecret>()
                .map_err(|reason| invalid("CANARY_SECRET", "(hidden)", reason))?,
        ),
    };
    let urls = [
        ("CANARY_HTTP_URL", "http"),
        ("CANARY_TLS_URL", "https"),
        ("CANARY_REFUSED_URL", "http"),
    ]
    .map(|(var, scheme)| {
        env.maybe::<url::Url>(var).and_then(|url| match url {
            Some(url) if url.scheme() != scheme => {
                Err(invalid(var, &url, format!("must be an {scheme}:// URL")))
            }
            other => Ok(other),
        })
    });
    let [http, tls, refused] = urls;
    let (http, tls, refused) = (http?, tls?, refused?);
    let serving = match (secret, http, tls, refused) {
        (None, None, None, None) => {
            if app_env == AppEnv::Prod && rate_bp > 0 {
                return Err(ConfigError::Missing {
                    var: "CANARY_SECRET".into(),
                });
            }
            None
        }
        (Some(secret), Some(http), Some(tls), Some(refused)) => Some(CanaryServing {
            secret,
            endpoints: CanaryEndpoints { http, tls, refused },
            timeout_ms,
        }),
        (None, ..) => {
            return Err(ConfigError::Missing {
                var: "CANARY_SECRET".into(),
            });
        }
        (Some(_), None, ..) => {
            return Err(ConfigError::Missing {
                var: "CANARY_HTTP_URL".into(),
            });
        }
        (Some(_), _, None, _) => {
            return Err(ConfigError::Missing {
                var: "CANARY_TLS_URL".into(),
            });
        }
        (Some(_), _, _, None) => {
            return Err(ConfigError::Missing {
                var: "CANARY_REFUSED_URL".into(),
            });
        }
    };
    Ok(CanaryPolicy {
        rate_bp,
        chain_rounds,
        serving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "11223344556677889900aabbccddeeff11223344556677889900aabbccddeeff";

    fn read(pairs: &[(&str, &str)]) -> Result<SchedulerConfig, ConfigError> {
        let mut all = vec![
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/overlaps"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ];
        all.extend_from_slice(pairs);
        SchedulerConfig::from_env(&Env::from_pairs(all))
    }

    fn var_of(result: Result<SchedulerConfig, ConfigError>) -> String {
        match result {
            Ok(_) => "accepted".into(),
            Err(err) => err.var().to_owned(),
        }
    }

    #[test]
    fn canaries_run_with_a_secret_and_three_endpoints_and_prod_requires_them() {
        let endpoints = [
            ("CANARY_HTTP_URL", "http://canary.example"),
            ("CANARY_TLS_URL", "https://canary.example:8443"),
            ("CANARY_REFUSED_URL", "http://canary.example:81"),
        ];
        let mut full = vec![("CANARY_SECRET", SECRET)];
        full.extend_from_slice(&endpoints);
        let config = read(&full).map_err(|e| e.to_string());
        assert!(
            config.is_ok_and(
                |c| c.rules.canaries.serving.is_some() && c.rules.canaries.rate_bp == 1_000
            )
        );
        // Dev may run without; prod only when it says so with a zero rate.
        assert!(read(&[]).is_ok_and(|c| c.rules.canaries.serving.is_none()));
        assert_eq!(var_of(read(&[("APP_ENV", "prod")])), "CANARY_SECRET");
        assert!(read(&[("APP_ENV", "prod"), ("CANARY_RATE_BP", "0")]).is_ok());
        // Half a configuration names what is missing.
        assert_eq!(var_of(read(&endpoints)), "CANARY_SECRET");
        assert_eq!(
            var_of(read(&[("CANARY_SECRET", SECRET)])),
            "CANARY_HTTP_URL"
        );
        let mut no_tls = vec![("CANARY_SECRET", SECRET), endpoints[0], endpoints[2]];
        assert_eq!(var_of(read(&no_tls)), "CANARY_TLS_URL");
        no_tls.push(("CANARY_TLS_URL", "http://not-tls.example"));
        assert_eq!(var_of(read(&no_tls)), "CANARY_TLS_URL");
        let mut bad_rate = full.clone();
        bad_rate.push(("CANARY_RATE_BP", "10001"));
        assert_eq!(var_of(read(&bad_rate)), "CANARY_RATE_BP");
    }

    #[test]
    fn a_malformed_secret_is_named_but_never_printed() {
        let Err(err) = read(&[("CANARY_SECRET", "zz-secret-material")]) else {
            panic!("a malformed secret was accepted");
        };
        assert_eq!(err.var(), "CANARY_SECRET");
        assert!(!err.to_string().contains("secret-material"), "{err}");
    }
}
