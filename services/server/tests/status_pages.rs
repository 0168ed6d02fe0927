//! Status pages through the real server binary: the owner API with every bad body
//! refused (nothing stored, the other owner's data unharmed); the public page with
//! hostile names rendered inert under a strict CSP; the signed records (real
//! Ed25519 signatures of real results closed by accounting) verifying in Rust too;
//! unpublished sites, open rounds and unknown slugs never served; badges that are
//! well-formed SVG with cache headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;
mod status_support;

use api_support::Api;
use chrono::{Duration, Utc};
use overlaps_shared::signing::PublicKey;
use serde_json::{Value, json};
use status_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn owners_publish_change_and_delete_pages_and_bad_data_is_refused() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let (_, bob) = api.owner("bob@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    let other = api.website(&alice, "https://blog.example/").await;
    let bobs = api.website(&bob, "https://bob.example/").await;

    let created = api
        .post(
            "/api/v1/status-pages",
            Some(&alice),
            json!({"slug": "alice-shop", "title": "Alice", "website_ids": [site]}),
        )
        .await;
    let page = created.expect(201).clone();
    assert_eq!(page["path"], "/status/alice-shop");
    assert_eq!(page["website_ids"], json!([site]));
    assert_eq!(page["description"], Value::Null);
    let id = page["id"].as_i64().unwrap();
    let path = format!("/api/v1/status-pages/{id}");

    // Every bad body: 422 naming its field (400 for what is not the right JSON).
    let many: Vec<i64> = (1..=51).collect();
    let refused: Vec<(Value, u16, &str)> = vec![
        (
            json!({"slug": "ab", "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "Alice", "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "-alice", "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "a/b/c", "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "docs", "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "x".repeat(65), "title": "t", "website_ids": [site]}),
            422,
            "slug",
        ),
        (
            json!({"slug": "fine", "title": "  ", "website_ids": [site]}),
            422,
            "title",
        ),
        (
            json!({"slug": "fine", "title": "a\u{7}b", "website_ids": [site]}),
            422,
            "title",
        ),
        (
            json!({"slug": "fine", "title": "t".repeat(101), "website_ids": [site]}),
            422,
            "title",
        ),
        (
            json!({"slug": "fine", "title": "t", "description": "d".repeat(1001), "website_ids": [site]}),
            422,
            "description",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": []}),
            422,
            "website_ids",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": [site, site]}),
            422,
            "website_ids",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": many}),
            422,
            "website_ids",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": [bobs]}),
            422,
            "website_ids",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": [site, 999_999]}),
            422,
            "website_ids",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": [site], "extra": 1}),
            400,
            "",
        ),
        (
            json!({"slug": "fine", "title": "t", "website_ids": "1"}),
            400,
            "",
        ),
        (json!({"title": "t", "website_ids": [site]}), 400, ""),
        (json!([1, 2]), 400, ""),
    ];
    for (body, status, field) in &refused {
        let answer = api
            .post("/api/v1/status-pages", Some(&alice), body.clone())
            .await;
        if *status == 422 {
            answer.expect_error(422, "validation_failed");
            assert_eq!(answer.json["details"]["field"], *field, "{body}");
        } else {
            answer.expect_error(400, "malformed_json");
        }
    }
    // A taken slug is a conflict.
    api.post(
        "/api/v1/status-pages",
        Some(&bob),
        json!({"slug": "alice-shop", "title": "Bob", "website_ids": [bobs]}),
    )
    .await
    .expect_error(409, "slug_taken");
    assert_eq!(api.count("SELECT count(*) FROM status_pages"), 1);
    assert_eq!(api.count("SELECT count(*) FROM status_page_sites"), 1);
    // Without a key: 401.
    api.post(
        "/api/v1/status-pages",
        None,
        json!({"slug": "anon", "title": "t", "website_ids": [site]}),
    )
    .await
    .expect_error(401, "unauthorized");

    // Bob sees none of it and can change none of it.
    api.get(&path, Some(&bob))
        .await
        .expect_error(404, "not_found");
    api.patch(&path, Some(&bob), json!({"title": "mine"}))
        .await
        .expect_error(404, "not_found");
    api.delete(&path, Some(&bob))
        .await
        .expect_error(404, "not_found");
    let bobs_list = api.get("/api/v1/status-pages", Some(&bob)).await;
    assert_eq!(bobs_list.expect(200)["items"], json!([]));

    // Alice changes it; a bad change stores nothing.
    for (body, field) in [
        (json!({"website_ids": [bobs]}), "website_ids"),
        (json!({"slug": "API"}), "slug"),
        (json!({"title": ""}), "title"),
    ] {
        let answer = api.patch(&path, Some(&alice), body.clone()).await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{body}");
    }
    let changed = api
        .patch(
            &path,
            Some(&alice),
            json!({"slug": "alice", "description": "Our sites", "website_ids": [other, site]}),
        )
        .await;
    let changed = changed.expect(200).clone();
    assert_eq!(changed["slug"], "alice");
    assert_eq!(changed["title"], "Alice");
    assert_eq!(changed["website_ids"], json!([other, site]));
    assert_eq!(changed["description"], "Our sites");
    let cleared = api
        .patch(&path, Some(&alice), json!({"description": null}))
        .await;
    assert_eq!(cleared.expect(200)["description"], Value::Null);
    let list = api.get("/api/v1/status-pages", Some(&alice)).await;
    assert_eq!(list.expect(200)["items"][0]["id"], id);
    assert_eq!(
        api.get("/status/alice", None).await.status.as_u16(),
        200,
        "published at its new slug"
    );
    assert_eq!(
        api.get("/status/alice-shop", None).await.status.as_u16(),
        404
    );

    // A deleted site leaves the page; a deleted page is gone.
    api.delete(&format!("/api/v1/websites/{other}"), Some(&alice))
        .await
        .expect(204);
    let after = api.get(&path, Some(&alice)).await;
    assert_eq!(after.expect(200)["website_ids"], json!([site]));
    api.delete(&path, Some(&alice)).await.expect(204);
    api.get(&path, Some(&alice))
        .await
        .expect_error(404, "not_found");
    assert_eq!(api.get("/status/alice", None).await.status.as_u16(), 404);
    assert_eq!(api.count("SELECT count(*) FROM status_page_sites"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_shows_the_settled_history_with_hostile_names_inert() {
    let api = Api::start(&[]);
    let world = World::new(&api).await;
    // Older days come from the rollups too (the server then reuses settled days
    // for a few minutes: the second load below must show the same).
    let ago = |days: i64| {
        (Utc::now() - Duration::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    api.sql(&format!(
        "INSERT INTO website_hourly_rollups (website_id, hour, checks, up, down, unknown_rounds, maintenance_checks) VALUES \
         ({shop}, date_trunc('day', now() - interval '10 days') + interval '12 hours', 103, 90, 10, 0, 3), \
         ({shop}, date_trunc('day', now() - interval '20 days') + interval '3 hours', 6, 0, 0, 0, 6), \
         ({shop}, date_trunc('day', now() - interval '95 days'), 6, 0, 6, 0, 0)",
        shop = world.shop
    ));

    let missing = api.get("/status/nobody-here", None).await;
    assert_eq!(missing.status.as_u16(), 404);
    assert!(
        missing.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let page = api.get(&format!("/status/{SLUG}"), None).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        page.headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let html = &page.text;
    // The only script is the built-in one; names and the title are text, not markup.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("<script src=\"/status-assets/verify.js\" defer></script>"));
    assert!(!html.contains("alert('owned')"));
    assert!(html.contains("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"));
    assert!(html.contains("<title>Acme &amp; Co &lt;services&gt;: status</title>"));
    // Both published sites, not the private one; their states.
    assert!(html.contains(&format!("id=\"site-{}\"", world.shop)));
    assert!(html.contains(&format!("id=\"site-{}\"", world.hostile)));
    assert!(!html.contains(&format!("site-{}", world.private)));
    assert!(!html.contains("Back office"));
    assert!(html.contains(&format!(
        "id=\"site-{}\" data-site-id=\"{}\" data-state=\"up\"",
        world.shop, world.shop
    )));
    assert!(html.contains("All systems operational"));
    // 90 bars a site; today's bar of the shop shows its downs, the other's none.
    assert_eq!(html.matches("<li class=\"bar ").count(), 180);
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert!(
        html.contains(&format!("{today}: 66.66% up (5 of 15 results down)")),
        "{html}"
    );
    assert!(html.contains(&format!("{today}: 100.00% up (0 of 15 results down)")));
    // The incident with its timeline and a link to its signed record.
    assert!(html.contains(&format!(
        "id=\"incident-{}\" data-incident-id=\"{}\" data-opened-round=\"{OPENED_ROUND}\" \
         data-opened-status=\"down\" data-resolved-round=\"{RESOLVED_ROUND}\"",
        world.incident, world.incident
    )));
    assert!(html.contains("opened in round 3; 2 of 3 validators saw it fail (http status)"));
    assert!(html.contains("resolved in round 4"));
    assert!(html.contains("Duration: 30 s."));
    assert!(html.contains(&format!(
        "/api/v1/status-pages/{SLUG}/records?site={}&amp;incident={}",
        world.shop, world.incident
    )));
    assert!(html.contains("No incidents in the last 90 days."));
    assert!(html.contains("median 120 ms"));

    for _ in 0..2 {
        let page = api.get(&format!("/status/{SLUG}"), None).await;
        assert!(page.text.contains(&format!(
            "{}: 90.00% up (10 of 100 results down); 3 checks in maintenance (not counted)",
            ago(10)
        )));
        assert!(page.text.contains(&format!(
            "class=\"bar bar-maintenance\" data-day=\"{}\"",
            ago(20)
        )));
        assert!(
            !page.text.contains(&ago(95)),
            "older than 90 days: not shown"
        );
    }

    // The built-in assets, served with their types.
    let script = api.get("/status-assets/verify.js", None).await;
    assert_eq!(script.status.as_u16(), 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text.contains("crypto.subtle.verify"));
    let style = api.get("/status-assets/status.css", None).await;
    assert!(
        style.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        api.get("/status-assets/other.js", None)
            .await
            .status
            .as_u16(),
        404
    );
}

/// Checks every served signature in Rust as well, and the served bytes' fields.
fn check_records(records: &Value, expected_rounds: &[i64]) {
    let rounds: Vec<i64> = records["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["round"].as_i64().unwrap())
        .collect();
    assert_eq!(rounds, expected_rounds, "{records}");
    for round in records["rounds"].as_array().unwrap() {
        assert_eq!(round["results"].as_array().unwrap().len(), 3);
        for result in round["results"].as_array().unwrap() {
            let key: PublicKey = result["public_key"].as_str().unwrap().parse().unwrap();
            let bytes = hex::decode(result["signed_bytes"].as_str().unwrap()).unwrap();
            let signature = hex::decode(result["signature"].as_str().unwrap()).unwrap();
            assert_eq!(key.verify(&bytes, &signature), Ok(()), "{result}");
            assert!(bytes.starts_with(b"overlaps/v"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_records_are_served_only_for_published_sites_and_closed_rounds() {
    let api = Api::start(&[]);
    let world = World::new(&api).await;
    let records = |query: String| {
        let api = &api;
        async move {
            api.get(
                &format!("/api/v1/status-pages/{SLUG}/records?{query}"),
                None,
            )
            .await
        }
    };

    // The rounds the page verifies: the incident's opening and resolution.
    let shown = records(format!("site={}", world.shop)).await;
    let shown = shown.expect(200).clone();
    assert_eq!(shown["hub_id"], common::HUB_ID);
    assert_eq!(shown["website_id"], world.shop);
    check_records(&shown, &[OPENED_ROUND, RESOLVED_ROUND]);
    assert_eq!(shown["rounds"][0]["claimed_status"], "down");
    assert_eq!(shown["rounds"][1]["claimed_status"], "up");
    let statuses: Vec<&str> = shown["rounds"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["down", "up", "down"]);

    let incident = records(format!("site={}&incident={}", world.shop, world.incident)).await;
    check_records(incident.expect(200), &[OPENED_ROUND, RESOLVED_ROUND]);
    let one = records(format!("site={}&round=2", world.shop)).await;
    let one = one.expect(200).clone();
    check_records(&one, &[2]);
    assert_eq!(one["rounds"][0]["claimed_status"], Value::Null);
    let today = Utc::now().format("%Y-%m-%d");
    let day = records(format!("site={}&day={today}", world.shop)).await;
    check_records(day.expect(200), &[2, 3]);
    let quiet = records(format!("site={}&day={today}", world.hostile)).await;
    check_records(quiet.expect(200), &[1, 2, 3, 4, 5]);

    // An open round's results are sealed: never served, whatever is asked.
    signed_round(
        &api,
        6,
        Utc::now() - Duration::seconds(5),
        &[(world.shop, ["down", "down", "down"])],
        &world.validators,
    );
    let sealed = records(format!("site={}&round=6", world.shop)).await;
    assert_eq!(sealed.expect(200)["rounds"], json!([]));
    let sealed_day = records(format!("site={}&day={today}", world.shop)).await;
    check_records(sealed_day.expect(200), &[2, 3]);

    // The unpublished site, another page's slug and unknown things: 404.
    records(format!("site={}", world.private))
        .await
        .expect_error(404, "not_found");
    records(format!("site={}&round=3", world.private))
        .await
        .expect_error(404, "not_found");
    api.get(
        &format!("/api/v1/status-pages/nope/records?site={}", world.shop),
        None,
    )
    .await
    .expect_error(404, "not_found");
    let private_incident = api.id(&format!(
        "SELECT id FROM incidents WHERE website_id = {}",
        world.private
    ));
    records(format!("site={}&incident={private_incident}", world.shop))
        .await
        .expect_error(404, "not_found");

    // An incident older than the stored results (their partitions dropped): its
    // rounds are listed as pruned with no results, never silently left out.
    api.sql(&format!(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at, closed_at) VALUES \
           (100, decode(repeat('aa', 32), 'hex'), now() - interval '40 days', now() - interval '40 days' + interval '30 seconds', now() - interval '40 days' + interval '31 seconds'), \
           (101, decode(repeat('bb', 32), 'hex'), now() - interval '39 days', now() - interval '39 days' + interval '30 seconds', now() - interval '39 days' + interval '31 seconds'); \
         INSERT INTO incidents (website_id, opened_at, opened_round, resolved_at, resolved_round, cause, evidence) \
         VALUES ({}, now() - interval '40 days', 100, now() - interval '39 days', 101, 'timeout', '[]')",
        world.shop
    ));
    let with_old = records(format!("site={}", world.shop)).await;
    let with_old = with_old.expect(200).clone();
    let listed: Vec<(i64, bool, usize, Value)> = with_old["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["round"].as_i64().unwrap(),
                r["pruned"].as_bool().unwrap(),
                r["results"].as_array().unwrap().len(),
                r["claimed_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (OPENED_ROUND, false, 3, json!("down")),
            (RESOLVED_ROUND, false, 3, json!("up")),
            (100, true, 0, json!("down")),
            (101, true, 0, json!("up")),
        ]
    );

    // Malformed queries: 422 naming the field.
    for (query, field) in [
        (String::new(), "site"),
        ("site=abc".to_owned(), "site"),
        ("site=-1".to_owned(), "site"),
        (format!("site={}&round=x", world.shop), "round"),
        (format!("site={}&round=1&day={today}", world.shop), "round"),
        (format!("site={}&incident=0", world.shop), "incident"),
        (format!("site={}&day=2026-13-01", world.shop), "day"),
        (format!("site={}&day=2001-01-01", world.shop), "day"),
        (
            format!(
                "site={}&day={}",
                world.shop,
                (Utc::now() + Duration::days(2)).format("%Y-%m-%d")
            ),
            "day",
        ),
    ] {
        let answer = records(query.clone()).await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(answer.json["details"]["field"], field, "{query}");
    }
}

/// A small well-formedness check: every tag closes in order, attributes quoted.
fn well_formed_svg(text: &str) {
    assert!(
        text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{text}"
    );
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        assert!(!tag.contains('<'), "markup inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "{text}");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap().to_owned());
        }
        let after = &rest[end + 1..];
        let between = &after[..after.find('<').unwrap_or(after.len())];
        assert!(!between.contains('>'), "stray > in text: {between}");
        for entity in between.split('&').skip(1) {
            let name = &entity[..entity.find(';').expect("unterminated entity")];
            assert!(["amp", "lt", "gt", "quot", "#39"].contains(&name), "{name}");
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed {open:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn badges_are_small_valid_svg_for_published_sites_only() {
    let api = Api::start(&[]);
    let world = World::new(&api).await;
    let expectations = [
        ("status", "Shop: up"),
        ("uptime-24h", "uptime 24h: 66.66%"),
        ("uptime-7d", "uptime 7d: 66.66%"),
        ("uptime-30d", "uptime 30d: 66.66%"),
        ("latency-24h", "latency 24h: 120 ms"),
    ];
    for (kind, label) in expectations {
        let badge = api
            .get(&format!("/badges/{SLUG}/{}/{kind}.svg", world.shop), None)
            .await;
        assert_eq!(badge.status.as_u16(), 200, "{kind}: {}", badge.text);
        assert_eq!(badge.headers["content-type"], "image/svg+xml");
        assert_eq!(badge.headers["cache-control"], "public, max-age=60");
        well_formed_svg(&badge.text);
        assert!(
            badge.text.contains(&format!("aria-label=\"{label}\"")),
            "{}",
            badge.text
        );
        assert!(badge.text.len() < 2048);
    }
    // A hostile name is text in the badge too.
    let hostile = api
        .get(
            &format!("/badges/{SLUG}/{}/status.svg", world.hostile),
            None,
        )
        .await;
    well_formed_svg(&hostile.text);
    assert!(!hostile.text.contains("<script"));

    // Unpublished site, unknown page, site or kind: a grey "not found" badge, 404.
    for path in [
        format!("/badges/{SLUG}/{}/status.svg", world.private),
        format!("/badges/{SLUG}/{}/uptime-30d.svg", world.private),
        format!("/badges/nope/{}/status.svg", world.shop),
        format!("/badges/{SLUG}/999999/status.svg"),
        format!("/badges/{SLUG}/abc/status.svg"),
        format!("/badges/{SLUG}/{}/uptime-1y.svg", world.shop),
        format!("/badges/{SLUG}/{}/status.png", world.shop),
    ] {
        let badge = api.get(&path, None).await;
        assert_eq!(badge.status.as_u16(), 404, "{path}");
        assert_eq!(badge.headers["content-type"], "image/svg+xml");
        well_formed_svg(&badge.text);
        assert!(badge.text.contains("not found"));
    }
}
