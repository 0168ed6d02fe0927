//! Each Ed25519 key's stake (`validator_stakes`), re-derived from the key's final
//! `Staked`, `UnstakeRequested` and `Unstaked` events as the contract keeps it.
//! Every event carries the whole position (a stake its new total, a request the
//! amount and unlock time), so a key's row is what its latest final event says:
//! `Staked` sets staker and amount and clears any unbonding, `UnstakeRequested`
//! sets `unbonding_until`, `Unstaked` removes the row. Rows are set, never added
//! to, so applying twice, after a restart or after a reorg changes nothing.

use std::collections::BTreeMap;

use bigdecimal::BigDecimal;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Jsonb, Nullable, Numeric, Text};
use overlaps_shared::eth;
use overlaps_shared::money::{parse, to_numeric};

/// The contract event kinds that move a stake.
const KINDS: &str = "('staked', 'unstake_requested', 'unstaked')";

/// A final stake event, in chain order.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StakeEvent {
    /// Its block.
    #[diesel(sql_type = BigInt)]
    pub block_number: i64,
    /// `staked`, `unstake_requested` or `unstaked`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The decoded event (`key`, `staker`, `amount`, and `total` or `unlock_at`).
    #[diesel(sql_type = Jsonb)]
    pub data: serde_json::Value,
}

/// One key's position as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stake {
    /// The address that staked (20 bytes).
    pub staker: Vec<u8>,
    /// Wei staked and not paid out.
    pub amount: BigDecimal,
    /// When unbonding ends (Unix seconds, block time), once an unstake was requested.
    pub unlock_at: Option<i64>,
    /// The block of the event that set it.
    pub block: i64,
}

fn text<'a>(event: &'a StakeEvent, field: &str) -> Option<&'a str> {
    event.data.get(field)?.as_str()
}

fn key_of(event: &StakeEvent) -> Option<Vec<u8>> {
    let bytes = hex::decode(text(event, "key")?.trim_start_matches("0x")).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

fn amount_of(event: &StakeEvent, field: &str) -> Option<BigDecimal> {
    parse(text(event, field)?).ok().map(to_numeric)
}

/// The position `event` leaves behind: `Some(None)` when it removes it, `None`
/// when the event is unreadable (skipped, as the roots skip theirs).
fn position_after(event: &StakeEvent) -> Option<Option<Stake>> {
    let staker = || -> Option<Vec<u8>> {
        Some(
            eth::parse_address(text(event, "staker")?)
                .ok()?
                .as_bytes()
                .to_vec(),
        )
    };
    match event.kind.as_str() {
        "staked" => Some(Some(Stake {
            staker: staker()?,
            amount: amount_of(event, "total")?,
            unlock_at: None,
            block: event.block_number,
        })),
        "unstake_requested" => Some(Some(Stake {
            staker: staker()?,
            amount: amount_of(event, "amount")?,
            unlock_at: Some(event.data.get("unlock_at")?.as_i64()?),
            block: event.block_number,
        })),
        "unstaked" => Some(None),
        _ => None,
    }
}

/// Plays `events` (chain order) through the contract's rules: each key's position
/// afterwards, `None` for a key whose stake was paid out.
pub fn derive(events: &[StakeEvent]) -> BTreeMap<Vec<u8>, Option<Stake>> {
    let mut positions = BTreeMap::new();
    for event in events {
        if let (Some(key), Some(position)) = (key_of(event), position_after(event)) {
            positions.insert(key, position);
        }
    }
    positions
}

/// Re-derives the stake of every key with a stake event in the (now final) blocks
/// `low..=high`, from all of that key's final stake events.
pub fn apply(conn: &mut PgConnection, low: i64, high: i64) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Touched {
        #[diesel(sql_type = Text)]
        key: String,
    }
    let keys: Vec<String> = diesel::sql_query(format!(
        "SELECT DISTINCT data->>'key' AS key FROM contract_events \
         WHERE kind IN {KINDS} AND block_number BETWEEN $1 AND $2 AND data->>'key' IS NOT NULL"
    ))
    .bind::<BigInt, _>(low)
    .bind::<BigInt, _>(high)
    .load::<Touched>(conn)?
    .into_iter()
    .map(|t| t.key)
    .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let events: Vec<StakeEvent> = diesel::sql_query(format!(
        "SELECT e.block_number, e.kind, e.data FROM contract_events e \
         JOIN chain_blocks b ON b.number = e.block_number AND b.finalized \
         WHERE e.kind IN {KINDS} AND e.data->>'key' = ANY($1) \
         ORDER BY e.block_number, e.log_index"
    ))
    .bind::<Array<Text>, _>(&keys)
    .load(conn)?;
    write(conn, &derive(&events), false)
}

/// Re-derives every key's stake from all final stake events (after a reorg of
/// final blocks): rows no remaining event supports are removed.
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
/// deletes every row whose key is not held.
fn write(
    conn: &mut PgConnection,
    positions: &BTreeMap<Vec<u8>, Option<Stake>>,
    all: bool,
) -> QueryResult<()> {
    let held: Vec<(&Vec<u8>, &Stake)> = positions
        .iter()
        .filter_map(|(key, stake)| Some((key, stake.as_ref()?)))
        .collect();
    let gone: Vec<&Vec<u8>> = positions
        .iter()
        .filter(|(_, stake)| stake.is_none())
        .map(|(key, _)| key)
        .collect();
    let held_keys: Vec<&Vec<u8>> = held.iter().map(|(key, _)| *key).collect();
    if all {
        diesel::sql_query("DELETE FROM validator_stakes WHERE NOT (public_key = ANY($1))")
            .bind::<Array<Bytea>, _>(&held_keys)
            .execute(conn)?;
    } else if !gone.is_empty() {
        diesel::sql_query("DELETE FROM validator_stakes WHERE public_key = ANY($1)")
            .bind::<Array<Bytea>, _>(&gone)
            .execute(conn)?;
    }
    if held.is_empty() {
        return Ok(());
    }
    let stakers: Vec<&Vec<u8>> = held.iter().map(|(_, s)| &s.staker).collect();
    let amounts: Vec<&BigDecimal> = held.iter().map(|(_, s)| &s.amount).collect();
    let unlocks: Vec<Option<i64>> = held.iter().map(|(_, s)| s.unlock_at).collect();
    let blocks: Vec<i64> = held.iter().map(|(_, s)| s.block).collect();
    // Only a row that differs is touched, so `updated_at` tells when it last moved.
    diesel::sql_query(
        "INSERT INTO validator_stakes (public_key, staker, amount, unbonding_until, block_number) \
         SELECT u.key, u.staker, u.amount, to_timestamp(u.unlock), u.block \
         FROM unnest($1::bytea[], $2::bytea[], $3::numeric[], $4::bigint[], $5::bigint[]) \
              AS u(key, staker, amount, unlock, block) \
         ON CONFLICT (public_key) DO UPDATE SET staker = EXCLUDED.staker, \
            amount = EXCLUDED.amount, unbonding_until = EXCLUDED.unbonding_until, \
            block_number = EXCLUDED.block_number, updated_at = now() \
         WHERE (validator_stakes.staker, validator_stakes.amount, \
                validator_stakes.unbonding_until, validator_stakes.block_number) \
            IS DISTINCT FROM (EXCLUDED.staker, EXCLUDED.amount, EXCLUDED.unbonding_until, \
                              EXCLUDED.block_number)",
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

    fn stake(amount: u64, unlock_at: Option<i64>, block: i64) -> Option<Stake> {
        Some(Stake {
            staker: eth::parse_address(STAKER)
                .map(|a| a.as_bytes().to_vec())
                .unwrap_or_default(),
            amount: BigDecimal::from(amount),
            unlock_at,
            block,
        })
    }

    #[test]
    fn each_key_holds_what_its_latest_event_says() {
        let positions = derive(&[
            staked(3, 1, 100, 100),
            staked(4, 2, 50, 50),
            staked(5, 1, 20, 120),
            requested(6, 2, 50, 1_000),
            requested(7, 1, 120, 2_000),
            unstaked(9, 1, 120),
        ]);
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[&vec![1; 32]], None, "paid out");
        assert_eq!(positions[&vec![2; 32]], stake(50, Some(1_000), 6));
        // Staked afresh after the payout: a new position, not unbonding.
        let positions = derive(&[
            staked(3, 1, 100, 100),
            requested(4, 1, 100, 1_000),
            unstaked(5, 1, 100),
            staked(6, 1, 7, 7),
        ]);
        assert_eq!(positions[&vec![1; 32]], stake(7, None, 6));
    }

    #[test]
    fn unreadable_events_are_skipped() {
        let mut bad_key = staked(3, 1, 100, 100);
        bad_key.data["key"] = serde_json::json!("0x1234");
        let mut bad_total = staked(4, 2, 100, 100);
        bad_total.data["total"] = serde_json::json!("-1");
        let positions = derive(&[bad_key, bad_total, staked(5, 3, 9, 9)]);
        assert_eq!(positions.keys().collect::<Vec<_>>(), vec![&vec![3u8; 32]]);
    }
}
