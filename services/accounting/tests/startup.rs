//! The compiled `accounting` binary starts, reports ready and stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use overlaps_shared::testing::{assert_refuses_config, assert_starts_and_stops};

const BIN: &str = env!("CARGO_BIN_EXE_accounting");

#[test]
fn starts_against_real_postgres_and_redis_and_stops_on_sigterm_within_5s() {
    assert_starts_and_stops(BIN, &[]);
}

#[test]
fn refuses_to_start_without_database_url() {
    assert_refuses_config(
        BIN,
        &[],
        &[("REDIS_URL", "redis://127.0.0.1:6379")],
        "DATABASE_URL",
    );
}

#[test]
fn refuses_a_malformed_retention() {
    assert_refuses_config(
        BIN,
        &[],
        &[
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("TICK_RETENTION_DAYS", "0"),
        ],
        "TICK_RETENTION_DAYS",
    );
}
