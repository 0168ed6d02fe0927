//! The per-host cap against a real PostgreSQL: many accounts aiming at one victim
//! get no more than `TARGET_HOST_MAX_CHECKS_PER_MINUTE` checks sent to it in any
//! minute, every one of their sites still gets its turn, and other hosts are not
//! slowed down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text, Timestamptz};
use overlaps_scheduler::canaries::CanaryPolicy;
use overlaps_scheduler::rounds::{self, RoundRules};
use overlaps_shared::admission::AdmissionPolicy;
use overlaps_shared::presence::OnlineValidator;
use overlaps_shared::testing::TestDatabase;

const CAP: u32 = 9;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Sent {
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = BigInt)]
    website_id: i64,
}

fn insert_id(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Id>(conn).unwrap().id
}

/// A site of its own account (the cap holds across accounts) at `url`, due every round.
fn site(conn: &mut PgConnection, url: &str) -> i64 {
    let owner = insert_id(
        conn,
        "INSERT INTO users (email) VALUES ('h-' || gen_random_uuid() || '@x.io') RETURNING id",
    );
    diesel::sql_query(
        "INSERT INTO websites (owner_id, url, interval_seconds, timeout_ms, quorum) \
         VALUES ($1, $2, 30, 1000, 3) RETURNING id",
    )
    .bind::<BigInt, _>(owner)
    .bind::<Text, _>(url)
    .get_result::<Id>(conn)
    .unwrap()
    .id
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_900_000_000 + seconds, 0).unwrap()
}

#[test]
fn a_crowded_host_gets_at_most_its_cap_per_minute_and_every_site_its_turn() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let online: Vec<OnlineValidator> = (1..=3u8)
        .map(|n| {
            let id = diesel::sql_query(
                "INSERT INTO validators (public_key, reputation) VALUES ($1, 5000) RETURNING id",
            )
            .bind::<Bytea, _>(vec![n; 32])
            .get_result::<Id>(&mut conn)
            .unwrap()
            .id;
            OnlineValidator {
                validator_id: id,
                server_instance: "s1".into(),
                network: Some(format!("10.0.{n}.0/24")),
            }
        })
        .collect();
    // Ten accounts aim at one victim under different spellings of its name; one
    // bystander shares nothing with it.
    let victims: BTreeSet<i64> = (0..10)
        .map(|i| {
            let spelling = ["https://victim.example/", "http://VICTIM.example.:8080/x"][i % 2];
            site(&mut conn, spelling)
        })
        .collect();
    let bystander = site(&mut conn, "https://bystander.example/");
    let rules = RoundRules {
        length: Duration::from_secs(30),
        hub_id: "cap-test".into(),
        seed_chain_rounds: 16,
        canaries: CanaryPolicy::none(),
        host_checks_per_minute: CAP,
        admission: AdmissionPolicy::open(),
    };
    let mut deferred = Vec::new();
    for i in 0..12 {
        let opened = rounds::open_round(&mut conn, at(30 * i), &rules, &online).unwrap();
        deferred.push(opened.deferred);
    }

    let sent: Vec<Sent> = diesel::sql_query(
        "SELECT r.opened_at, w.url, a.website_id FROM check_assignments a \
         JOIN rounds r ON r.number = a.round_number JOIN websites w ON w.id = a.website_id",
    )
    .load(&mut conn)
    .unwrap();
    let mut victim_per_round: BTreeMap<DateTime<Utc>, u32> = BTreeMap::new();
    let mut bystander_rounds = BTreeSet::new();
    let mut victims_checked = BTreeSet::new();
    for s in &sent {
        if s.website_id == bystander {
            bystander_rounds.insert(s.opened_at);
        } else {
            assert!(s.url.to_ascii_lowercase().contains("victim.example"));
            *victim_per_round.entry(s.opened_at).or_default() += 1;
            victims_checked.insert(s.website_id);
        }
    }
    // Any minute: the rounds opened within 60 s of each other.
    for start in victim_per_round.keys() {
        let in_minute: u32 = victim_per_round
            .range(*start..*start + chrono::Duration::seconds(60))
            .map(|(_, n)| n)
            .sum();
        assert!(
            in_minute <= CAP,
            "{in_minute} checks reached the victim in the minute from {start}: {victim_per_round:?}"
        );
    }
    // 12 rounds: 6 minutes of 3 sites each; all ten sites got their turn.
    assert_eq!(victims_checked, victims, "{victim_per_round:?}");
    assert_eq!(bystander_rounds.len(), 12, "the bystander was slowed down");
    assert!(deferred.iter().all(|&d| d > 0), "{deferred:?}");
    // The scheduler keeps only recent counts.
    let kept = insert_id(
        &mut conn,
        "SELECT count(*) AS id FROM target_host_checks WHERE opened_at < (SELECT max(opened_at) FROM rounds) - interval '10 minutes'",
    );
    assert_eq!(kept, 0);
}
