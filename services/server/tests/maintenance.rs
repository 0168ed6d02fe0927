//! Maintenance windows through the real server binary: one-off and weekly
//! windows declared, listed and removed; the status answer carrying them and
//! whether one is on; another owner's site 404 on every route; every bad body a
//! 422 naming its field (400 for what is not JSON of the right shape) with
//! nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod common;

use api_support::{Api, OPERATOR_KEY};
use chrono::{Datelike, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_are_declared_listed_shown_with_the_status_and_removed() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let (_, bob) = api.owner("bob@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    let bobs_site = api.website(&bob, "https://bob.example/").await;
    let path = format!("/api/v1/websites/{site}/maintenance-windows");
    let now = Utc::now();

    // Nothing declared: not in maintenance.
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&alice))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["in_maintenance"], false);
    assert_eq!(status["maintenance_windows"], json!([]));

    let later = api
        .post(
            &path,
            Some(&alice),
            json!({"kind": "once", "starts_at": rfc3339(now + Duration::hours(1)),
                   "ends_at": rfc3339(now + Duration::hours(3)), "note": "database upgrade"}),
        )
        .await;
    let later = later.expect(201).clone();
    assert_eq!(later["kind"], "once");
    assert_eq!(later["website_id"], site);
    assert_eq!(later["note"], "database upgrade");
    assert_eq!(later["time_zone"], "UTC");
    assert_eq!(later["weekday"], Value::Null);

    // A weekly window three days from today (Berlin time), so not on now.
    let weekday = (now
        .with_timezone(&chrono_tz::Europe::Berlin)
        .weekday()
        .num_days_from_monday()
        + 3)
        % 7;
    let weekly = api
        .post(
            &path,
            Some(&alice),
            json!({"kind": "weekly", "weekday": weekday, "start_time": "02:00",
                   "duration_minutes": 90, "time_zone": "Europe/Berlin", "note": "weekly backup"}),
        )
        .await;
    let weekly = weekly.expect(201).clone();
    assert_eq!(
        (
            &weekly["weekday"],
            &weekly["start_time"],
            &weekly["duration_minutes"],
            &weekly["time_zone"]
        ),
        (
            &json!(weekday),
            &json!("02:00"),
            &json!(90),
            &json!("Europe/Berlin")
        )
    );
    assert_eq!(weekly["starts_at"], Value::Null);

    // One that is on now; the operator may declare it on anyone's site.
    let current = api
        .post(
            &path,
            Some(OPERATOR_KEY),
            json!({"kind": "once", "starts_at": rfc3339(now - Duration::minutes(10)),
                   "ends_at": rfc3339(now + Duration::minutes(50))}),
        )
        .await;
    let current_id = current.expect(201)["id"].as_i64().unwrap();

    let list = api.get(&path, Some(&alice)).await;
    let list = list.expect(200).clone();
    assert_eq!(list["in_maintenance"], true);
    assert_eq!(list["current_window_id"], current_id);
    let ids: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            later["id"].as_i64().unwrap(),
            weekly["id"].as_i64().unwrap(),
            current_id
        ]
    );

    // The status answer shows the windows and that one is on.
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&alice))
        .await;
    let status = status.expect(200).clone();
    assert_eq!(status["in_maintenance"], true);
    assert_eq!(status["maintenance_window_id"], current_id);
    assert_eq!(status["maintenance_windows"], list["items"]);

    // What accounting wrote for rounds inside a window: results apart from
    // uptime (3 of 3 up outside, 9 results inside), an incident marked.
    api.sql(&format!(
        "INSERT INTO website_hourly_rollups (website_id, hour, checks, up, down, unknown_rounds, maintenance_checks) \
         VALUES ({site}, date_trunc('hour', now()) - interval '1 hour', 12, 3, 0, 0, 9)"
    ));
    api.deployment.round(1, Utc::now() + Duration::seconds(30));
    api.sql(&format!(
        "INSERT INTO incidents (website_id, opened_round, cause, opened_in_maintenance) VALUES ({site}, 1, 'connect', true)"
    ));
    let status = api
        .get(&format!("/api/v1/websites/{site}/status"), Some(&alice))
        .await;
    assert_eq!(status.expect(200)["uptime"]["last_24h"], 100.0);
    let hours = api
        .get(&format!("/api/v1/websites/{site}/latency"), Some(&alice))
        .await;
    let hours = hours.expect(200).clone();
    assert_eq!(
        (
            &hours[0]["checks"],
            &hours[0]["up"],
            &hours[0]["maintenance_checks"]
        ),
        (&json!(12), &json!(3), &json!(9))
    );
    let incidents = api
        .get(&format!("/api/v1/websites/{site}/incidents"), Some(&alice))
        .await;
    assert_eq!(
        incidents.expect(200)["items"][0]["opened_in_maintenance"],
        true
    );

    // Another owner's site is a missing one, on every route.
    api.get(&path, Some(&bob))
        .await
        .expect_error(404, "not_found");
    api.post(
        &path,
        Some(&bob),
        json!({"kind": "weekly", "weekday": 1, "start_time": "02:00", "duration_minutes": 5}),
    )
    .await
    .expect_error(404, "not_found");
    api.delete(&format!("{path}/{current_id}"), Some(&bob))
        .await
        .expect_error(404, "not_found");
    // Nor can a window be reached through one's own site.
    api.delete(
        &format!("/api/v1/websites/{bobs_site}/maintenance-windows/{current_id}"),
        Some(&bob),
    )
    .await
    .expect_error(404, "not_found");
    api.get(&path, None).await.expect_error(401, "unauthorized");
    assert_eq!(
        api.count("SELECT count(*) FROM maintenance_windows"),
        3,
        "bob changed nothing"
    );

    // Removing the current window ends the maintenance; removing it again is 404.
    let answer = api
        .delete(&format!("{path}/{current_id}"), Some(&alice))
        .await;
    assert_eq!(answer.status.as_u16(), 204, "{}", answer.text);
    api.delete(&format!("{path}/{current_id}"), Some(&alice))
        .await
        .expect_error(404, "not_found");
    let list = api.get(&path, Some(&alice)).await;
    let list = list.expect(200).clone();
    assert_eq!(list["in_maintenance"], false);
    assert_eq!(list["current_window_id"], Value::Null);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Deleting the site takes its windows with it.
    api.delete(&format!("/api/v1/websites/{site}"), Some(&alice))
        .await
        .expect(204);
    assert_eq!(api.count("SELECT count(*) FROM maintenance_windows"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_window_is_refused_naming_its_field_and_nothing_is_stored() {
    let api = Api::start(&[]);
    let (_, alice) = api.owner("alice@example.com").await;
    let site = api.website(&alice, "https://shop.example/").await;
    let path = format!("/api/v1/websites/{site}/maintenance-windows");
    let now = Utc::now();
    let at = |hours: i64| rfc3339(now + Duration::hours(hours));
    let weekly = |extra: Value| {
        let mut body =
            json!({"kind": "weekly", "weekday": 2, "start_time": "03:00", "duration_minutes": 60});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({"kind": "daily"}), "kind"),
        (json!({"kind": "once", "ends_at": at(2)}), "starts_at"),
        (json!({"kind": "once", "starts_at": at(1)}), "ends_at"),
        (
            json!({"kind": "once", "starts_at": "tomorrow", "ends_at": at(2)}),
            "starts_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(1), "ends_at": "2026-13-01T00:00:00Z"}),
            "ends_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(2), "ends_at": at(1)}),
            "ends_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(1), "ends_at": at(1 + 8 * 24)}),
            "ends_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(-3), "ends_at": at(-1)}),
            "ends_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(400 * 24), "ends_at": at(400 * 24 + 1)}),
            "starts_at",
        ),
        (
            json!({"kind": "once", "starts_at": at(1), "ends_at": at(2), "weekday": 1}),
            "weekday",
        ),
        (
            json!({"kind": "once", "starts_at": at(1), "ends_at": at(2), "time_zone": "Mars/Base"}),
            "time_zone",
        ),
        (weekly(json!({"weekday": 7})), "weekday"),
        (weekly(json!({"weekday": -1})), "weekday"),
        (
            weekly(json!({"weekday": 9_007_199_254_740_993i64})),
            "weekday",
        ),
        (weekly(json!({"start_time": "25:00"})), "start_time"),
        (weekly(json!({"start_time": "3pm"})), "start_time"),
        (weekly(json!({"duration_minutes": 0})), "duration_minutes"),
        (
            weekly(json!({"duration_minutes": 1441})),
            "duration_minutes",
        ),
        (
            weekly(json!({"duration_minutes": i64::MAX})),
            "duration_minutes",
        ),
        (weekly(json!({"time_zone": "Mars/Base"})), "time_zone"),
        (
            weekly(json!({"time_zone": "Europe/Berlin\u{0}"})),
            "time_zone",
        ),
        (weekly(json!({"starts_at": at(1)})), "starts_at"),
        (weekly(json!({"note": "x".repeat(201)})), "note"),
        (weekly(json!({"note": "nul \u{0} inside"})), "note"),
        (weekly(json!({"note": "line\nbreak"})), "note"),
        (
            json!({"kind": "weekly", "start_time": "03:00", "duration_minutes": 60}),
            "weekday",
        ),
        (
            json!({"kind": "weekly", "weekday": 1, "duration_minutes": 60}),
            "start_time",
        ),
        (
            json!({"kind": "weekly", "weekday": 1, "start_time": "03:00"}),
            "duration_minutes",
        ),
    ];
    for (body, field) in cases {
        let answer = api.post(&path, Some(&alice), body.clone()).await;
        answer.expect_error(422, "validation_failed");
        assert_eq!(
            answer.json["details"]["field"], field,
            "{body}: {}",
            answer.text
        );
    }
    // Not JSON of the right shape: 400, never 5xx.
    for body in [
        weekly(json!({"weekday": 1e40})),
        weekly(json!({"weekday": 1.5})),
        weekly(json!({"weekday": "1"})),
        weekly(json!({"unknown": true})),
        json!({"weekday": 1}),
    ] {
        api.post(&path, Some(&alice), body)
            .await
            .expect_error(400, "malformed_json");
    }
    assert_eq!(api.count("SELECT count(*) FROM maintenance_windows"), 0);

    // The edges that are allowed: a full day, midnight, 7 days exactly.
    for body in [
        weekly(json!({"weekday": 6, "start_time": "00:00", "duration_minutes": 1440})),
        weekly(json!({"weekday": 0, "start_time": "23:59", "duration_minutes": 1})),
        json!({"kind": "once", "starts_at": at(1), "ends_at": at(1 + 7 * 24)}),
    ] {
        api.post(&path, Some(&alice), body).await.expect(201);
    }
    // At most 20 windows a site.
    for _ in 3..20 {
        api.post(&path, Some(&alice), weekly(json!({})))
            .await
            .expect(201);
    }
    api.post(&path, Some(&alice), weekly(json!({})))
        .await
        .expect_error(409, "too_many_windows");
    assert_eq!(api.count("SELECT count(*) FROM maintenance_windows"), 20);
}
