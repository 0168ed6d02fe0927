//! Closing an eon: every validator's cumulative reward up to the eon's last round,
//! attributed to payout addresses, becomes a Merkle tree whose root, total, leaves
//! (a partition per eon) and node layers are stored in one transaction (a root
//! commitment the verifier sends on-chain); the validators' rewards are loaded on a
//! second connection beside it and attached inside it. Proofs are cut from the
//! stored layers when asked for.
//!
//! An eon is closed exactly once: the job runs under a Redis mutex, and the eon's
//! primary key makes a second close in a racing transaction fail without effect.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::data_types::PgNumeric;
use diesel::prelude::*;
use diesel::sql_types::Numeric;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use overlaps_shared::eth::{Address, U256};
use overlaps_shared::merkle::{self, RewardTree};
use overlaps_shared::models::MerkleNodes;
use overlaps_shared::money::{self, BadAmount};
use overlaps_shared::schema::merkle_nodes;

use crate::eon_partition::{self, EonReward};

/// When eons close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EonPolicy {
    /// Close an eon once this many rounds have closed since the last one.
    pub rounds: i64,
    /// Or once this long has passed since the last eon (with at least one round).
    pub max_age: chrono::Duration,
}

/// Why an eon cannot be closed.
#[derive(Debug, thiserror::Error)]
pub enum EonError {
    /// Eons close in order.
    #[error("eon {eon} cannot close before eon {next}")]
    OutOfOrder {
        /// The eon asked for.
        eon: i64,
        /// The next eon to close.
        next: i64,
    },
    /// No round closed since the previous eon.
    #[error("eon {0} has no closed round yet")]
    NoRounds(i64),
    /// A stored amount is not an integer amount.
    #[error(transparent)]
    Amount(#[from] BadAmount),
    /// A stored payout address is not 20 bytes.
    #[error("validator {0} has a malformed payout address")]
    BadAddress(i64),
    /// A query failed.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Where the time of closing an eon went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EonTimings {
    /// Reading credits and the previous eon.
    pub load: Duration,
    /// Adding each validator's reward to its payout address's leaf.
    pub attribute: Duration,
    /// Hashing the leaves and building the tree, on every core, before storage.
    pub tree: Duration,
    /// Writing the rewards, commitment, leaves and tree layers, in all (wall time;
    /// the leaves and the rewards overlap).
    pub store: Duration,
    /// From the start of storage until the leaves were attached.
    pub store_leaves: Duration,
    /// The commitment and the tree layers, after the leaves (beside the rewards).
    pub store_tree: Duration,
    /// Staging the validators' rewards on the second connection, plus their attach.
    pub store_rewards: Duration,
    /// The rest of the close: beginning and committing its transaction.
    pub commit: Duration,
}

/// What closing an eon did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EonSummary {
    /// The eon.
    pub eon: i64,
    /// Its first round.
    pub first_round: i64,
    /// Its last round.
    pub last_round: i64,
    /// The Merkle root.
    pub root: merkle::Hash,
    /// The sum of every leaf's cumulative amount.
    pub total: U256,
    /// Leaves (payout addresses) in the tree.
    pub leaves: usize,
    /// Validators with a reward but no payout address, left out of the tree.
    pub excluded: usize,
    /// Where the time went.
    pub timings: EonTimings,
}

#[derive(QueryableByName)]
struct LastEon {
    #[diesel(sql_type = BigInt)]
    number: i64,
    #[diesel(sql_type = BigInt)]
    last_round: i64,
    #[diesel(sql_type = Timestamptz)]
    closed_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct ClosedRounds {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_opened_at: Option<DateTime<Utc>>,
}

/// The eon that would close next and its round range, if any round is waiting.
struct NextEon {
    number: i64,
    first_round: i64,
    last_round: i64,
    /// Since when the eon has been running: the previous eon's close, or its first round.
    since: DateTime<Utc>,
}

fn next_eon(conn: &mut PgConnection) -> Result<Result<NextEon, i64>, EonError> {
    let last = diesel::sql_query(
        "SELECT number, last_round, closed_at FROM eons ORDER BY number DESC LIMIT 1",
    )
    .get_result::<LastEon>(conn)
    .optional()?;
    let (number, after) = last
        .as_ref()
        .map_or((1, 0), |l| (l.number + 1, l.last_round));
    // Rounds close in order, so the closed rounds after the last eon form a range.
    let rounds = diesel::sql_query(
        "SELECT min(number) AS first, max(number) AS last, min(opened_at) AS first_opened_at \
         FROM rounds WHERE closed_at IS NOT NULL AND number > $1",
    )
    .bind::<BigInt, _>(after)
    .get_result::<ClosedRounds>(conn)?;
    match (rounds.first, rounds.last, rounds.first_opened_at) {
        (Some(first_round), Some(last_round), Some(opened)) => Ok(Ok(NextEon {
            number,
            first_round,
            last_round,
            since: last.map_or(opened, |l| l.closed_at),
        })),
        _ => Ok(Err(number)),
    }
}

/// The eon due to close at `now` under `policy`, if one is.
pub fn due_eon(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    policy: &EonPolicy,
) -> Result<Option<i64>, EonError> {
    let Ok(next) = next_eon(conn)? else {
        return Ok(None);
    };
    let rounds = next.last_round - next.first_round + 1;
    let due = rounds >= policy.rounds || now - next.since >= policy.max_age;
    Ok(due.then_some(next.number))
}

// Amounts arrive as NUMERIC wire values and become `U256`s without text or
// `BigDecimal` in between (a million rows an eon at 1 M validators).
#[derive(QueryableByName)]
struct RewardRow {
    #[diesel(sql_type = BigInt)]
    validator_id: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    payout_address: Option<Vec<u8>>,
    #[diesel(sql_type = Numeric)]
    earned: PgNumeric,
    #[diesel(sql_type = Numeric)]
    previous_cumulative: PgNumeric,
    #[diesel(sql_type = Numeric)]
    previous_attributed: PgNumeric,
}

/// A stored leaf: the previous eon's, carried forward, or one a tree is rebuilt from.
#[derive(QueryableByName)]
struct StoredLeaf {
    #[diesel(sql_type = Bytea)]
    payout_address: Vec<u8>,
    #[diesel(sql_type = Numeric)]
    cumulative: PgNumeric,
}

impl StoredLeaf {
    /// Its address and amount; refused if either is malformed.
    fn decoded(&self) -> Result<(Address, U256), EonError> {
        let address = address_of(&self.payout_address).ok_or(EonError::BadAddress(-1))?;
        Ok((address, money::from_pg_numeric(&self.cumulative)?))
    }
}

/// Closes eon `eon` with every round closed so far; `Ok(None)` when it was already
/// closed. The caller holds the eon mutex. `staging` is a second connection (not
/// in a transaction) on which the validators' rewards are loaded beside the rest;
/// nothing it loads is visible until this close commits.
pub fn close_eon(
    conn: &mut PgConnection,
    staging: &mut PgConnection,
    eon: i64,
) -> Result<Option<EonSummary>, EonError> {
    let started = Instant::now();
    let mut closed = conn.transaction(|conn| close_in_transaction(conn, staging, eon));
    if let Ok(Some(summary)) = &mut closed {
        let t = &mut summary.timings;
        let inside = t.load + t.attribute + t.tree + t.store;
        t.commit = started.elapsed().saturating_sub(inside);
    }
    if closed.is_err() {
        // What was staged for a close that did not commit is not kept.
        if let Err(err) = eon_partition::discard_staged_rewards(staging) {
            tracing::warn!(eon, error = %err, "could not drop the staged rewards");
        }
    }
    closed
}

fn close_in_transaction(
    conn: &mut PgConnection,
    staging: &mut PgConnection,
    eon: i64,
) -> Result<Option<EonSummary>, EonError> {
    let started = Instant::now();
    // A round close taking back credits (a failed canary) waits, or is waited for.
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(overlaps_shared::db::EON_BOUNDARY_LOCK)
        .execute(conn)?;
    let next = match next_eon(conn)? {
        Ok(next) => next,
        Err(number) if eon < number => return Ok(None),
        Err(_) => return Err(EonError::NoRounds(eon)),
    };
    if eon < next.number {
        return Ok(None);
    }
    if eon > next.number {
        return Err(EonError::OutOfOrder {
            eon,
            next: next.number,
        });
    }
    let standing = load_standing(conn, staging, &next, eon)?;
    let load = started.elapsed();

    let attribute_started = Instant::now();
    let rewards = attribute(standing)?;
    let summary_leaves = rewards.leaves.len();
    let total = rewards
        .leaves
        .iter()
        .fold(U256::zero(), |sum, (_, amount)| sum.saturating_add(*amount));
    let attribute_time = attribute_started.elapsed();
    // The tree first, alone on every core (hashing beside two PostgreSQL backends
    // took longer and shortened nothing), then storage on two backends side by
    // side: the leaves, the commitment and the tree's layers in this transaction,
    // the validators' rewards (the larger part) on the staging connection.
    let leaves = &rewards.leaves;
    let validators = &rewards.validators;
    let tree_started = Instant::now();
    let tree = RewardTree::build(&merkle::leaf_hashes(leaves));
    let tree_time = tree_started.elapsed();
    let root = tree.root();
    let commitment = NewRootCommitment {
        eon,
        root,
        total,
        leaves: summary_leaves,
        excluded: rewards.excluded,
    };
    let store_started = Instant::now();
    let (store_rewards, store_leaves, store_tree_time) = std::thread::scope(|scope| {
        let staging_rewards = scope.spawn(move || {
            let started = Instant::now();
            eon_partition::stage_rewards(staging, eon, validators).map(|()| started.elapsed())
        });
        let stored = insert_eon(conn, eon, &next).and_then(|()| {
            eon_partition::store_leaves(conn, eon, leaves)?;
            let store_leaves = store_started.elapsed();
            let tree_started = Instant::now();
            commitment.insert(conn)?;
            store_tree(conn, eon, &tree)?;
            Ok((store_leaves, tree_started.elapsed()))
        });
        let staged = joined(staging_rewards);
        let (store_leaves, store_tree_time) = stored?;
        let staged = staged?;
        // The attach checks the staged rows' key to `eons` inside this transaction
        // (the one to `validators` was checked while staging).
        let attach_started = Instant::now();
        eon_partition::attach_rewards(conn, eon)?;
        Ok::<_, EonError>((
            staged + attach_started.elapsed(),
            store_leaves,
            store_tree_time,
        ))
    })?;
    let store = store_started.elapsed();
    Ok(Some(EonSummary {
        eon,
        first_round: next.first_round,
        last_round: next.last_round,
        root,
        total,
        leaves: summary_leaves,
        excluded: rewards.excluded,
        timings: EonTimings {
            load,
            attribute: attribute_time,
            tree: tree_time,
            store,
            store_leaves,
            store_tree: store_tree_time,
            store_rewards,
            commit: Duration::ZERO,
        },
    }))
}

/// The validators' standing for closing eon `eon`: its credits plus each validator's
/// standing after the previous eon (in id order), and the previous eon's leaves (in
/// address order).
///
/// The validators are read in two halves of their ids at once, the lower on the
/// closing transaction and the upper on `staging` (a second backend, so both cores
/// aggregate). Both read the same inputs: the credits of closed rounds change only
/// by a forfeit, which waits for the eon-boundary lock this transaction holds, the
/// previous eon's rewards only by a close, which holds the eon mutex, and each
/// validator (its payout address) is read once, by one half.
fn load_standing(
    conn: &mut PgConnection,
    staging: &mut PgConnection,
    next: &NextEon,
    eon: i64,
) -> Result<Standing, EonError> {
    let ids = diesel::sql_query("SELECT min(id) AS first, max(id) AS last FROM validators")
        .get_result::<IdRange>(conn)?;
    // No validator, no credit and no reward (each refers to one); leaves may remain.
    let (first, last) = (ids.first.unwrap_or(0), ids.last.unwrap_or(0));
    let middle = first + (last - first) / 2;
    // Empty when every id is the middle's (one validator).
    let upper_ids = if middle < last {
        (middle + 1, last)
    } else {
        (1, 0)
    };
    // The previous eon's leaves likewise, in two halves of their positions.
    let leaf_count = diesel::sql_query("SELECT count(*) AS n FROM merkle_leaves WHERE eon = $1")
        .bind::<BigInt, _>(eon - 1)
        .get_result::<Count>(conn)?
        .n;
    let leaf_middle = leaf_count / 2;
    let (lower, upper) = std::thread::scope(|scope| {
        let upper = scope.spawn(move || {
            let rows = standing_between(staging, next, eon, upper_ids.0, upper_ids.1)?;
            // Open-ended: every leaf past the middle, whatever its position.
            let leaves = stored_leaves(staging, eon - 1, leaf_middle, i64::MAX)?;
            Ok::<_, EonError>((rows, leaves))
        });
        let lower = standing_between(conn, next, eon, first, middle)
            .and_then(|rows| Ok((rows, stored_leaves(conn, eon - 1, 0, leaf_middle)?)));
        (lower, joined(upper))
    });
    let (mut rows, mut leaves) = lower?;
    let (mut upper_rows, mut upper_leaves) = upper?;
    rows.append(&mut upper_rows);
    leaves.append(&mut upper_leaves);
    // Stored in address order; a check costs one pass, a wrong order the tree.
    if !leaves.is_sorted_by_key(|(address, _)| *address) {
        leaves.sort_unstable_by_key(|(address, _)| *address);
    }
    Ok(Standing {
        validators: rows,
        previous_leaves: leaves,
    })
}

/// What closing an eon starts from (see [`load_standing`]).
struct Standing {
    /// Each validator with a credit or a reward, in id order.
    validators: Vec<EonReward>,
    /// The previous eon's leaves, in address order.
    previous_leaves: Vec<(Address, U256)>,
}

/// Eon `eon`'s stored leaves at positions `from..to`, decoded, in position order.
fn stored_leaves(
    conn: &mut PgConnection,
    eon: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(Address, U256)>, EonError> {
    let stored: Vec<StoredLeaf> = diesel::sql_query(
        "SELECT payout_address, cumulative FROM merkle_leaves \
         WHERE eon = $1 AND leaf_index >= $2 AND leaf_index < $3 ORDER BY leaf_index",
    )
    .bind::<BigInt, _>(eon)
    .bind::<BigInt, _>(from)
    .bind::<BigInt, _>(to)
    .load(conn)?;
    stored.iter().map(StoredLeaf::decoded).collect()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The standing of the validators with ids `first..=last` (see [`load_standing`]),
/// decoded on the thread that loaded it: each reward added to the validator's
/// cumulative, nothing attributed yet.
fn standing_between(
    conn: &mut PgConnection,
    next: &NextEon,
    eon: i64,
    first: i64,
    last: i64,
) -> Result<Vec<EonReward>, EonError> {
    // Driven by the validators so that every input is already in id order
    // (merge joins, no sort of the million rows).
    let rows: Vec<RewardRow> = diesel::sql_query(
        "SELECT v.id AS validator_id, v.payout_address, \
                COALESCE(c.earned, 0) AS earned, \
                COALESCE(p.cumulative, 0) AS previous_cumulative, \
                COALESCE(p.attributed, 0) AS previous_attributed \
         FROM validators v \
         LEFT JOIN (SELECT validator_id, sum(amount) AS earned FROM validator_credits \
                    WHERE round_number BETWEEN $1 AND $2 AND validator_id BETWEEN $4 AND $5 \
                    GROUP BY validator_id) c \
           ON c.validator_id = v.id \
         LEFT JOIN (SELECT validator_id, cumulative, attributed FROM validator_rewards \
                    WHERE eon = $3 AND validator_id BETWEEN $4 AND $5) p \
           ON p.validator_id = v.id \
         WHERE v.id BETWEEN $4 AND $5 AND (c.validator_id IS NOT NULL OR p.validator_id IS NOT NULL) \
         ORDER BY v.id",
    )
    .bind::<BigInt, _>(next.first_round)
    .bind::<BigInt, _>(next.last_round)
    .bind::<BigInt, _>(eon - 1)
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let earned = money::from_pg_numeric(&row.earned)?;
            Ok(EonReward {
                validator_id: row.validator_id,
                payout_address: row.payout_address,
                earned,
                cumulative: money::from_pg_numeric(&row.previous_cumulative)?
                    .saturating_add(earned),
                attributed: money::from_pg_numeric(&row.previous_attributed)?,
            })
        })
        .collect()
}

#[derive(QueryableByName)]
struct IdRange {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

/// The row an eon's close adds to `root_commitments` (read back as
/// `overlaps_shared::models::RootCommitment`): what the verifier sends on-chain.
struct NewRootCommitment {
    eon: i64,
    root: merkle::Hash,
    total: U256,
    leaves: usize,
    excluded: usize,
}

impl NewRootCommitment {
    /// Stores it (in the closing transaction).
    fn insert(&self, conn: &mut PgConnection) -> Result<(), EonError> {
        diesel::sql_query(
            "INSERT INTO root_commitments (eon, root, total, leaf_count, excluded_count) \
             VALUES ($1, $2, $3::numeric, $4, $5)",
        )
        .bind::<BigInt, _>(self.eon)
        .bind::<Bytea, _>(self.root.to_vec())
        .bind::<Text, _>(self.total.to_string())
        .bind::<diesel::sql_types::Int4, _>(i32::try_from(self.leaves).unwrap_or(i32::MAX))
        .bind::<diesel::sql_types::Int4, _>(i32::try_from(self.excluded).unwrap_or(i32::MAX))
        .execute(conn)?;
        Ok(())
    }
}

/// What a scoped thread returned; a panic on it is a bug, surfaced as such (not
/// as a lost tree or a missing table).
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Records eon `eon` and its rounds (what its partitions and commitment refer to).
fn insert_eon(conn: &mut PgConnection, eon: i64, next: &NextEon) -> Result<(), EonError> {
    diesel::sql_query("INSERT INTO eons (number, first_round, last_round) VALUES ($1, $2, $3)")
        .bind::<BigInt, _>(eon)
        .bind::<BigInt, _>(next.first_round)
        .bind::<BigInt, _>(next.last_round)
        .execute(conn)?;
    Ok(())
}

/// An eon's rewards: per validator, and per payout address (the leaves, ordered by address).
struct Attribution {
    validators: Vec<EonReward>,
    leaves: Vec<(Address, U256)>,
    excluded: usize,
}

/// Adds each validator's unattributed reward to its current payout address; a
/// validator without one accrues and is left out of the tree.
fn attribute(standing: Standing) -> Result<Attribution, EonError> {
    let Standing {
        mut validators,
        previous_leaves,
    } = standing;
    // The shares sorted by address, then merged with the previous leaves (already
    // sorted) and summed: a fraction of the cost of a million map insertions.
    let mut shares = Vec::with_capacity(validators.len());
    let mut excluded = 0;
    for validator in &mut validators {
        match &validator.payout_address {
            Some(bytes) => {
                let address =
                    address_of(bytes).ok_or(EonError::BadAddress(validator.validator_id))?;
                let share = validator.cumulative.saturating_sub(validator.attributed);
                shares.push((address, share));
                validator.attributed = validator.cumulative;
            }
            None if validator.cumulative > validator.attributed => excluded += 1,
            None => {}
        }
    }
    shares.sort_unstable_by_key(|(address, _)| *address);
    Ok(Attribution {
        validators,
        leaves: merge_sums(previous_leaves, shares),
        excluded,
    })
}

/// Two lists in address order merged into one, amounts of the same address summed.
fn merge_sums(a: Vec<(Address, U256)>, b: Vec<(Address, U256)>) -> Vec<(Address, U256)> {
    let mut merged: Vec<(Address, U256)> = Vec::with_capacity(a.len().max(b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    // The lower address first; `a` first on a tie; `b` once `a` is empty (None: done).
    while let Some((address, amount)) = match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    } {
        match merged.last_mut() {
            Some((last, sum)) if *last == address => *sum = sum.saturating_add(amount),
            _ => merged.push((address, amount)),
        }
    }
    merged
}

/// Writes `tree`'s layers as eon `eon`'s `merkle_nodes`.
fn store_tree(conn: &mut PgConnection, eon: i64, tree: &RewardTree) -> Result<(), EonError> {
    let rows: Vec<MerkleNodes> = tree
        .chunks()
        .map(|(layer, chunk, hashes)| MerkleNodes {
            eon,
            layer: i16::try_from(layer).unwrap_or(i16::MAX),
            chunk: i32::try_from(chunk).unwrap_or(i32::MAX),
            hashes,
        })
        .collect();
    // 64 rows of 128 KiB at a time: a bounded COPY buffer.
    for batch in rows.chunks(64) {
        diesel::copy_from(merkle_nodes::table)
            .from_insertable(batch.iter().collect::<Vec<_>>())
            .execute(conn)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct TreeMissing {
    #[diesel(sql_type = BigInt)]
    eon: i64,
    #[diesel(sql_type = Bytea)]
    root: Vec<u8>,
}

/// The eons [`store_missing_trees`] rebuilt, and those it refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreesRebuilt {
    /// Eons whose tree is now stored.
    pub stored: Vec<i64>,
    /// Eons whose stored leaves do not lead to the committed root: no tree is stored
    /// for them (the audit names the difference).
    pub refused: Vec<i64>,
}

/// Stores the tree of every eon closed before trees were stored (their leaves are
/// kept), rebuilt from its leaves, unless the rebuilt root differs from the committed one.
pub fn store_missing_trees(conn: &mut PgConnection) -> Result<TreesRebuilt, EonError> {
    let missing: Vec<TreeMissing> = diesel::sql_query(
        "SELECT c.eon, c.root FROM root_commitments c          WHERE c.leaf_count > 0 AND NOT EXISTS (SELECT 1 FROM merkle_nodes n WHERE n.eon = c.eon)          ORDER BY c.eon",
    )
    .load(conn)?;
    let mut rebuilt = TreesRebuilt::default();
    for eon in missing {
        let leaves = stored_leaves(conn, eon.eon, 0, i64::MAX)?;
        let tree = RewardTree::build(&merkle::leaf_hashes(&leaves));
        if tree.root()[..] != eon.root[..] {
            rebuilt.refused.push(eon.eon);
            continue;
        }
        conn.transaction(|conn| store_tree(conn, eon.eon, &tree))?;
        rebuilt.stored.push(eon.eon);
    }
    Ok(rebuilt)
}

fn address_of(bytes: &[u8]) -> Option<Address> {
    (bytes.len() == 20).then(|| Address::from_slice(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(byte: u8, amount: u64) -> (Address, U256) {
        (Address::repeat_byte(byte), U256::from(amount))
    }

    #[test]
    fn merged_leaves_are_in_address_order_with_each_address_summed_once() {
        let previous = vec![at(1, 10), at(3, 30), at(7, 70)];
        // Two validators share address 3, one shares 7 with the previous eon's leaf.
        let shares = vec![at(2, 2), at(3, 3), at(3, 4), at(7, 1), at(9, 9)];
        assert_eq!(
            merge_sums(previous, shares),
            vec![at(1, 10), at(2, 2), at(3, 37), at(7, 71), at(9, 9)]
        );
        assert_eq!(merge_sums(vec![], vec![at(5, 5)]), vec![at(5, 5)]);
        assert_eq!(merge_sums(vec![at(5, 5)], vec![]), vec![at(5, 5)]);
        assert!(merge_sums(vec![], vec![]).is_empty());
    }
}
