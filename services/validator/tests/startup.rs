//! The compiled `validator` binary starts, reports ready and stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::time::Duration;

use overlaps_shared::testing::{ServiceProcess, assert_refuses_config};

const BIN: &str = env!("CARGO_BIN_EXE_validator");

#[test]
fn starts_and_stops_on_sigterm_within_5s() {
    let mut node = ServiceProcess::spawn(BIN, &[], &[]).unwrap();
    assert!(
        node.wait_ready(Duration::from_secs(30)).is_some(),
        "{:?}",
        node.output()
    );
    let (status, _) = node
        .terminate(Duration::from_secs(5))
        .unwrap()
        .expect("stopped in time");
    assert!(status.success());
}

#[test]
fn refuses_a_hub_url_that_is_not_a_websocket() {
    assert_refuses_config(BIN, &[("HUB_URL", "http://127.0.0.1:8080")], "HUB_URL");
}
