//! `eonbench`: the eon part of `./run.sh bench`. It fills a scratch database with
//! `BENCH_EON_VALIDATORS` validators (each with a payout address and a credit in one
//! closed round), closes the eon with accounting's real `close_eon`, and prints the
//! time for loading, the tree and the storage (leaves, tree layers, rewards), against the machine's own
//! limits measured in the same run: raw Keccak-256 hashes/s on one core (a tree of
//! n leaves needs 3n hashes) and raw PostgreSQL COPY bytes/s.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use overlaps_accounting::eon::close_eon;
use overlaps_shared::config::{CommonConfig, Env};
use overlaps_shared::db;
use overlaps_shared::eth::keccak256;

fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    let common = CommonConfig::from_env(&env)?;
    let validators: i64 = env.ranged("BENCH_EON_VALIDATORS", 1_000_000, 1..=10_000_000)?;
    let mut conn = db::connect_once(&common.database_url)?;
    db::run_migrations(&mut conn)?;

    println!("eon benchmark: {validators} validators, each with a payout address and a credit");
    let started = Instant::now();
    diesel::sql_query(
        "INSERT INTO validators (public_key, payout_address) \
         SELECT decode(lpad(to_hex(i), 64, '0'), 'hex'), decode(lpad(to_hex(i), 40, '0'), 'hex') \
         FROM generate_series(1, $1) AS i",
    )
    .bind::<BigInt, _>(validators)
    .execute(&mut conn)?;
    credit_everyone_in_a_closed_round(&mut conn, 1)?;
    println!(
        "  setup (not part of the eon): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut staging = db::connect_once(&common.database_url)?;
    let started = Instant::now();
    let summary = close_eon(&mut conn, &mut staging, 1)?
        .ok_or_else(|| anyhow::anyhow!("eon 1 was already closed in the scratch database"))?;
    let whole = started.elapsed();
    let t = summary.timings;

    let hashes_per_s = raw_keccak_per_second();
    let hash_bound = Duration::from_secs_f64(3.0 * summary.leaves as f64 / hashes_per_s);
    let stored_bytes = relation_bytes(
        &mut conn,
        &["merkle_leaves", "merkle_nodes", "validator_rewards"],
    )?;
    let copy_bytes_per_s = raw_copy_bytes_per_second(&mut conn, 200_000)?;
    let copy_bound = Duration::from_secs_f64(stored_bytes as f64 / copy_bytes_per_s);

    println!(
        "  leaves {}  total {}  root 0x{}",
        summary.leaves,
        summary.total,
        hex::encode(summary.root)
    );
    println!("  load    {:>7.3} s", t.load.as_secs_f64());
    println!(
        "  attribute {:>5.3} s   (each reward to its address's leaf)",
        t.attribute.as_secs_f64()
    );
    println!(
        "  tree    {:>7.3} s   (the 3n hashes alone at the raw rate: {:.3} s)",
        t.tree.as_secs_f64(),
        hash_bound.as_secs_f64()
    );
    println!(
        "  store   {:>7.3} s   ({:.0} MiB written; a raw COPY of as many bytes: {:.3} s)",
        t.store.as_secs_f64(),
        stored_bytes as f64 / 1_048_576.0,
        copy_bound.as_secs_f64()
    );
    println!(
        "          of which leaves {:.3} s, tree layers {:.3} s, validators' rewards {:.3} s",
        t.store_leaves.as_secs_f64(),
        t.store_tree.as_secs_f64(),
        t.store_rewards.as_secs_f64()
    );
    println!("  commit  {:>7.3} s", t.commit.as_secs_f64());
    println!("  whole eon {:.3} s", whole.as_secs_f64());
    println!(
        "  raw keccak256 {hashes_per_s:.0}/s on one core; raw COPY {:.0} MiB/s",
        copy_bytes_per_s / 1_048_576.0
    );
    // A second eon, as every eon after the first: each validator earns again, and
    // the first eon's leaves and rewards are read and carried forward.
    credit_everyone_in_a_closed_round(&mut conn, 2)?;
    let started = Instant::now();
    let second = close_eon(&mut conn, &mut staging, 2)?
        .ok_or_else(|| anyhow::anyhow!("eon 2 was already closed in the scratch database"))?;
    let second_whole = started.elapsed();
    let s = second.timings;
    println!(
        "  second eon {:.3} s   (every validator earning again, the first eon carried forward: \
         load {:.3} s, attribute {:.3} s, tree {:.3} s, store {:.3} s)",
        second_whole.as_secs_f64(),
        s.load.as_secs_f64(),
        s.attribute.as_secs_f64(),
        s.tree.as_secs_f64(),
        s.store.as_secs_f64()
    );

    let label = match summary.leaves {
        n if n >= 1_000_000 => format!("{}m", n / 1_000_000),
        n => format!("{}k", n / 1000),
    };
    println!("merkle_{label}_load_s={:.3}", t.load.as_secs_f64());
    println!("merkle_{label}_tree_s={:.3}", t.tree.as_secs_f64());
    println!("merkle_{label}_store_s={:.3}", t.store.as_secs_f64());
    println!("merkle_{label}_eon_s={:.3}", whole.as_secs_f64());
    println!(
        "merkle_{label}_second_eon_s={:.3}",
        second_whole.as_secs_f64()
    );
    println!("raw_keccak_per_s={hashes_per_s:.0}");
    println!("raw_copy_mib_per_s={:.1}", copy_bytes_per_s / 1_048_576.0);
    println!(
        "merkle_tree_ratio_to_limit={:.2}",
        hash_bound.as_secs_f64() / t.tree.as_secs_f64()
    );
    println!(
        "merkle_store_ratio_to_limit={:.2}",
        copy_bound.as_secs_f64() / t.store.as_secs_f64()
    );
    Ok(())
}

/// Closes round `round` (opened 10 − `round` minutes ago, so a later round opens
/// later) with a credit for every validator, then refreshes the planner's statistics.
fn credit_everyone_in_a_closed_round(conn: &mut PgConnection, round: i64) -> anyhow::Result<()> {
    diesel::sql_query(
        "INSERT INTO rounds (number, seed, opened_at, deadline_at, closed_at) \
         VALUES ($1, decode(repeat('00', 32), 'hex'), now() - make_interval(mins => (10 - $1)::int), \
                 now() - make_interval(mins => (10 - $1)::int) + interval '30 seconds', now())",
    )
    .bind::<BigInt, _>(round)
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO validator_credits (round_number, validator_id, checks, amount) \
         SELECT $1, id, 1, 1000000000000 * (1 + id % 97) FROM validators",
    )
    .bind::<BigInt, _>(round)
    .execute(conn)?;
    diesel::sql_query("ANALYZE").execute(conn)?;
    Ok(())
}

/// Keccak-256 over 64-byte inputs (an internal node), one core, for about a second.
fn raw_keccak_per_second() -> f64 {
    let mut node = [7u8; 64];
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..10_000 {
            let hash = keccak256(node);
            node[..32].copy_from_slice(&hash);
        }
        done += 10_000;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

#[derive(QueryableByName)]
struct Bytes {
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// The on-disk size of `tables`, indexes and partitions included.
fn relation_bytes(conn: &mut PgConnection, tables: &[&str]) -> anyhow::Result<i64> {
    let sum = tables
        .iter()
        .map(|t| {
            // A partitioned table has no storage of its own: add its partitions'.
            format!(
                "pg_total_relation_size('{t}') + (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) \
                 FROM pg_partition_tree('{t}') WHERE relid <> '{t}'::regclass)"
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    Ok(
        diesel::sql_query(format!("SELECT ({sum})::bigint AS bytes"))
            .get_result::<Bytes>(conn)?
            .bytes,
    )
}

diesel::table! {
    /// A scratch table for the raw COPY rate (created and dropped here).
    bench_raw_copy (id) {
        /// Row number.
        id -> BigInt,
        /// A payload the size of a leaf row's.
        payload -> Bytea,
    }
}

/// One row the size of a leaf row.
#[derive(Insertable)]
#[diesel(table_name = bench_raw_copy, treat_none_as_default_value = false)]
struct RawRow {
    id: i64,
    payload: Vec<u8>,
}

/// Bytes per second through one COPY of `rows` leaf-row-sized rows into a table with
/// no index (dropped afterwards).
fn raw_copy_bytes_per_second(conn: &mut PgConnection, rows: usize) -> anyhow::Result<f64> {
    diesel::sql_query("DROP TABLE IF EXISTS bench_raw_copy").execute(conn)?;
    diesel::sql_query("CREATE TABLE bench_raw_copy (id BIGINT, payload BYTEA)").execute(conn)?;
    let rows: Vec<RawRow> = (0..rows)
        .map(|i| RawRow {
            id: i as i64,
            payload: vec![0xab; 64],
        })
        .collect();
    let started = Instant::now();
    diesel::copy_from(bench_raw_copy::table)
        .from_insertable(&rows)
        .execute(conn)?;
    let elapsed = started.elapsed();
    let size = relation_bytes(conn, &["bench_raw_copy"])?;
    diesel::sql_query("DROP TABLE bench_raw_copy").execute(conn)?;
    Ok(size as f64 / elapsed.as_secs_f64())
}
