//! Each eon's on-chain root state, re-derived from the final `RootCommitted` and
//! `RootCancelled` events exactly as the contract decides it: a root is pending
//! until `claimable_at`; a commit before then replaces it (it never pays); the
//! guardian's cancel ends it; a later commit of the same eon starts afresh.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Nullable};

use crate::final_event::FinalEvent;

/// A final `root_committed` or `root_cancelled` event (`eon`, `root`, and
/// `claimable_at` for a commit).
pub type RootEvent = FinalEvent;

/// What the chain says about one eon's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootState {
    /// The root last committed for the eon.
    pub root: Vec<u8>,
    /// The block of that commit.
    pub block: i64,
    /// The first block where claims may use it.
    pub claimable_at: i64,
    /// The block where the guardian cancelled it.
    pub cancelled: Option<i64>,
    /// The eon whose commit replaced it in its window.
    pub replaced_by: Option<i64>,
}

fn eon_of(event: &RootEvent) -> Option<i64> {
    event.data.get("eon")?.as_i64()
}

fn root_of(event: &RootEvent) -> Option<Vec<u8>> {
    hex::decode(event.text("root")?.trim_start_matches("0x")).ok()
}

/// Plays `events` (chain order) through the contract's rules.
pub fn derive(events: &[RootEvent]) -> BTreeMap<i64, RootState> {
    let mut states: BTreeMap<i64, RootState> = BTreeMap::new();
    // The eon whose root was pending after the last event, if any.
    let mut pending: Option<i64> = None;
    for event in events {
        let Some(eon) = eon_of(event) else { continue };
        match event.kind.as_str() {
            "root_committed" => {
                let (Some(root), Some(claimable_at)) = (
                    root_of(event),
                    event.data.get("claimable_at").and_then(|v| v.as_i64()),
                ) else {
                    continue;
                };
                // The contract promotes a matured root before taking the new one;
                // one still in its window is overwritten.
                if let Some(previous) = pending.and_then(|p| states.get_mut(&p))
                    && event.block_number < previous.claimable_at
                {
                    previous.replaced_by = Some(eon);
                }
                states.insert(
                    eon,
                    RootState {
                        root,
                        block: event.block_number,
                        claimable_at,
                        cancelled: None,
                        replaced_by: None,
                    },
                );
                pending = Some(eon);
            }
            "root_cancelled" => {
                if let Some(state) = states.get_mut(&eon) {
                    state.cancelled = Some(event.block_number);
                }
                pending = None;
            }
            _ => {}
        }
    }
    states
}

/// Re-derives every eon's on-chain root state from the final root events and
/// writes what changed into `root_commitments` (eons with no final commit lose
/// theirs). Root events are one or two per eon, so reading them all is cheap.
pub fn recompute(conn: &mut PgConnection) -> QueryResult<()> {
    let events: Vec<RootEvent> = diesel::sql_query(
        "SELECT e.block_number, e.kind, e.data FROM contract_events e \
         JOIN chain_blocks b ON b.number = e.block_number AND b.finalized \
         WHERE e.kind IN ('root_committed', 'root_cancelled') \
         ORDER BY e.block_number, e.log_index",
    )
    .load(conn)?;
    let states = derive(&events);
    let eons: Vec<i64> = states.keys().copied().collect();
    diesel::sql_query(
        "UPDATE root_commitments SET onchain_root = NULL, onchain_block = NULL, \
                onchain_claimable_block = NULL, onchain_cancelled_block = NULL, \
                onchain_replaced_by = NULL \
         WHERE onchain_root IS NOT NULL AND NOT (eon = ANY($1))",
    )
    .bind::<Array<BigInt>, _>(&eons)
    .execute(conn)?;
    let roots: Vec<Vec<u8>> = states.values().map(|s| s.root.clone()).collect();
    let blocks: Vec<i64> = states.values().map(|s| s.block).collect();
    let claimable: Vec<i64> = states.values().map(|s| s.claimable_at).collect();
    let cancelled: Vec<Option<i64>> = states.values().map(|s| s.cancelled).collect();
    let replaced: Vec<Option<i64>> = states.values().map(|s| s.replaced_by).collect();
    diesel::sql_query(
        "UPDATE root_commitments rc SET onchain_root = u.root, onchain_block = u.block, \
                onchain_claimable_block = u.claimable, onchain_cancelled_block = u.cancelled, \
                onchain_replaced_by = u.replaced \
         FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], \
                     $6::bigint[]) AS u(eon, root, block, claimable, cancelled, replaced) \
         WHERE rc.eon = u.eon AND (rc.onchain_root IS DISTINCT FROM u.root \
            OR rc.onchain_block IS DISTINCT FROM u.block \
            OR rc.onchain_claimable_block IS DISTINCT FROM u.claimable \
            OR rc.onchain_cancelled_block IS DISTINCT FROM u.cancelled \
            OR rc.onchain_replaced_by IS DISTINCT FROM u.replaced)",
    )
    .bind::<Array<BigInt>, _>(&eons)
    .bind::<Array<Bytea>, _>(&roots)
    .bind::<Array<BigInt>, _>(&blocks)
    .bind::<Array<BigInt>, _>(&claimable)
    .bind::<Array<Nullable<BigInt>>, _>(&cancelled)
    .bind::<Array<Nullable<BigInt>>, _>(&replaced)
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(block: i64, eon: i64, root: u8, claimable_at: i64) -> RootEvent {
        RootEvent {
            block_number: block,
            kind: "root_committed".into(),
            data: serde_json::json!({
                "eon": eon, "root": format!("0x{}", hex::encode([root; 32])),
                "total": "0", "claimable_at": claimable_at,
            }),
        }
    }

    fn cancelled(block: i64, eon: i64) -> RootEvent {
        RootEvent {
            block_number: block,
            kind: "root_cancelled".into(),
            data: serde_json::json!({ "eon": eon, "root": "0x00" }),
        }
    }

    #[test]
    fn a_commit_in_the_window_replaces_one_after_it_does_not() {
        // Eon 1 pending until 15; eon 2 lands at 12 (replaces it); eon 3 at 30,
        // after eon 2's window (17): eon 2 matured.
        let states = derive(&[
            committed(10, 1, 1, 15),
            committed(12, 2, 2, 17),
            committed(30, 3, 3, 35),
        ]);
        assert_eq!(states[&1].replaced_by, Some(2));
        assert_eq!(states[&2].replaced_by, None);
        assert_eq!(states[&3].replaced_by, None);
        // Landing exactly at the end of the window: it had matured.
        let states = derive(&[committed(10, 1, 1, 15), committed(15, 2, 2, 20)]);
        assert_eq!(states[&1].replaced_by, None);
    }

    #[test]
    fn a_cancel_ends_the_root_and_a_recommit_starts_afresh() {
        let states = derive(&[committed(10, 1, 1, 15), cancelled(11, 1)]);
        assert_eq!(states[&1].cancelled, Some(11));
        // Re-committed: the new root, no cancel; and the cancelled one was not
        // pending any more, so nothing was "replaced".
        let states = derive(&[
            committed(10, 1, 1, 15),
            cancelled(11, 1),
            committed(12, 1, 9, 17),
        ]);
        assert_eq!(
            states[&1],
            RootState {
                root: vec![9; 32],
                block: 12,
                claimable_at: 17,
                cancelled: None,
                replaced_by: None,
            }
        );
    }
}
