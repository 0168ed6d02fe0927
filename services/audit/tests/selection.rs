//! The audit re-draws every site's validators from what each round recorded (its
//! seed and its admitted candidates with weights and networks), and names the
//! round and site where a hub put someone else in. Rounds are opened by the real
//! scheduler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Int4, Text};
use overlaps_audit::audit::{AuditReport, Checked};
use overlaps_audit::selection::check_selection;
use overlaps_scheduler::canaries::CanaryPolicy;
use overlaps_scheduler::rounds::{self, RoundRules};
use overlaps_shared::admission::AdmissionPolicy;
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::testing::TestDatabase;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn report() -> AuditReport {
    AuditReport {
        eon: 1,
        ok: true,
        checked: Checked::default(),
        mismatches: Vec::new(),
    }
}

#[test]
fn every_draw_is_re_derived_and_a_swapped_validator_is_named() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let owner = diesel::sql_query("INSERT INTO users (email) VALUES ('a@x.io') RETURNING id")
        .get_result::<Id>(&mut conn)
        .unwrap()
        .id;
    for i in 0..5 {
        diesel::sql_query(
            "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) VALUES ($1, $2, 30, 1000, 3)",
        )
        .bind::<BigInt, _>(owner)
        .bind::<Text, _>(format!("https://s{i}.example/"))
        .execute(&mut conn)
        .unwrap();
    }
    // Eight validators, three of them on one /24.
    let online: Vec<OnlineValidator> = (1..=8u8)
        .map(|n| {
            let id = diesel::sql_query(
                "INSERT INTO validators (public_key, reputation, checks_agreed) VALUES ($1, $2, 10000) RETURNING id",
            )
            .bind::<Bytea, _>(vec![n; 32])
            .bind::<Int4, _>(1000 * i32::from(n))
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            OnlineValidator {
                validator_id: id,
                server_instance: "s1".into(),
                network: Some(if n <= 3 { "192.0.2.0/24".into() } else { format!("10.0.{n}.0/24") }),
            }
        })
        .collect();
    let rules = RoundRules {
        length: Duration::from_secs(30),
        hub_id: "audit-selection".into(),
        seed_chain_rounds: 16,
        canaries: CanaryPolicy::none(),
        host_checks_per_minute: 1_000_000,
        admission: AdmissionPolicy::open(),
    };
    for round in 1..=4 {
        let at = Utc.timestamp_opt(1_900_000_000 + 30 * round, 0).unwrap();
        rounds::open_round(&mut conn, at, &rules, &online).unwrap();
    }
    let mut clean = report();
    check_selection(&mut conn, 1, 4, &mut clean).unwrap();
    assert!(clean.mismatches.is_empty(), "{:?}", clean.mismatches);
    assert_eq!(clean.checked.selections, 20);

    // The hub puts a validator that was not drawn into round 3's quorum of a site.
    let swapped = diesel::sql_query(
        "UPDATE check_assignments SET validator_id = ( \
            SELECT v.id FROM validators v WHERE v.id NOT IN ( \
              SELECT validator_id FROM check_assignments c WHERE c.round_number = 3 \
                AND c.website_id = check_assignments.website_id) ORDER BY v.id LIMIT 1) \
         WHERE id = (SELECT min(id) FROM check_assignments WHERE round_number = 3) \
         RETURNING website_id AS id",
    )
    .get_result::<Id>(&mut conn)
    .unwrap()
    .id;
    // And stops recording round 4's candidates, hoping to escape the check.
    diesel::sql_query("UPDATE rounds SET candidates = '[]'::jsonb WHERE number = 4")
        .execute(&mut conn)
        .unwrap();
    let mut tampered = report();
    check_selection(&mut conn, 1, 4, &mut tampered).unwrap();
    let named: Vec<(i64, i64)> = tampered
        .of_kind("selection")
        .iter()
        .map(|m| {
            (
                m.details["round"].as_i64().unwrap(),
                m.details["website"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(named.contains(&(3, swapped)), "{named:?}");
    assert_eq!(named.iter().filter(|(round, _)| *round == 3).count(), 1);
    assert_eq!(
        named.iter().filter(|(round, _)| *round == 4).count(),
        5,
        "{named:?}"
    );
    assert!(!named.iter().any(|(round, _)| *round < 3));
}
