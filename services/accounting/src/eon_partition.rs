//! Storing an eon's leaves and validators' rewards as partitions of their own.
//!
//! Each is COPYed into a bare table (no index, no foreign key), indexed once, then
//! attached to `merkle_leaves` / `validator_rewards`, which checks its foreign keys
//! and bounds in one pass. Row by row into the indexed tables cost 7-15 µs a row
//! (2 million rows an eon at 1 M validators); see the migration `eon_partitions`.
//! Everything runs inside the eon's transaction, so a failure leaves nothing behind.

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use overlaps_shared::models::{MerkleLeaf, ValidatorReward};

diesel::table! {
    /// `merkle_leaves_e{N}` while it is loaded (only inside the closing transaction).
    merkle_leaves_incoming (eon, leaf_index) {
        /// The eon.
        eon -> BigInt,
        /// Position in the tree.
        leaf_index -> Integer,
        /// Payout address.
        payout_address -> Bytea,
        /// Cumulative amount.
        cumulative -> Numeric,
    }
}

diesel::table! {
    /// `validator_rewards_e{N}` while it is loaded (only inside the closing transaction).
    validator_rewards_incoming (eon, validator_id) {
        /// The eon.
        eon -> BigInt,
        /// The validator.
        validator_id -> BigInt,
        /// Its payout address at the close.
        payout_address -> Nullable<Bytea>,
        /// Earned in the eon.
        earned -> Numeric,
        /// Earned up to the eon.
        cumulative -> Numeric,
        /// Added to a leaf so far.
        attributed -> Numeric,
    }
}

#[derive(Insertable)]
#[diesel(table_name = merkle_leaves_incoming, treat_none_as_default_value = false)]
struct IncomingLeaf<'a> {
    eon: i64,
    leaf_index: i32,
    payout_address: &'a [u8],
    cumulative: &'a BigDecimal,
}

#[derive(Insertable)]
#[diesel(table_name = validator_rewards_incoming, treat_none_as_default_value = false)]
struct IncomingReward<'a> {
    eon: i64,
    validator_id: i64,
    payout_address: Option<&'a [u8]>,
    earned: &'a BigDecimal,
    cumulative: &'a BigDecimal,
    attributed: &'a BigDecimal,
}

/// Rows per COPY statement: keeps the encoded buffer small.
const COPY_ROWS: usize = 50_000;

/// Stores eon `eon`'s leaves as the partition `merkle_leaves_e{eon}`.
pub(crate) fn store_leaves(
    conn: &mut PgConnection,
    eon: i64,
    leaves: &[MerkleLeaf],
) -> QueryResult<()> {
    create_incoming(conn, "merkle_leaves")?;
    for chunk in leaves.chunks(COPY_ROWS) {
        let rows: Vec<IncomingLeaf<'_>> = chunk
            .iter()
            .map(|leaf| IncomingLeaf {
                eon: leaf.eon,
                leaf_index: leaf.leaf_index,
                payout_address: &leaf.payout_address,
                cumulative: &leaf.cumulative,
            })
            .collect();
        diesel::copy_from(merkle_leaves_incoming::table)
            .from_insertable(rows)
            .execute(conn)?;
    }
    // The indexes the parent's primary key and unique constraint attach to.
    diesel::sql_query(format!(
        "ALTER TABLE merkle_leaves_incoming \
         ADD CONSTRAINT merkle_leaves_e{eon}_pkey PRIMARY KEY (eon, leaf_index), \
         ADD CONSTRAINT merkle_leaves_e{eon}_address_key UNIQUE (eon, payout_address)"
    ))
    .execute(conn)?;
    attach(conn, "merkle_leaves", eon)
}

/// Stores eon `eon`'s validators' rewards as the partition `validator_rewards_e{eon}`.
pub(crate) fn store_rewards(
    conn: &mut PgConnection,
    eon: i64,
    rewards: &[ValidatorReward],
) -> QueryResult<()> {
    create_incoming(conn, "validator_rewards")?;
    for chunk in rewards.chunks(COPY_ROWS) {
        let rows: Vec<IncomingReward<'_>> = chunk
            .iter()
            .map(|reward| IncomingReward {
                eon: reward.eon,
                validator_id: reward.validator_id,
                payout_address: reward.payout_address.as_deref(),
                earned: &reward.earned,
                cumulative: &reward.cumulative,
                attributed: &reward.attributed,
            })
            .collect();
        diesel::copy_from(validator_rewards_incoming::table)
            .from_insertable(rows)
            .execute(conn)?;
    }
    diesel::sql_query(format!(
        "ALTER TABLE validator_rewards_incoming \
         ADD CONSTRAINT validator_rewards_e{eon}_pkey PRIMARY KEY (eon, validator_id)"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "CREATE INDEX validator_rewards_e{eon}_validator_idx \
         ON validator_rewards_incoming (validator_id, eon)"
    ))
    .execute(conn)?;
    attach(conn, "validator_rewards", eon)
}

/// A bare table shaped like `parent` (its columns and CHECK constraints, which the
/// attach requires; no index, no foreign key yet).
fn create_incoming(conn: &mut PgConnection, parent: &str) -> QueryResult<()> {
    diesel::sql_query(format!(
        "CREATE TABLE {parent}_incoming (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ))
    .execute(conn)?;
    Ok(())
}

/// Names the loaded table `{parent}_e{eon}` and attaches it as eon `eon`'s partition.
/// The attach checks every row's bounds and foreign keys in one pass, and fails
/// if the DEFAULT partition already holds rows of this eon (inserted by hand).
fn attach(conn: &mut PgConnection, parent: &str, eon: i64) -> QueryResult<()> {
    diesel::sql_query(format!(
        "ALTER TABLE {parent}_incoming RENAME TO {parent}_e{eon}"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "ALTER TABLE {parent} ATTACH PARTITION {parent}_e{eon} FOR VALUES IN ({eon})"
    ))
    .execute(conn)?;
    Ok(())
}
