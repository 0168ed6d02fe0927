//! The compiled `server` binary starts, answers health checks and stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use overlaps_shared::testing::{
    ServiceProcess, TestDatabase, TestRedis, assert_refuses_config, assert_starts_and_stops,
    service_env, spawn_server,
};

const BIN: &str = env!("CARGO_BIN_EXE_server");

#[test]
fn starts_against_real_postgres_and_redis_and_stops_on_sigterm_within_5s() {
    assert_starts_and_stops(BIN, &[("SERVER_BIND", "127.0.0.1:0")]);
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
    let (mut server, bind) = spawn_server(BIN, &service_env(&db, &redis));

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

/// Port 0 in `SERVER_BIND`: the system picks a free port and the `ready` line names
/// it, so two servers started at once never race for one port.
#[tokio::test]
async fn a_server_bound_to_port_0_reports_the_port_it_got_and_serves_there() {
    let db = TestDatabase::empty().unwrap();
    let redis = TestRedis::new().unwrap();
    let env = service_env(&db, &redis);
    let (mut first, first_bind) = spawn_server(BIN, &env);
    let (mut second, second_bind) = spawn_server(BIN, &env);
    assert_ne!(first_bind, second_bind);
    overlaps_shared::testing::install_tls_provider();
    let client = reqwest::Client::new();
    for bind in [&first_bind, &second_bind] {
        assert!(
            bind.starts_with("127.0.0.1:") && !bind.ends_with(":0"),
            "{bind}"
        );
        let health = client
            .get(format!("http://{bind}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{bind}");
    }
    // A port another process holds is refused, not silently replaced by another.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_bind = taken.local_addr().unwrap().to_string();
    let mut env = service_env(&db, &redis);
    env.push(("SERVER_BIND".into(), taken_bind));
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut refused = ServiceProcess::spawn(BIN, &[], &envs).unwrap();
    let status = refused.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{:?}",
        refused.output()
    );
    for server in [&mut first, &mut second] {
        assert!(server.terminate(Duration::from_secs(5)).unwrap().is_some());
    }
}
