//! What each channel kind needs, checked before anything is stored: its target (a
//! URL, an e-mail address, a Telegram chat id, a Pushover user key, or none for
//! PagerDuty), its credential (`secret`: a webhook's signing key, a bot token, a
//! routing key, an application or access token) and its reminders. Each refusal
//! is a 422 naming the field; a credential is never echoed in it.

use overlaps_shared::models::CHANNEL_KINDS;
use rand::RngCore;

use super::errors::ApiError;

/// What a PagerDuty channel stores as its target: it has none of its own (the
/// routing key, its credential, says where events go).
pub const PAGERDUTY_TARGET: &str = "events-v2";

/// Default `reminder_max` when only `reminder_minutes` is given.
pub const DEFAULT_REMINDER_MAX: i32 = 3;

/// The kinds, as error messages list them.
fn kinds() -> String {
    CHANNEL_KINDS.join(", ")
}

/// `kind` is one the hub delivers to.
pub fn validate_kind(kind: &str) -> Result<(), ApiError> {
    if CHANNEL_KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "kind",
            format!("kind must be one of {}", kinds()),
        ))
    }
}

fn http_url(target: &str) -> Result<String, ApiError> {
    let url = url::Url::parse(target).map_err(|err| {
        ApiError::invalid("target", format!("target must be an http(s) URL: {err}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ApiError::invalid("target", "target must be an http(s) URL"));
    }
    Ok(url.to_string())
}

fn alphanumeric(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The target to store for a channel of `kind`.
pub fn validate_target(kind: &str, target: Option<&str>) -> Result<String, ApiError> {
    let target = target.map(str::trim).filter(|t| !t.is_empty());
    if kind == "pagerduty" {
        return match target {
            None | Some(PAGERDUTY_TARGET) => Ok(PAGERDUTY_TARGET.to_owned()),
            Some(_) => Err(ApiError::invalid(
                "target",
                "a pagerduty channel has no target: put the integration's routing key in secret",
            )),
        };
    }
    let Some(target) = target else {
        return Err(ApiError::invalid("target", "target is required"));
    };
    if target.len() > 2048 || target.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "target",
            "target must be at most 2048 printable characters",
        ));
    }
    match kind {
        "slack" | "webhook" | "discord" | "teams" | "mattermost" | "ntfy" => http_url(target),
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
        "telegram" => {
            let numeric = target.strip_prefix('-').unwrap_or(target);
            let id = !numeric.is_empty()
                && numeric.len() <= 20
                && numeric.chars().all(|c| c.is_ascii_digit());
            let username = target.strip_prefix('@').is_some_and(|name| {
                (5..=32).contains(&name.len())
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if id || username {
                Ok(target.to_owned())
            } else {
                Err(ApiError::invalid(
                    "target",
                    "target must be a Telegram chat id (e.g. -1001234567890) or @channelname",
                ))
            }
        }
        "pushover" => {
            if alphanumeric(target, 30) {
                Ok(target.to_owned())
            } else {
                Err(ApiError::invalid(
                    "target",
                    "target must be a Pushover user or group key (30 letters and digits)",
                ))
            }
        }
        _ => Err(ApiError::invalid(
            "kind",
            format!("kind must be one of {}", kinds()),
        )),
    }
}

/// The credential to store for a channel of `kind` (`given` by the caller; a
/// webhook without one gets a random key). Messages never repeat the value.
pub fn validate_secret(kind: &str, given: Option<String>) -> Result<Option<String>, ApiError> {
    let bad = |message: &str| Err(ApiError::invalid("secret", message.to_owned()));
    match (kind, given) {
        ("webhook", Some(s))
            if (16..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(Some(s))
        }
        ("webhook", Some(_)) => bad("secret must be 16 to 128 printable ASCII characters"),
        ("webhook", None) => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            Ok(Some(hex::encode(bytes)))
        }
        ("telegram", Some(s)) if is_bot_token(&s) => Ok(Some(s)),
        ("telegram", _) => {
            bad("secret must be the bot token from @BotFather (<digits>:<about 35 characters>)")
        }
        ("pagerduty", Some(s)) if alphanumeric(&s, 32) => Ok(Some(s)),
        ("pagerduty", _) => {
            bad("secret must be the Events API v2 integration (routing) key: 32 letters and digits")
        }
        ("pushover", Some(s)) if alphanumeric(&s, 30) => Ok(Some(s)),
        ("pushover", _) => {
            bad("secret must be the Pushover application token: 30 letters and digits")
        }
        ("ntfy", Some(s))
            if (1..=128).contains(&s.len()) && s.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Ok(Some(s))
        }
        ("ntfy", Some(_)) => {
            bad("secret (the ntfy access token) must be 1 to 128 printable ASCII characters")
        }
        ("ntfy", None) => Ok(None),
        (_, Some(_)) => {
            bad("only webhook, telegram, pagerduty, pushover and ntfy channels have a secret")
        }
        (_, None) => Ok(None),
    }
}

/// `123456789:AAF...`: the bot id, a colon, and the key part.
fn is_bot_token(token: &str) -> bool {
    token.split_once(':').is_some_and(|(id, key)| {
        (3..=15).contains(&id.len())
            && id.chars().all(|c| c.is_ascii_digit())
            && (20..=64).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// The last four characters of a provider credential (`…WXYZ`), enough to tell
/// two apart; webhook keys and channels without a credential show none.
pub fn secret_hint(kind: &str, secret: Option<&str>) -> Option<String> {
    if kind == "webhook" {
        return None;
    }
    let secret = secret?;
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Some(format!("…{tail}"))
}

/// `reminder_minutes` (1..=10080, a week) and `reminder_max` (1..=100), both or
/// neither stored; `reminder_max` defaults to [`DEFAULT_REMINDER_MAX`].
pub fn validate_reminders(
    minutes: Option<i32>,
    max: Option<i32>,
) -> Result<(Option<i32>, Option<i32>), ApiError> {
    match (minutes, max) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(ApiError::invalid(
            "reminder_max",
            "reminder_max needs reminder_minutes",
        )),
        (Some(m), _) if !(1..=10_080).contains(&m) => Err(ApiError::invalid(
            "reminder_minutes",
            "reminder_minutes must be 1 to 10080 (a week)",
        )),
        (Some(_), Some(n)) if !(1..=100).contains(&n) => Err(ApiError::invalid(
            "reminder_max",
            "reminder_max must be 1 to 100",
        )),
        (Some(m), n) => Ok((Some(m), Some(n.unwrap_or(DEFAULT_REMINDER_MAX)))),
    }
}
