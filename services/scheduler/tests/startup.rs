//! The compiled `scheduler` binary: start-up, and one leader at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use overlaps_shared::testing::{
    ServiceProcess, TestDatabase, TestRedis, assert_refuses_config, service_env,
};

overlaps_shared::service_startup_tests!("scheduler");

#[test]
fn refuses_an_empty_or_huge_seed_epoch() {
    for bad in ["0", "100001", "many"] {
        assert_refuses_config(
            env!("CARGO_BIN_EXE_scheduler"),
            &[],
            &[
                ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("SEED_CHAIN_ROUNDS", bad),
            ],
            "SEED_CHAIN_ROUNDS",
        );
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn rounds(db: &TestDatabase) -> i64 {
    diesel::sql_query("SELECT count(*) AS n FROM rounds")
        .get_result::<Count>(&mut db.connect().unwrap())
        .unwrap()
        .n
}

fn scheduler(db: &TestDatabase, redis: &TestRedis) -> ServiceProcess {
    let mut env = service_env(db, redis);
    env.push(("ROUND_SECONDS".into(), "2".into()));
    env.push(("SCHEDULER_LOCK_TTL_SECONDS".into(), "2".into()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut process = ServiceProcess::spawn(env!("CARGO_BIN_EXE_scheduler"), &[], &envs).unwrap();
    assert!(
        process.wait_ready(Duration::from_secs(60)).is_some(),
        "{:?}",
        process.output()
    );
    process
}

#[test]
fn one_scheduler_leads_and_another_takes_over_when_it_dies() {
    let db = TestDatabase::new().unwrap();
    let redis = TestRedis::new().unwrap();
    let mut first = scheduler(&db, &redis);
    let mut second = scheduler(&db, &redis);
    std::thread::sleep(Duration::from_secs(5));
    let leading = |p: &mut ServiceProcess| p.output().iter().any(|l| l.contains("leading"));
    assert!(
        leading(&mut first) ^ leading(&mut second),
        "exactly one leads"
    );
    // Rounds open every 2 s, numbered without gaps or duplicates (the primary key).
    let opened = rounds(&db);
    assert!((2..=4).contains(&opened), "{opened} rounds in 5 s");

    // The leader dies without releasing; the other takes over within one lease.
    let (leader, mut follower) = if leading(&mut first) {
        (first, second)
    } else {
        (second, first)
    };
    leader.signal("KILL").unwrap();
    assert!(
        follower
            .wait_for_line(Duration::from_secs(6), |l| l.contains("leading"))
            .is_some(),
        "{:?}",
        follower.output()
    );
    let before = rounds(&db);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        rounds(&db) >= before + 2,
        "rounds go on under the new leader"
    );
    let closed_enqueued =
        diesel::sql_query("SELECT count(*) AS n FROM rounds WHERE close_enqueued_at IS NOT NULL")
            .get_result::<Count>(&mut db.connect().unwrap())
            .unwrap()
            .n;
    assert!(closed_enqueued >= 2);
}
