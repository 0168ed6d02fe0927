//! Renders every provider's payload for every kind of alert (down, reminder,
//! recovery, certificate, test, operator), including a site whose name is long
//! and full of markup, and checks each against its service's documented format:
//! field names, required fields, length limits, allowed values, and PagerDuty's
//! dedup_key staying the same for one incident.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use overlaps_accounting::alerts::channels::{Alert, Sender};
use overlaps_accounting::alerts::providers::{Body, Outbound, pagerduty};
use overlaps_shared::testing::install_tls_provider;
use serde_json::Value;

const TELEGRAM_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const PUSHOVER_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const PUSHOVER_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

fn sender() -> Sender {
    install_tls_provider();
    Sender::new(
        None,
        "Overlaps <alerts@overlaps.test>",
        "https://hub.example",
        true,
    )
    .unwrap()
}

/// Every kind of alert for one incident of a site called `name`.
fn alerts(name: &str, evidence: &str) -> Vec<Alert> {
    let incident = Alert {
        website_id: Some(7),
        url: Some("https://shop.example/".into()),
        name: Some(name.into()),
        state: Some("down".into()),
        cause: Some("keyword_missing".into()),
        at: Some("2026-11-27T09:47:21+00:00".into()),
        incident_id: Some(42),
        opened_at: Some("2026-11-27T09:47:21+00:00".into()),
        evidence: Some(evidence.into()),
        ..Alert::default()
    };
    vec![
        Alert {
            kind: "incident_opened".into(),
            ..incident.clone()
        },
        Alert {
            kind: "incident_reminder".into(),
            reminder: Some(2),
            reminder_max: Some(3),
            ..incident.clone()
        },
        Alert {
            kind: "incident_resolved".into(),
            state: Some("up".into()),
            cause: Some("recovered".into()),
            at: Some("2026-11-27T09:59:26.043568+00:00".into()),
            resolved_at: Some("2026-11-27T09:59:26.043568+00:00".into()),
            down_seconds: Some(725),
            ..incident.clone()
        },
        Alert {
            kind: "tls_expiring".into(),
            incident_id: None,
            cause: Some("certificate expires 2026-12-01 (4 days)".into()),
            ..incident.clone()
        },
        Alert {
            kind: "test".into(),
            incident_id: None,
            cause: Some("a test alert requested through the API".into()),
            ..incident
        },
    ]
}

fn json(outbound: &Outbound) -> &Value {
    match &outbound.body {
        Body::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn render(kind: &str, target: &str, secret: Option<&str>, alert: &Alert) -> Outbound {
    sender()
        .render(kind, target, secret, alert, Some(chrono_tz::Europe::Berlin))
        .unwrap_or_else(|| panic!("{kind} renders"))
}

/// Cases: an ordinary site, and one with a 400-character name of markup and a
/// 5,000-character evidence line (every limit must hold).
fn cases() -> Vec<Vec<Alert>> {
    let hostile = format!("<b>&\"'@everyone *_`{}", "Ünïcødé <shop> & co ".repeat(20));
    vec![
        alerts("Shop", "3 of 3 validators: keyword 'healthy' missing"),
        alerts(&hostile, &"x".repeat(5000)),
    ]
}

#[test]
fn discord_embeds_keep_to_their_limits() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render(
                "discord",
                "https://discord.com/api/webhooks/1/x",
                None,
                alert,
            );
            let body = json(&out);
            assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
            let embeds = body["embeds"].as_array().unwrap();
            assert!((1..=10).contains(&embeds.len()));
            let embed = &embeds[0];
            assert!((1..=256).contains(&chars(&embed["title"])), "{embed}");
            assert!(chars(&embed["description"]) <= 4096);
            assert!(embed["color"].as_u64().unwrap() <= 0xFF_FF_FF);
            let fields = embed["fields"].as_array().unwrap();
            assert!(fields.len() <= 25);
            let mut total = chars(&embed["title"])
                + chars(&embed["description"])
                + chars(&embed["footer"]["text"]);
            for field in fields {
                assert!((1..=256).contains(&chars(&field["name"])));
                assert!((1..=1024).contains(&chars(&field["value"])));
                assert!(field["inline"].is_boolean());
                total += chars(&field["name"]) + chars(&field["value"]);
            }
            assert!(
                total <= 6000,
                "an embed holds 6000 characters in all: {total}"
            );
            if let Some(at) = embed["timestamp"].as_str() {
                assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
            }
        }
    }
}

#[test]
fn telegram_text_is_escaped_html_within_4096() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render("telegram", "-1001234567890", Some(TELEGRAM_TOKEN), alert);
            assert_eq!(
                out.url,
                format!("https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage")
            );
            let body = json(&out);
            assert_eq!(body["chat_id"], "-1001234567890");
            assert_eq!(body["parse_mode"], "HTML");
            let text = body["text"].as_str().unwrap();
            assert!((1..=4096).contains(&text.encode_utf16().count()));
            // Only <b> and <a href>: every other '<' or '>' came from the alert
            // and must be escaped; every '&' starts an entity Telegram knows.
            let mut rest = text.to_owned();
            for tag in ["<b>", "</b>", "</a>"] {
                rest = rest.replace(tag, "");
            }
            while let Some(start) = rest.find("<a href=\"") {
                let end = start + rest[start..].find("\">").unwrap() + 2;
                rest.replace_range(start..end, "");
            }
            assert!(!rest.contains('<') && !rest.contains('>'), "{text}");
            for (i, _) in rest.match_indices('&') {
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| rest[i..].starts_with(e)),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn teams_gets_a_well_formed_adaptive_card() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render("teams", "https://example.webhook.office.com/x", None, alert);
            let body = json(&out);
            assert_eq!(body["type"], "message");
            let attachment = &body["attachments"][0];
            assert_eq!(
                attachment["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
            let card = &attachment["content"];
            assert_eq!(card["type"], "AdaptiveCard");
            assert_eq!(
                card["$schema"],
                "http://adaptivecards.io/schemas/adaptive-card.json"
            );
            assert!(card["version"].is_string());
            for element in card["body"].as_array().unwrap() {
                match element["type"].as_str().unwrap() {
                    "TextBlock" => assert!(element["text"].is_string()),
                    "FactSet" => {
                        for fact in element["facts"].as_array().unwrap() {
                            assert!(fact["title"].is_string() && fact["value"].is_string());
                        }
                    }
                    other => panic!("unexpected element {other}"),
                }
            }
            for action in card["actions"].as_array().into_iter().flatten() {
                assert_eq!(action["type"], "Action.OpenUrl");
                assert!(
                    action["url"]
                        .as_str()
                        .unwrap()
                        .starts_with("https://hub.example/")
                );
            }
        }
    }
}

#[test]
fn pagerduty_events_follow_events_api_v2() {
    for alerts in cases() {
        let mut incident_keys = Vec::new();
        for alert in &alerts {
            let out = render("pagerduty", "events-v2", Some(ROUTING_KEY), alert);
            assert_eq!(out.url, "https://events.pagerduty.com/v2/enqueue");
            let body = json(&out);
            assert_eq!(body["routing_key"], ROUTING_KEY);
            let key = body["dedup_key"].as_str().unwrap();
            assert!((1..=255).contains(&key.len()));
            match body["event_action"].as_str().unwrap() {
                "trigger" => {
                    let payload = &body["payload"];
                    assert!((1..=1024).contains(&chars(&payload["summary"])));
                    assert!(chars(&payload["source"]) >= 1);
                    assert!(pagerduty::SEVERITIES.contains(&payload["severity"].as_str().unwrap()));
                    assert!(payload["custom_details"].is_object());
                    if let Some(at) = payload["timestamp"].as_str() {
                        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
                    }
                }
                "resolve" => assert!(body.get("payload").is_none()),
                other => panic!("event_action {other}"),
            }
            if alert.incident_id.is_some() {
                incident_keys.push(key.to_owned());
            }
        }
        assert_eq!(incident_keys.len(), 3, "opened, reminder, resolved");
        assert!(
            incident_keys.iter().all(|k| *k == incident_keys[0]),
            "one dedup_key per incident: {incident_keys:?}"
        );
        assert_eq!(incident_keys[0], "overlaps-incident-42");
    }
}

#[test]
fn ntfy_headers_are_ascii_and_the_body_stays_a_message() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render("ntfy", "https://ntfy.sh/my-topic", None, alert);
            assert_eq!(out.url, "https://ntfy.sh/my-topic");
            let header = |name: &str| {
                out.headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            };
            let title = header("title").unwrap();
            assert!(title.is_ascii() && !title.contains('\n'), "{title}");
            assert!(
                ["min", "low", "default", "high", "urgent"]
                    .contains(&header("priority").unwrap().as_str())
            );
            assert!(header("tags").is_some());
            let Body::Text(text) = &out.body else {
                panic!("ntfy takes the message as the body")
            };
            assert!(text.len() <= 4096, "larger bodies become attachments");
        }
    }
}

#[test]
fn pushover_forms_keep_to_their_limits() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render("pushover", PUSHOVER_USER, Some(PUSHOVER_TOKEN), alert);
            assert_eq!(out.url, "https://api.pushover.net/1/messages.json");
            let Body::Form(fields) = &out.body else {
                panic!("pushover takes a form")
            };
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(field("token"), Some(PUSHOVER_TOKEN));
            assert_eq!(field("user"), Some(PUSHOVER_USER));
            assert!((1..=1024).contains(&field("message").unwrap().chars().count()));
            assert!(field("title").unwrap().chars().count() <= 250);
            assert!(field("url").is_none_or(|u| u.chars().count() <= 512));
            assert!(field("url_title").is_none_or(|u| u.chars().count() <= 100));
            let priority: i32 = field("priority").unwrap().parse().unwrap();
            assert!((-2..=2).contains(&priority));
        }
    }
}

#[test]
fn slack_and_mattermost_keep_to_their_limits() {
    for alerts in cases() {
        for alert in &alerts {
            let out = render("slack", "https://hooks.slack.com/services/x", None, alert);
            let body = json(&out);
            assert!(body["text"].is_string());
            let blocks = body["blocks"].as_array().unwrap();
            assert_eq!(blocks[0]["type"], "header");
            assert!(chars(&blocks[0]["text"]["text"]) <= 150);
            for block in blocks {
                let fields = block["fields"].as_array().cloned().unwrap_or_default();
                assert!(fields.len() <= 10);
                assert!(fields.iter().all(|f| chars(&f["text"]) <= 2000));
                assert!(chars(&block["text"]["text"]) <= 3000);
            }
            let out = render("mattermost", "https://chat.example/hooks/x", None, alert);
            let attachment = &json(&out)["attachments"][0];
            assert!(attachment["fallback"].is_string() && attachment["title"].is_string());
            for field in attachment["fields"].as_array().unwrap() {
                assert!(field["short"].is_boolean() && field["title"].is_string());
            }
        }
    }
}

#[test]
fn every_channel_says_the_same_readable_things() {
    let alert = &alerts("Shop", "3 of 3 validators: keyword 'healthy' missing")[2];
    let since = "2026-11-27 09:47:21 UTC (10:47:21 CET, Europe/Berlin)";
    let back = "2026-11-27 09:59:26 UTC (10:59:26 CET, Europe/Berlin)";
    for (kind, target, secret) in [
        ("slack", "https://hooks.slack.com/x", None),
        ("discord", "https://discord.com/api/webhooks/1/x", None),
        ("teams", "https://example.webhook.office.com/x", None),
        ("telegram", "-100123", Some(TELEGRAM_TOKEN)),
        ("mattermost", "https://chat.example/hooks/x", None),
        ("ntfy", "https://ntfy.sh/t", None),
        ("pushover", PUSHOVER_USER, Some(PUSHOVER_TOKEN)),
    ] {
        let out = render(kind, target, secret, alert);
        let shown = match &out.body {
            Body::Json(v) => {
                // Discord's machine-readable `timestamp` is the one raw time.
                let mut v = v.clone();
                if let Some(embed) = v.pointer_mut("/embeds/0").and_then(Value::as_object_mut) {
                    embed.remove("timestamp");
                }
                v.to_string()
            }
            Body::Text(t) => t.clone(),
            Body::Form(f) => format!("{f:?}"),
        };
        for needle in [
            since,
            back,
            "12 min 5 s",
            "keyword 'healthy' missing",
            "/api/v1/websites/7/incidents",
        ] {
            assert!(shown.contains(needle), "{kind} lacks {needle:?}: {shown}");
        }
        assert!(
            !shown.contains("09:59:26.043568"),
            "{kind}: no raw timestamps: {shown}"
        );
    }
    // The webhook's JSON keeps its documented fields and adds the readable ones.
    let webhook = serde_json::to_value(alert).unwrap();
    for field in [
        "kind",
        "website_id",
        "url",
        "name",
        "state",
        "cause",
        "at",
        "incident_id",
    ] {
        assert!(webhook.get(field).is_some(), "webhook lacks {field}");
    }
    assert_eq!(webhook["down_seconds"], 725);
    assert_eq!(
        webhook["evidence"],
        "3 of 3 validators: keyword 'healthy' missing"
    );
}
