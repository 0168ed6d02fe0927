//! Each position (`validator_stakes`, one row per Ed25519 key and staker),
//! re-derived from that pair's final `Staked`, `UnstakeRequested` and `Unstaked`
//! events as the contract keeps it: every address holds its own position on a key.
//! Every event carries the whole position (a stake its new total, a request the
//! amount and unlock time), so a pair's row is what its latest final event says:
//! `Staked` sets the amount and clears any unbonding, `UnstakeRequested` sets
//! `unbonding_until`, `Unstaked` removes the row. Rows are set, never added to, so
//! applying twice, after a restart or after a reorg changes nothing.

use std::collections::BTreeMap;

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Numeric, Text};
use overlaps_shared::eth;
use overlaps_shared::money::{parse, to_numeric};

use crate::final_event::FinalEvent;

/// The contract event kinds that move a stake.
const KINDS: &str = "('staked', 'unstake_requested', 'unstaked')";

/// A final `staked`, `unstake_requested` or `unstaked` event (`key`, `staker`,
/// `amount`, and `total` or `unlock_at`).
pub type StakeEvent = FinalEvent;

/// Whose position: the Ed25519 key (32 bytes) and the staker's address (20 bytes).
pub type Holder = (Vec<u8>, Vec<u8>);

/// One staker's position on one key as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stake {
    /// Wei staked and not paid out.
    pub amount: BigDecimal,
    /// When unbonding ends (Unix seconds, block time), once an unstake was requested.
    pub unlock_at: Option<i64>,
    /// The block of the event that set it.
    pub block: i64,
}

fn holder_of(event: &StakeEvent) -> Option<Holder> {
    let key = hex::decode(event.text("key")?.trim_start_matches("0x")).ok()?;
    let staker = eth::parse_address(event.text("staker")?).ok()?;
    (key.len() == 32).then(|| (key, staker.as_bytes().to_vec()))
}

fn amount_of(event: &StakeEvent, field: &str) -> Option<BigDecimal> {
    parse(event.text(field)?).ok().map(to_numeric)
}

/// The position `event` leaves behind: `Some(None)` when it removes it, `None`
/// when the event is unreadable (skipped, as the roots skip theirs).
fn position_after(event: &StakeEvent) -> Option<Option<Stake>> {
    match event.kind.as_str() {
        "staked" => Some(Some(Stake {
            amount: amount_of(event, "total")?,
            unlock_at: None,
            block: event.block_number,
        })),
        "unstake_requested" => Some(Some(Stake {
            amount: amount_of(event, "amount")?,
            unlock_at: Some(event.data.get("unlock_at")?.as_i64()?),
            block: event.block_number,
        })),
        "unstaked" => Some(None),
        _ => None,
    }
}

/// Plays `events` (chain order) through the contract's rules: each (key, staker)
/// position afterwards, `None` for one that was paid out.
pub fn derive(events: &[StakeEvent]) -> BTreeMap<Holder, Option<Stake>> {
    let mut positions = BTreeMap::new();
    for event in events {
        if let (Some(holder), Some(position)) = (holder_of(event), position_after(event)) {
            positions.insert(holder, position);
        }
    }
    positions
}

/// Re-derives every (key, staker) position with a stake event in the (now final)
/// blocks `low..=high`, from all of that pair's final stake events.
pub fn apply(conn: &mut PgConnection, low: i64, high: i64) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Touched {
        #[diesel(sql_type = Text)]
        key: String,
        #[diesel(sql_type = Text)]
        staker: String,
    }
    let touched: Vec<Touched> = diesel::sql_query(format!(
        "SELECT DISTINCT data->>'key' AS key, data->>'staker' AS staker FROM contract_events \
         WHERE kind IN {KINDS} AND block_number BETWEEN $1 AND $2 \
           AND data->>'key' IS NOT NULL AND data->>'staker' IS NOT NULL"
    ))
    .bind::<BigInt, _>(low)
    .bind::<BigInt, _>(high)
    .load(conn)?;
    if touched.is_empty() {
        return Ok(());
    }
    let (keys, stakers): (Vec<String>, Vec<String>) =
        touched.into_iter().map(|t| (t.key, t.staker)).unzip();
    // Only the touched pairs' events: a key others staked on often (anyone may)
    // does not make every one of its stakers' positions be re-read.
    let events: Vec<StakeEvent> = diesel::sql_query(format!(
        "SELECT e.block_number, e.kind, e.data FROM contract_events e \
         JOIN chain_blocks b ON b.number = e.block_number AND b.finalized \
         JOIN unnest($1::text[], $2::text[]) AS t(key, staker) \
           ON e.data->>'key' = t.key AND e.data->>'staker' = t.staker \
         WHERE e.kind IN {KINDS} \
         ORDER BY e.block_number, e.log_index"
    ))
    .bind::<Array<Text>, _>(&keys)
    .bind::<Array<Text>, _>(&stakers)
    .load(conn)?;
    write(conn, &derive(&events), false)
}

/// Re-derives every position from all final stake events (after a reorg of final
/// blocks): rows no remaining event supports are removed.
pub fn recompute_all(conn: &mut PgConnection) -> QueryResult<()> {
    let events: Vec<StakeEvent> = diesel::sql_query(format!(
        "SELECT e.block_number, e.kind, e.data FROM contract_events e \
         JOIN chain_blocks b ON b.number = e.block_number AND b.finalized \
         WHERE e.kind IN {KINDS} ORDER BY e.block_number, e.log_index"
    ))
    .load(conn)?;
    write(conn, &derive(&events), true)
}

/// Upserts each held position and deletes each paid-out one; with `all`, also
/// deletes every row whose (key, staker) is not held.
fn write(
    conn: &mut PgConnection,
    positions: &BTreeMap<Holder, Option<Stake>>,
    all: bool,
) -> QueryResult<()> {
    let held: Vec<(&Holder, &Stake)> = positions
        .iter()
        .filter_map(|(holder, stake)| Some((holder, stake.as_ref()?)))
        .collect();
    let held_keys: Vec<&Vec<u8>> = held.iter().map(|((key, _), _)| key).collect();
    let stakers: Vec<&Vec<u8>> = held.iter().map(|((_, staker), _)| staker).collect();
    if all {
        diesel::sql_query(
            "DELETE FROM validator_stakes s WHERE NOT EXISTS ( \
               SELECT 1 FROM unnest($1::bytea[], $2::bytea[]) AS h(key, staker) \
               WHERE h.key = s.public_key AND h.staker = s.staker)",
        )
        .bind::<Array<Bytea>, _>(&held_keys)
        .bind::<Array<Bytea>, _>(&stakers)
        .execute(conn)?;
    } else {
        let (gone_keys, gone_stakers): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = positions
            .iter()
            .filter(|(_, stake)| stake.is_none())
            .map(|((key, staker), _)| (key, staker))
            .unzip();
        if !gone_keys.is_empty() {
            diesel::sql_query(
                "DELETE FROM validator_stakes s \
                 USING unnest($1::bytea[], $2::bytea[]) AS g(key, staker) \
                 WHERE s.public_key = g.key AND s.staker = g.staker",
            )
            .bind::<Array<Bytea>, _>(&gone_keys)
            .bind::<Array<Bytea>, _>(&gone_stakers)
            .execute(conn)?;
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    let amounts: Vec<&BigDecimal> = held.iter().map(|(_, s)| &s.amount).collect();
    let unlocks: Vec<Option<i64>> = held.iter().map(|(_, s)| s.unlock_at).collect();
    let blocks: Vec<i64> = held.iter().map(|(_, s)| s.block).collect();
    // Only a row that differs is touched, so `updated_at` tells when it last moved.
    diesel::sql_query(
        "INSERT INTO validator_stakes (public_key, staker, amount, unbonding_until, block_number) \
         SELECT u.key, u.staker, u.amount, to_timestamp(u.unlock), u.block \
         FROM unnest($1::bytea[], $2::bytea[], $3::numeric[], $4::bigint[], $5::bigint[]) \
              AS u(key, staker, amount, unlock, block) \
         ON CONFLICT (public_key, staker) DO UPDATE SET \
            amount = EXCLUDED.amount, unbonding_until = EXCLUDED.unbonding_until, \
            block_number = EXCLUDED.block_number, updated_at = now() \
         WHERE (validator_stakes.amount, validator_stakes.unbonding_until, \
                validator_stakes.block_number) \
            IS DISTINCT FROM (EXCLUDED.amount, EXCLUDED.unbonding_until, EXCLUDED.block_number)",
    )
    .bind::<Array<Bytea>, _>(&held_keys)
    .bind::<Array<Bytea>, _>(&stakers)
    .bind::<Array<Numeric>, _>(&amounts)
    .bind::<Array<Nullable<BigInt>>, _>(&unlocks)
    .bind::<Array<BigInt>, _>(&blocks)
    .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAKER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    const OTHER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

    fn event(block: i64, kind: &str, key: u8, fields: serde_json::Value) -> StakeEvent {
        let mut data = serde_json::json!({
            "key": format!("0x{}", hex::encode([key; 32])), "staker": STAKER,
        });
        if let (Some(data), Some(fields)) = (data.as_object_mut(), fields.as_object()) {
            data.extend(fields.clone());
        }
        StakeEvent {
            block_number: block,
            kind: kind.into(),
            data,
        }
    }

    fn staked(block: i64, key: u8, amount: u64, total: u64) -> StakeEvent {
        let fields = serde_json::json!({"amount": amount.to_string(), "total": total.to_string()});
        event(block, "staked", key, fields)
    }

    fn requested(block: i64, key: u8, amount: u64, unlock_at: i64) -> StakeEvent {
        let fields = serde_json::json!({"amount": amount.to_string(), "unlock_at": unlock_at});
        event(block, "unstake_requested", key, fields)
    }

    fn unstaked(block: i64, key: u8, amount: u64) -> StakeEvent {
        event(
            block,
            "unstaked",
            key,
            serde_json::json!({"amount": amount.to_string()}),
        )
    }

    /// `event` as sent by `OTHER`.
    fn by_other(mut event: StakeEvent) -> StakeEvent {
        event.data["staker"] = serde_json::json!(OTHER);
        event
    }

    fn holder(key: u8, staker: &str) -> Holder {
        let staker = eth::parse_address(staker)
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default();
        (vec![key; 32], staker)
    }

    fn stake(amount: u64, unlock_at: Option<i64>, block: i64) -> Option<Stake> {
        Some(Stake {
            amount: BigDecimal::from(amount),
            unlock_at,
            block,
        })
    }

    #[test]
    fn each_position_holds_what_its_latest_event_says() {
        let positions = derive(&[
            staked(3, 1, 100, 100),
            staked(4, 2, 50, 50),
            staked(5, 1, 20, 120),
            requested(6, 2, 50, 1_000),
            requested(7, 1, 120, 2_000),
            unstaked(9, 1, 120),
        ]);
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[&holder(1, STAKER)], None, "paid out");
        assert_eq!(positions[&holder(2, STAKER)], stake(50, Some(1_000), 6));
        // Staked afresh after the payout: a new position, not unbonding.
        let positions = derive(&[
            staked(3, 1, 100, 100),
            requested(4, 1, 100, 1_000),
            unstaked(5, 1, 100),
            staked(6, 1, 7, 7),
        ]);
        assert_eq!(positions[&holder(1, STAKER)], stake(7, None, 6));
    }

    #[test]
    fn two_stakers_on_one_key_hold_separate_positions() {
        let positions = derive(&[
            by_other(staked(3, 1, 1, 1)),
            staked(4, 1, 100, 100),
            requested(5, 1, 100, 1_000),
            by_other(staked(6, 1, 2, 3)),
            unstaked(7, 1, 100),
        ]);
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[&holder(1, STAKER)], None, "paid out");
        assert_eq!(positions[&holder(1, OTHER)], stake(3, None, 6));
    }

    #[test]
    fn unreadable_events_are_skipped() {
        let mut bad_key = staked(3, 1, 100, 100);
        bad_key.data["key"] = serde_json::json!("0x1234");
        let mut bad_total = staked(4, 2, 100, 100);
        bad_total.data["total"] = serde_json::json!("-1");
        let mut bad_staker = unstaked(5, 4, 100);
        bad_staker.data["staker"] = serde_json::json!("0x12");
        let positions = derive(&[bad_key, bad_total, bad_staker, staked(6, 3, 9, 9)]);
        assert_eq!(
            positions.keys().collect::<Vec<_>>(),
            vec![&holder(3, STAKER)]
        );
    }
}
