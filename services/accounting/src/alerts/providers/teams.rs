//! Microsoft Teams: an Adaptive Card in a `message` attachment, which both
//! Workflows ("post to a channel when a webhook request is received") and the
//! older incoming-webhook connectors accept.

use serde_json::{Value, json};

use crate::alerts::message::{Message, Severity, truncate};

/// The webhook body.
pub fn body(message: &Message) -> Value {
    let colour = match message.severity {
        Severity::Down | Severity::Operator => "Attention",
        Severity::Recovered => "Good",
        Severity::Warning => "Warning",
        Severity::Info => "Accent",
    };
    let facts: Vec<Value> = message
        .facts
        .iter()
        .map(|f| json!({ "title": f.label, "value": truncate(&f.value, 1000) }))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            { "type": "TextBlock", "text": truncate(&message.title, 500), "weight": "Bolder",
              "size": "Medium", "color": colour, "wrap": true },
            { "type": "TextBlock", "text": truncate(&message.text, 2000), "wrap": true },
            { "type": "FactSet", "facts": facts },
        ],
    });
    if let Some(link) = &message.link {
        card["actions"] =
            json!([{ "type": "Action.OpenUrl", "title": "Open incident", "url": link }]);
    }
    json!({
        "type": "message",
        "summary": truncate(&message.title, 500),
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
