//! Discord, Telegram, Teams, PagerDuty, ntfy, Mattermost and Pushover through
//! accounting's real delivery (`deliver`: claim, send, record) against a local
//! HTTP sink: a down alert, the recovery (PagerDuty resolving the same
//! dedup_key), a 5xx retried to success, a 4xx recorded as a permanent failure
//! and reported to the operator, and the SSRF guard in production.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use overlaps_accounting::alerts::channels::Sender;
use overlaps_accounting::alerts::providers::ProviderUrls;
use overlaps_accounting::alerts::{Delivered, OperatorChannels, deliver};
use overlaps_shared::testing::{HttpSink, SinkRequest, TestDatabase, install_tls_provider};
use serde_json::Value;

const TELEGRAM_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";
const PUSHOVER_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const PUSHOVER_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

/// An owner in Europe/Berlin, a site "Shop" looking for the keyword `healthy`,
/// and an incident opened 2026-11-27 09:47:21 UTC on three validators' evidence.
struct Incident {
    owner: i64,
    id: i64,
}

fn incident(db: &TestDatabase) -> Incident {
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query(
        "INSERT INTO users (email, time_zone) VALUES ('o-' || gen_random_uuid() || '@x.io', 'Europe/Berlin') \
         RETURNING id",
    )
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    let site = diesel::sql_query(
        "INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, keyword) \
         VALUES ($1, 'Shop', 'https://shop.example/', 60, 5000, 3, 'healthy') RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    diesel::sql_query(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at) \
         VALUES (1, decode(repeat('01', 32), 'hex'), '2026-11-27T09:46:00Z', '2026-11-27T09:47:00Z') \
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut conn)
    .unwrap();
    let evidence = serde_json::json!([1, 2, 3].map(|n| serde_json::json!({
        "assignment_id": n, "validator_id": n, "state": "answered", "status": "down",
        "failure": "keyword_missing", "http_status": 200, "latency_ms": 80,
    })));
    let id = diesel::sql_query(
        "INSERT INTO incidents (website_id, opened_at, opened_round, cause, evidence) \
         VALUES ($1, '2026-11-27T09:47:21Z', 1, 'keyword_missing', $2) RETURNING id",
    )
    .bind::<BigInt, _>(site)
    .bind::<diesel::sql_types::Jsonb, _>(evidence)
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    Incident { owner, id }
}

fn channel(db: &TestDatabase, owner: i64, kind: &str, target: &str, secret: Option<&str>) -> i64 {
    diesel::sql_query(
        "INSERT INTO alert_channels (owner_id, kind, target, secret) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(target)
    .bind::<Nullable<Text>, _>(secret)
    .get_result::<Id>(&mut db.connect().unwrap())
    .unwrap()
    .id
}

/// An outbox row as closing a round writes it (`kind` incident_opened or
/// incident_resolved), or a test alert as the API writes it.
fn queue(db: &TestDatabase, channel: i64, incident: i64, kind: &str) -> i64 {
    let (state, cause, at) = match kind {
        "incident_resolved" => ("up", "recovered", "2026-11-27T09:59:26.043568+00:00"),
        _ => ("down", "keyword_missing", "2026-11-27T09:47:21+00:00"),
    };
    diesel::sql_query(
        "INSERT INTO alert_outbox (channel_id, incident_id, kind, dedup_key, payload) \
         SELECT $1, CASE WHEN $2 = 'test' THEN NULL ELSE i.id END, $2, $2 || ':' || gen_random_uuid(), \
                jsonb_build_object('website_id', w.id, 'url', w.url, 'name', w.name, 'state', $4::text, \
                                   'cause', $5::text, 'at', $6::text, \
                                   'incident_id', CASE WHEN $2 = 'test' THEN NULL ELSE i.id END) \
         FROM incidents i JOIN websites w ON w.id = i.website_id WHERE i.id = $3 RETURNING id",
    )
    .bind::<BigInt, _>(channel)
    .bind::<Text, _>(kind)
    .bind::<BigInt, _>(incident)
    .bind::<Text, _>(state)
    .bind::<Text, _>(cause)
    .bind::<Text, _>(at)
    .get_result::<Id>(&mut db.connect().unwrap())
    .unwrap()
    .id
}

fn resolve(db: &TestDatabase, incident: i64) {
    diesel::sql_query(
        "UPDATE incidents SET resolved_at = '2026-11-27T09:59:26.043568Z', resolved_round = 1 WHERE id = $1",
    )
    .bind::<BigInt, _>(incident)
    .execute(&mut db.connect().unwrap())
    .unwrap();
}

fn sender(sink: &HttpSink, allow_private: bool) -> Sender {
    install_tls_provider();
    let base = sink.url().trim_end_matches("/hook").to_owned();
    Sender::new(
        None,
        "Overlaps <alerts@overlaps.test>",
        "http://127.0.0.1:8080",
        allow_private,
    )
    .unwrap()
    .with_provider_urls(ProviderUrls {
        telegram: base.clone(),
        pagerduty: format!("{base}/v2/enqueue"),
        pushover: format!("{base}/1/messages.json"),
    })
}

fn json(request: &SinkRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

fn form(request: &SinkRequest) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn text(request: &SinkRequest) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

const DOWN_SINCE: &str = "2026-11-27 09:47:21 UTC (10:47:21 CET, Europe/Berlin)";
const EVIDENCE: &str = "3 of 3 validators: keyword 'healthy' missing";
const DOWN_FOR: &str = "12 min 5 s";

/// Runs one provider through down, recovery, 5xx-then-success and 4xx, checking
/// each request with `check(phase, request)`; returns the requests received.
async fn exercise(
    kind: &str,
    target: impl Fn(&HttpSink) -> String,
    secret: Option<&str>,
    path: &str,
    check: impl Fn(&str, &SinkRequest),
) {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let sender = sender(&sink, true);
    let none = OperatorChannels::default();
    let incident = incident(&db);
    let channel = channel(&db, incident.owner, kind, &target(&sink), secret);

    let down = queue(&db, channel, incident.id, "incident_opened");
    assert_eq!(
        deliver(&pool, &sender, &none, down).await.unwrap(),
        Delivered::Sent
    );
    resolve(&db, incident.id);
    let up = queue(&db, channel, incident.id, "incident_resolved");
    assert_eq!(
        deliver(&pool, &sender, &none, up).await.unwrap(),
        Delivered::Sent
    );
    let received = sink.received();
    assert_eq!(received.len(), 2, "{kind}: one request per alert");
    for request in &received {
        assert!(
            request.request_line.starts_with(&format!("POST {path} ")),
            "{kind}: {}",
            request.request_line
        );
    }
    check("down", &received[0]);
    check("up", &received[1]);

    // A 5xx is temporary: retried, and the retry goes through.
    sink.respond_with(503);
    let flaky = queue(&db, channel, incident.id, "test");
    assert!(matches!(
        deliver(&pool, &sender, &none, flaky).await.unwrap(),
        Delivered::Retry(_)
    ));
    assert_eq!(outbox_state(&db, flaky), ("pending".into(), 1));
    diesel::sql_query("UPDATE alert_outbox SET next_attempt_at = now() WHERE id = $1")
        .bind::<BigInt, _>(flaky)
        .execute(&mut db.connect().unwrap())
        .unwrap();
    sink.respond_with(200);
    assert_eq!(
        deliver(&pool, &sender, &none, flaky).await.unwrap(),
        Delivered::Sent
    );
    assert_eq!(outbox_state(&db, flaky), ("sent".into(), 2));
    check("test", sink.received().last().unwrap());

    // A 4xx (but 408/429) is permanent: recorded and reported, never retried.
    sink.respond_with(400);
    let refused = queue(&db, channel, incident.id, "test");
    let outcome = deliver(&pool, &sender, &none, refused).await.unwrap();
    let Delivered::Failed(why) = outcome else {
        panic!("{kind}: expected a permanent failure, got {outcome:?}")
    };
    assert!(why.contains("400"), "{why}");
    for secret in secret.iter() {
        assert!(
            !why.contains(secret),
            "{kind}: the credential leaked into {why}"
        );
    }
    assert_eq!(outbox_state(&db, refused).0, "failed");
    let reported = diesel::sql_query(
        "SELECT count(*)::bigint AS id FROM alert_outbox WHERE kind = 'operator' AND payload::text LIKE '%could not be delivered%'",
    )
    .get_result::<Id>(&mut db.connect().unwrap())
    .unwrap()
    .id;
    assert_eq!(reported, 1, "{kind}: the operator is told");
    // A 429 is temporary.
    sink.respond_with(429);
    let limited = queue(&db, channel, incident.id, "test");
    assert!(matches!(
        deliver(&pool, &sender, &none, limited).await.unwrap(),
        Delivered::Retry(_)
    ));
}

#[tokio::test]
async fn discord_gets_an_embed_for_down_and_recovery() {
    exercise("discord", HttpSink::url, None, "/hook", |phase, request| {
        let body = json(request);
        let embed = &body["embeds"][0];
        assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
        let fields = embed["fields"].to_string();
        match phase {
            "down" => {
                assert_eq!(embed["title"], "DOWN: Shop (keyword 'healthy' missing)");
                assert_eq!(embed["color"], 0xD9_30_25);
                assert!(
                    embed["description"].as_str().unwrap().contains(DOWN_SINCE),
                    "{body}"
                );
                assert!(fields.contains(EVIDENCE), "{fields}");
                assert_eq!(
                    embed["url"],
                    "http://127.0.0.1:8080/api/v1/websites/1/incidents"
                );
            }
            "up" => {
                assert_eq!(embed["title"], "RECOVERED: Shop is up again");
                assert!(
                    fields.contains(DOWN_FOR) && fields.contains(EVIDENCE),
                    "{fields}"
                );
            }
            _ => assert!(embed["title"].as_str().unwrap().contains("test alert")),
        }
    })
    .await;
}

#[tokio::test]
async fn telegram_gets_escaped_html_through_the_bot_api() {
    let path = format!("/bot{TELEGRAM_TOKEN}/sendMessage");
    exercise(
        "telegram",
        |_| "-1001234567890".into(),
        Some(TELEGRAM_TOKEN),
        &path,
        |phase, request| {
            let body = json(request);
            assert_eq!(body["chat_id"], "-1001234567890");
            assert_eq!(body["parse_mode"], "HTML");
            let text = body["text"].as_str().unwrap();
            match phase {
                "down" => {
                    assert!(
                        text.starts_with("<b>DOWN: Shop (keyword 'healthy' missing)</b>"),
                        "{text}"
                    );
                    assert!(
                        text.contains(DOWN_SINCE) && text.contains(EVIDENCE),
                        "{text}"
                    );
                    assert!(
                        text.contains(
                            "<a href=\"http://127.0.0.1:8080/api/v1/websites/1/incidents\">"
                        ),
                        "{text}"
                    );
                }
                "up" => assert!(text.contains(&format!("down for {DOWN_FOR}")), "{text}"),
                _ => {}
            }
        },
    )
    .await;
}

#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    exercise("teams", HttpSink::url, None, "/hook", |phase, request| {
        let body = json(request);
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        let facts = card["body"][2]["facts"].to_string();
        match phase {
            "down" => {
                assert_eq!(
                    card["body"][0]["text"],
                    "DOWN: Shop (keyword 'healthy' missing)"
                );
                assert!(
                    facts.contains(EVIDENCE) && facts.contains(DOWN_SINCE),
                    "{facts}"
                );
                assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
            }
            "up" => assert!(facts.contains(DOWN_FOR), "{facts}"),
            _ => {}
        }
    })
    .await;
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_the_same_dedup_key() {
    let keys = std::sync::Mutex::new(Vec::new());
    exercise(
        "pagerduty",
        |_| "events-v2".into(),
        Some(ROUTING_KEY),
        "/v2/enqueue",
        |phase, request| {
            let body = json(request);
            assert_eq!(body["routing_key"], ROUTING_KEY);
            match phase {
                "down" => {
                    assert_eq!(body["event_action"], "trigger");
                    assert_eq!(body["payload"]["severity"], "critical");
                    assert_eq!(
                        body["payload"]["summary"],
                        "DOWN: Shop (keyword 'healthy' missing)"
                    );
                    assert_eq!(body["payload"]["source"], "https://shop.example/");
                    assert_eq!(body["payload"]["custom_details"]["Evidence"], EVIDENCE);
                    keys.lock().unwrap().push(body["dedup_key"].clone());
                }
                "up" => {
                    assert_eq!(body["event_action"], "resolve");
                    keys.lock().unwrap().push(body["dedup_key"].clone());
                }
                _ => assert_eq!(body["payload"]["severity"], "info"),
            }
        },
    )
    .await;
    let keys = keys.into_inner().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].as_str().unwrap().starts_with("overlaps-incident-"),
        "{keys:?}"
    );
    assert_eq!(
        keys[0], keys[1],
        "the recovery resolves the incident it triggered"
    );
}

#[tokio::test]
async fn ntfy_gets_title_priority_and_tags_headers() {
    exercise(
        "ntfy",
        HttpSink::url,
        Some("tk_accesstoken"),
        "/hook",
        |phase, request| {
            assert_eq!(
                request.header("authorization"),
                Some("Bearer tk_accesstoken")
            );
            let body = text(request);
            match phase {
                "down" => {
                    assert_eq!(
                        request.header("title"),
                        Some("DOWN: Shop (keyword 'healthy' missing)")
                    );
                    assert_eq!(request.header("priority"), Some("urgent"));
                    assert_eq!(request.header("tags"), Some("rotating_light"));
                    assert!(request.header("click").unwrap().ends_with("/incidents"));
                    assert!(
                        body.contains(EVIDENCE) && body.contains(DOWN_SINCE),
                        "{body}"
                    );
                }
                "up" => {
                    assert_eq!(request.header("priority"), Some("default"));
                    assert!(body.contains(DOWN_FOR), "{body}");
                }
                _ => assert_eq!(request.header("priority"), Some("low")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn mattermost_gets_an_attachment() {
    exercise(
        "mattermost",
        HttpSink::url,
        None,
        "/hook",
        |phase, request| {
            let body = json(request);
            let attachment = &body["attachments"][0];
            let fields = attachment["fields"].to_string();
            match phase {
                "down" => {
                    assert_eq!(
                        attachment["title"],
                        "DOWN: Shop (keyword 'healthy' missing)"
                    );
                    assert_eq!(attachment["color"], "#D93025");
                    assert!(fields.contains(EVIDENCE), "{fields}");
                }
                "up" => assert!(fields.contains(DOWN_FOR), "{fields}"),
                _ => {}
            }
        },
    )
    .await;
}

#[tokio::test]
async fn pushover_gets_a_form_with_token_and_user() {
    exercise(
        "pushover",
        |_| PUSHOVER_USER.into(),
        Some(PUSHOVER_TOKEN),
        "/1/messages.json",
        |phase, request| {
            assert_eq!(
                request.header("content-type"),
                Some("application/x-www-form-urlencoded")
            );
            let form = form(request);
            assert_eq!(form["token"], PUSHOVER_TOKEN);
            assert_eq!(form["user"], PUSHOVER_USER);
            match phase {
                "down" => {
                    assert_eq!(form["title"], "DOWN: Shop (keyword 'healthy' missing)");
                    assert_eq!(form["priority"], "1");
                    assert!(form["message"].contains(EVIDENCE), "{form:?}");
                    assert!(form["url"].ends_with("/incidents"));
                }
                "up" => assert!(form["message"].contains(DOWN_FOR), "{form:?}"),
                _ => assert_eq!(form["priority"], "-1"),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn in_production_provider_targets_on_private_addresses_are_never_contacted() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let guarded = sender(&sink, false);
    let incident = incident(&db);
    let by_name = sink.url().replace("127.0.0.1", "localhost");
    for (kind, target, secret) in [
        ("discord", sink.url(), None),
        ("teams", by_name.clone(), None),
        ("mattermost", sink.url(), None),
        ("ntfy", by_name, None),
        // The API bases point at the loopback sink here: guarded all the same.
        ("telegram", "-100123".to_owned(), Some(TELEGRAM_TOKEN)),
        ("pagerduty", "events-v2".to_owned(), Some(ROUTING_KEY)),
        ("pushover", PUSHOVER_USER.to_owned(), Some(PUSHOVER_TOKEN)),
    ] {
        let channel = channel(&db, incident.owner, kind, &target, secret);
        let id = queue(&db, channel, incident.id, "incident_opened");
        let outcome = deliver(&pool, &guarded, &OperatorChannels::default(), id)
            .await
            .unwrap();
        assert!(
            matches!(outcome, Delivered::Failed(_)),
            "{kind}: {outcome:?}"
        );
    }
    assert!(
        sink.received().is_empty(),
        "the guard let a request through"
    );
}

/// The alert of an incident whose site is on a public status page links to the
/// incident on that page; once the page no longer shows the site, to the JSON route.
#[tokio::test]
async fn alerts_link_to_the_incident_on_the_status_page_showing_the_site() {
    let db = TestDatabase::new().unwrap();
    let pool = db.pool(2).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let sender = sender(&sink, true);
    let none = OperatorChannels::default();
    let incident = incident(&db);
    let channel = channel(&db, incident.owner, "discord", &sink.url(), None);
    diesel::sql_query(
        "WITH page AS (INSERT INTO status_pages (owner_id, slug, title) VALUES ($1, 'shop-status', 'Shop') RETURNING id) \
         INSERT INTO status_page_sites (page_id, website_id, position) \
         SELECT page.id, i.website_id, 0 FROM page, incidents i WHERE i.id = $2",
    )
    .bind::<BigInt, _>(incident.owner)
    .bind::<BigInt, _>(incident.id)
    .execute(&mut db.connect().unwrap())
    .unwrap();

    let down = queue(&db, channel, incident.id, "incident_opened");
    assert_eq!(
        deliver(&pool, &sender, &none, down).await.unwrap(),
        Delivered::Sent
    );
    let body = json(&sink.received()[0]);
    assert_eq!(
        body["embeds"][0]["url"],
        format!(
            "http://127.0.0.1:8080/status/shop-status#incident-{}",
            incident.id
        )
    );

    diesel::sql_query("DELETE FROM status_page_sites")
        .execute(&mut db.connect().unwrap())
        .unwrap();
    let again = queue(&db, channel, incident.id, "incident_opened");
    assert_eq!(
        deliver(&pool, &sender, &none, again).await.unwrap(),
        Delivered::Sent
    );
    let body = json(&sink.received()[1]);
    let site = body["embeds"][0]["url"].as_str().unwrap().to_owned();
    assert!(site.ends_with("/incidents"), "{site}");
}
