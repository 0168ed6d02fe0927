//! Site assertions through the real server binary: the API validates and stores
//! them, the hub sends them in `validate`, and a result must sign their spec hash.
//! Cheaters play the validator: a result signed under the old v1 layout, one over a
//! spec the hub never sent, a `degraded` or `up` that contradicts the limit sent;
//! each is refused and nothing is stored, while the honest result lands.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod api_support;
mod common;

use api_support::Api;
use chrono::Utc;
use common::Client;
use overlaps_shared::protocol::{
    CheckResult, CheckStatus, ErrorCode, FailureReason, HubMessage, ValidateRequest,
};
use overlaps_shared::signing::{self, Keypair, ResultFields, ResultLayout};
use serde_json::json;

const SITE: &str = "https://shop.example/health";

#[tokio::test(flavor = "multi_thread")]
async fn assertions_are_validated_stored_shown_and_changed() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "Shop", "url": SITE, "timeout_ms": 5000, "keyword": "error",
                   "keyword_absent": true, "accepted_status": ["200-204", "301"],
                   "json_path": "$.checks[0].status", "json_expected": {"ok": true},
                   "max_response_ms": 1000}),
        )
        .await;
    let site = created.expect(201).clone();
    let id = site["id"].as_i64().unwrap();
    assert_eq!(site["accepted_status"], json!(["200-204", "301"]));
    assert_eq!(site["keyword_absent"], true);
    assert_eq!(site["json_path"], "$.checks[0].status");
    assert_eq!(site["json_expected"], json!({"ok": true}));
    assert_eq!(site["max_response_ms"], 1000);

    // Defaults: 200–399, no other assertion.
    let plain = api.website(&alice, "https://plain.example/").await;
    let plain = api
        .get(&format!("/api/v1/websites/{plain}"), Some(&alice))
        .await;
    let plain = plain.expect(200);
    assert_eq!(plain["accepted_status"], json!(["200-399"]));
    assert_eq!(plain["keyword_absent"], false);
    assert!(plain["json_path"].is_null() && plain["max_response_ms"].is_null());

    // Every bad value, on create and on update: 422 naming the field, nothing stored.
    let before = api.count("SELECT count(*) FROM websites");
    let bad = [
        (json!({"accepted_status": []}), "accepted_status"),
        (json!({"accepted_status": ["99"]}), "accepted_status"),
        (json!({"accepted_status": ["600"]}), "accepted_status"),
        (json!({"accepted_status": ["300-200"]}), "accepted_status"),
        (json!({"accepted_status": ["2xx"]}), "accepted_status"),
        (
            json!({"accepted_status": vec!["200"; 17]}),
            "accepted_status",
        ),
        (json!({"keyword_absent": true}), "keyword_absent"),
        (json!({"json_path": "$.a"}), "json_expected"),
        (json!({"json_expected": 1}), "json_path"),
        (json!({"json_path": "a.b", "json_expected": 1}), "json_path"),
        (
            json!({"json_path": "$..a", "json_expected": 1}),
            "json_path",
        ),
        (
            json!({"json_path": "$.a[*]", "json_expected": 1}),
            "json_path",
        ),
        (
            json!({"json_path": format!("${}", ".a".repeat(200)), "json_expected": 1}),
            "json_path",
        ),
        (
            json!({"json_path": "$.a", "json_expected": "x".repeat(1100)}),
            "json_expected",
        ),
        (
            json!({"json_path": "$.a", "json_expected": 1, "method": "HEAD"}),
            "json_path",
        ),
        (json!({"max_response_ms": -5}), "max_response_ms"),
        (json!({"max_response_ms": 5000}), "max_response_ms"),
        (json!({"max_response_ms": 9000}), "max_response_ms"),
    ];
    for (extra, field) in &bad {
        let mut body = json!({"url": "https://new.example/", "timeout_ms": 5000});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = api
            .post("/api/v1/websites", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], *field, "{body}");
    }
    assert_eq!(api.count("SELECT count(*) FROM websites"), before);
    let stored = api.text(&format!("SELECT assertions FROM websites WHERE id = {id}"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        json!({"accepted_status": "200-204,301", "keyword_absent": true,
               "json_path": "$.checks[0].status", "json_expected": "{\"ok\":true}",
               "max_response_ms": 1000})
    );
    // On update the site has a keyword and a JSON assertion already, so the cases
    // that only lack those are not errors there.
    let updatable = |extra: &serde_json::Value, field: &str| {
        let o = extra.as_object().unwrap();
        !(o.contains_key("method")
            || field == "keyword_absent"
            || (o.len() == 1 && (o.contains_key("json_path") || o.contains_key("json_expected"))))
    };
    for (extra, field) in bad.iter().filter(|(e, f)| updatable(e, f)) {
        let answer = api
            .patch(
                &format!("/api/v1/websites/{id}"),
                Some(&alice),
                extra.clone(),
            )
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], *field, "{extra}");
    }
    assert_eq!(
        api.text(&format!("SELECT assertions FROM websites WHERE id = {id}")),
        stored,
        "the refused updates changed nothing"
    );
    // A shorter timeout may not undercut the limit kept from before.
    api.patch(
        &format!("/api/v1/websites/{id}"),
        Some(&alice),
        json!({"timeout_ms": 800}),
    )
    .await
    .expect_error(422, "validation_failed");

    // Removing: empty path, limit 0; removing the keyword drops its polarity.
    let changed = api
        .patch(
            &format!("/api/v1/websites/{id}"),
            Some(&alice),
            json!({"json_path": "", "max_response_ms": 0, "keyword": ""}),
        )
        .await;
    let changed = changed.expect(200);
    assert!(changed["json_path"].is_null() && changed["json_expected"].is_null());
    assert!(changed["max_response_ms"].is_null());
    assert_eq!(changed["keyword_absent"], false);
    assert_eq!(changed["accepted_status"], json!(["200-204", "301"]));
}

/// A validator signed up on `server`, with one dispatched assignment for `site`; the
/// `validate` it received.
async fn assigned(api: &Api, key: &Keypair, site: i64) -> (Client, i64, ValidateRequest) {
    let dep = &api.deployment;
    let mut client = Client::connect(&api.server.ws_url()).await;
    let validator_id = client.signup(key).await;
    let deadline = Utc::now() + chrono::Duration::seconds(30);
    let round = 1 + dep.count("SELECT count(*) FROM rounds");
    dep.round(round, deadline);
    let assignment = dep.assign(round, site, validator_id, &api.server.instance, deadline);
    dep.dispatch(&api.server.instance, round, vec![assignment])
        .await;
    match client.recv().await {
        HubMessage::Validate(request) => {
            assert_eq!(request.assignment_id, assignment);
            (client, assignment, request)
        }
        other => panic!("expected validate, got {other:?}"),
    }
}

/// A result for `request` with every assertion passed, `latency_ms` to the headers
/// (`degraded` names `too_slow`).
fn result(request: &ValidateRequest, status: CheckStatus, latency_ms: u32) -> CheckResult {
    CheckResult {
        assignment_id: request.assignment_id,
        status,
        http_status: Some(200),
        latency_ms,
        failure: (status == CheckStatus::Degraded).then_some(FailureReason::TooSlow),
        tls_expires_at_ms: None,
        checked_at_ms: Utc::now().timestamp_millis(),
        spec_hash: hex::encode(request.spec().hash()),
        signature: String::new(),
    }
}

/// The scheduler records each assignment's spec when the round opens; an owner may
/// edit the site before the check is sent. Dispatch then sends the site as it is
/// and records that spec instead: a validator signing the spec recorded at the
/// opening (which it was never sent) is refused, the one signing what it was sent
/// is stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_site_edited_after_its_round_opened_is_sent_and_recorded_as_edited() {
    use diesel::RunQueryDsl;
    use overlaps_shared::site_check::SiteCheck;

    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "Shop", "url": SITE, "timeout_ms": 5000, "max_response_ms": 1000}),
        )
        .await;
    let site = site.expect(201)["id"].as_i64().unwrap();
    let dep = &api.deployment;
    // The site as the scheduler read it when the round opened.
    let at_opening: SiteCheck = diesel::sql_query(
        "SELECT url, method, timeout_ms, keyword, assertions FROM websites WHERE id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(site)
    .get_result(&mut dep.conn())
    .unwrap();

    let key = Keypair::generate();
    let mut client = Client::connect(&api.server.ws_url()).await;
    let validator_id = client.signup(&key).await;
    let deadline = Utc::now() + chrono::Duration::seconds(30);
    dep.round(1, deadline);
    let assignment = dep.assign(1, site, validator_id, &api.server.instance, deadline);
    // What the scheduler records at the opening.
    api.sql(&format!(
        "UPDATE check_assignments SET spec_hash = '\\x{}'::bytea, max_response_ms = 1000 WHERE id = {assignment}",
        hex::encode(at_opening.spec_hash())
    ));
    // The owner relaxes the limit before the check goes out.
    api.patch(
        &format!("/api/v1/websites/{site}"),
        Some(&alice),
        json!({"max_response_ms": 2000}),
    )
    .await
    .expect(200);
    dep.dispatch(&api.server.instance, 1, vec![assignment])
        .await;
    let request = match client.recv().await {
        HubMessage::Validate(request) => request,
        other => panic!("expected validate, got {other:?}"),
    };
    assert_eq!(request.max_response_ms, Some(2000), "sent as edited");
    assert_ne!(request.spec().hash(), at_opening.spec_hash());
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM check_assignments WHERE id = {assignment} \
             AND spec_hash = '\\x{}'::bytea AND max_response_ms = 2000",
            hex::encode(request.spec().hash())
        )),
        1,
        "recorded as sent"
    );

    // The cheater signs the spec of the opening (it learned the old limit from the
    // site's public record) to call a 1,500 ms answer degraded.
    let mut old = request.clone();
    old.max_response_ms = Some(1000);
    assert_eq!(old.spec().hash(), at_opening.spec_hash());
    client
        .send_result(result(&old, CheckStatus::Degraded, 1500).sign(common::HUB_ID, &key))
        .await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);
    assert_eq!(api.count("SELECT count(*) FROM ticks"), 0);

    // Under the limit it was sent, 1,500 ms is up, and that lands.
    client
        .send_result(result(&request, CheckStatus::Up, 1500).sign(common::HUB_ID, &key))
        .await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn results_must_sign_the_spec_sent_and_agree_with_its_limit() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "Shop", "url": SITE, "timeout_ms": 5000, "keyword": "error",
                   "keyword_absent": true, "accepted_status": ["200-299"],
                   "json_path": "$.status", "json_expected": "ok", "max_response_ms": 1000}),
        )
        .await;
    let site = site.expect(201)["id"].as_i64().unwrap();
    let hub = common::HUB_ID;
    let key = Keypair::generate();
    let (mut client, assignment, request) = assigned(&api, &key, site).await;

    // The assignment carries every assertion, and the hub recorded its hash.
    assert_eq!(request.keyword.as_deref(), Some("error"));
    assert!(request.keyword_absent);
    assert_eq!(request.accepted_status.len(), 1);
    assert_eq!(request.json_path.as_deref(), Some("$.status"));
    assert_eq!(request.json_expected, Some(json!("ok")));
    assert_eq!(request.max_response_ms, Some(1000));
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM check_assignments WHERE id = {assignment} \
             AND spec_hash = '\\x{}'::bytea AND max_response_ms = 1000",
            hex::encode(request.spec().hash())
        )),
        1
    );

    // Cheater 1: a result signed under the v1 layout (a replay of an old result's
    // bytes, or a node that never upgraded). The hub checks v2 bytes only.
    let honest = result(&request, CheckStatus::Degraded, 1840);
    let mut v1 = honest.clone();
    let mut fields: ResultFields = honest.fields();
    fields.layout = ResultLayout::V1;
    v1.signature = hex::encode(key.sign(&signing::result_bytes(hub, &fields)));
    client.send_result(v1).await;
    assert_eq!(client.error().await, ErrorCode::BadSignature);

    // Cheater 2: a validly signed result over another spec (it checked without the
    // JSON assertion, so its `up` would look justified).
    let mut laxer = request.clone();
    laxer.json_path = None;
    laxer.json_expected = None;
    client
        .send_result(result(&laxer, CheckStatus::Up, 200).sign(hub, &key))
        .await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);

    // Cheater 3: `degraded` with a latency within the limit, `up` over it, and a
    // degraded result without the too_slow failure.
    client
        .send_result(result(&request, CheckStatus::Degraded, 900).sign(hub, &key))
        .await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);
    client
        .send_result(result(&request, CheckStatus::Up, 1500).sign(hub, &key))
        .await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);
    let mut unexplained = result(&request, CheckStatus::Degraded, 1840);
    unexplained.failure = Some(FailureReason::Timeout);
    client.send_result(unexplained.sign(hub, &key)).await;
    assert_eq!(client.error().await, ErrorCode::InvalidResult);

    assert_eq!(api.count("SELECT count(*) FROM ticks"), 0, "nothing stored");
    assert_eq!(api.deployment.assignment_state(assignment), "pending");

    // The honest degraded result lands, stored as v2 with its spec hash, and
    // verifies from the stored row alone.
    client.send_result(honest.clone().sign(hub, &key)).await;
    assert_eq!(
        client.recv().await,
        HubMessage::Ack {
            assignment_ids: vec![assignment]
        }
    );
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM ticks WHERE assignment_id = {assignment} AND status = 'degraded' \
             AND failure = 'too_slow' AND latency_ms = 1840 AND protocol_version = 2 \
             AND spec_hash = '\\x{}'::bytea",
            hex::encode(request.spec().hash())
        )),
        1
    );
    // Ticks are public once their round closed.
    api.sql("UPDATE rounds SET closed_at = now()");
    let ticks = api
        .get(&format!("/api/v1/websites/{site}/ticks"), Some(&alice))
        .await;
    let tick = &ticks.expect(200)["items"][0];
    assert_eq!(tick["protocol_version"], 2);
    assert_eq!(
        tick["spec_hash"],
        format!("0x{}", hex::encode(request.spec().hash()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_sites_are_a_host_and_a_port_with_only_a_time_limit() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "DB", "url": "tcp://db.example.com:5432", "timeout_ms": 3000,
                   "max_response_ms": 500}),
        )
        .await;
    let site = created.expect(201).clone();
    assert_eq!(site["url"], "tcp://db.example.com:5432");
    assert_eq!(site["max_response_ms"], 500);
    let id = site["id"].as_i64().unwrap();

    let before = api.count("SELECT count(*) FROM websites");
    for (body, field) in [
        (json!({"url": "tcp://db.example.com"}), "url"),
        (json!({"url": "tcp://db.example.com:0"}), "url"),
        (json!({"url": "tcp://db.example.com:5432/path"}), "url"),
        (json!({"url": "tcp://user:pw@db.example.com:5432"}), "url"),
        (
            json!({"url": "tcp://db.example.com:5432", "keyword": "x"}),
            "keyword",
        ),
        (
            json!({"url": "tcp://db.example.com:5432", "method": "HEAD"}),
            "method",
        ),
        (
            json!({"url": "tcp://db.example.com:5432", "accepted_status": ["200"]}),
            "accepted_status",
        ),
        (
            json!({"url": "tcp://db.example.com:5432", "json_path": "$.a", "json_expected": 1}),
            "json_path",
        ),
    ] {
        let answer = api
            .post("/api/v1/websites", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }
    assert_eq!(api.count("SELECT count(*) FROM websites"), before);

    // An http site with a JSON assertion cannot turn into a port check keeping it.
    let http = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"url": "https://api.example.com/", "json_path": "$.ok", "json_expected": true}),
        )
        .await;
    let http = http.expect(201)["id"].as_i64().unwrap();
    api.patch(
        &format!("/api/v1/websites/{http}"),
        Some(&alice),
        json!({"url": "tcp://api.example.com:443"}),
    )
    .await
    .expect_error(422, "validation_failed");
    assert_eq!(
        api.text(&format!("SELECT url FROM websites WHERE id = {http}")),
        "https://api.example.com/"
    );

    // The hub sends it as such, and its spec hash is the TCP kind's.
    let key = Keypair::generate();
    let (_, assignment, request) = assigned(&api, &key, id).await;
    assert_eq!(request.url, "tcp://db.example.com:5432");
    assert_eq!(request.max_response_ms, Some(500));
    assert_eq!(request.spec().canonical_bytes()[23], 2, "kind tcp");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM check_assignments WHERE id = {assignment} AND spec_hash = '\\x{}'::bytea",
            hex::encode(request.spec().hash())
        )),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_sites_are_a_name_and_a_type_with_an_expected_answer_and_a_time_limit() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let created = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"name": "Mail", "url": "DNS://Example.COM./mx", "timeout_ms": 3000,
                   "keyword": "10  MX1.Example.com.", "max_response_ms": 500}),
        )
        .await;
    let site = created.expect(201).clone();
    // Stored canonical: lower-case name without the final dot, upper-case type; the
    // expected answer likewise.
    assert_eq!(site["url"], "dns://example.com/MX");
    assert_eq!(site["keyword"], "10 mx1.example.com");
    assert_eq!(site["max_response_ms"], 500);
    let id = site["id"].as_i64().unwrap();
    let aaaa = api
        .post(
            "/api/v1/websites",
            Some(&alice),
            json!({"url": "dns://www.example.com/AAAA", "keyword": "2001:DB8:0::1"}),
        )
        .await;
    assert_eq!(aaaa.expect(201)["keyword"], "2001:db8::1");

    let before = api.count("SELECT count(*) FROM websites");
    let long = format!("dns://{}.com/A", "a".repeat(250));
    for (body, field) in [
        (json!({"url": "dns://example.com/SRV"}), "url"),
        (json!({"url": "dns://example.com"}), "url"),
        (json!({"url": "dns://exa_mple..com/A"}), "url"),
        (json!({"url": "dns://-bad.example.com/A"}), "url"),
        (json!({"url": "dns://192.0.2.1/A"}), "url"),
        (json!({"url": long}), "url"),
        (
            json!({"url": "dns://example.com/A", "keyword": "2001:db8::1"}),
            "keyword",
        ),
        (
            json!({"url": "dns://example.com/MX", "keyword": "ten mx.example.com"}),
            "keyword",
        ),
        (
            json!({"url": "dns://example.com/A", "keyword": "192.0.2.1", "keyword_absent": true}),
            "keyword_absent",
        ),
        (
            json!({"url": "dns://example.com/A", "method": "HEAD"}),
            "method",
        ),
        (
            json!({"url": "dns://example.com/A", "accepted_status": ["200"]}),
            "accepted_status",
        ),
        (
            json!({"url": "dns://example.com/A", "json_path": "$.a", "json_expected": 1}),
            "json_path",
        ),
    ] {
        let answer = api
            .post("/api/v1/websites", Some(&alice), body.clone())
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }
    assert_eq!(api.count("SELECT count(*) FROM websites"), before);

    // The hub sends it as such, and its spec hash is the DNS kind's, binding the
    // expected answer.
    let key = Keypair::generate();
    let (_, assignment, request) = assigned(&api, &key, id).await;
    assert_eq!(request.url, "dns://example.com/MX");
    assert_eq!(request.keyword.as_deref(), Some("10 mx1.example.com"));
    assert_eq!(request.max_response_ms, Some(500));
    assert_eq!(request.spec().canonical_bytes()[23], 3, "kind dns");
    assert_eq!(
        api.count(&format!(
            "SELECT count(*) FROM check_assignments WHERE id = {assignment} AND spec_hash = '\\x{}'::bytea",
            hex::encode(request.spec().hash())
        )),
        1
    );

    // Documented in the OpenAPI document.
    let doc = api.get("/api-docs/openapi.json", None).await;
    let text = doc.expect(200).to_string();
    assert!(
        text.contains("dns://name/TYPE"),
        "OpenAPI mentions dns sites"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_dns_sites_naming_internal_names() {
    let api = Api::start(&[("APP_ENV", "prod")]);
    let (_, alice) = api.owner("alice@example.com").await;
    let before = api.count("SELECT count(*) FROM websites");
    for url in [
        "dns://localhost/A",
        "dns://db/A",
        "dns://grafana.localhost/A",
        "dns://printer.local/AAAA",
        "dns://vault.internal/A",
        "dns://nas.home.arpa/A",
    ] {
        let answer = api
            .post("/api/v1/websites", Some(&alice), json!({"url": url}))
            .await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], "url", "{url}");
    }
    assert_eq!(api.count("SELECT count(*) FROM websites"), before);
    // A public name is accepted without resolving it (a name that does not exist
    // yet is a legitimate thing to watch); a private expected answer too.
    api.post(
        "/api/v1/websites",
        Some(&alice),
        json!({"url": "dns://intranet.example.com/A", "keyword": "10.0.0.5"}),
    )
    .await
    .expect(201);
}
