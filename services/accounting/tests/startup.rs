//! The compiled `accounting` binary starts, reports ready and stops on SIGTERM.

use overlaps_shared::testing::assert_refuses_config;

overlaps_shared::service_startup_tests!("accounting");

#[test]
fn refuses_a_malformed_retention() {
    assert_refuses_config(
        env!("CARGO_BIN_EXE_accounting"),
        &[],
        &[
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("TICK_RETENTION_DAYS", "0"),
        ],
        "TICK_RETENTION_DAYS",
    );
}
