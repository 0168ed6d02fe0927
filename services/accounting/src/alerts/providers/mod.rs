//! One adapter per chat or paging service: each turns the shared [`Message`] into
//! the HTTP request its service documents. Sending (one HTTP client, the SSRF
//! guard, one error mapping, retries through the outbox) is shared, in
//! [`super::channels`].

pub mod discord;
pub mod mattermost;
pub mod ntfy;
pub mod pagerduty;
pub mod pushover;
pub mod slack;
pub mod teams;
pub mod telegram;

use super::message::{Alert, Message};

/// The services' own API addresses, overridable for tests (a local sink) and
/// for self-hosted relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUrls {
    /// `TELEGRAM_API_URL`: the Bot API base (`https://api.telegram.org`).
    pub telegram: String,
    /// `PAGERDUTY_EVENTS_URL`: the Events API v2 endpoint
    /// (`https://events.pagerduty.com/v2/enqueue`).
    pub pagerduty: String,
    /// `PUSHOVER_API_URL`: the messages endpoint
    /// (`https://api.pushover.net/1/messages.json`).
    pub pushover: String,
}

impl Default for ProviderUrls {
    fn default() -> Self {
        ProviderUrls {
            telegram: "https://api.telegram.org".to_owned(),
            pagerduty: "https://events.pagerduty.com/v2/enqueue".to_owned(),
            pushover: "https://api.pushover.net/1/messages.json".to_owned(),
        }
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json`.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`.
    Form(Vec<(&'static str, String)>),
    /// `text/plain; charset=utf-8`.
    Text(String),
}

/// The HTTP request one channel's alert becomes (always a POST).
#[derive(Clone, PartialEq)]
pub struct Outbound {
    /// Where it goes; may hold a credential (a Telegram bot token): never logged.
    pub url: String,
    /// Extra headers (may hold a credential too).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL and headers may carry the channel's secret.
        f.debug_struct("Outbound")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// A JSON POST to `url`.
    pub fn json(url: impl Into<String>, body: serde_json::Value) -> Self {
        Outbound {
            url: url.into(),
            headers: Vec::new(),
            body: Body::Json(body),
        }
    }
}

/// A channel as its adapter sees it.
#[derive(Clone, Copy)]
pub struct Channel<'a> {
    /// Its kind (`discord`, `telegram`, ...).
    pub kind: &'a str,
    /// Its target: a webhook or topic URL, a chat id, a user key.
    pub target: &'a str,
    /// Its credential, for the kinds that have one.
    pub secret: Option<&'a str>,
}

/// Why an adapter cannot make a request (a channel stored without what its kind
/// needs: retrying cannot help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigMissing(pub String);

/// The request `channel` receives for `alert`; `None` when `kind` is not a
/// provider adapter's (e-mail and signed webhooks are sent by the sender).
pub fn render(
    urls: &ProviderUrls,
    channel: Channel<'_>,
    alert: &Alert,
    message: &Message,
) -> Option<Result<Outbound, ConfigMissing>> {
    let secret = || {
        channel
            .secret
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ConfigMissing(format!("the {} channel has no credential", channel.kind)))
    };
    Some(match channel.kind {
        "slack" => Ok(Outbound::json(channel.target, slack::body(message))),
        "discord" => Ok(Outbound::json(channel.target, discord::body(message))),
        "mattermost" => Ok(Outbound::json(channel.target, mattermost::body(message))),
        "teams" => Ok(Outbound::json(channel.target, teams::body(message))),
        "telegram" => secret().map(|token| {
            Outbound::json(
                telegram::url(&urls.telegram, token),
                telegram::body(channel.target, message),
            )
        }),
        "pagerduty" => secret()
            .map(|key| Outbound::json(&urls.pagerduty, pagerduty::body(key, alert, message))),
        "pushover" => secret().map(|token| Outbound {
            url: urls.pushover.clone(),
            headers: Vec::new(),
            body: Body::Form(pushover::form(token, channel.target, message)),
        }),
        "ntfy" => Ok(ntfy::request(channel.target, channel.secret, message)),
        _ => return None,
    })
}
