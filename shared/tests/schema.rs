//! `schema.rs` (hand-written) matches the tables the migrations create.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use std::collections::BTreeSet;

use diesel::debug_query;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{self, Text};
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

/// The Rust type diesel reads a SQL type into, so a row can be loaded with exactly
/// the types `schema.rs` declares (a declared type the column does not have fails
/// to deserialize).
trait Canonical {
    type Rust;
}

macro_rules! canonical {
    ($($sql:ty => $rust:ty),+ $(,)?) => {
        $(impl Canonical for $sql {
            type Rust = $rust;
        })+
    };
}

canonical! {
    sql_types::Bool => bool,
    sql_types::Int2 => i16,
    sql_types::Int4 => i32,
    sql_types::Int8 => i64,
    sql_types::Text => String,
    sql_types::Bytea => Vec<u8>,
    sql_types::Jsonb => serde_json::Value,
    sql_types::Numeric => bigdecimal::BigDecimal,
    sql_types::Timestamptz => chrono::DateTime<chrono::Utc>,
    sql_types::Time => chrono::NaiveTime,
}

impl<T: Canonical + sql_types::SqlType> Canonical for sql_types::Nullable<T> {
    type Rust = Option<T::Rust>;
}

/// The Rust row of a tuple of columns.
trait RowOf {
    type Rust;
}

macro_rules! row_of {
    ($($column:ident),+) => {
        impl<$($column: Expression),+> RowOf for ($($column,)+)
        where
            $($column::SqlType: Canonical),+
        {
            type Rust = ($(<$column::SqlType as Canonical>::Rust,)+);
        }
    };
}

row_of!(A);
row_of!(A, B);
row_of!(A, B, C);
row_of!(A, B, C, D);
row_of!(A, B, C, D, E);
row_of!(A, B, C, D, E, F);
row_of!(A, B, C, D, E, F, G);
row_of!(A, B, C, D, E, F, G, H);
row_of!(A, B, C, D, E, F, G, H, I);
row_of!(A, B, C, D, E, F, G, H, I, J);
row_of!(A, B, C, D, E, F, G, H, I, J, K);
row_of!(A, B, C, D, E, F, G, H, I, J, K, L);
row_of!(A, B, C, D, E, F, G, H, I, J, K, L, M);
row_of!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
row_of!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
row_of!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);

#[derive(QueryableByName)]
struct TypedColumn {
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
}

/// Inserts one row into `table` with a non-null value of its type in every column,
/// so loading it exercises every declared type (NULLs would prove nothing).
fn insert_full_row(conn: &mut PgConnection, table: &str) {
    let columns = diesel::sql_query(
        "SELECT column_name::text AS column_name, data_type::text AS data_type \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 \
         ORDER BY ordinal_position",
    )
    .bind::<Text, _>(table)
    .load::<TypedColumn>(conn)
    .unwrap();
    let values: Vec<&str> = columns
        .iter()
        .map(|c| match c.data_type.as_str() {
            "bigint" | "integer" | "smallint" | "numeric" => "1",
            "text" | "character varying" => "'x'",
            "bytea" => "'\\x01'::bytea",
            "boolean" => "true",
            "timestamp with time zone" => "now()",
            "time without time zone" => "'01:30'",
            "jsonb" => "'{}'::jsonb",
            other => panic!("{table}.{}: no test value for type {other}", c.column_name),
        })
        .collect();
    let names: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.column_name))
        .collect();
    diesel::sql_query(format!(
        "INSERT INTO \"{table}\" ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    ))
    .execute(conn)
    .unwrap();
}

macro_rules! check_tables {
    ($conn:expr, $($table:ident),+ $(,)?) => {{
        let mut checked = Vec::new();
        $(
            let sql = debug_query::<Pg, _>(&$table::table.select($table::all_columns)).to_string();
            let expected = diesel_columns(&sql, stringify!($table));
            let actual = database_columns($conn, stringify!($table));
            assert_eq!(expected, actual, "columns of {}", stringify!($table));
            // A row of every column loads with exactly the declared types.
            insert_full_row($conn, stringify!($table));
            let row: Vec<<<$table::table as Table>::AllColumns as RowOf>::Rust> =
                $table::table.select($table::all_columns).load($conn).unwrap_or_else(|e| {
                    panic!("a row of {} does not load with its declared types: {e}", stringify!($table))
                });
            assert_eq!(row.len(), 1, "{}", stringify!($table));
            checked.push(stringify!($table).to_owned());
        )+
        checked
    }};
}

/// The tables of the schema (partitions of a partitioned table excluded).
fn database_tables(conn: &mut PgConnection) -> BTreeSet<String> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        relname: String,
    }
    diesel::sql_query(
        "SELECT c.relname::text AS relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relname <> '__diesel_schema_migrations'",
    )
    .load::<Table>(conn)
    .unwrap()
    .into_iter()
    .map(|t| t.relname)
    .collect()
}

/// Lets one row of arbitrary values into every table: foreign keys and checks are
/// dropped (the test database is thrown away), partitioned tables without a default
/// partition get one.
fn accept_any_row(conn: &mut PgConnection) {
    diesel::sql_query(
        "DO $$ DECLARE r record; BEGIN \
           FOR r IN SELECT c.conrelid::regclass AS t, c.conname FROM pg_constraint c \
                    JOIN pg_class k ON k.oid = c.conrelid JOIN pg_namespace n ON n.oid = k.relnamespace \
                    WHERE n.nspname = 'public' AND c.contype IN ('c', 'f') AND NOT k.relispartition LOOP \
             EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.t, r.conname); \
           END LOOP; \
           FOR r IN SELECT k.relname FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace \
                    JOIN pg_partitioned_table p ON p.partrelid = k.oid \
                    WHERE n.nspname = 'public' AND k.relkind = 'p' AND p.partdefid = 0 LOOP \
             EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', r.relname || '_schema_test', r.relname); \
           END LOOP; \
         END $$",
    )
    .execute(conn)
    .unwrap();
}

#[test]
fn every_table_in_schema_rs_matches_the_database() {
    let test_db = TestDatabase::new().unwrap();
    let mut conn = test_db.connect().unwrap();
    let tables = database_tables(&mut conn);
    accept_any_row(&mut conn);
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
        merkle_nodes,
        validator_rewards,
        target_host_checks,
        canary_chains,
        canary_assignments,
        validator_stakes,
        validator_allowlist,
        maintenance_windows,
        status_pages,
        status_page_sites,
    );
    // Every table of the database is checked, and each once.
    let checked_set: BTreeSet<String> = checked.iter().cloned().collect();
    assert_eq!(checked_set.len(), checked.len(), "a table listed twice");
    assert_eq!(checked_set, tables);
}
