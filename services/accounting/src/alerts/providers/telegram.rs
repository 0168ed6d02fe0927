//! Telegram Bot API `sendMessage`: HTML text (only `<b>` and `<a>`, every `&`,
//! `<`, `>` and `"` escaped), at most 4096 characters, link previews off.

use serde_json::{Value, json};

use crate::alerts::message::{Message, truncate};

/// Telegram's limit on a message's text.
pub const MAX_TEXT: usize = 4096;

/// `https://api.telegram.org/bot<token>/sendMessage` (the token is in the path:
/// this URL is never logged).
pub fn url(base: &str, token: &str) -> String {
    format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'))
}

/// The `sendMessage` body for chat `chat_id`.
pub fn body(chat_id: &str, message: &Message) -> Value {
    json!({
        "chat_id": chat_id,
        "text": text(message),
        "parse_mode": "HTML",
        "link_preview_options": { "is_disabled": true },
    })
}

/// The HTML text: title, summary, facts, link; parts that would pass the limit
/// are left out whole (never cut inside a tag or an entity).
pub fn text(message: &Message) -> String {
    let mut parts = vec![
        format!("<b>{}</b>", escape(&truncate(&message.title, 300))),
        escape(&truncate(&message.text, 1000)),
    ];
    parts.extend(message.facts.iter().map(|f| {
        format!(
            "<b>{}</b>: {}",
            escape(&f.label),
            escape(&truncate(&f.value, 500))
        )
    }));
    if let Some(link) = &message.link {
        parts.push(format!(
            "<a href=\"{}\">Open the incident</a>",
            escape(link)
        ));
    }
    let mut out = String::new();
    for part in parts {
        let sep = if out.is_empty() { 0 } else { 1 };
        if out.chars().count() + sep + part.chars().count() > MAX_TEXT {
            continue;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(&part);
    }
    out
}

/// Escapes what Telegram's HTML mode requires (`&`, `<`, `>`, and `"` inside
/// attributes) with the entities it supports.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
