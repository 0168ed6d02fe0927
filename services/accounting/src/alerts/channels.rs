//! Delivering one alert to one channel: a Slack incoming webhook (Block Kit), an
//! e-mail (lettre over SMTP, plain-text and HTML parts), or a generic webhook whose
//! body is signed with HMAC-SHA256 over the channel's secret.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use overlaps_shared::html::escape;
use overlaps_shared::models::CHANNEL_CONFIRMATION;
use overlaps_shared::redact::strip_urls;
use overlaps_shared::ssrf;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What an alert says (the outbox row's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `incident_opened`, `incident_resolved`, `tls_expiring`, `test` or `operator`.
    #[serde(default)]
    pub kind: String,
    /// The site.
    #[serde(default)]
    pub website_id: Option<i64>,
    /// Its URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Its display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `down` or `up`.
    #[serde(default)]
    pub state: Option<String>,
    /// Why (a failure reason, or free text for operator alerts).
    #[serde(default)]
    pub cause: Option<String>,
    /// Since when.
    #[serde(default)]
    pub at: Option<String>,
    /// The incident.
    #[serde(default)]
    pub incident_id: Option<i64>,
    /// `channel_confirmation`: the token of the confirmation link (never sent
    /// to webhooks: only e-mail channels are confirmed).
    #[serde(default, skip_serializing)]
    pub confirmation_token: Option<String>,
}

impl Alert {
    /// A one-line summary, used as subject and fallback text.
    pub fn headline(&self) -> String {
        let site = self
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.url.as_deref())
            .unwrap_or("a site");
        match self.kind.as_str() {
            "incident_opened" => format!(
                "DOWN: {site} ({})",
                self.cause.as_deref().unwrap_or("unreachable")
            ),
            "incident_resolved" => format!("RECOVERED: {site} is up again"),
            "tls_expiring" => format!("TLS certificate of {site} expires soon"),
            "test" => "Overlaps test alert: this channel works".to_owned(),
            CHANNEL_CONFIRMATION => "Confirm Overlaps alerts to this address".to_owned(),
            _ => format!(
                "Overlaps operator alert: {}",
                self.cause.as_deref().unwrap_or("see the hub's logs")
            ),
        }
    }

    fn details(&self, api_base: &str) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        if let Some(token) = &self.confirmation_token {
            rows.push((
                "Why".to_owned(),
                "An Overlaps account asked to send website alerts to this address. \
                 Nothing more is sent unless you confirm; if you did not expect this, \
                 ignore it."
                    .to_owned(),
            ));
            rows.push((
                "Confirm".to_owned(),
                format!("{api_base}/api/v1/channel-confirmations/{token}"),
            ));
        }
        if let Some(url) = &self.url {
            rows.push(("Site".to_owned(), url.clone()));
        }
        if let Some(state) = &self.state {
            rows.push(("State".to_owned(), state.clone()));
        }
        if let Some(at) = &self.at {
            rows.push(("Since".to_owned(), at.clone()));
        }
        if let Some(cause) = &self.cause {
            rows.push(("Cause".to_owned(), cause.clone()));
        }
        if let Some(id) = self.website_id {
            rows.push((
                "Status".to_owned(),
                format!("{api_base}/api/v1/websites/{id}/status"),
            ));
        }
        rows
    }
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (network trouble, 5xx, 429).
    #[error("temporary: {0}")]
    Transient(String),
    /// Retrying cannot help (4xx, bad address, no SMTP configured).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Where and how alerts go out.
pub struct Sender {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    api_base: String,
    allow_private: bool,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("smtp", &self.smtp.is_some())
            .finish()
    }
}

/// The `X-Overlaps-Signature` value of a webhook body (defined in `shared`, beside
/// the protocol's reference vectors).
pub use overlaps_shared::webhook::webhook_signature;

impl Sender {
    /// A sender; `smtp_url` like `smtp://host:1025` (plain, dev),
    /// `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465` (TLS).
    /// Without `allow_private` (prod), Slack and webhook deliveries never reach a
    /// loopback, private, link-local or reserved address (the SSRF guard).
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        api_base: &str,
        allow_private: bool,
    ) -> Result<Self, DeliveryError> {
        let smtp = smtp_url
            .map(|url| AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map(|b| b.build()))
            .transpose()
            .map_err(|e| {
                DeliveryError::Permanent(format!("SMTP_URL: {}", strip_urls(&e.to_string())))
            })?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("SMTP_FROM: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(ssrf::GuardedResolver { allow_private })
            .build()
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        Ok(Sender {
            http,
            smtp,
            from,
            api_base: api_base.trim_end_matches('/').to_owned(),
            allow_private,
        })
    }

    /// Delivers `alert` to a channel of `kind` at `target`.
    pub async fn send(
        &self,
        kind: &str,
        target: &str,
        secret: Option<&str>,
        alert: &Alert,
    ) -> Result<(), DeliveryError> {
        match kind {
            "slack" => self.post(target, &self.slack_body(alert), None).await,
            "webhook" => {
                let body = serde_json::to_vec(alert)
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                let now = chrono::Utc::now().timestamp();
                let signature = webhook_signature(secret.unwrap_or_default(), now, &body)
                    .ok_or_else(|| DeliveryError::Permanent("cannot sign the body".into()))?;
                self.post_bytes(target, body, Some(signature)).await
            }
            "email" => self.email(target, alert).await,
            other => Err(DeliveryError::Permanent(format!(
                "unknown channel kind {other:?}"
            ))),
        }
    }

    /// A Slack Block Kit message.
    pub fn slack_body(&self, alert: &Alert) -> serde_json::Value {
        let fields: Vec<serde_json::Value> = alert
            .details(&self.api_base)
            .into_iter()
            .map(|(k, v)| json!({ "type": "mrkdwn", "text": format!("*{k}*\n{v}") }))
            .collect();
        let mut blocks = vec![
            json!({ "type": "header", "text": { "type": "plain_text", "text": alert.headline() } }),
        ];
        if !fields.is_empty() {
            blocks.push(json!({ "type": "section", "fields": fields }));
        }
        json!({ "text": alert.headline(), "blocks": blocks })
    }

    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
        signature: Option<String>,
    ) -> Result<(), DeliveryError> {
        let bytes =
            serde_json::to_vec(body).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        self.post_bytes(url, bytes, signature).await
    }

    async fn post_bytes(
        &self,
        url: &str,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> Result<(), DeliveryError> {
        // IP literals never reach the resolver: the guard looks at them here.
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| DeliveryError::Permanent(format!("bad URL: {e}")))?;
        if !self.allow_private && ssrf::literal_forbidden(&parsed) {
            return Err(DeliveryError::Permanent(
                "the target is a private or reserved address".into(),
            ));
        }
        let mut request = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-overlaps-signature", signature);
        }
        // The owner's webhook URL is a secret: never in a stored or logged error.
        let response = request.send().await.map_err(|e| {
            let refused = ssrf::is_refusal(&e);
            let builder = e.is_builder();
            let message = strip_urls(&e.without_url().to_string());
            if builder {
                DeliveryError::Permanent(format!("bad URL: {message}"))
            } else if refused {
                DeliveryError::Permanent(
                    "the target resolves to a private or reserved address".into(),
                )
            } else {
                DeliveryError::Transient(message)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(DeliveryError::Transient(format!("HTTP {status}")))
        } else {
            Err(DeliveryError::Permanent(format!("HTTP {status}")))
        }
    }

    async fn email(&self, to: &str, alert: &Alert) -> Result<(), DeliveryError> {
        let Some(smtp) = &self.smtp else {
            return Err(DeliveryError::Permanent("no SMTP_URL configured".into()));
        };
        let to: Mailbox = to
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("bad address: {e}")))?;
        let details = alert.details(&self.api_base);
        let text = std::iter::once(alert.headline())
            .chain(details.iter().map(|(k, v)| format!("{k}: {v}")))
            .collect::<Vec<_>>()
            .join("\n");
        let rows: String = details
            .iter()
            .map(|(k, v)| {
                format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        let html = format!(
            "<h2>{}</h2><table>{rows}</table>",
            escape(&alert.headline())
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(alert.headline())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        smtp.send(message).await.map(|_| ()).map_err(|e| {
            let message = strip_urls(&e.to_string());
            if e.is_permanent() {
                DeliveryError::Permanent(message)
            } else {
                DeliveryError::Transient(message)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_webhook_leaves_no_part_of_its_url_in_the_error() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sender = Sender::new(
            None,
            "Overlaps <a@b.example>",
            "http://127.0.0.1:8080",
            true,
        )
        .expect("a sender");
        let url = "http://user:secret-pass@127.0.0.1:1/hooks/secret-path?token=secret";
        let Err(err) = sender.post_bytes(url, b"{}".to_vec(), None).await else {
            panic!("nothing listens on port 1");
        };
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(matches!(err, DeliveryError::Transient(_)), "{shown}");
    }

    #[test]
    fn an_smtp_url_error_does_not_echo_the_password() {
        let Err(err) = Sender::new(
            Some("smtp://alerts:secret-pass@mail.example:587?tls=bogus"),
            "Overlaps <a@b.example>",
            "http://127.0.0.1:8080",
            true,
        ) else {
            return; // Accepted: nothing to leak.
        };
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
