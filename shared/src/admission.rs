//! Who may be selected for checks, and with what weight.
//!
//! - **Admission** (`VALIDATOR_ADMISSION`): `stake` admits keys with at least
//!   `MIN_STAKE_WEI` staked on them in the rewards contract *from the key's payout
//!   address* (each address holds its own position on a key; only that one counts)
//!   and not past its unbonding; `allowlist` admits the keys the operator
//!   listed; `open` admits every key (tests and private networks). A key that is
//!   not admitted may stay connected; it gets no assignments.
//! - **Weight** (what the draw of [`crate::selection`] uses): the lowest of the
//!   reputation, a warm-up cap that grows only with checks that agreed with their
//!   majority (or passed canaries), and under `stake` a cap proportional to the
//!   stake up to `STAKE_FULL_WEIGHT_WEI`; never below the warm-up floor. A fresh
//!   key starts at the floor, and a key driven to zero reputation also keeps the
//!   floor, so replacing a bad key with a fresh one gains nothing.

use std::fmt;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Int4, Nullable, Numeric, Timestamptz};

use crate::config::{ConfigError, Env, invalid};
use crate::eth::U256;
use crate::money;
use crate::signing::PayoutAddress;

/// The highest selection weight (the top of the reputation scale).
pub const MAX_WEIGHT: u32 = 10_000;

/// `MIN_STAKE_WEI`'s default: 1 ETH.
const DEFAULT_MIN_STAKE_WEI: u64 = 1_000_000_000_000_000_000;
/// `STAKE_FULL_WEIGHT_WEI`'s default, in multiples of the minimum stake.
const DEFAULT_FULL_WEIGHT_STAKES: u64 = 10;
/// `WARMUP_CHECKS`'s default.
const DEFAULT_WARMUP_CHECKS: i64 = 1000;
/// `WARMUP_FLOOR_WEIGHT`'s default: 1 % of the full weight.
const DEFAULT_FLOOR_WEIGHT: u32 = 100;

/// How keys are admitted to selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionMode {
    /// At least `MIN_STAKE_WEI` staked on the key from its payout address.
    Stake,
    /// Listed by the operator.
    Allowlist,
    /// Every key.
    Open,
}

impl AdmissionMode {
    /// The setting's text.
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionMode::Stake => "stake",
            AdmissionMode::Allowlist => "allowlist",
            AdmissionMode::Open => "open",
        }
    }
}

impl fmt::Display for AdmissionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdmissionMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "stake" => Ok(AdmissionMode::Stake),
            "allowlist" => Ok(AdmissionMode::Allowlist),
            "open" => Ok(AdmissionMode::Open),
            _ => Err("one of stake, allowlist, open".into()),
        }
    }
}

/// The admission rule and the weight rule, read by the scheduler (which applies
/// them), the server (which tells a key it is not admitted) and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// `VALIDATOR_ADMISSION` (default `stake`).
    pub mode: AdmissionMode,
    /// `MIN_STAKE_WEI`: the least stake that admits a key under `stake`.
    pub min_stake: U256,
    /// `STAKE_FULL_WEIGHT_WEI`: the stake whose cap is the full weight; less stake
    /// caps the weight in proportion (default ten times the minimum).
    pub full_weight_stake: U256,
    /// `WARMUP_CHECKS`: agreed checks a key needs before warm-up caps it no more.
    pub warmup_checks: i64,
    /// `WARMUP_FLOOR_WEIGHT`: a fresh key's weight, and every admitted key's least.
    pub floor_weight: u32,
}

impl AdmissionPolicy {
    /// Reads the admission settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mode: AdmissionMode = env.optional("VALIDATOR_ADMISSION", AdmissionMode::Stake)?;
        let min_stake = env.amount("MIN_STAKE_WEI", U256::from(DEFAULT_MIN_STAKE_WEI))?;
        if mode == AdmissionMode::Stake && min_stake.is_zero() {
            return Err(invalid(
                "MIN_STAKE_WEI",
                0,
                "must be above 0 under stake admission",
            ));
        }
        let full_weight_stake = env.amount(
            "STAKE_FULL_WEIGHT_WEI",
            min_stake.saturating_mul(U256::from(DEFAULT_FULL_WEIGHT_STAKES)),
        )?;
        if full_weight_stake < min_stake || full_weight_stake.is_zero() {
            return Err(invalid(
                "STAKE_FULL_WEIGHT_WEI",
                full_weight_stake,
                "must be above 0 and at least MIN_STAKE_WEI",
            ));
        }
        Ok(AdmissionPolicy {
            mode,
            min_stake,
            full_weight_stake,
            warmup_checks: env.ranged("WARMUP_CHECKS", DEFAULT_WARMUP_CHECKS, 1..=100_000_000)?,
            floor_weight: env.ranged(
                "WARMUP_FLOOR_WEIGHT",
                DEFAULT_FLOOR_WEIGHT,
                1..=MAX_WEIGHT,
            )?,
        })
    }

    /// Everyone admitted, at the defaults' warm-up (for tests and private networks).
    pub fn open() -> Self {
        AdmissionPolicy {
            mode: AdmissionMode::Open,
            min_stake: U256::from(DEFAULT_MIN_STAKE_WEI),
            full_weight_stake: U256::from(DEFAULT_MIN_STAKE_WEI)
                * U256::from(DEFAULT_FULL_WEIGHT_STAKES),
            warmup_checks: DEFAULT_WARMUP_CHECKS,
            floor_weight: DEFAULT_FLOOR_WEIGHT,
        }
    }

    /// The warm-up cap after `checks_agreed` agreed checks: the floor for a fresh
    /// key, rising linearly to the full weight at `warmup_checks`.
    pub fn warmup_cap(&self, checks_agreed: i64) -> u32 {
        let full = u64::try_from(self.warmup_checks.max(1)).unwrap_or(1);
        let agreed = u64::try_from(checks_agreed.max(0)).unwrap_or(0).min(full);
        let floor = u64::from(self.floor_weight.min(MAX_WEIGHT));
        let cap = floor + (u64::from(MAX_WEIGHT) - floor) * agreed / full;
        u32::try_from(cap).unwrap_or(MAX_WEIGHT)
    }

    /// The stake cap: the full weight at `full_weight_stake`, in proportion below.
    pub fn stake_cap(&self, stake: U256) -> u32 {
        let full = self.full_weight_stake.max(U256::one());
        let counted = stake.min(full);
        let cap = counted.saturating_mul(U256::from(MAX_WEIGHT)) / full;
        u32::try_from(cap.low_u64())
            .unwrap_or(MAX_WEIGHT)
            .min(MAX_WEIGHT)
    }

    /// The selection weight of an admitted key: min(reputation, warm-up cap, and
    /// under `stake` the stake cap), never below the floor.
    pub fn weight(&self, reputation: i32, checks_agreed: i64, stake: U256) -> u32 {
        let reputation = u32::try_from(reputation.max(0))
            .unwrap_or(0)
            .min(MAX_WEIGHT);
        let mut weight = reputation.min(self.warmup_cap(checks_agreed));
        if self.mode == AdmissionMode::Stake {
            weight = weight.min(self.stake_cap(stake));
        }
        weight.max(self.floor_weight.min(MAX_WEIGHT))
    }
}

/// A validator's standing at one instant: admitted or why not, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The validator.
    pub validator_id: i64,
    /// Whether it may be selected.
    pub admitted: bool,
    /// Its selection weight (0 when not admitted).
    pub weight: u32,
    /// The stake that counts for it (0 unless staked from its payout address and
    /// not past unbonding).
    pub stake: U256,
    /// Why it is not admitted, in words for its operator.
    pub refusal: Option<String>,
}

#[derive(QueryableByName)]
struct StandingRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Int4)]
    reputation: i32,
    #[diesel(sql_type = BigInt)]
    checks_agreed: i64,
    #[diesel(sql_type = Nullable<Bytea>)]
    payout_address: Option<Vec<u8>>,
    #[diesel(sql_type = Bool)]
    staked_by_others: bool,
    #[diesel(sql_type = Nullable<Numeric>)]
    amount: Option<BigDecimal>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    unbonding_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    allowlisted: bool,
}

fn address_text(bytes: Option<&[u8]>) -> String {
    bytes
        .and_then(|b| PayoutAddress::from_bytes(b).ok())
        .map_or_else(|| "(none)".to_owned(), |a| a.to_string())
}

impl AdmissionPolicy {
    fn standing(&self, row: StandingRow, now: DateTime<Utc>) -> Standing {
        // Only the position of the key's payout address is joined in.
        let staked = row
            .amount
            .as_ref()
            .and_then(|a| money::from_numeric(a).ok())
            .unwrap_or_default();
        let unbonded = row.unbonding_until.is_some_and(|until| until <= now);
        let stake = if unbonded { U256::zero() } else { staked };
        let refusal = match self.mode {
            AdmissionMode::Open => None,
            AdmissionMode::Allowlist if row.allowlisted => None,
            AdmissionMode::Allowlist => Some(
                "this key is not on the operator's allowlist (VALIDATOR_ADMISSION=allowlist)"
                    .to_owned(),
            ),
            AdmissionMode::Stake if stake >= self.min_stake => None,
            AdmissionMode::Stake => Some(if row.amount.is_none() && row.staked_by_others {
                format!(
                    "the stake on this key comes from other addresses, not from its payout address {}; \
                     only the payout address's stake counts: stake at least {} wei with `validator stake`",
                    address_text(row.payout_address.as_deref()),
                    self.min_stake,
                )
            } else if row.amount.is_none() {
                format!(
                    "this key has no stake: stake at least {} wei on it with `validator stake` from its payout address {}",
                    self.min_stake,
                    address_text(row.payout_address.as_deref()),
                )
            } else if unbonded {
                "the stake on this key finished unbonding; stake again to be admitted".to_owned()
            } else {
                format!(
                    "the stake on this key ({staked} wei) is below the minimum of {} wei",
                    self.min_stake
                )
            }),
        };
        let admitted = refusal.is_none();
        Standing {
            validator_id: row.id,
            admitted,
            weight: if admitted {
                self.weight(row.reputation, row.checks_agreed, stake)
            } else {
                0
            },
            stake,
            refusal,
        }
    }

    /// The standing at `now` of each validator in `validator_ids` (unknown ids are
    /// left out), sorted by id. Stakes are those the chain service recorded from
    /// final events.
    pub fn standings(
        &self,
        conn: &mut PgConnection,
        validator_ids: &[i64],
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<Standing>> {
        let rows: Vec<StandingRow> = diesel::sql_query(
            "SELECT v.id, v.reputation, v.checks_agreed, v.payout_address, \
                    s.amount, s.unbonding_until, (a.public_key IS NOT NULL) AS allowlisted, \
                    EXISTS (SELECT 1 FROM validator_stakes o WHERE o.public_key = v.public_key \
                            AND o.staker IS DISTINCT FROM v.payout_address) AS staked_by_others \
             FROM validators v \
             LEFT JOIN validator_stakes s ON s.public_key = v.public_key AND s.staker = v.payout_address \
             LEFT JOIN validator_allowlist a ON a.public_key = v.public_key \
             WHERE v.id = ANY($1) ORDER BY v.id",
        )
        .bind::<Array<BigInt>, _>(validator_ids)
        .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|row| self.standing(row, now))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: AdmissionMode) -> AdmissionPolicy {
        AdmissionPolicy {
            mode,
            ..AdmissionPolicy::open()
        }
    }

    #[test]
    fn a_fresh_key_weighs_the_floor_and_grows_only_with_agreed_checks() {
        let open = policy(AdmissionMode::Open);
        assert_eq!(open.weight(5000, 0, U256::zero()), 100);
        assert_eq!(open.weight(5000, 500, U256::zero()), 5000);
        assert_eq!(open.weight(5000, 100, U256::zero()), 100 + 9900 / 10);
        assert_eq!(open.weight(9000, 1000, U256::zero()), 9000);
        assert_eq!(open.weight(9000, 1_000_000, U256::zero()), 9000);
        // An established key outweighs a fresh one at the same reputation.
        assert!(open.weight(5000, 0, U256::zero()) < open.weight(5000, 2000, U256::zero()));
    }

    #[test]
    fn a_fresh_key_is_never_better_than_a_bad_one() {
        let open = policy(AdmissionMode::Open);
        let fresh = open.weight(5000, 0, U256::zero());
        for reputation in [0, 1, 50, 99, 100, 2000] {
            for agreed in [0, 1, 10, 10_000] {
                assert!(open.weight(reputation, agreed, U256::zero()) >= fresh);
            }
        }
        // Negative or absurd stored values stay within the scale.
        assert_eq!(open.weight(-5, -5, U256::zero()), 100);
        assert_eq!(open.weight(i32::MAX, i64::MAX, U256::zero()), MAX_WEIGHT);
    }

    #[test]
    fn under_stake_the_weight_is_capped_in_proportion_to_the_stake() {
        let stake = policy(AdmissionMode::Stake);
        let eth = U256::exp10(18);
        assert_eq!(stake.weight(10_000, 10_000, eth), 1000);
        assert_eq!(stake.weight(10_000, 10_000, eth * 5), 5000);
        assert_eq!(stake.weight(10_000, 10_000, eth * 10), 10_000);
        assert_eq!(stake.weight(10_000, 10_000, eth * 1000), 10_000);
        // Splitting one stake over many keys never adds weight.
        assert!(stake.weight(10_000, 10_000, eth) * 10 <= stake.weight(10_000, 10_000, eth * 10));
        // The open mode ignores stake.
        assert_eq!(
            policy(AdmissionMode::Open).weight(10_000, 10_000, U256::zero()),
            10_000
        );
    }

    #[test]
    fn settings_are_read_and_checked() {
        let env = Env::from_pairs([("VALIDATOR_ADMISSION", "allowlist"), ("MIN_STAKE_WEI", "5")]);
        let read = AdmissionPolicy::from_env(&env).unwrap();
        assert_eq!(read.mode, AdmissionMode::Allowlist);
        assert_eq!(read.full_weight_stake, U256::from(50));
        let defaults = AdmissionPolicy::from_env(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!(defaults.mode, AdmissionMode::Stake);
        assert_eq!(defaults.min_stake, U256::exp10(18));
        for bad in [
            vec![("VALIDATOR_ADMISSION", "everyone")],
            vec![("MIN_STAKE_WEI", "0")],
            vec![("MIN_STAKE_WEI", "10"), ("STAKE_FULL_WEIGHT_WEI", "9")],
            vec![("WARMUP_FLOOR_WEIGHT", "0")],
        ] {
            assert!(
                AdmissionPolicy::from_env(&Env::from_pairs(bad.clone())).is_err(),
                "{bad:?}"
            );
        }
    }
}
