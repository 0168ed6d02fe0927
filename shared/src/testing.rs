//! Test support: a fresh database and Redis key prefix per test, and running the
//! compiled binaries. Enabled by the `testing` feature (dev-dependencies only).
//!
//! Tests read `DATABASE_URL` and `REDIS_URL` from the environment or `.env`, as the
//! services do. The database role needs `CREATEDB`; `./run.sh test` sets that up.
//! Split by responsibility; everything is re-exported here, so every helper is
//! `overlaps_shared::testing::…`.

mod chain;
mod db;
mod dns;
pub mod e2e;
mod forgery;
mod http;
mod process;
mod redis;

pub use chain::{
    GUARDIAN_KEY, TEST_CHALLENGE_BLOCKS, TEST_UNBONDING_SECONDS, TestChain, anvil_path,
};
pub use db::{TestDatabase, base_config};
pub use dns::{DNS_SLOW_NAME, TestDnsServer};
pub use forgery::mixed_order_signature;
pub use http::{HttpSink, HttpTarget, SinkRequest, SmtpSink, read_request_head};
pub use process::{
    ServiceProcess, ValidatorKeyFile, assert_refuses_config, assert_starts_and_stops, free_port,
    install_tls_provider, poll_until, service_env, spawn_ready, spawn_server, wait_until,
    workspace_binary,
};
pub use redis::{PrivateRedis, TestRedis};
