//! Mattermost incoming webhooks: one message attachment (colour, title linked to
//! the incident, summary, facts as short fields).

use serde_json::{Value, json};

use super::discord::colour;
use crate::alerts::message::{Message, truncate};

/// The message body (Slack-compatible attachment fields, as Mattermost documents).
pub fn body(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts
        .iter()
        .map(|f| json!({ "short": f.value.chars().count() <= 40, "title": f.label, "value": truncate(&f.value, 1000) }))
        .collect();
    let mut attachment = json!({
        "fallback": truncate(&message.title, 500),
        "color": format!("#{:06X}", colour(message.severity)),
        "title": truncate(&message.title, 500),
        "text": truncate(&message.text, 4000),
        "fields": fields,
    });
    if let Some(link) = &message.link {
        attachment["title_link"] = json!(link);
    }
    json!({ "username": "Overlaps", "attachments": [attachment] })
}
