//! The canary binary: every sealed mode behaves as a real failing (or healthy)
//! site does, and any path the secret did not seal is an ordinary 404.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use overlaps_shared::canary::{CanaryMode, CanarySecret, KEYWORDS};
use overlaps_shared::testing::{
    ServiceProcess, assert_refuses_config, free_port, install_tls_provider,
};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SECRET: &str = "11223344556677889900aabbccddeeff11223344556677889900aabbccddeeff";

#[tokio::test]
async fn each_mode_fails_as_a_real_site_fails() {
    install_tls_provider();
    let (http_port, tls_port) = (free_port().unwrap(), free_port().unwrap());
    let http_listen = format!("127.0.0.1:{http_port}");
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let mut canary = ServiceProcess::spawn(
        CANARY,
        &[],
        &[
            ("CANARY_SECRET", SECRET),
            ("CANARY_HTTP_LISTEN", &http_listen),
            ("CANARY_TLS_LISTEN", &tls_listen),
            ("CANARY_HOLD_SECONDS", "5"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .unwrap();
    assert!(
        canary.wait_ready(Duration::from_secs(30)).is_some(),
        "{:?}",
        canary.output()
    );
    let secret: CanarySecret = SECRET.parse().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let get = |mode: CanaryMode, nonce: u8| {
        let url = format!("http://{http_listen}{}", secret.path_for(&[nonce; 8], mode));
        let client = client.clone();
        async move { client.get(url).send().await }
    };

    let ok = get(CanaryMode::Ok, 1).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body = ok.text().await.unwrap();
    assert!(KEYWORDS.iter().all(|k| body.contains(k)), "{body}");

    assert_eq!(
        get(CanaryMode::ServerError, 2)
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );

    let missing = get(CanaryMode::KeywordMissing, 3).await.unwrap();
    assert_eq!(missing.status().as_u16(), 200);
    let body = missing.text().await.unwrap();
    assert!(KEYWORDS.iter().all(|k| !body.contains(k)), "{body}");

    let held = get(CanaryMode::Timeout, 4).await;
    assert!(
        held.is_err_and(|e| e.is_timeout()),
        "a timeout canary answered in time"
    );

    // A path the secret did not seal, or one sealed with another secret: 404.
    let other: CanarySecret = "aa".repeat(32).parse().unwrap();
    for path in [
        "/".to_owned(),
        "/status/00112233445566778899aabbccddeeff".to_owned(),
        other.path_for(&[5; 8], CanaryMode::Ok),
    ] {
        let answer = client
            .get(format!("http://{http_listen}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
    }

    // The TLS listener's certificate is one no client trusts.
    let tls = client
        .get(format!(
            "https://{tls_listen}{}",
            secret.path_for(&[6; 8], CanaryMode::Ok)
        ))
        .send()
        .await;
    assert!(tls.is_err(), "an untrusted certificate was accepted");

    let stopped = canary.terminate(Duration::from_secs(5)).unwrap();
    assert!(stopped.is_some_and(|(status, _)| status.success()));
}

#[test]
fn a_missing_or_malformed_secret_is_refused_without_printing_it() {
    assert_refuses_config(CANARY, &[], &[], "CANARY_SECRET");
    let mut process = ServiceProcess::spawn(
        CANARY,
        &[],
        &[("CANARY_SECRET", "not-hex-but-a-secret-value")],
    )
    .unwrap();
    process.wait_exit(Duration::from_secs(10)).unwrap();
    let output = process.output().join("\n");
    assert!(output.contains("CANARY_SECRET"), "{output}");
    assert!(!output.contains("not-hex-but-a-secret-value"), "{output}");
}
