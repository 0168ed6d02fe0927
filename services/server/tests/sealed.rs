//! Sealed rounds, through the real server binary: while a round is open, no route
//! of the server (every GET in its own OpenAPI document, walked as anonymous, as
//! the site's owner and as an operator) nor any WebSocket message shows anything
//! of its stored results, not even which assignments were answered; once
//! accounting closes it, the same walk finds all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod api_support;
mod common;

use std::time::Duration;

use api_support::{Api, OPERATOR_KEY};
use bigdecimal::BigDecimal;
use chrono::{TimeZone, Utc};
use common::{Client, HUB_ID};
use futures::StreamExt;
use overlaps_accounting::close;
use overlaps_accounting::config::ClosePolicy;
use overlaps_shared::protocol::{CheckResult, CheckStatus, HubMessage};
use overlaps_shared::signing::Keypair;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Latencies no other value in the answers can equal by chance.
const LATENCY_A: u32 = 31_337;
const LATENCY_B: u32 = 27_183;
/// The certificate expiry validator A signs (2031-07-08T09:10:11.121Z).
const TLS_EXPIRY_MS: i64 = 1_941_268_211_121;
const TLS_EXPIRY: &str = "2031-07-08T09:10:11.121";

/// What would give away the round's results if any answer showed it.
struct Secrets {
    signatures: Vec<String>,
    latencies: Vec<u64>,
}

/// The pieces of `secrets` found in one answer.
fn leaks(secrets: &Secrets, body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = body.to_ascii_lowercase();
    for signature in &secrets.signatures {
        if lower.contains(signature) {
            found.push(format!("signature {}…", &signature[..16]));
        }
    }
    if body.contains(TLS_EXPIRY) {
        found.push("the signed TLS expiry".into());
    }
    match serde_json::from_str::<Value>(body) {
        Ok(json) => json_leaks(secrets, &json, &mut found),
        // Not JSON (/metrics): the latencies as whole numbers anywhere.
        Err(_) => {
            for token in body.split(|c: char| !c.is_ascii_digit()) {
                if let Ok(n) = token.parse::<u64>()
                    && secrets.latencies.contains(&n)
                {
                    found.push(format!("latency {n}"));
                }
            }
        }
    }
    found
}

/// Latencies as numbers and answered/pending/missed states, anywhere in `value`.
fn json_leaks(secrets: &Secrets, value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Number(n) => {
            if n.as_u64().is_some_and(|n| secrets.latencies.contains(&n)) {
                found.push(format!("latency {n}"));
            }
        }
        Value::String(s) => {
            if ["answered", "pending", "missed"].contains(&s.as_str()) {
                found.push(format!("state {s:?}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| json_leaks(secrets, v, found)),
        Value::Object(fields) => fields.values().for_each(|v| json_leaks(secrets, v, found)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// The ids a route's path parameters take.
struct Ids {
    owner: i64,
    website: i64,
    channel: i64,
    validators: Vec<i64>,
    round: i64,
    public_key: String,
    status_page: i64,
    slug: String,
}

/// Every concrete GET path for a documented route: each path parameter replaced by
/// the real ids (a route with one we do not know fails the test), once without a
/// query and once with every documented query parameter set.
fn concrete_paths(template: &str, operation: &Value, ids: &Ids) -> Vec<String> {
    let mut paths = vec![String::new()];
    let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let values: Vec<String> = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
        {
            None => vec![(*segment).to_owned()],
            Some(name) => {
                let resource = if i > 0 { segments[i - 1] } else { "" };
                match (resource, name) {
                    ("websites", "id") => vec![ids.website.to_string()],
                    ("channels", "id") => vec![ids.channel.to_string()],
                    ("accounts", "id") => vec![ids.owner.to_string()],
                    // A link nobody was sent: the page answers, with nothing of a round.
                    ("channel-confirmations", "token") => vec!["00".repeat(32)],
                    ("validators", "id") => ids.validators.iter().map(i64::to_string).collect(),
                    ("rounds", "number") => vec![ids.round.to_string()],
                    // No eon can cover an open round; its routes are walked all the same.
                    ("eons", "number") => vec!["1".to_owned()],
                    // The public status page showing the site, its records and badges.
                    ("status-pages", "id") => vec![ids.status_page.to_string()],
                    ("status-pages" | "status" | "badges", "slug") => vec![ids.slug.clone()],
                    ("{slug}", "site") => vec![ids.website.to_string()],
                    ("{site}", "file") => [
                        "status",
                        "uptime-24h",
                        "uptime-7d",
                        "uptime-30d",
                        "latency-24h",
                    ]
                    .iter()
                    .map(|kind| format!("{kind}.svg"))
                    .collect(),
                    ("status-assets", "name") => vec!["status.css".into(), "verify.js".into()],
                    _ => panic!(
                        "GET {template}: no value for {{{name}}} after /{resource}/; \
                         add it to the sealed-rounds walk"
                    ),
                }
            }
        };
        paths = paths
            .iter()
            .flat_map(|p| values.iter().map(move |v| format!("{p}/{v}")))
            .collect();
    }
    let mut query = Vec::new();
    for param in operation["parameters"].as_array().into_iter().flatten() {
        if param["in"] != "query" {
            continue;
        }
        let name = param["name"].as_str().unwrap();
        match name {
            "limit" => query.push("limit=200".to_owned()),
            "hours" => query.push("hours=720".to_owned()),
            "eon" => query.push("eon=1".to_owned()),
            "public_key" => query.push(format!("public_key={}", ids.public_key)),
            "owner_id" => query.push(format!("owner_id={}", ids.owner)),
            "site" => query.push(format!("site={}", ids.website)),
            // A status page's records take one of round, incident and day: the open
            // round is the one that must stay sealed.
            "round" => query.push(format!("round={}", ids.round)),
            "incident" | "day" => {}
            // Continues a page; every list here fits in one.
            "cursor" => {}
            _ => panic!(
                "GET {template}: no value for the query parameter {name:?}; \
                 add it to the sealed-rounds walk"
            ),
        }
    }
    let mut all = paths.clone();
    if !query.is_empty() {
        all.extend(paths.iter().map(|p| format!("{p}?{}", query.join("&"))));
    }
    all
}

/// Every documented GET route (plus health and metrics), as every kind of caller:
/// (caller, path, status, body).
async fn walk(api: &Api, owner_key: &str, ids: &Ids) -> Vec<(String, String, u16, String)> {
    let doc = api.get("/api-docs/openapi.json", None).await;
    let doc = doc.expect(200).clone();
    let mut paths = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if let Some(operation) = item.get("get") {
            paths.extend(concrete_paths(template, operation, ids));
        }
    }
    for extra in ["/metrics", "/healthz", "/readyz"] {
        if !paths.iter().any(|p| p == extra) {
            paths.push(extra.to_owned());
        }
    }
    assert!(paths.len() >= 25, "too few routes walked: {paths:?}");
    let mut answers = Vec::new();
    for (caller, key) in [
        ("anonymous", None),
        ("owner", Some(owner_key)),
        ("operator", Some(OPERATOR_KEY)),
    ] {
        for path in &paths {
            let answer = api.get(path, key).await;
            assert!(
                answer.status.as_u16() < 500,
                "{caller} GET {path}: {} {}",
                answer.status,
                answer.text
            );
            answers.push((
                caller.to_owned(),
                path.clone(),
                answer.status.as_u16(),
                answer.text,
            ));
        }
    }
    answers
}

/// The next message on `client`'s socket within `wait`, pings skipped.
async fn next_message(client: &mut Client, wait: Duration) -> Option<String> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, client.socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(text.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed by the hub: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket failed: {other:?}"),
        }
    }
}

fn result(key: &Keypair, assignment_id: i64, latency_ms: u32, tls: Option<i64>) -> CheckResult {
    CheckResult {
        assignment_id,
        status: CheckStatus::Up,
        http_status: Some(200),
        latency_ms,
        failure: None,
        tls_expires_at_ms: tls,
        checked_at_ms: Utc::now().timestamp_millis(),
        spec_hash: common::spec_hash_for("https://example.com/", 5000),
        signature: String::new(),
    }
    .sign(HUB_ID, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_rounds_results_are_sealed_on_every_route_until_it_closes() {
    let api = Api::start(&[]);
    let (owner, owner_key) = api.owner("alice@example.com").await;
    let site = api.website(&owner_key, "https://example.com/").await;
    let channel = api
        .post(
            "/api/v1/channels",
            Some(&owner_key),
            json!({"kind": "email", "target": "alice@example.com"}),
        )
        .await;
    let channel = channel.expect(201)["id"].as_i64().unwrap();
    // A public status page shows the site: its page, records and badges are walked too.
    let page = api
        .post(
            "/api/v1/status-pages",
            Some(&owner_key),
            json!({"slug": "sealed-walk", "title": "Sealed walk", "website_ids": [site]}),
        )
        .await;
    let status_page = page.expect(201)["id"].as_i64().unwrap();

    // Three real validators; A and B answer with real signed results, C does not.
    let keys = [
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    ];
    let mut clients = Vec::new();
    let mut validators = Vec::new();
    for key in &keys {
        let mut client = Client::connect(&api.server.ws_url()).await;
        validators.push(client.signup(key).await);
        clients.push(client);
    }
    let deadline = Utc::now() + chrono::Duration::seconds(60);
    api.deployment.round(1, deadline);
    let assignments: Vec<i64> = validators
        .iter()
        .map(|&v| api.deployment.assign(1, site, v, "api-1", deadline))
        .collect();
    // What dispatching them would have recorded: the spec hash a result must sign.
    api.sql(&format!(
        "UPDATE check_assignments SET spec_hash = '\\x{}'::bytea",
        common::spec_hash_for("https://example.com/", 5000)
    ));
    let sent = [
        result(&keys[0], assignments[0], LATENCY_A, Some(TLS_EXPIRY_MS)),
        result(&keys[1], assignments[1], LATENCY_B, None),
    ];
    for (client, result) in clients.iter_mut().zip(&sent) {
        client.send_result(result.clone()).await;
        assert_eq!(
            client.recv().await,
            HubMessage::Ack {
                assignment_ids: vec![result.assignment_id]
            }
        );
    }
    assert_eq!(
        api.count("SELECT count(*) FROM ticks WHERE round_number = 1"),
        2
    );
    assert_eq!(
        Utc.timestamp_millis_opt(TLS_EXPIRY_MS)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        format!("{TLS_EXPIRY}Z")
    );
    let secrets = Secrets {
        signatures: sent
            .iter()
            .map(|r| r.signature.to_ascii_lowercase())
            .collect(),
        latencies: vec![u64::from(LATENCY_A), u64::from(LATENCY_B)],
    };
    let ids = Ids {
        owner,
        website: site,
        channel,
        validators: validators.clone(),
        round: 1,
        public_key: keys[0].public_key().to_string(),
        status_page,
        slug: "sealed-walk".into(),
    };

    // Open round: no answer of any route, to anyone, shows any of it.
    let open = walk(&api, &owner_key, &ids).await;
    let mut leaked = Vec::new();
    for (caller, path, status, body) in &open {
        let found = leaks(&secrets, body);
        if !found.is_empty() {
            leaked.push(format!(
                "{caller} GET {path} ({status}): {found:?}\n  {body}"
            ));
        }
    }
    assert!(
        leaked.is_empty(),
        "an open round's results leaked:\n{}",
        leaked.join("\n")
    );
    // The round's assignments are listed, all alike, with no result.
    let listed = api.get("/api/v1/rounds/1/assignments", None).await;
    let listed = listed.expect(200).clone();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{listed}");
    for item in items {
        assert_eq!(item["state"], "sealed", "{item}");
        assert_eq!(item["result"], Value::Null, "{item}");
    }
    for key in [Some(owner_key.as_str()), Some(OPERATOR_KEY)] {
        let ticks = api
            .get(&format!("/api/v1/websites/{site}/ticks"), key)
            .await;
        assert_eq!(ticks.expect(200)["items"], json!([]));
    }
    // Nothing moved before the close: status, rollups, validators' counters.
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&owner_key))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["state"], "unknown");
    assert_eq!(status["last_round"], Value::Null);
    let latency = api
        .get(
            &format!("/api/v1/websites/{site}/latency"),
            Some(&owner_key),
        )
        .await;
    assert_eq!(latency.expect(200), &json!([]));
    for &v in &validators {
        let detail = api.get(&format!("/api/v1/validators/{v}"), None).await;
        let detail = detail.expect(200).clone();
        assert_eq!(detail["checks_done"], 0, "{detail}");
        assert_eq!(detail["checks_missed"], 0, "{detail}");
        assert_eq!(detail["credited"], "0", "{detail}");
    }
    // Results stored are counted only once their round has closed.
    let metrics = api.get("/metrics", None).await;
    assert!(
        metrics.text.contains("overlaps_results_stored_total 0\n"),
        "{}",
        metrics.text
    );
    // No validator heard of another's result: A and B only their own ack, C nothing.
    for client in &mut clients {
        assert_eq!(next_message(client, Duration::from_millis(300)).await, None);
    }

    // Close the round as accounting does (past its deadline).
    let policy = ClosePolicy {
        reward_per_check: BigDecimal::from(1_000),
        confirmations_down: 2,
        confirmations_up: 1,
        reputation_gain: 10,
        reputation_loss: 50,
        tls_warning_days: 14,
        canary_penalty_bp: 5_000,
    };
    let closed = close::close_round(
        &mut api.conn(),
        1,
        deadline + chrono::Duration::seconds(1),
        &policy,
    )
    .unwrap();
    assert!(closed.is_some());

    // Closed: the same walk finds every piece, and the routes show the results.
    let after = walk(&api, &owner_key, &ids).await;
    let found: Vec<String> = after
        .iter()
        .flat_map(|(_, _, _, body)| leaks(&secrets, body))
        .collect();
    for signature in &secrets.signatures {
        assert!(
            found.contains(&format!("signature {}…", &signature[..16])),
            "{found:?}"
        );
    }
    for piece in [
        "the signed TLS expiry".to_owned(),
        format!("latency {LATENCY_A}"),
        format!("latency {LATENCY_B}"),
        "state \"answered\"".to_owned(),
        "state \"missed\"".to_owned(),
    ] {
        assert!(found.contains(&piece), "{piece} not found: {found:?}");
    }
    let listed = api.get("/api/v1/rounds/1/assignments", None).await;
    let listed = listed.expect(200).clone();
    let states: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["answered", "answered", "missed"], "{listed}");
    assert_eq!(
        listed["items"][0]["result"]["signature"],
        format!("0x{}", secrets.signatures[0])
    );
    assert_eq!(listed["items"][0]["result"]["latency_ms"], LATENCY_A);
    let ticks = api
        .get(&format!("/api/v1/websites/{site}/ticks"), Some(&owner_key))
        .await;
    assert_eq!(
        ticks.expect(200)["items"].as_array().unwrap().len(),
        2,
        "{}",
        ticks.text
    );
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&owner_key))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["state"], "up", "{status}");
    assert_eq!(status["last_round"], 1);
    let latency = api
        .get(
            &format!("/api/v1/websites/{site}/latency"),
            Some(&owner_key),
        )
        .await;
    let latency = latency.expect(200).clone();
    assert_eq!(latency[0]["checks"], 2, "{latency}");
    assert_eq!(latency[0]["latency_p50_ms"], LATENCY_B, "{latency}");
    let a = api
        .get(&format!("/api/v1/validators/{}", validators[0]), None)
        .await;
    let a = a.expect(200).clone();
    assert_eq!(a["checks_done"], 1, "{a}");
    assert_eq!(a["credited"], "1000", "{a}");
    let c = api
        .get(&format!("/api/v1/validators/{}", validators[2]), None)
        .await;
    assert_eq!(c.expect(200)["checks_missed"], 1);
    let metrics = api.get("/metrics", None).await;
    assert!(
        metrics.text.contains("overlaps_results_stored_total 2\n"),
        "{}",
        metrics.text
    );
}
