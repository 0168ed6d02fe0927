//! Each test gets its own database and Redis prefix, and leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use overlaps_shared::config::Env;
use overlaps_shared::db;
use overlaps_shared::jobs::{self, CloseRound};
use overlaps_shared::testing::{TestDatabase, TestRedis, base_config};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn databases_named(name: &str) -> i64 {
    let base = base_config().unwrap().database_url;
    let mut conn = db::connect_once(&base).unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

#[test]
fn each_test_database_is_its_own_and_is_dropped() {
    let a = TestDatabase::new().unwrap();
    let b = TestDatabase::new().unwrap();
    assert_ne!(a.name(), b.name());
    let name = a.name().to_owned();
    // Writes in one are invisible in the other.
    diesel::sql_query("INSERT INTO users (email) VALUES ('a@example.com')")
        .execute(&mut a.connect().unwrap())
        .unwrap();
    let in_b = diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result::<Count>(&mut b.connect().unwrap())
        .unwrap();
    assert_eq!(in_b.n, 0);
    // Even with a connection still open, dropping removes the database.
    let _open = a.connect().unwrap();
    drop(a);
    assert_eq!(databases_named(&name), 0);
}

#[tokio::test]
async fn each_test_redis_prefix_is_its_own_and_is_cleaned() {
    let redis = TestRedis::new().unwrap();
    let other = TestRedis::new().unwrap();
    assert_ne!(redis.keys(), other.keys());
    // A real job queue writes its keys under the prefix.
    let mut queue = jobs::storage::<CloseRound>(redis.connect().await.unwrap(), redis.keys());
    use apalis::prelude::TaskSink;
    queue.push(CloseRound { round: 7 }).await.unwrap();
    let keys = redis.existing_keys().unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with(redis.keys().as_str())),
        "{keys:?}"
    );
    assert!(other.existing_keys().unwrap().is_empty());
    let probe = TestRedis::new().unwrap();
    drop(redis);
    // Nothing of the dropped prefix is left (probe shares the server, not the prefix).
    let client = redis::Client::open(probe.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", keys[0].split(':').next().unwrap()))
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn tests_read_the_same_settings_as_the_services() {
    let config = base_config().unwrap();
    let from_env = overlaps_shared::config::CommonConfig::from_env(&Env::from_process()).unwrap();
    assert_eq!(config.database_url, from_env.database_url);
}

/// Chains started at the same moment, while other threads take and release
/// ports as tests do, are each a live anvil of their own: a block mined on one
/// is on no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_test_chain_is_its_own_even_when_started_together() {
    use ethers::providers::Middleware;
    use overlaps_shared::testing::{TestChain, free_port};

    let churn = std::thread::spawn(|| {
        for _ in 0..2_000 {
            let _ = free_port();
        }
    });
    let starts: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(TestChain::start))
        .collect();
    let chains: Vec<TestChain> = starts
        .into_iter()
        .map(|start| start.join().unwrap().unwrap())
        .collect();
    churn.join().unwrap();
    let mut urls: Vec<String> = chains.iter().map(TestChain::rpc_url).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), chains.len(), "two chains share a port");
    chains[0].mine(3).await.unwrap();
    for (i, chain) in chains.iter().enumerate() {
        let client = overlaps_shared::eth::read_client(&chain.rpc_url()).unwrap();
        let height = client.get_block_number().await.unwrap().as_u64();
        assert_eq!(height, if i == 0 { 3 } else { 0 }, "chain {i}");
    }
}
