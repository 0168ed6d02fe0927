//! Storing an eon's leaves and validators' rewards as partitions of their own.
//!
//! Each is COPYed into a bare table (no index, no foreign key), indexed once, then
//! attached to `merkle_leaves` / `validator_rewards`, which checks its foreign keys
//! and bounds in one pass. Row by row into the indexed tables cost 7-15 µs a row
//! (2 million rows an eon at 1 M validators); see the migration `eon_partitions`.
//! The leaves load inside the eon's transaction; the rewards load on a second
//! connection beside them and are attached inside it, so until the eon commits
//! neither is part of its table. A failed close leaves at most the staged table,
//! which it drops (or, after a crash, the next close replaces).
//! Amounts go on the wire as NUMERIC digits computed from the `U256` directly.

use diesel::data_types::PgNumeric;
use diesel::prelude::*;
use overlaps_shared::eth::{Address, U256};
use overlaps_shared::money;

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
    /// `validator_rewards_e{N}` while it is staged (on the staging connection, until
    /// the closing transaction attaches it).
    validator_rewards_incoming (validator_id, eon) {
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
    cumulative: PgNumeric,
}

#[derive(Insertable)]
#[diesel(table_name = validator_rewards_incoming, treat_none_as_default_value = false)]
struct IncomingReward<'a> {
    eon: i64,
    validator_id: i64,
    payout_address: Option<&'a [u8]>,
    earned: PgNumeric,
    cumulative: PgNumeric,
    attributed: PgNumeric,
}

/// One validator's standing at an eon's close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EonReward {
    /// The validator.
    pub validator_id: i64,
    /// Its payout address at the close, if it has one.
    pub payout_address: Option<Vec<u8>>,
    /// Earned in the eon.
    pub earned: U256,
    /// Earned up to the eon.
    pub cumulative: U256,
    /// Added to a leaf so far.
    pub attributed: U256,
}

/// Rows per COPY statement: keeps the encoded buffer small.
const COPY_ROWS: usize = 50_000;

/// Stores eon `eon`'s leaves (in tree order) as the partition `merkle_leaves_e{eon}`.
pub(crate) fn store_leaves(
    conn: &mut PgConnection,
    eon: i64,
    leaves: &[(Address, U256)],
) -> QueryResult<()> {
    create_incoming(conn, "merkle_leaves", eon)?;
    for (chunk_index, chunk) in leaves.chunks(COPY_ROWS).enumerate() {
        let first = chunk_index * COPY_ROWS;
        let rows: Vec<IncomingLeaf<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(offset, (address, cumulative))| IncomingLeaf {
                eon,
                leaf_index: i32::try_from(first + offset).unwrap_or(i32::MAX),
                payout_address: address.as_bytes(),
                cumulative: money::to_pg_numeric(*cumulative),
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

/// Loads eon `eon`'s validators' rewards into `validator_rewards_incoming` on the
/// staging connection, committed but not yet a partition: the closing transaction
/// attaches it with [`attach_rewards`]. A table left by a close that failed is
/// replaced (one close runs at a time, under the eon mutex and boundary lock).
pub(crate) fn stage_rewards(
    staging: &mut PgConnection,
    eon: i64,
    rewards: &[EonReward],
) -> QueryResult<()> {
    staging.transaction(|conn| {
        discard_staged_rewards(conn)?;
        create_incoming(conn, "validator_rewards", eon)?;
        for chunk in rewards.chunks(COPY_ROWS) {
            let rows: Vec<IncomingReward<'_>> = chunk
                .iter()
                .map(|reward| IncomingReward {
                    eon,
                    validator_id: reward.validator_id,
                    payout_address: reward.payout_address.as_deref(),
                    earned: money::to_pg_numeric(reward.earned),
                    cumulative: money::to_pg_numeric(reward.cumulative),
                    attributed: money::to_pg_numeric(reward.attributed),
                })
                .collect();
            diesel::copy_from(validator_rewards_incoming::table)
                .from_insertable(rows)
                .execute(conn)?;
        }
        // The one index the parent's key attaches to (see the migration
        // `rewards_keyed_by_validator`).
        diesel::sql_query(format!(
            "ALTER TABLE validator_rewards_incoming \
             ADD CONSTRAINT validator_rewards_e{eon}_pkey PRIMARY KEY (validator_id, eon)"
        ))
        .execute(conn)?;
        // Checked here, beside the leaves: the attach adopts a foreign key the
        // partition already has instead of checking every row again inside the
        // closing transaction (0.6 s at 1 M validators). The key to `eons` cannot
        // be checked here (the eon's row is not committed yet); the attach does it.
        diesel::sql_query(format!(
            "ALTER TABLE validator_rewards_incoming \
             ADD CONSTRAINT validator_rewards_e{eon}_validator_fkey \
             FOREIGN KEY (validator_id) REFERENCES validators (id)"
        ))
        .execute(conn)?;
        Ok(())
    })
}

/// Makes the staged rewards eon `eon`'s partition `validator_rewards_e{eon}`,
/// inside the closing transaction.
pub(crate) fn attach_rewards(conn: &mut PgConnection, eon: i64) -> QueryResult<()> {
    attach(conn, "validator_rewards", eon)
}

/// Drops rewards staged for a close that did not commit.
pub(crate) fn discard_staged_rewards(staging: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("DROP TABLE IF EXISTS validator_rewards_incoming").execute(staging)?;
    Ok(())
}

/// A bare table shaped like `parent` (its columns and CHECK constraints, which the
/// attach requires; no index, no foreign key yet), plus a CHECK of the partition's
/// bound: with it, the attach proves the bound instead of scanning every row.
fn create_incoming(conn: &mut PgConnection, parent: &str, eon: i64) -> QueryResult<()> {
    diesel::sql_query(format!(
        "CREATE TABLE {parent}_incoming (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, \
         CONSTRAINT {parent}_e{eon}_bound CHECK (eon = {eon}))"
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
    // The partition's bound now says the same.
    diesel::sql_query(format!(
        "ALTER TABLE {parent}_e{eon} DROP CONSTRAINT {parent}_e{eon}_bound"
    ))
    .execute(conn)?;
    Ok(())
}
