//! The compiled `server` binary starts, answers health checks and stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use overlaps_shared::testing::{
    ServiceProcess, TestDatabase, TestRedis, assert_refuses_config, assert_starts_and_stops,
    free_port, service_env,
};

const BIN: &str = env!("CARGO_BIN_EXE_server");

#[test]
fn starts_against_real_postgres_and_redis_and_stops_on_sigterm_within_5s() {
    let bind = format!("127.0.0.1:{}", free_port().unwrap());
    assert_starts_and_stops(BIN, &[("SERVER_BIND", &bind)]);
}

#[test]
fn refuses_to_start_without_redis_url() {
    assert_refuses_config(
        BIN,
        &[],
        &[("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")],
        "REDIS_URL",
    );
}

#[test]
fn refuses_a_malformed_bind_address() {
    assert_refuses_config(
        BIN,
        &[],
        &[
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("SERVER_BIND", "localhost"),
        ],
        "SERVER_BIND",
    );
}

#[test]
fn refuses_bad_api_settings_naming_each() {
    for (var, value) in [
        ("API_SIGNUP_OPEN", "maybe"),
        ("OPERATOR_API_KEY", "short"),
        ("API_RATE_LIMIT_PER_KEY", "0"),
        ("API_RATE_LIMIT_PER_IP", "lots"),
        ("CORS_ALLOWED_ORIGINS", "not an origin"),
        ("WEBSITE_MIN_INTERVAL_SECONDS", "0"),
        ("WEBSITE_MAX_INTERVAL_SECONDS", "5"),
        ("WEBSITE_MAX_TIMEOUT_MS", "200"),
        ("WEBSITE_MAX_QUORUM", "0"),
        ("REWARD_PER_CHECK", "1.5"),
    ] {
        assert_refuses_config(
            BIN,
            &[],
            &[
                ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                (var, value),
            ],
            var,
        );
    }
}

#[tokio::test]
async fn health_and_readiness_answer_over_http() {
    let db = TestDatabase::empty().unwrap();
    let redis = TestRedis::new().unwrap();
    let bind = format!("127.0.0.1:{}", free_port().unwrap());
    let mut env = service_env(&db, &redis);
    env.push(("SERVER_BIND".into(), bind.clone()));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut server = ServiceProcess::spawn(BIN, &[], &envs).unwrap();
    assert!(
        server.wait_ready(Duration::from_secs(60)).is_some(),
        "{:?}",
        server.output()
    );

    overlaps_shared::testing::install_tls_provider();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{bind}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("http://{bind}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["postgres"]["ok"], true);
    assert_eq!(body["redis"]["ok"], true);

    // With its database gone, the server stays up but is no longer ready.
    drop(db);
    let ready = client
        .get(format!("http://{bind}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["postgres"]["ok"], false);
    assert_eq!(body["redis"]["ok"], true);
    assert!(server.terminate(Duration::from_secs(5)).unwrap().is_some());
}
