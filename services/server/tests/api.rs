//! The REST API through the real server binary against real PostgreSQL and Redis:
//! every route's success path, auth failures (no key, bad key, revoked key,
//! another owner's resource), validation failures and pagination.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::{Api, OPERATOR_KEY};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn accounts_keys_and_authentication() {
    let api = Api::start(&[]);

    // Sign-up: the key is shown once; only its hash is stored.
    let created = api
        .post(
            "/api/v1/accounts",
            None,
            json!({"email": "Alice@Example.com", "name": "Alice"}),
        )
        .await;
    let body = created.expect(201).clone();
    let key = body["api_key"]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ovl_") && key.len() == 52, "{key}");
    assert_eq!(body["account"]["email"], "alice@example.com");
    assert_eq!(body["account"]["role"], "owner");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_prefix = '{}'",
            &key[..12]
        )),
        1
    );
    assert_eq!(
        api.count("SELECT count(*) FROM api_keys WHERE encode(key_hash, 'escape') LIKE '%ovl_%'"),
        0
    );

    // Validation and conflicts.
    api.post(
        "/api/v1/accounts",
        None,
        json!({"email": "alice@example.com"}),
    )
    .await
    .expect_error(409, "email_taken");
    api.post("/api/v1/accounts", None, json!({"email": "not-an-address"}))
        .await
        .expect_error(422, "validation_failed");
    api.post(
        "/api/v1/accounts",
        None,
        json!({"email": "a@b.co", "role": "operator"}),
    )
    .await
    .expect_error(400, "malformed_json");

    // Who am I, with every kind of bad key.
    let me = api.get("/api/v1/account", Some(&key)).await;
    assert_eq!(me.expect(200)["email"], "alice@example.com");
    let none = api.get("/api/v1/account", None).await;
    none.expect_error(401, "unauthorized");
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    api.get(
        "/api/v1/account",
        Some("ovl_000000000000000000000000000000000000000000000000"),
    )
    .await
    .expect_error(401, "unauthorized");
    let basic = api
        .http
        .get(api.url("/api/v1/account"))
        .header("Authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);

    // More keys; listing never shows key material.
    let second = api
        .post("/api/v1/keys", Some(&key), json!({"name": "ci"}))
        .await;
    let second = second.expect(201).clone();
    let second_key = second["key"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_i64().unwrap();
    let keys = api.get("/api/v1/keys", Some(&second_key)).await;
    let keys = keys.expect(200).as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.get("key").is_none() && k["prefix"].as_str().unwrap().starts_with("ovl_"))
    );

    // Another owner cannot revoke it; the owner can, and it never works again.
    let (_, bob) = api.owner("bob@example.com").await;
    api.delete(&format!("/api/v1/keys/{second_id}"), Some(&bob))
        .await
        .expect_error(404, "not_found");
    api.delete(&format!("/api/v1/keys/{second_id}"), Some(&key))
        .await
        .expect(204);
    api.get("/api/v1/account", Some(&second_key))
        .await
        .expect_error(401, "unauthorized");
    api.get("/api/v1/account", Some(&key)).await.expect(200);
    api.delete("/api/v1/keys/abc", Some(&key))
        .await
        .expect_error(400, "bad_path");

    // The operator key from OPERATOR_API_KEY.
    let op = api.get("/api/v1/account", Some(OPERATOR_KEY)).await;
    assert_eq!(op.expect(200)["role"], "operator");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_signup_admits_only_operators_and_the_cli_makes_operator_keys() {
    let api = Api::start(&[("API_SIGNUP_OPEN", "false")]);
    api.post(
        "/api/v1/accounts",
        None,
        json!({"email": "eve@example.com"}),
    )
    .await
    .expect_error(403, "forbidden");
    let eve_key = api
        .post(
            "/api/v1/accounts",
            Some(OPERATOR_KEY),
            json!({"email": "eve@example.com"}),
        )
        .await
        .expect(201)["api_key"]["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // `server create-operator-key` prints a new operator key once.
    let mut env = overlaps_shared::testing::service_env(&api.deployment.db, &api.deployment.redis);
    env.push(("LOG_LEVEL".into(), "warn".into()));
    let out = std::process::Command::new(common::BIN)
        .args(["create-operator-key", "--email", "ops@example.com"])
        .envs(env.clone())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let cli_key = printed.lines().last().unwrap().trim().to_owned();
    let me = api.get("/api/v1/account", Some(&cli_key)).await;
    assert_eq!(me.expect(200)["role"], "operator");
    assert_eq!(me.json["email"], "ops@example.com");

    // Promoting an owner account that holds keys would make whoever registered it an
    // operator: refused, saying why, unless its keys are revoked first.
    let promote = |extra: &[&str]| {
        let mut args = vec!["create-operator-key", "--email", "eve@example.com"];
        args.extend_from_slice(extra);
        std::process::Command::new(common::BIN)
            .args(args)
            .envs(env.clone())
            .output()
            .unwrap()
    };
    let refused = promote(&[]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("1 live owner API key") && said.contains("--revoke-owner-keys"),
        "{said}"
    );
    let still_owner = api.get("/api/v1/account", Some(&eve_key)).await;
    assert_eq!(still_owner.expect(200)["role"], "owner");
    let promoted = promote(&["--revoke-owner-keys"]);
    assert!(
        promoted.status.success(),
        "{:?}: {} {}",
        promoted.status,
        String::from_utf8_lossy(&promoted.stderr),
        String::from_utf8_lossy(&promoted.stdout)
    );
    assert!(String::from_utf8_lossy(&promoted.stderr).contains("revoked 1 owner API key"));
    let operator_key = String::from_utf8(promoted.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    api.get("/api/v1/account", Some(&eve_key))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(
        api.get("/api/v1/account", Some(&operator_key))
            .await
            .expect(200)["role"],
        "operator"
    );

    // An owner who signed up with the operator e-mail is not made an operator by
    // OPERATOR_API_KEY: the server refuses to start instead.
    api.post(
        "/api/v1/accounts",
        Some(OPERATOR_KEY),
        json!({"email": "boss@example.com"}),
    )
    .await
    .expect(201);
    let mut env = overlaps_shared::testing::service_env(&api.deployment.db, &api.deployment.redis);
    env.push((
        "SERVER_BIND".into(),
        format!(
            "127.0.0.1:{}",
            overlaps_shared::testing::free_port().unwrap()
        ),
    ));
    env.push((
        "OPERATOR_API_KEY".into(),
        "ovl_another_operator_key_0123456789abcdef".into(),
    ));
    env.push(("OPERATOR_ACCOUNT_EMAIL".into(), "boss@example.com".into()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut refused =
        overlaps_shared::testing::ServiceProcess::spawn(common::BIN, &[], &envs).unwrap();
    let status = refused
        .wait_exit(std::time::Duration::from_secs(20))
        .unwrap()
        .expect("exits");
    assert!(!status.success());
    assert!(refused.output().join("\n").contains("OPERATOR_API_KEY"));
    assert_eq!(
        api.count("SELECT count(*) FROM users WHERE email = 'boss@example.com' AND role = 'owner'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn websites_crud_validation_pagination_and_owner_isolation() {
    let api = Api::start(&[]);
    let (alice_id, alice) = api.owner("alice@example.com").await;
    let (_, bob) = api.owner("bob@example.com").await;

    let created = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "Shop", "url": "https://example.com/health", "interval_seconds": 60, "timeout_ms": 5000, "quorum": 3, "keyword": "ok"}),
        )
        .await;
    let site = created.expect(201).clone();
    let id = site["id"].as_i64().unwrap();
    assert_eq!(site["owner_id"], alice_id);
    assert_eq!(site["method"], "GET");
    assert_eq!(site["enabled"], true);

    // Validation: each bad field named.
    for (body, field) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": "https://example.com", "interval_seconds": 5}),
            "interval_seconds",
        ),
        (
            json!({"url": "https://example.com", "interval_seconds": 999999}),
            "interval_seconds",
        ),
        (
            json!({"url": "https://example.com", "timeout_ms": 10}),
            "timeout_ms",
        ),
        (
            json!({"url": "https://example.com", "interval_seconds": 10, "timeout_ms": 10000}),
            "timeout_ms",
        ),
        (json!({"url": "https://example.com", "quorum": 0}), "quorum"),
        // Below WEBSITE_MIN_QUORUM (3): one or two validators would decide alone.
        (json!({"url": "https://example.com", "quorum": 2}), "quorum"),
        (
            json!({"url": "https://example.com", "quorum": 16}),
            "quorum",
        ),
        (
            json!({"url": "https://example.com", "method": "POST"}),
            "method",
        ),
    ] {
        let answer = api
            .post("/api/v1/websites", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }
    api.post(
        "/api/v1/websites",
        Some(&alice),
        json!({"url": "https://example.com", "colour": "red"}),
    )
    .await
    .expect_error(400, "malformed_json");
    api.post(
        "/api/v1/websites",
        None,
        json!({"url": "https://example.com"}),
    )
    .await
    .expect_error(401, "unauthorized");

    // Read, update, disable, enable.
    assert_eq!(
        api.get(&format!("/api/v1/websites/{id}"), Some(&alice))
            .await
            .expect(200)["name"],
        "Shop"
    );
    let updated = api
        .patch(
            &format!("/api/v1/websites/{id}"),
            Some(&alice),
            json!({"interval_seconds": 120, "keyword": ""}),
        )
        .await;
    assert_eq!(updated.expect(200)["interval_seconds"], 120);
    assert_eq!(updated.json["keyword"], Value::Null);
    api.patch(
        &format!("/api/v1/websites/{id}"),
        Some(&alice),
        json!({"url": "gopher://x"}),
    )
    .await
    .expect_error(422, "validation_failed");
    assert_eq!(
        api.post(
            &format!("/api/v1/websites/{id}/disable"),
            Some(&alice),
            json!({})
        )
        .await
        .expect(200)["enabled"],
        false
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM websites WHERE id = {id} AND NOT enabled"
        )),
        1
    );
    assert_eq!(
        api.post(
            &format!("/api/v1/websites/{id}/enable"),
            Some(&alice),
            json!({})
        )
        .await
        .expect(200)["enabled"],
        true
    );

    // Another owner sees nothing of it, on every website route.
    for (method, path) in [
        (Method::GET, format!("/api/v1/websites/{id}")),
        (Method::PATCH, format!("/api/v1/websites/{id}")),
        (Method::DELETE, format!("/api/v1/websites/{id}")),
        (Method::POST, format!("/api/v1/websites/{id}/disable")),
        (Method::POST, format!("/api/v1/websites/{id}/enable")),
        (Method::GET, format!("/api/v1/websites/{id}/status")),
        (Method::GET, format!("/api/v1/websites/{id}/latency")),
        (Method::GET, format!("/api/v1/websites/{id}/incidents")),
        (Method::GET, format!("/api/v1/websites/{id}/ticks")),
    ] {
        let body = (method == Method::PATCH || method == Method::POST).then(|| json!({}));
        api.call(method.clone(), &path, Some(&bob), body)
            .await
            .expect_error(404, "not_found");
    }
    let bobs = api.get("/api/v1/websites", Some(&bob)).await;
    assert_eq!(bobs.expect(200)["items"].as_array().unwrap().len(), 0);

    // Pagination: 5 sites, pages of 2, newest first, nothing lost or repeated.
    for n in 0..4 {
        api.website(&alice, &format!("https://example.com/{n}"))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/websites?limit=2&cursor={c}"),
            None => "/api/v1/websites?limit=2".to_owned(),
        };
        let page = api.get(&path, Some(&alice)).await.expect(200).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|s| s["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    api.get("/api/v1/websites?limit=0", Some(&alice))
        .await
        .expect_error(422, "validation_failed");
    api.get("/api/v1/websites?limit=500", Some(&alice))
        .await
        .expect_error(422, "validation_failed");
    api.get("/api/v1/websites?cursor=xyz", Some(&alice))
        .await
        .expect_error(422, "validation_failed");
    api.get("/api/v1/websites?limit=abc", Some(&alice))
        .await
        .expect_error(400, "bad_query");

    // The operator sees everyone's; owner_id filters.
    let all = api
        .get(
            &format!("/api/v1/websites?owner_id={alice_id}"),
            Some(OPERATOR_KEY),
        )
        .await;
    assert_eq!(all.expect(200)["items"].as_array().unwrap().len(), 5);
    api.get(&format!("/api/v1/websites/{id}"), Some(OPERATOR_KEY))
        .await
        .expect(200);

    // Delete.
    api.delete(&format!("/api/v1/websites/{id}"), Some(&alice))
        .await
        .expect(204);
    api.get(&format!("/api/v1/websites/{id}"), Some(&alice))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_private_targets() {
    let api = Api::start(&[("APP_ENV", "prod")]);
    let (_, key) = api.owner("alice@example.com").await;
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://192.168.0.10/",
    ] {
        let answer = api
            .post("/api/v1/websites", Some(&key), json!({"url": url}))
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], "url", "{url}");
    }
    // Public addresses are fine (an IP literal needs no DNS here).
    api.post(
        "/api/v1/websites",
        Some(&key),
        json!({"url": "http://93.184.216.34/"}),
    )
    .await
    .expect(201);

    // In dev the same private target is accepted (local demo sites).
    let dev = Api::start(&[]);
    let (_, dev_key) = dev.owner("alice@example.com").await;
    dev.post(
        "/api/v1/websites",
        Some(&dev_key),
        json!({"url": "http://127.0.0.1:8080/"}),
    )
    .await
    .expect(201);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_uptime_latency_incidents_and_ticks() {
    let api = Api::start(&[]);
    let (_, key) = api.owner("alice@example.com").await;
    let site = api.website(&key, "https://example.com/").await;

    // Before any round: unknown, no uptime.
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&key))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["state"], "unknown");
    assert_eq!(status["uptime"]["last_24h"], Value::Null);

    // Rollups: 2 h ago 90/100 up, 3 days ago 50/100, 20 days ago 0/100, 40 days ago ignored.
    api.sql(&format!(
        "INSERT INTO website_hourly_rollups (website_id, hour, checks, up, down, unknown_rounds, latency_p50_ms, latency_p95_ms, latency_p99_ms) VALUES \
         ({site}, date_trunc('hour', now()) - interval '2 hours', 100, 90, 10, 0, 40, 90, 120), \
         ({site}, date_trunc('hour', now()) - interval '3 days', 100, 50, 50, 1, 50, 100, 200), \
         ({site}, date_trunc('hour', now()) - interval '20 days', 100, 0, 100, 0, NULL, NULL, NULL), \
         ({site}, date_trunc('hour', now()) - interval '40 days', 100, 100, 0, 0, 1, 1, 1)"
    ));
    for round in 1..=6 {
        api.deployment
            .round(round, chrono::Utc::now() + chrono::Duration::seconds(30));
    }
    api.sql(&format!(
        "INSERT INTO website_status (website_id, state, since, last_round) VALUES ({site}, 'down', now() - interval '5 minutes', 6)"
    ));
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&key))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["state"], "down");
    assert_eq!(status["last_round"], 6);
    assert_eq!(status["uptime"]["last_24h"], 90.0);
    assert_eq!(status["uptime"]["last_7d"], 70.0);
    assert_eq!(status["uptime"]["last_30d"].as_f64().unwrap(), 46.667);

    let latency = api
        .get(
            &format!("/api/v1/websites/{site}/latency?hours=24"),
            Some(&key),
        )
        .await;
    let rows = latency.expect(200).as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["latency_p50_ms"], 40);
    assert_eq!(rows[0]["latency_p95_ms"], 90);
    assert_eq!(rows[0]["latency_p99_ms"], 120);
    let week = api
        .get(
            &format!("/api/v1/websites/{site}/latency?hours=168"),
            Some(&key),
        )
        .await;
    assert_eq!(week.expect(200).as_array().unwrap().len(), 2);
    api.get(
        &format!("/api/v1/websites/{site}/latency?hours=0"),
        Some(&key),
    )
    .await
    .expect_error(422, "validation_failed");

    // Incidents with evidence, paginated.
    api.sql(&format!(
        "INSERT INTO incidents (website_id, opened_at, opened_round, resolved_at, resolved_round, cause, evidence) VALUES \
         ({site}, now() - interval '3 hours', 1, now() - interval '2 hours', 2, 'timeout', '[{{\"validator_id\": 1, \"status\": \"down\"}}]'), \
         ({site}, now() - interval '1 hour', 3, now() - interval '30 minutes', 4, 'dns', '[]'), \
         ({site}, now() - interval '5 minutes', 5, NULL, NULL, 'http_status', '[{{\"validator_id\": 2, \"status\": \"down\", \"http_status\": 503}}]')"
    ));
    let page = api
        .get(
            &format!("/api/v1/websites/{site}/incidents?limit=2"),
            Some(&key),
        )
        .await;
    let page = page.expect(200).clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["cause"], "http_status");
    assert_eq!(page["items"][0]["evidence"][0]["http_status"], 503);
    assert_eq!(page["items"][0]["resolved_at"], Value::Null);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = api
        .get(
            &format!("/api/v1/websites/{site}/incidents?limit=2&cursor={cursor}"),
            Some(&key),
        )
        .await;
    let rest = rest.expect(200).clone();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["cause"], "timeout");
    assert_eq!(rest["next_cursor"], Value::Null);
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&key))
        .await;
    assert_eq!(status.json["open_incident_id"], page["items"][0]["id"]);

    // Ticks: 5 results, pages of 2 by (received_at, assignment_id) descending.
    let validator = api.id(
        "INSERT INTO validators (public_key) VALUES (decode(repeat('11', 32), 'hex')) RETURNING id",
    );
    // One fixed receive time (now() differs per statement), so ties really occur.
    let received = chrono::Utc::now().to_rfc3339();
    let mut assignments = Vec::new();
    for n in 0..5 {
        // One per round: (round, site, validator) is unique.
        let assignment = api
            .deployment
            .assign(n + 1, site, validator, "api-1", chrono::Utc::now());
        assignments.push(assignment);
        api.sql(&format!(
            "UPDATE check_assignments SET state = 'answered' WHERE id = {assignment}; \
             INSERT INTO ticks (assignment_id, round_number, website_id, validator_id, status, http_status, latency_ms, checked_at, received_at, signature) \
             VALUES ({assignment}, {}, {site}, {validator}, 'up', 200, {}, now(), '{received}'::timestamptz - interval '{} seconds', decode(repeat('ab', 64), 'hex'))",
            n + 1,
            10 + n,
            n % 2 // 0, 2, 4 share one receive time and 1, 3 another: the id breaks ties
        ));
    }
    // Newest receive time first, then the higher assignment id.
    let expected = [4, 2, 0, 3, 1].map(|n| assignments[n]);
    // Ticks are listed once their round is closed (sealed.rs: not before).
    api.sql("UPDATE rounds SET closed_at = now() WHERE number <= 5");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        // A cursor that never ends (or loops) fails here instead of hanging.
        pages += 1;
        assert!(pages <= 10, "more than 10 pages for 5 ticks: {seen:?}");
        let path = match &cursor {
            Some(c) => format!("/api/v1/websites/{site}/ticks?limit=2&cursor={c}"),
            None => format!("/api/v1/websites/{site}/ticks?limit=2"),
        };
        let page = api.get(&path, Some(&key)).await.expect(200).clone();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty() && items.len() <= 2, "{page}");
        for t in items {
            assert!(t["signature"].as_str().unwrap().starts_with("0xabab"));
            let id = t["assignment_id"].as_i64().unwrap();
            assert!(!seen.contains(&id), "tick {id} repeated: {seen:?}");
            seen.push(id);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every tick once, in order");
    assert_eq!(pages, 3);
    api.get(
        &format!("/api/v1/websites/{site}/ticks?cursor=garbage"),
        Some(&key),
    )
    .await
    .expect_error(422, "validation_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_channels_and_test_alerts() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let (_, bob) = api.owner("bob@example.com").await;
    let site = api.website(&alice, "https://example.com/").await;
    let bob_site = api.website(&bob, "https://example.org/").await;

    let slack = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "slack", "target": "https://hooks.slack.com/services/T/B/X"}),
        )
        .await;
    let slack = slack.expect(201).clone();
    assert_eq!(slack["secret"], Value::Null);
    let slack_id = slack["id"].as_i64().unwrap();
    let email = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "email", "target": "ops@example.com", "website_id": site}),
        )
        .await;
    assert_eq!(email.expect(201)["website_id"], site);
    let hook = api
        .post(
            "/api/v1/channels",
            Some(&alice),
            json!({"kind": "webhook", "target": "https://example.com/hook"}),
        )
        .await;
    let hook = hook.expect(201).clone();
    assert_eq!(hook["secret"].as_str().unwrap().len(), 64);
    assert_eq!(hook["has_secret"], true);
    let hook_id = hook["id"].as_i64().unwrap();
    // The secret is shown once.
    assert!(
        api.get(&format!("/api/v1/channels/{hook_id}"), Some(&alice))
            .await
            .expect(200)
            .get("secret")
            .is_none()
    );

    for (body, field) in [
        (json!({"kind": "pager", "target": "x"}), "kind"),
        (json!({"kind": "slack", "target": "not a url"}), "target"),
        (json!({"kind": "email", "target": "nobody"}), "target"),
        (
            json!({"kind": "webhook", "target": "https://example.com/h", "secret": "short"}),
            "secret",
        ),
        (
            json!({"kind": "slack", "target": "https://example.com/h", "secret": "0123456789abcdef"}),
            "secret",
        ),
    ] {
        let answer = api
            .post("/api/v1/channels", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }
    // A channel for another owner's website is refused as if it did not exist.
    api.post(
        "/api/v1/channels",
        Some(&alice),
        json!({"kind": "email", "target": "a@b.co", "website_id": bob_site}),
    )
    .await
    .expect_error(404, "not_found");

    let list = api.get("/api/v1/channels?limit=2", Some(&alice)).await;
    let list = list.expect(200).clone();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let more = api
        .get(
            &format!(
                "/api/v1/channels?limit=2&cursor={}",
                list["next_cursor"].as_str().unwrap()
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(more.expect(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.get("/api/v1/channels", Some(&bob)).await.expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let off = api
        .patch(
            &format!("/api/v1/channels/{slack_id}"),
            Some(&alice),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.expect(200)["enabled"], false);
    api.patch(
        &format!("/api/v1/channels/{slack_id}"),
        Some(&alice),
        json!({"target": "nope"}),
    )
    .await
    .expect_error(422, "validation_failed");

    // Another owner: every channel route is a 404.
    for (method, path) in [
        (Method::GET, format!("/api/v1/channels/{slack_id}")),
        (Method::PATCH, format!("/api/v1/channels/{slack_id}")),
        (Method::DELETE, format!("/api/v1/channels/{slack_id}")),
        (Method::POST, format!("/api/v1/channels/{slack_id}/test")),
    ] {
        api.call(method, &path, Some(&bob), Some(json!({})))
            .await
            .expect_error(404, "not_found");
    }
    api.post(
        &format!("/api/v1/channels/{slack_id}/test"),
        None,
        json!({}),
    )
    .await
    .expect_error(401, "unauthorized");

    // A test alert: an outbox row of kind 'test' and a send_alert job.
    let queued = api
        .post(
            &format!("/api/v1/channels/{hook_id}/test"),
            Some(&alice),
            json!({}),
        )
        .await;
    let outbox = queued.expect(202)["outbox_id"].as_i64().unwrap();
    assert_eq!(
        api.count(&format!("SELECT count(*) FROM alert_outbox WHERE id = {outbox} AND kind = 'test' AND channel_id = {hook_id} AND state = 'pending'")),
        1
    );
    let mut redis = api.deployment.redis.connect().await.unwrap();
    let queue = overlaps_shared::jobs::queue_name(api.deployment.redis.keys(), "send_alert");
    // apalis-redis keeps a pushed job in `<queue>:scheduled` until it is due, then `:active`.
    let (active, scheduled): (i64, i64) = redis::pipe()
        .cmd("LLEN")
        .arg(format!("{queue}:active"))
        .cmd("ZCARD")
        .arg(format!("{queue}:scheduled"))
        .query_async(&mut redis)
        .await
        .unwrap();
    // The test alert, and the confirmation request the e-mail channel's address
    // was sent when it was added.
    assert_eq!(active + scheduled, 2);
    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("overlaps_queue_depth{queue=\"send_alert\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("overlaps_alerts_pending 2"), "{metrics}");

    // A second test through the same channel at once is refused (one per
    // API_TEST_ALERT_SECONDS), queues nothing, and spares the other channels.
    api.post(
        &format!("/api/v1/channels/{hook_id}/test"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(429, "rate_limited");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM alert_outbox WHERE channel_id = {hook_id}"
        )),
        1
    );
    api.post(
        &format!("/api/v1/channels/{slack_id}/test"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect(202);

    api.delete(&format!("/api/v1/channels/{slack_id}"), Some(&alice))
        .await
        .expect(204);
    api.get(&format!("/api/v1/channels/{slack_id}"), Some(&alice))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn validators_rounds_eons_and_merkle_proofs() {
    use overlaps_shared::merkle::{self, RewardTree};
    // A reward beyond u64: published exactly.
    let api = Api::start(&[
        ("HUB_ID", "api-test-hub"),
        ("REWARD_PER_CHECK", "123456789012345678901234567890"),
    ]);
    let payout = "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
    let key_a = "aa".repeat(32);
    let a = api.id(&format!(
        "INSERT INTO validators (public_key, payout_address, reputation, checks_done, checks_agreed, checks_missed) \
         VALUES (decode('{key_a}', 'hex'), decode('{payout}', 'hex'), 6000, 200, 150, 3) RETURNING id"
    ));
    let b = api.id(&format!(
        "INSERT INTO validators (public_key) VALUES (decode('{}', 'hex')) RETURNING id",
        "bb".repeat(32)
    ));
    let c = api.id(&format!(
        "INSERT INTO validators (public_key, payout_address) VALUES (decode('{}', 'hex'), decode('{}', 'hex')) RETURNING id",
        "cc".repeat(32),
        "11".repeat(20)
    ));
    for round in 1..=4 {
        api.deployment
            .round(round, chrono::Utc::now() + chrono::Duration::seconds(30));
    }
    // Credits beyond any float's precision: money must stay exact.
    api.sql(&format!(
        "INSERT INTO validator_credits (round_number, validator_id, checks, amount) VALUES \
         (1, {a}, 1, 123456789012345678901234567890), (2, {a}, 1, 10), (1, {b}, 1, 5)"
    ));
    api.sql("INSERT INTO eons (number, first_round, last_round) VALUES (1, 1, 2), (2, 3, 4)");

    // Eon 1: a small tree. Eon 2: a real tree of 4,100 leaves where validator a's
    // leaf (its address and cumulative) sits at index 4,097, past the first
    // 4,096-hash chunk of every layer it is cut from.
    let small = RewardTree::build(&[[1u8; 32], [2u8; 32], [3u8; 32]]);
    let own_index = 4_097usize;
    let leaves: Vec<[u8; 32]> = (0..4_100u64)
        .map(|i| {
            let (address, amount) = if i as usize == own_index {
                (
                    overlaps_shared::eth::Address::from_slice(&hex::decode(payout).unwrap()),
                    overlaps_shared::eth::U256::from_dec_str("123456789012345678901234567900")
                        .unwrap(),
                )
            } else {
                (
                    overlaps_shared::eth::Address::from_low_u64_be(i + 1),
                    overlaps_shared::eth::U256::from(i + 1),
                )
            };
            merkle::leaf_hash(address, amount)
        })
        .collect();
    let tree = RewardTree::build(&leaves);
    let root = tree.root();
    api.sql(&format!(
        "INSERT INTO root_commitments (eon, root, total, leaf_count, excluded_count, onchain_root, onchain_block) VALUES \
         (1, decode('{}', 'hex'), 100, 3, 1, NULL, NULL), \
         (2, decode('{r}', 'hex'), 123456789012345678901234567900, 4100, 1, decode('{r}', 'hex'), 77)",
        "00".repeat(32),
        r = hex::encode(root)
    ));
    api.sql(&format!(
        "INSERT INTO merkle_leaves (eon, leaf_index, payout_address, cumulative) VALUES \
         (1, 0, decode('{payout}', 'hex'), 100), \
         (2, {own_index}, decode('{payout}', 'hex'), 123456789012345678901234567900); \
         INSERT INTO validator_rewards (eon, validator_id, payout_address, earned, cumulative, attributed) VALUES \
         (1, {a}, decode('{payout}', 'hex'), 100, 100, 100), \
         (2, {a}, decode('{payout}', 'hex'), 123456789012345678901234567800, 123456789012345678901234567900, 123456789012345678901234567900), \
         (2, {b}, NULL, 5, 5, 0)",
    ));
    // The tree's layers, as accounting stores them: the API cuts proofs from them.
    for (eon, layers) in [(1, &small), (2, &tree)] {
        for (layer, chunk, hashes) in layers.chunks() {
            api.sql(&format!(
                "INSERT INTO merkle_nodes (eon, layer, chunk, hashes) VALUES \
                 ({eon}, {layer}, {chunk}, decode('{h}', 'hex'))",
                h = hex::encode(&hashes)
            ));
        }
    }
    api.sql(&format!(
        "INSERT INTO chain_blocks (number, hash, parent_hash, timestamp) VALUES (77, decode(repeat('77', 32), 'hex'), decode(repeat('76', 32), 'hex'), now()); \
         INSERT INTO contract_events (block_number, block_hash, tx_hash, log_index, kind, eon, account, amount, data) VALUES \
         (77, decode(repeat('77', 32), 'hex'), decode(repeat('01', 32), 'hex'), 0, 'claimed', 2, decode('{payout}', 'hex'), 1000, '{{}}'), \
         (77, decode(repeat('77', 32), 'hex'), decode(repeat('01', 32), 'hex'), 1, 'claimed', 2, decode('{payout}', 'hex'), 1, '{{}}'), \
         (77, decode(repeat('77', 32), 'hex'), decode(repeat('02', 32), 'hex'), 2, 'claimed', 2, decode(repeat('22', 20), 'hex'), 99, '{{}}'); \
         INSERT INTO ethereum_transactions (tag, from_address, to_address, data, nonce, state, mined_block) VALUES \
         ('commit_root:2', decode(repeat('01', 20), 'hex'), decode(repeat('02', 20), 'hex'), '\\x00', 4, 'confirmed', 77); \
         INSERT INTO audit_reports (eon, ok, checked, mismatches) VALUES (2, true, '{{\"leaves\": 3}}', '[]')"
    ));

    // List, with the public_key filter the node's `claim` uses.
    let list = api.get("/api/v1/validators?limit=2", None).await;
    let list = list.expect(200).clone();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["id"], a);
    let rest = api
        .get(
            &format!(
                "/api/v1/validators?limit=2&cursor={}",
                list["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(rest.expect(200)["items"][0]["id"], c);
    let found = api
        .get(&format!("/api/v1/validators?public_key={key_a}"), None)
        .await;
    let found = found.expect(200).clone();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        found["items"][0]["payout_address"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
    api.get("/api/v1/validators?public_key=zz", None)
        .await
        .expect_error(422, "validation_failed");

    // Detail: reputation, activity and exact money.
    let detail = api.get(&format!("/api/v1/validators/{a}"), None).await;
    let detail = detail.expect(200).clone();
    assert_eq!(detail["reputation"], 6000);
    assert_eq!(detail["online"], false);
    assert_eq!(detail["checks_done"], 200);
    assert_eq!(detail["agreed_percent"], 75.0);
    assert_eq!(detail["credited"], "123456789012345678901234567900");
    assert_eq!(detail["committed"], "123456789012345678901234567900");
    assert_eq!(detail["committed_eon"], 2);
    assert_eq!(detail["claimed"], "1001");
    let detail_b = api.get(&format!("/api/v1/validators/{b}"), None).await;
    let detail_b = detail_b.expect(200).clone();
    assert_eq!(
        (
            detail_b["credited"].as_str(),
            detail_b["committed"].as_str(),
            detail_b["claimed"].as_str()
        ),
        (Some("5"), Some("0"), Some("0"))
    );
    api.get("/api/v1/validators/999999", None)
        .await
        .expect_error(404, "not_found");

    // The proof: exactly the documented fields, and it verifies against the root.
    let proof = api
        .get(&format!("/api/v1/validators/{a}/proof"), None)
        .await;
    let proof = proof.expect(200).clone();
    let mut keys: Vec<&str> = proof
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cumulative",
            "eon",
            "leaf",
            "payout_address",
            "proof",
            "root",
            "validator_attributed",
            "validator_cumulative",
            "validator_id"
        ]
    );
    assert_eq!(
        proof["validator_cumulative"],
        "123456789012345678901234567900"
    );
    assert_eq!(
        proof["validator_attributed"],
        "123456789012345678901234567900"
    );
    assert_eq!(proof["eon"], 2);
    assert_eq!(proof["validator_id"], a);
    assert_eq!(
        proof["payout_address"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
    assert_eq!(proof["cumulative"], "123456789012345678901234567900");
    assert_eq!(proof["root"], format!("0x{}", hex::encode(root)));
    let decode = |s: &Value| -> [u8; 32] {
        hex::decode(s.as_str().unwrap().trim_start_matches("0x"))
            .unwrap()
            .try_into()
            .unwrap()
    };
    let hashes: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(decode)
        .collect();
    assert!(merkle::verify_proof(
        decode(&proof["root"]),
        decode(&proof["leaf"]),
        &hashes
    ));
    // The served leaf is the one its served address and amount make (recomputed
    // here: keccak256(keccak256(abi.encode(address, uint256)))), not just any leaf
    // of the tree, and its proof is cut from the second chunk of the leaf layer.
    let mut encoded = [0u8; 64];
    encoded[12..32].copy_from_slice(
        &hex::decode(
            proof["payout_address"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
        )
        .unwrap(),
    );
    overlaps_shared::eth::U256::from_dec_str(proof["cumulative"].as_str().unwrap())
        .unwrap()
        .to_big_endian(&mut encoded[32..]);
    let inner = overlaps_shared::eth::keccak256(encoded);
    assert_eq!(
        decode(&proof["leaf"]),
        overlaps_shared::eth::keccak256(inner)
    );
    assert_eq!(decode(&proof["leaf"]), leaves[own_index]);
    assert_eq!(hashes, tree.proof(own_index));
    assert_eq!(hashes[0], leaves[own_index ^ 1], "the sibling in chunk 1");
    let first = api
        .get(&format!("/api/v1/validators/{a}/proof?eon=1"), None)
        .await;
    assert_eq!(first.expect(200)["cumulative"], "100");
    api.get(&format!("/api/v1/validators/{b}/proof"), None)
        .await
        .expect_error(409, "no_payout_address");
    api.get(&format!("/api/v1/validators/{c}/proof"), None)
        .await
        .expect_error(404, "no_leaf");
    api.get(&format!("/api/v1/validators/{a}/proof?eon=9"), None)
        .await
        .expect_error(404, "no_leaf");
    api.get(&format!("/api/v1/validators/{a}/proof?eon=0"), None)
        .await
        .expect_error(422, "validation_failed");

    // Eons.
    let eons = api.get("/api/v1/eons?limit=1", None).await;
    let eons = eons.expect(200).clone();
    assert_eq!(eons["items"][0]["number"], 2);
    assert_eq!(eons["items"][0]["total"], "123456789012345678901234567900");
    let older = api
        .get(
            &format!(
                "/api/v1/eons?limit=1&cursor={}",
                eons["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(older.expect(200)["items"][0]["number"], 1);
    let eon = api.get("/api/v1/eons/2", None).await;
    let eon = eon.expect(200).clone();
    assert_eq!(eon["root"], format!("0x{}", hex::encode(root)));
    assert_eq!(eon["onchain_root"], eon["root"]);
    assert_eq!(eon["onchain_block"], 77);
    assert_eq!(eon["leaf_count"], 4_100);
    assert_eq!(eon["excluded_count"], 1);
    assert_eq!(eon["transaction"]["state"], "confirmed");
    assert_eq!(eon["transaction"]["nonce"], 4);
    assert_eq!(
        api.get("/api/v1/eons/1", None).await.expect(200)["transaction"],
        Value::Null
    );
    api.get("/api/v1/eons/3", None)
        .await
        .expect_error(404, "not_found");
    let audit = api.get("/api/v1/eons/2/audit", None).await;
    assert_eq!(audit.expect(200)["checked"]["leaves"], 3);
    api.get("/api/v1/eons/1/audit", None)
        .await
        .expect_error(404, "no_audit");

    // Rounds: seed, candidates, assignments with their results.
    let owner = api.id("INSERT INTO users (email) VALUES ('o@example.com') RETURNING id");
    let site = api.id(&format!(
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) VALUES ({owner}, 'https://example.com', 60, 1000, 2) RETURNING id"
    ));
    api.sql(&format!(
        "UPDATE rounds SET candidates = '[[{a}, 6000], [{c}, 5000]]' WHERE number = 3"
    ));
    let answered = api
        .deployment
        .assign(3, site, a, "api-1", chrono::Utc::now());
    let missed = api
        .deployment
        .assign(3, site, c, "api-1", chrono::Utc::now());
    api.sql(&format!(
        "UPDATE check_assignments SET state = 'answered' WHERE id = {answered}; \
         INSERT INTO ticks (assignment_id, round_number, website_id, validator_id, status, http_status, latency_ms, checked_at, tls_expires_at, signature) \
         VALUES ({answered}, 3, {site}, {a}, 'up', 200, 12, now(), '2027-01-02T03:04:05.678Z', decode(repeat('cd', 64), 'hex')); \
         UPDATE check_assignments SET state = 'missed' WHERE id = {missed}; \
         UPDATE rounds SET closed_at = now() WHERE number <= 3"
    ));
    let rounds = api.get("/api/v1/rounds?limit=3", None).await;
    let rounds = rounds.expect(200).clone();
    assert_eq!(rounds["items"][0]["number"], 4);
    assert_eq!(rounds["items"].as_array().unwrap().len(), 3);
    let round = api.get("/api/v1/rounds/3", None).await;
    let round = round.expect(200).clone();
    assert_eq!(round["seed"], format!("0x{}", "03".repeat(32)));
    assert_eq!(round["candidates"][0][0], a);
    let assignments = api.get("/api/v1/rounds/3/assignments?limit=1", None).await;
    let assignments = assignments.expect(200).clone();
    assert_eq!(assignments["items"][0]["id"], answered);
    assert_eq!(assignments["items"][0]["result"]["status"], "up");
    // Every signed field is published, so anyone can verify the signature.
    assert_eq!(
        assignments["items"][0]["result"]["tls_expires_at"],
        "2027-01-02T03:04:05.678Z"
    );
    let next = api
        .get(
            &format!(
                "/api/v1/rounds/3/assignments?limit=1&cursor={}",
                assignments["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let next = next.expect(200).clone();
    assert_eq!(next["items"][0]["result"], Value::Null);
    assert_eq!(next["items"][0]["state"], "missed");
    assert_eq!(next["next_cursor"], Value::Null);
    api.get("/api/v1/rounds/99", None)
        .await
        .expect_error(404, "not_found");
    api.get("/api/v1/rounds/99/assignments", None)
        .await
        .expect_error(404, "not_found");

    // The network's terms: what a node needs to recompute its reward.
    let terms = api.get("/api/v1/network", None).await;
    let terms = terms.expect(200).clone();
    assert_eq!(
        terms,
        serde_json::json!({
            "protocol": "overlaps/v2",
            "hub_id": "api-test-hub",
            "reward_per_check": "123456789012345678901234567890",
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_json_rate_limits_cors_and_metrics() {
    let api = Api::start(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]);
    let (_, key) = api.owner("alice@example.com").await;

    // Unknown routes and methods, bad JSON, bad content type: JSON 4xx, never HTML.
    api.get("/nope", None).await.expect_error(404, "not_found");
    api.get("/api/v1/nope", Some(&key))
        .await
        .expect_error(404, "not_found");
    api.call(Method::PUT, "/api/v1/websites", Some(&key), Some(json!({})))
        .await
        .expect_error(404, "not_found");
    let bad_json = api
        .http
        .post(api.url("/api/v1/websites"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let body: Value = bad_json.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");
    let form = api
        .http
        .post(api.url("/api/v1/websites"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "text/plain")
        .body("url=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);
    assert_eq!(
        form.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );
    api.get("/api/v1/websites/abc", Some(&key))
        .await
        .expect_error(400, "bad_path");
    let ws = api.get("/ws/validator", None).await;
    ws.expect_error(400, "not_a_websocket");

    // Every answer carries a request id.
    let answer = api.get("/healthz", None).await;
    assert!(answer.headers.contains_key("x-request-id"));

    // CORS: the configured origin is allowed, others are not.
    let preflight = api
        .http
        .request(Method::OPTIONS, api.url("/api/v1/websites"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = api
        .http
        .get(api.url("/api/v1/validators"))
        .header("Origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Metrics in the Prometheus text format.
    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for name in [
        "overlaps_validator_connections",
        "overlaps_results_stored_total",
        "overlaps_round_lag_seconds",
        "overlaps_queue_depth{queue=\"send_alert\"}",
        "overlaps_alert_failures",
        "overlaps_http_requests_total{class=\"4xx\"}",
        "overlaps_http_request_duration_seconds_bucket{le=\"0.001\"}",
        "overlaps_http_request_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // Every answered request is timed (this test made several before).
    let timed: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("overlaps_http_request_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(timed >= 3, "{timed} requests timed");

    // Rate limits: per key and per address, 429 JSON with Retry-After.
    let limited = Api::start(&[
        ("API_RATE_LIMIT_PER_KEY", "2"),
        ("API_RATE_LIMIT_PER_IP", "1000"),
    ]);
    let (_, limited_key) = limited.owner("carol@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(limited.get("/api/v1/account", Some(&limited_key)).await);
    }
    let refused = statuses
        .iter()
        .find(|a| a.status == 429)
        .expect("some request limited");
    refused.expect_error(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    // Another key from the same address is not limited by the first key's use.
    let (_, other_key) = limited.owner("dave@example.com").await;
    limited
        .get("/api/v1/account", Some(&other_key))
        .await
        .expect(200);

    let per_ip = Api::start(&[("API_RATE_LIMIT_PER_IP", "2")]);
    let mut limited_any = false;
    for _ in 0..12 {
        let a = per_ip.get("/api/v1/validators", None).await;
        if a.status == 429 {
            a.expect_error(429, "rate_limited");
            limited_any = true;
        }
    }
    assert!(limited_any);
    // Health and metrics are never rate limited.
    per_ip.get("/healthz", None).await.expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_chains_and_reveals_are_public_and_anchors_never_are() {
    let api = Api::start(&[]);
    // Round 1 predates seed chains; epochs of 2 rounds start at round 2.
    for round in 1..=4 {
        api.deployment
            .round(round, chrono::Utc::now() + chrono::Duration::seconds(30));
    }
    let anchors = ["a1", "a2", "a3"].map(|b| b.repeat(32));
    for (i, anchor) in anchors.iter().enumerate() {
        let epoch = i as i64 + 1;
        api.sql(&format!(
            "INSERT INTO seed_chains (epoch, first_round, rounds, tip, anchor, committed_at) VALUES \
             ({epoch}, {first}, 2, decode(repeat('{t:02x}', 32), 'hex'), decode('{anchor}', 'hex'), '2026-11-27T00:00:0{epoch}Z')",
            first = 2 * epoch,
            t = 0xf0 + epoch,
        ));
    }
    api.sql(
        "UPDATE rounds SET seed_reveal = decode(repeat(lpad(to_hex(number), 2, '0'), 32), 'hex') WHERE number >= 2",
    );

    let page = api.get("/api/v1/seed-chains?limit=2", None).await;
    let page = page.expect(200).clone();
    assert!(
        anchors
            .iter()
            .all(|a| !page.to_string().contains(a.as_str())),
        "an anchor was served: {page}"
    );
    let epochs: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["epoch"])
        .collect();
    assert_eq!(epochs, [&json!(3), &json!(2)], "newest first");
    let mut keys: Vec<&str> = page["items"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["committed_at", "epoch", "first_round", "rounds", "tip"]
    );
    assert_eq!(
        page["items"][0],
        json!({
            "epoch": 3, "first_round": 6, "rounds": 2,
            "tip": format!("0x{}", "f3".repeat(32)),
            "committed_at": "2026-11-27T00:00:03Z",
        })
    );
    let rest = api
        .get(
            &format!(
                "/api/v1/seed-chains?limit=2&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let rest = rest.expect(200).clone();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["epoch"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    api.get("/api/v1/seed-chains?cursor=x", None)
        .await
        .expect_error(422, "validation_failed");

    // Each round shows its reveal and epoch; a round before seed chains has neither.
    let three = api.get("/api/v1/rounds/3", None).await;
    let three = three.expect(200).clone();
    assert_eq!(three["seed_reveal"], format!("0x{}", "03".repeat(32)));
    assert_eq!(three["seed_epoch"], 1);
    let rounds = api.get("/api/v1/rounds?limit=4", None).await;
    let rounds = rounds.expect(200).clone();
    let epochs: Vec<Value> = rounds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed_epoch"].clone())
        .collect();
    assert_eq!(epochs, vec![json!(2), json!(1), json!(1), Value::Null]);
    assert_eq!(rounds["items"][3]["seed_reveal"], Value::Null);
    assert!(
        anchors
            .iter()
            .all(|a| !rounds.to_string().contains(a.as_str()))
    );
}
