//! The Redis mutex against a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use overlaps_shared::mutex::RedisMutex;
use overlaps_shared::testing::TestRedis;

async fn mutex(redis: &TestRedis, name: &str, ttl: Duration) -> RedisMutex {
    RedisMutex::new(redis.connect().await.unwrap(), redis.keys(), name, ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_contenders_never_both_hold_it() {
    let redis = TestRedis::new().unwrap();
    let holders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let lock = mutex(&redis, "contended", Duration::from_secs(5)).await;
        let (holders, max_seen, acquisitions) =
            (holders.clone(), max_seen.clone(), acquisitions.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let guard = lock.lock(Duration::from_secs(30)).await.unwrap().unwrap();
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                acquisitions.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                assert!(guard.release().await.unwrap());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(acquisitions.load(Ordering::SeqCst), 80);
    assert_eq!(max_seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_held_lock_cannot_be_taken() {
    let redis = TestRedis::new().unwrap();
    let a = mutex(&redis, "held", Duration::from_secs(10)).await;
    let b = mutex(&redis, "held", Duration::from_secs(10)).await;
    let guard = a.try_lock().await.unwrap().unwrap();
    assert!(b.try_lock().await.unwrap().is_none());
    assert!(b.lock(Duration::from_millis(300)).await.unwrap().is_none());
    assert!(guard.release().await.unwrap());
    assert!(b.try_lock().await.unwrap().is_some());
}

#[tokio::test]
async fn an_expired_holder_cannot_release_the_new_holders_lock() {
    let redis = TestRedis::new().unwrap();
    let lock = mutex(&redis, "expiring", Duration::from_millis(150)).await;
    let old = lock.try_lock().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new = lock
        .try_lock()
        .await
        .unwrap()
        .expect("expired lock is free again");
    assert_ne!(old.token(), new.token());
    // The old holder neither renews nor releases what is no longer its own.
    assert!(!old.renew().await.unwrap());
    assert!(!old.release().await.unwrap());
    assert!(
        lock.try_lock().await.unwrap().is_none(),
        "new holder kept it"
    );
    assert!(new.release().await.unwrap());
}

#[tokio::test]
async fn renewal_extends_the_lease() {
    let redis = TestRedis::new().unwrap();
    let lock = mutex(&redis, "renewed", Duration::from_millis(1000)).await;
    let guard = lock.try_lock().await.unwrap().unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(guard.renew().await.unwrap());
    }
    // 2 s after taking a 1 s lock, it is still held thanks to renewal.
    assert!(lock.try_lock().await.unwrap().is_none());
    assert!(guard.release().await.unwrap());
}

#[tokio::test]
async fn a_lease_renews_itself_and_reports_loss() {
    let redis = TestRedis::new().unwrap();
    let lock = mutex(&redis, "leased", Duration::from_millis(900)).await;
    let mut lease = lock.try_lock().await.unwrap().unwrap().into_lease();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!lease.is_lost());
    assert!(
        lock.try_lock().await.unwrap().is_none(),
        "lease kept the lock past its ttl"
    );

    // Someone deletes the key (an operator, a Redis failover): the lease notices.
    let mut conn = redis.connect().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(lock.key())
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), lease.lost())
        .await
        .expect("loss noticed");
    assert!(lease.is_lost());
}

#[tokio::test]
async fn releasing_a_lease_frees_the_lock_at_once() {
    let redis = TestRedis::new().unwrap();
    let lock = mutex(&redis, "released", Duration::from_secs(30)).await;
    let lease = lock.try_lock().await.unwrap().unwrap().into_lease();
    assert!(lease.release().await.unwrap());
    assert!(lock.try_lock().await.unwrap().is_some());
}
