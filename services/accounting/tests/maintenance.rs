//! Maintenance windows at a round's close, against a real PostgreSQL: a site
//! going down inside a window is settled as usual (results stored, status moved,
//! an incident opened and marked) but nobody is alerted and uptime does not
//! move; down again after the window, the owner is alerted. Reminders wait for
//! the window to end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

mod support;

use support::*;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text, Timestamptz};
use overlaps_accounting::alerts::reminders;
use overlaps_accounting::close::close_round;
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::testing::TestDatabase;

fn insert_id(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).unwrap().id
}

/// A site with two confirmed channels (Slack with reminders every minute) and
/// three validators; rounds are 30 s long from `start`.
struct World {
    db: TestDatabase,
    site: i64,
    validators: [i64; 3],
    start: DateTime<Utc>,
}

impl World {
    fn new() -> Self {
        let db = TestDatabase::new().unwrap();
        let mut conn = db.connect().unwrap();
        let owner = insert_id(
            &mut conn,
            "INSERT INTO users (email) VALUES ('o@x.io') RETURNING id",
        );
        let site = diesel::sql_query(
            "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) \
             VALUES ($1, 'https://shop.example/', 30, 1000, 3) RETURNING id",
        )
        .bind::<BigInt, _>(owner)
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
        diesel::sql_query(
            "INSERT INTO alert_channels (owner_id, kind, target, reminder_minutes, reminder_max) \
             VALUES ($1, 'slack', 'http://127.0.0.1:1/hook', 1, 100), ($1, 'email', 'ops@example.com', NULL, NULL)",
        )
        .bind::<BigInt, _>(owner)
        .execute(&mut conn)
        .unwrap();
        let validators = [1u8, 2, 3].map(|n| {
            diesel::sql_query(
                "INSERT INTO validators (public_key, reputation) VALUES ($1, 5000) RETURNING id",
            )
            .bind::<Bytea, _>(vec![n; 32])
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id
        });
        World {
            db,
            site,
            validators,
            start: Utc::now() - Duration::minutes(30),
        }
    }

    fn opened(&self, n: i64) -> DateTime<Utc> {
        self.start + Duration::seconds(30 * n)
    }

    /// A one-off maintenance window of the site from `starts` to `ends`.
    fn window(&self, starts: DateTime<Utc>, ends: DateTime<Utc>) {
        diesel::sql_query(
            "INSERT INTO maintenance_windows (website_id, kind, starts_at, ends_at) VALUES ($1, 'once', $2, $3)",
        )
        .bind::<BigInt, _>(self.site)
        .bind::<Timestamptz, _>(starts)
        .bind::<Timestamptz, _>(ends)
        .execute(&mut self.db.connect().unwrap())
        .unwrap();
    }

    /// Round `n`, long past, where every validator answered `status`.
    fn round(&self, n: i64, status: &str) {
        let mut conn = self.db.connect().unwrap();
        let opened = self.opened(n);
        diesel::sql_query(
            "INSERT INTO rounds (number, seed, opened_at, deadline_at) VALUES ($1, $2, $3, $4)",
        )
        .bind::<BigInt, _>(n)
        .bind::<Bytea, _>(vec![n as u8; 32])
        .bind::<Timestamptz, _>(opened)
        .bind::<Timestamptz, _>(opened + Duration::seconds(30))
        .execute(&mut conn)
        .unwrap();
        for (i, validator) in self.validators.iter().enumerate() {
            let assignment = diesel::sql_query(
                "INSERT INTO check_assignments (round_number, website_id, validator_id, server_instance, due_at, deadline_at, state) \
                 VALUES ($1, $2, $3, 's1', $4, $5, 'answered') RETURNING id",
            )
            .bind::<BigInt, _>(n)
            .bind::<BigInt, _>(self.site)
            .bind::<BigInt, _>(*validator)
            .bind::<Timestamptz, _>(opened)
            .bind::<Timestamptz, _>(opened + Duration::seconds(30))
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            let now = Utc::now();
            diesel::insert_into(ticks::table)
                .values(&Tick {
                    assignment_id: assignment,
                    round_number: n,
                    website_id: self.site,
                    validator_id: *validator,
                    status: status.into(),
                    http_status: (status == "up").then_some(200),
                    latency_ms: 40 + i as i32,
                    failure: (status == "down").then(|| "connect".to_owned()),
                    tls_expires_at: None,
                    checked_at: now,
                    received_at: now,
                    signature: vec![1; 64],
                    protocol_version: 1,
                    spec_hash: None,
                })
                .execute(&mut conn)
                .unwrap();
        }
    }

    fn state(&self) -> String {
        #[derive(QueryableByName)]
        struct S {
            #[diesel(sql_type = Text)]
            state: String,
        }
        diesel::sql_query("SELECT state FROM website_status WHERE website_id = $1")
            .bind::<BigInt, _>(self.site)
            .get_result::<S>(&mut self.db.connect().unwrap())
            .unwrap()
            .state
    }

    /// `(up, down, maintenance_checks, checks)` summed over the site's rollups.
    fn rollups(&self) -> (i64, i64, i64, i64) {
        let mut conn = self.db.connect().unwrap();
        let sum = |column: &str, conn: &mut PgConnection| {
            count(
                conn,
                &format!(
                    "SELECT COALESCE(SUM({column}), 0) FROM website_hourly_rollups WHERE website_id = {}",
                    self.site
                ),
            )
        };
        (
            sum("up", &mut conn),
            sum("down", &mut conn),
            sum("maintenance_checks", &mut conn),
            sum("checks", &mut conn),
        )
    }
}

#[test]
fn an_outage_inside_a_window_is_stored_but_not_alerted_nor_counted_and_one_after_it_is() {
    let w = World::new();
    let mut conn = w.db.connect().unwrap();
    // Once: from round 2's opening to round 5's (exclusive): rounds 2, 3 and 4.
    diesel::sql_query(
        "INSERT INTO maintenance_windows (website_id, kind, starts_at, ends_at, note) \
         VALUES ($1, 'once', $2, $3, 'database upgrade')",
    )
    .bind::<BigInt, _>(w.site)
    .bind::<Timestamptz, _>(w.opened(2))
    .bind::<Timestamptz, _>(w.opened(5))
    .execute(&mut conn)
    .unwrap();
    // A weekly window of another day of the week covers nothing here.
    diesel::sql_query(
        "INSERT INTO maintenance_windows (website_id, kind, weekday, start_time, duration_minutes) \
         VALUES ($1, 'weekly', (extract(isodow FROM $2 AT TIME ZONE 'UTC')::int + 2) % 7, '00:00', 1)",
    )
    .bind::<BigInt, _>(w.site)
    .bind::<Timestamptz, _>(w.opened(1))
    .execute(&mut conn)
    .unwrap();
    w.round(1, "up");
    w.round(2, "down");
    w.round(3, "down");
    w.round(4, "up");
    w.round(5, "down");
    w.round(6, "down");
    let now = Utc::now();

    let before = close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    assert_eq!(before.in_maintenance, 0);
    close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    let confirmed = close_round(&mut conn, 3, now, &policy()).unwrap().unwrap();
    // Settled as usual: the status moves and an incident opens, marked ...
    assert_eq!(confirmed.in_maintenance, 1);
    assert_eq!(confirmed.incidents_opened.len(), 1, "{confirmed:?}");
    assert_eq!(w.state(), "down");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM incidents WHERE opened_in_maintenance AND opened_round = 3"
        ),
        1
    );
    // ... but nobody is told.
    assert!(confirmed.alerts.is_empty(), "{confirmed:?}");
    assert_eq!(count(&mut conn, "SELECT count(*) FROM alert_outbox"), 0);

    let recovered = close_round(&mut conn, 4, now, &policy()).unwrap().unwrap();
    assert_eq!(recovered.incidents_resolved.len(), 1);
    assert!(recovered.alerts.is_empty(), "{recovered:?}");
    assert_eq!(w.state(), "up");
    assert_eq!(count(&mut conn, "SELECT count(*) FROM alert_outbox"), 0);

    // Every result of the window is stored and its validators credited.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM ticks WHERE round_number BETWEEN 2 AND 4"
        ),
        9
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM validator_credits WHERE round_number BETWEEN 2 AND 4"
        ),
        9
    );
    // Uptime only sees round 1: 3 up of 3, the window's 9 results kept apart.
    assert_eq!(w.rollups(), (3, 0, 9, 12));

    // Down again after the window: alerted as always.
    close_round(&mut conn, 5, now, &policy()).unwrap().unwrap();
    let after = close_round(&mut conn, 6, now, &policy()).unwrap().unwrap();
    assert_eq!(after.in_maintenance, 0);
    assert_eq!(after.incidents_opened.len(), 1);
    assert_eq!(after.alerts.len(), 2, "one alert per channel: {after:?}");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox WHERE kind = 'incident_opened'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM incidents WHERE opened_in_maintenance"
        ),
        1,
        "the second incident opened outside the window"
    );
    assert_eq!(w.rollups(), (3, 6, 9, 18));

    // Closing again changes nothing.
    assert!(close_round(&mut conn, 3, now, &policy()).unwrap().is_none());
    assert!(close_round(&mut conn, 6, now, &policy()).unwrap().is_none());
    assert_eq!(w.rollups(), (3, 6, 9, 18));
    assert_eq!(count(&mut conn, "SELECT count(*) FROM alert_outbox"), 2);

    // A later window withholds the reminders of the open incident while it lasts;
    // after it, the latest due reminder is queued.
    let later = now + Duration::hours(2);
    w.window(later, later + Duration::hours(1));
    assert!(
        reminders::queue_due(&mut conn, later + Duration::minutes(30))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        reminders::queue_due(&mut conn, later + Duration::minutes(61))
            .unwrap()
            .len(),
        1,
        "the Slack channel's reminder, once the window is over"
    );
}

#[test]
fn an_outage_confirmed_inside_a_window_that_outlasts_it_is_announced_when_the_window_ends() {
    let w = World::new();
    let mut conn = w.db.connect().unwrap();
    // Rounds 1, 2 and 3 open inside the window.
    w.window(w.opened(1), w.opened(4));
    for n in 1..=5 {
        w.round(n, "down");
    }
    w.round(6, "up");
    let now = Utc::now();
    let mut alerts = Vec::new();
    for n in 1..=6 {
        let summary = close_round(&mut conn, n, now, &policy()).unwrap().unwrap();
        alerts.push(summary.alerts.len());
    }
    // Confirmed in round 2, silent while the window lasts; told at round 4 (the
    // first after it), once; the recovery in round 6 is told as usual.
    assert_eq!(alerts, [0, 0, 0, 2, 0, 2]);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox o JOIN incidents i ON i.id = o.incident_id \
             WHERE i.opened_in_maintenance AND i.opened_round = 2 AND i.resolved_round = 6"
        ),
        4
    );
    assert_eq!(w.rollups(), (3, 6, 9, 18));
}

#[test]
fn a_certificate_alert_withheld_inside_a_window_is_queued_by_the_first_round_after_it() {
    let w = World::new();
    let mut conn = w.db.connect().unwrap();
    w.window(w.opened(1), w.opened(2));
    w.round(1, "up");
    w.round(2, "up");
    // Every validator saw a certificate expiring in three days.
    diesel::sql_query(
        "UPDATE ticks SET tls_expires_at = date_trunc('second', now()) + interval '3 days'",
    )
    .execute(&mut conn)
    .unwrap();
    let now = Utc::now();
    let inside = close_round(&mut conn, 1, now, &policy()).unwrap().unwrap();
    assert!(inside.alerts.is_empty(), "{inside:?}");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM website_status WHERE tls_expires_at IS NOT NULL"
        ),
        1,
        "the expiry is recorded all the same"
    );
    let after = close_round(&mut conn, 2, now, &policy()).unwrap().unwrap();
    assert_eq!(after.alerts.len(), 2, "{after:?}");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM alert_outbox WHERE kind = 'tls_expiring'"
        ),
        2
    );
}
