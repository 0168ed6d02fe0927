//! Delivering one alert to one channel: e-mail (lettre over SMTP, plain-text and
//! HTML parts), a generic webhook whose body is signed with HMAC-SHA256 over the
//! channel's secret, or a chat or paging service through its adapter
//! ([`super::providers`]). Every HTTP delivery shares one client, the SSRF guard
//! and one mapping of failures (4xx permanent except 408 and 429; 5xx, 408, 429
//! and network trouble temporary).

use std::time::Duration;

use chrono_tz::Tz;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use overlaps_shared::html::escape;
use overlaps_shared::redact::strip_urls;
use overlaps_shared::ssrf;

pub use super::message::Alert;
use super::message::Message;
use super::providers::{self, Body, Outbound, ProviderUrls};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (network trouble, 5xx, 408, 429).
    #[error("temporary: {0}")]
    Transient(String),
    /// Retrying cannot help (other 4xx, bad address, no SMTP configured).
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
    urls: ProviderUrls,
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
            urls: ProviderUrls::default(),
        })
    }

    /// The same sender, reaching Telegram, PagerDuty and Pushover at `urls`.
    pub fn with_provider_urls(mut self, urls: ProviderUrls) -> Self {
        self.urls = urls;
        self
    }

    /// The readable message for `alert`, times also in `zone`.
    pub fn message(&self, alert: &Alert, zone: Option<Tz>) -> Message {
        alert.message(&self.api_base, zone)
    }

    /// Delivers `alert` to a channel of `kind` at `target`, times also in
    /// `zone` (the owner's).
    pub async fn send(
        &self,
        kind: &str,
        target: &str,
        secret: Option<&str>,
        alert: &Alert,
        zone: Option<Tz>,
    ) -> Result<(), DeliveryError> {
        let message = self.message(alert, zone);
        match kind {
            "webhook" => {
                // The documented fields, and the link every other channel shows.
                let mut alert = alert.clone();
                alert.link = message.link.clone();
                let body = serde_json::to_vec(&alert)
                    .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
                let now = chrono::Utc::now().timestamp();
                let signature = webhook_signature(secret.unwrap_or_default(), now, &body)
                    .ok_or_else(|| DeliveryError::Permanent("cannot sign the body".into()))?;
                self.post_bytes(
                    target,
                    "application/json",
                    body,
                    &[("x-overlaps-signature", signature)],
                )
                .await
            }
            "email" => self.email(target, alert, &message).await,
            other => {
                let channel = providers::Channel {
                    kind: other,
                    target,
                    secret,
                };
                match providers::render(&self.urls, channel, alert, &message) {
                    Some(Ok(outbound)) => self.post(outbound).await,
                    Some(Err(missing)) => Err(DeliveryError::Permanent(missing.to_string())),
                    None => Err(DeliveryError::Permanent(format!(
                        "unknown channel kind {other:?}"
                    ))),
                }
            }
        }
    }

    /// The request a Slack or provider channel would receive (for tests and
    /// previews); `None` for e-mail and webhooks, or a channel lacking its
    /// credential.
    pub fn render(
        &self,
        kind: &str,
        target: &str,
        secret: Option<&str>,
        alert: &Alert,
        zone: Option<Tz>,
    ) -> Option<Outbound> {
        let message = self.message(alert, zone);
        let channel = providers::Channel {
            kind,
            target,
            secret,
        };
        providers::render(&self.urls, channel, alert, &message)?.ok()
    }

    async fn post(&self, outbound: Outbound) -> Result<(), DeliveryError> {
        let (content_type, body) = match outbound.body {
            Body::Json(value) => (
                "application/json",
                serde_json::to_vec(&value).map_err(|e| DeliveryError::Permanent(e.to_string()))?,
            ),
            Body::Form(fields) => (
                "application/x-www-form-urlencoded",
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish()
                    .into_bytes(),
            ),
            Body::Text(text) => ("text/plain; charset=utf-8", text.into_bytes()),
        };
        self.post_bytes(&outbound.url, content_type, body, &outbound.headers)
            .await
    }

    async fn post_bytes(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
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
            .header("content-type", content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        // The owner's webhook URL is a secret (and a Telegram URL holds the bot
        // token): never in a stored or logged error.
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
        } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            Err(DeliveryError::Transient(format!("HTTP {status}")))
        } else {
            Err(DeliveryError::Permanent(format!("HTTP {status}")))
        }
    }

    async fn email(&self, to: &str, alert: &Alert, message: &Message) -> Result<(), DeliveryError> {
        let Some(smtp) = &self.smtp else {
            return Err(DeliveryError::Permanent("no SMTP_URL configured".into()));
        };
        let to: Mailbox = to
            .parse()
            .map_err(|e| DeliveryError::Permanent(format!("bad address: {e}")))?;
        let mut facts = message.facts.clone();
        if let Some(token) = &alert.confirmation_token {
            facts.extend(confirmation_facts(&self.api_base, token));
        }
        let text = std::iter::once(message.title.clone())
            .chain([String::new(), message.text.clone(), String::new()])
            .chain(facts.iter().map(|f| format!("{}: {}", f.label, f.value)))
            .chain(message.link.iter().map(|l| format!("Details: {l}")))
            .collect::<Vec<_>>()
            .join("\n");
        // The HTML part links the incident below the table instead.
        let rows: String = facts
            .iter()
            .map(|f| {
                format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                    escape(&f.label),
                    escape(&f.value)
                )
            })
            .collect();
        let link = message
            .link
            .as_deref()
            .map(|l| format!("<p><a href=\"{}\">Open the incident</a></p>", escape(l)))
            .unwrap_or_default();
        let html = format!(
            "<h2>{}</h2><p>{}</p><table>{rows}</table>{link}",
            escape(&message.title),
            escape(&message.text)
        );
        let email = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.title.clone())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        smtp.send(email).await.map(|_| ()).map_err(|e| {
            let message = strip_urls(&e.to_string());
            if e.is_permanent() {
                DeliveryError::Permanent(message)
            } else {
                DeliveryError::Transient(message)
            }
        })
    }
}

/// What a confirmation request says beside its title: why it came, and the link.
fn confirmation_facts(api_base: &str, token: &str) -> Vec<super::message::Fact> {
    vec![
        super::message::Fact {
            label: "Why".to_owned(),
            value: "An Overlaps account asked to send website alerts to this address. \
                    Nothing more is sent unless you confirm; if you did not expect this, \
                    ignore it."
                .to_owned(),
        },
        super::message::Fact {
            label: "Confirm".to_owned(),
            value: format!("{api_base}/api/v1/channel-confirmations/{token}"),
        },
    ]
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
        let Err(err) = sender
            .post_bytes(url, "application/json", b"{}".to_vec(), &[])
            .await
        else {
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
