//! Discord webhooks: one embed (title ≤ 256, description ≤ 4096, ≤ 25 fields of
//! name ≤ 256 and value ≤ 1024, 6000 characters in all), pinging nobody.

use serde_json::{Value, json};

use crate::alerts::message::{Message, Severity, truncate};

/// The embed colour (also the Mattermost attachment's): red, green, amber, blue.
pub fn colour(severity: Severity) -> u32 {
    match severity {
        Severity::Down | Severity::Operator => 0xD9_30_25,
        Severity::Recovered => 0x1E_8E_3E,
        Severity::Warning => 0xF9_AB_00,
        Severity::Info => 0x1A_73_E8,
    }
}

/// The webhook body.
pub fn body(message: &Message) -> Value {
    let fields: Vec<Value> = message
        .facts
        .iter()
        .take(25)
        .map(|f| {
            json!({
                "name": truncate(&f.label, 256),
                "value": truncate(&f.value, 1024),
                "inline": f.value.chars().count() <= 40,
            })
        })
        .collect();
    let mut embed = json!({
        "title": truncate(&message.title, 256),
        "description": truncate(&message.text, 4096),
        "color": colour(message.severity),
        "fields": fields,
        "footer": { "text": "Overlaps" },
    });
    if let Some(link) = &message.link {
        embed["url"] = json!(link);
    }
    if let Some(at) = &message.timestamp {
        embed["timestamp"] = json!(at);
    }
    // A site named "@everyone" must not ping the server.
    json!({ "username": "Overlaps", "embeds": [embed], "allowed_mentions": { "parse": [] } })
}
