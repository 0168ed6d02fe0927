//! What the end-to-end tests (every real binary together) share: starting a binary
//! by name, starting validator nodes, and reading numbers and text from the test's
//! database by SQL. Everything panics with what went wrong: these run in tests only.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{ServiceProcess, TestDatabase, ValidatorKeyFile, spawn_ready, workspace_binary};

/// A checksummed payout address for nodes whose payouts the test does not follow.
pub const DEV_PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

/// Starts workspace binary `name` with `args` and `env`; waits for `ready`.
pub fn spawn_binary(name: &str, args: &[&str], env: &[(String, String)]) -> ServiceProcess {
    spawn_ready(&workspace_binary(name), args, env)
}

/// The workspace's `server` binary on a port the system picks (see
/// [`spawn_server`](super::spawn_server)), with the address it bound.
pub fn spawn_hub_server(env: &[(String, String)]) -> (ServiceProcess, String) {
    super::spawn_server(&workspace_binary("server"), env)
}

/// `pairs` as the owned environment the spawners take.
pub fn owned_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A loopback address on a /24 of its own (`127.0.N.1`, N from 20 to 219 in turn):
/// nodes a test starts connect from different networks, as independent operators'
/// validators do, so the hub's spread rule can fill a quorum with them.
pub fn distinct_loopback() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 200 + 20;
    format!("127.0.{n}.1")
}

/// A `validator run --allow-private-targets` node with a fresh key, connected to
/// `hub` (a `ws://…/ws/validator` URL) from an address of its own network
/// ([`distinct_loopback`]), with `extra` settings besides.
pub fn start_validator(
    hub: &str,
    payout: &str,
    extra: &[(String, String)],
) -> (ServiceProcess, ValidatorKeyFile) {
    let key = ValidatorKeyFile::generate(&workspace_binary("validator"));
    let mut env = owned_env(&[
        ("VALIDATOR_KEY_FILE", key.path()),
        ("HUB_URL", hub),
        ("PAYOUT_ADDRESS", payout),
        ("VALIDATOR_SOURCE_ADDRESS", &distinct_loopback()),
    ]);
    env.extend_from_slice(extra);
    let node = spawn_binary("validator", &["run", "--allow-private-targets"], &env);
    (node, key)
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Word {
    #[diesel(sql_type = Nullable<Text>)]
    w: Option<String>,
}

/// The one number `sql` selects (NULL read as 0).
pub fn scalar(db: &TestDatabase, sql: &str) -> i64 {
    let mut conn = db
        .connect()
        .unwrap_or_else(|err| panic!("connecting to {}: {err}", db.name()));
    diesel::sql_query(format!("SELECT coalesce(({sql})::bigint, 0) AS n"))
        .get_result::<Number>(&mut conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .n
}

/// The one value `sql` selects, as text (NULL as `None`).
pub fn text(db: &TestDatabase, sql: &str) -> Option<String> {
    let mut conn = db
        .connect()
        .unwrap_or_else(|err| panic!("connecting to {}: {err}", db.name()));
    diesel::sql_query(format!("SELECT ({sql})::text AS w"))
        .get_result::<Word>(&mut conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .w
}

/// Every row `sql` selects, each as one text value (e.g. `SELECT format(…)`), for
/// printing evidence when an assertion fails.
pub fn rows(db: &TestDatabase, sql: &str) -> Vec<String> {
    let mut conn = db
        .connect()
        .unwrap_or_else(|err| panic!("connecting to {}: {err}", db.name()));
    diesel::sql_query(format!("SELECT t::text AS w FROM ({sql}) AS t"))
        .load::<Word>(&mut conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .into_iter()
        .map(|row| row.w.unwrap_or_default())
        .collect()
}
