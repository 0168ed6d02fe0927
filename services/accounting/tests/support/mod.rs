//! What accounting's tests share: the close policy they settle rounds with, and
//! reading numbers and outbox rows back by SQL.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // Each test uses some.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Text};
use overlaps_accounting::config::ClosePolicy;
use overlaps_shared::testing::TestDatabase;

/// One `id` (or any number) read back from a query.
#[derive(QueryableByName)]
pub struct Id {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
}

/// The close policy of the tests: 10^12 per check, down after 2 rounds, up after 1.
pub fn policy() -> ClosePolicy {
    ClosePolicy {
        reward_per_check: BigDecimal::from(1_000_000_000_000i64),
        confirmations_down: 2,
        confirmations_up: 1,
        reputation_gain: 10,
        reputation_loss: 50,
        tls_warning_days: 14,
        canary_penalty_bp: 5_000,
    }
}

/// The one number `sql` selects.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(format!("SELECT ({sql})::bigint AS id"))
        .get_result::<Id>(conn)
        .unwrap()
        .id
}

/// An outbox row's state and delivery attempts.
pub fn outbox_state(db: &TestDatabase, id: i64) -> (String, i32) {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        state: String,
        #[diesel(sql_type = Int4)]
        attempts: i32,
    }
    let r: Row = diesel::sql_query("SELECT state, attempts FROM alert_outbox WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result(&mut db.connect().unwrap())
        .unwrap();
    (r.state, r.attempts)
}
