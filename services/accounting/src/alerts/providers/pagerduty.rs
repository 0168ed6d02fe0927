//! PagerDuty Events API v2: `trigger` when a site goes down (and for reminders,
//! which PagerDuty merges), `resolve` with the same `dedup_key` on recovery.

use serde_json::{Value, json};

use crate::alerts::message::{Alert, Message, Severity, truncate};

/// The severities PagerDuty accepts.
pub const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The event for routing key `routing_key`.
pub fn body(routing_key: &str, alert: &Alert, message: &Message) -> Value {
    // dedup_key is at most 255 characters.
    let dedup_key = truncate(&message.dedup_key, 255);
    if message.severity == Severity::Recovered {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let severity = match message.severity {
        Severity::Down => "critical",
        Severity::Operator => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Recovered => "info",
    };
    let details: serde_json::Map<String, Value> = message
        .facts
        .iter()
        .map(|f| (f.label.clone(), json!(f.value)))
        .chain([("Summary".to_owned(), json!(message.text))])
        .collect();
    let mut payload = json!({
        "summary": truncate(&message.title, 1024),
        "source": alert.url.clone().unwrap_or_else(|| "overlaps".to_owned()),
        "severity": severity,
        "component": alert.site(),
        "class": alert.cause.clone().unwrap_or_else(|| alert.kind.clone()),
        "custom_details": details,
    });
    if let Some(at) = &message.timestamp {
        payload["timestamp"] = json!(at);
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "Overlaps",
    });
    if let Some(link) = &message.link {
        event["client_url"] = json!(link);
        event["links"] = json!([{ "href": link, "text": "Incident" }]);
    }
    event
}
