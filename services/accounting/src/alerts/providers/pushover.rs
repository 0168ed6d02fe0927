//! Pushover: a form POST to the messages API with the application token and the
//! user (or group) key; title ≤ 250, message ≤ 1024, url ≤ 512, url_title ≤ 100.

use crate::alerts::message::{Message, Severity, truncate};

/// The form fields.
pub fn form(token: &str, user: &str, message: &Message) -> Vec<(&'static str, String)> {
    let priority = match message.severity {
        Severity::Down | Severity::Operator => "1",
        Severity::Warning | Severity::Recovered => "0",
        Severity::Info => "-1",
    };
    let mut body = message.text.clone();
    for fact in &message.facts {
        body.push_str(&format!("\n{}: {}", fact.label, fact.value));
    }
    let mut form = vec![
        ("token", token.to_owned()),
        ("user", user.to_owned()),
        ("title", truncate(&message.title, 250)),
        ("message", truncate(&body, 1024)),
        ("priority", priority.to_owned()),
    ];
    if let Some(link) = message.link.as_deref().filter(|l| l.len() <= 512) {
        form.push(("url", link.to_owned()));
        form.push(("url_title", "Open the incident".to_owned()));
    }
    if let Some(at) = message
        .timestamp
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        form.push(("timestamp", at.timestamp().to_string()));
    }
    form
}
