//! `schema.rs` (hand-written) matches the tables the migrations create.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeSet;

use diesel::debug_query;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use overlaps_shared::schema::*;
use overlaps_shared::testing::TestDatabase;

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    column_name: String,
}

fn database_columns(conn: &mut PgConnection, table: &str) -> BTreeSet<String> {
    diesel::sql_query(
        "SELECT column_name::text AS column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = $1",
    )
    .bind::<Text, _>(table)
    .load::<Column>(conn)
    .unwrap()
    .into_iter()
    .map(|c| c.column_name)
    .collect()
}

/// The column names diesel would select, read from the SQL it generates.
fn diesel_columns(sql: &str, table: &str) -> BTreeSet<String> {
    let head = sql.split(" FROM ").next().unwrap();
    head.split(", ")
        .map(|col| {
            col.trim_start_matches("SELECT ")
                .trim_start_matches(&format!("\"{table}\"."))
                .trim_matches('"')
                .to_owned()
        })
        .collect()
}

macro_rules! check_tables {
    ($conn:expr, $($table:ident),+ $(,)?) => {{
        let mut checked = 0;
        $(
            let sql = debug_query::<Pg, _>(&$table::table.select($table::all_columns)).to_string();
            let expected = diesel_columns(&sql, stringify!($table));
            let actual = database_columns($conn, stringify!($table));
            assert_eq!(expected, actual, "columns of {}", stringify!($table));
            // Every column also loads with the declared types (no rows needed to check names).
            $table::table.select($table::all_columns).limit(0).execute($conn).unwrap();
            checked += 1;
        )+
        checked
    }};
}

#[test]
fn every_table_in_schema_rs_matches_the_database() {
    let test_db = TestDatabase::new().unwrap();
    let mut conn = test_db.connect().unwrap();
    let checked = check_tables!(
        &mut conn,
        users,
        api_keys,
        websites,
        alert_channels,
        validators,
        rounds,
        seed_chains,
        check_assignments,
        ticks,
        website_status,
        incidents,
        website_hourly_rollups,
        alert_outbox,
        validator_credits,
        eons,
        root_commitments,
        merkle_leaves,
        ethereum_transactions,
        ethereum_transaction_attempts,
        chain_blocks,
        contract_events,
        audit_reports,
    );
    assert_eq!(checked, 22);
}
