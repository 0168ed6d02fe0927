//! ntfy: a POST to the topic URL, the text as body, `Title`, `Priority`, `Tags`
//! and `Click` headers (non-ASCII titles as RFC 2047 encoded words), the access
//! token (if any) as a bearer token.

use base64::Engine;

use super::{Body, Outbound};
use crate::alerts::message::{Message, Severity, truncate};

/// `Priority` (1–5 by name) and `Tags` (emoji short codes) for a severity.
pub fn priority_and_tags(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Down => ("urgent", "rotating_light"),
        Severity::Operator => ("high", "wrench"),
        Severity::Warning => ("high", "warning"),
        Severity::Recovered => ("default", "white_check_mark"),
        Severity::Info => ("low", "information_source"),
    }
}

/// A header value: as it is when ASCII, else `=?UTF-8?B?…?=`.
pub fn header_text(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.is_ascii() {
        flat
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(flat)
        )
    }
}

/// The request to topic URL `topic` (with access token `token`, if any).
pub fn request(topic: &str, token: Option<&str>, message: &Message) -> Outbound {
    let (priority, tags) = priority_and_tags(message.severity);
    let mut headers = vec![
        ("title", header_text(&truncate(&message.title, 250))),
        ("priority", priority.to_owned()),
        ("tags", tags.to_owned()),
    ];
    if let Some(link) = &message.link {
        headers.push(("click", link.clone()));
    }
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    Outbound {
        url: topic.to_owned(),
        headers,
        // Above 4096 bytes ntfy turns a message into an attachment.
        body: Body::Text(truncate(&message.plain_text(), 3000)),
    }
}
