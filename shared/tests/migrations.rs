//! The migrations apply and revert cleanly, and tick partitions are kept.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

use chrono::{Days, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use overlaps_shared::db::{self, MIGRATIONS, maintain_tick_partitions};
use overlaps_shared::models::Tick;
use overlaps_shared::schema::ticks;
use overlaps_shared::testing::TestDatabase;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn public_relations(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S') \
         AND c.relname <> '__diesel_schema_migrations' ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|r| r.name)
    .collect()
}

fn public_functions(conn: &mut PgConnection) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'public'",
    )
    .get_result::<Count>(conn)
    .unwrap()
    .n
}

/// The migration directories in `migrations/`: every one must be embedded and applied.
fn migrations_on_disk() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().join("up.sql").exists())
        .count()
}

#[test]
fn migrations_apply_and_revert_cleanly_on_an_empty_database() {
    let test_db = TestDatabase::empty().unwrap();
    let mut conn = test_db.connect().unwrap();
    assert!(public_relations(&mut conn).is_empty());

    let applied = db::run_migrations(&mut conn).unwrap();
    assert_eq!(applied.len(), migrations_on_disk());
    let tables = public_relations(&mut conn);
    for table in [
        "users",
        "websites",
        "validators",
        "rounds",
        "ticks",
        "incidents",
        "alert_outbox",
        "eons",
        "root_commitments",
        "merkle_leaves",
        "ethereum_transactions",
        "chain_blocks",
        "contract_events",
        "audit_reports",
        "website_hourly_rollups",
        "validator_credits",
    ] {
        assert!(
            tables.contains(&table.to_owned()),
            "{table} missing from {tables:?}"
        );
    }
    // A second run finds nothing to do.
    assert!(db::run_migrations(&mut conn).unwrap().is_empty());

    let reverted = db::revert_all_migrations(&mut conn).unwrap();
    assert_eq!(reverted.len(), migrations_on_disk());
    assert_eq!(public_relations(&mut conn), Vec::<String>::new());
    assert_eq!(public_functions(&mut conn), 0);

    // And they apply again after a full revert.
    assert_eq!(
        db::run_migrations(&mut conn).unwrap().len(),
        migrations_on_disk()
    );
}

#[test]
fn every_migration_has_a_down_migration() {
    use diesel::migration::MigrationSource;
    let migrations = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).unwrap();
    assert_eq!(migrations.len(), migrations_on_disk());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        let down = std::fs::read_to_string(dir.join("down.sql")).unwrap();
        assert!(
            down.contains("DROP"),
            "{} has an empty down.sql",
            dir.display()
        );
    }
}

#[test]
fn two_processes_migrating_at_once_are_safe() {
    let test_db = TestDatabase::empty().unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let mut conn = test_db.connect().unwrap();
            std::thread::spawn(move || db::run_migrations(&mut conn).map(|v| v.len()))
        })
        .collect();
    let mut applied: Vec<usize> = runs
        .into_iter()
        .map(|r| r.join().unwrap().unwrap())
        .collect();
    applied.sort();
    assert_eq!(applied, vec![0, 0, migrations_on_disk()]);
}

fn partitions(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ticks' ORDER BY 1",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|r| r.name)
    .collect()
}

fn tick_at(assignment_id: i64, received_at: chrono::DateTime<Utc>) -> Tick {
    Tick {
        assignment_id,
        round_number: 1,
        website_id: 1,
        validator_id: 1,
        status: "up".into(),
        http_status: Some(200),
        latency_ms: 12,
        failure: None,
        tls_expires_at: None,
        checked_at: received_at,
        received_at,
        signature: vec![7; 64],
        protocol_version: 1,
        spec_hash: None,
    }
}

#[test]
fn tick_partitions_are_created_ahead_and_dropped_after_retention() {
    let test_db = TestDatabase::new().unwrap();
    let mut conn = test_db.connect().unwrap();
    let today = NaiveDate::from_ymd_opt(2031, 3, 10).unwrap();

    let upkeep = maintain_tick_partitions(&mut conn, today, 3, 5).unwrap();
    // Yesterday, today and three days ahead.
    assert_eq!(upkeep.created, 5);
    let names = partitions(&mut conn);
    for day in ["20310309", "20310310", "20310311", "20310312", "20310313"] {
        assert!(
            names.contains(&format!("ticks_{day}")),
            "{day} missing in {names:?}"
        );
    }
    assert!(!names.contains(&"ticks_20310314".to_owned()), "{names:?}");
    // Running it again creates nothing new.
    assert_eq!(
        maintain_tick_partitions(&mut conn, today, 3, 5)
            .unwrap()
            .created,
        0
    );

    // A tick lands in its day's partition.
    let noon = Utc.with_ymd_and_hms(2031, 3, 10, 12, 0, 0).unwrap();
    diesel::insert_into(ticks::table)
        .values(&tick_at(1, noon))
        .execute(&mut conn)
        .unwrap();
    let in_partition = diesel::sql_query("SELECT count(*) AS n FROM ticks_20310310")
        .get_result::<Count>(&mut conn)
        .unwrap();
    assert_eq!(in_partition.n, 1);

    // Ten days later, the days older than the five-day retention are gone with their rows.
    let later = today.checked_add_days(Days::new(10)).unwrap();
    let upkeep = maintain_tick_partitions(&mut conn, later, 3, 5).unwrap();
    assert!(upkeep.dropped > 0);
    let names = partitions(&mut conn);
    assert!(!names.contains(&"ticks_20310310".to_owned()), "{names:?}");
    assert!(names.contains(&"ticks_20310320".to_owned()), "{names:?}");
    let left: i64 = ticks::table.count().get_result(&mut conn).unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_tick_outside_every_partition_is_refused_not_lost_silently() {
    let test_db = TestDatabase::new().unwrap();
    let mut conn = test_db.connect().unwrap();
    let far_future = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let err = diesel::insert_into(ticks::table)
        .values(&tick_at(2, far_future))
        .execute(&mut conn)
        .unwrap_err();
    assert!(err.to_string().contains("no partition"), "{err}");
}

#[test]
fn reverting_the_tree_layers_cuts_every_leaf_its_hash_and_proof() {
    use diesel::connection::SimpleConnection;
    use diesel::migration::MigrationSource;
    use diesel_migrations::MigrationHarness;
    use overlaps_shared::merkle::{RewardTree, leaf_hash};

    let test_db = TestDatabase::new().unwrap();
    let mut conn = test_db.connect().unwrap();
    // A tree over 4,100 leaves: two chunks on layer 0, odd widths further up.
    let n = 4_100usize;
    let leaves: Vec<[u8; 32]> = (1..=n as u64)
        .map(|i| {
            leaf_hash(
                overlaps_shared::eth::Address::from_low_u64_be(i),
                overlaps_shared::eth::U256::from(i),
            )
        })
        .collect();
    let tree = RewardTree::build(&leaves);
    conn.batch_execute(&format!(
        "INSERT INTO eons (number, first_round, last_round) VALUES (1, 1, 1); \
         INSERT INTO root_commitments (eon, root, total, leaf_count, excluded_count) \
         VALUES (1, decode('{}', 'hex'), 0, {n}, 0); \
         INSERT INTO merkle_leaves (eon, leaf_index, payout_address, cumulative) \
         SELECT 1, i - 1, decode(lpad(to_hex(i), 40, '0'), 'hex'), i FROM generate_series(1, {n}) AS i",
        hex::encode(tree.root())
    ))
    .unwrap();
    for (layer, chunk, hashes) in tree.chunks() {
        diesel::sql_query(format!(
            "INSERT INTO merkle_nodes (eon, layer, chunk, hashes) VALUES (1, {layer}, {chunk}, decode('{}', 'hex'))",
            hex::encode(hashes)
        ))
        .execute(&mut conn)
        .unwrap();
    }
    // Revert back through the tree-layers migration (later ones first).
    let tree_layers = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .unwrap()
        .into_iter()
        .find(|m| m.name().to_string().ends_with("merkle_nodes"))
        .unwrap()
        .name()
        .version()
        .as_owned();
    while conn.revert_last_migration(MIGRATIONS).unwrap() != tree_layers {}

    #[derive(QueryableByName)]
    struct Leaf {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        leaf_index: i32,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        leaf_hash: Vec<u8>,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        proof: Vec<u8>,
    }
    let stored: Vec<Leaf> = diesel::sql_query(
        "SELECT leaf_index, leaf_hash, proof FROM merkle_leaves WHERE eon = 1 ORDER BY leaf_index",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(stored.len(), n);
    for leaf in stored {
        let i = usize::try_from(leaf.leaf_index).unwrap();
        assert_eq!(leaf.leaf_hash, leaves[i], "leaf {i}");
        assert_eq!(leaf.proof, tree.proof(i).concat(), "proof {i}");
    }
    // And forward again.
    db::run_migrations(&mut conn).unwrap();
}
