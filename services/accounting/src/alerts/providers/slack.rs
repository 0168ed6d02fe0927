//! Slack incoming webhooks: Block Kit (a header, the facts as fields, the summary
//! and the link), with `text` as the notification's fallback.

use serde_json::{Value, json};

use crate::alerts::message::{Message, truncate};

/// Slack's mrkdwn needs `&`, `<` and `>` escaped; everything else is text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The message body (header text ≤ 150, a section's fields ≤ 10 of ≤ 2000
/// characters, section text ≤ 3000).
pub fn body(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts_with_link()
        .iter()
        .take(10)
        .map(|f| {
            json!({ "type": "mrkdwn",
                    "text": truncate(&format!("*{}*\n{}", escape(&f.label), escape(&f.value)), 2000) })
        })
        .collect();
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&message.title, 150) }
    })];
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate(&escape(&message.text), 3000) }
    }));
    json!({ "text": truncate(&message.title, 3000), "blocks": blocks })
}
