//! Money: integers in the chain's smallest unit, `U256` in Rust and `NUMERIC(78,0)`
//! in PostgreSQL. Conversions are exact (big integers), never through a float.

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::{BigInt, Sign};
use diesel::data_types::PgNumeric;

use crate::eth::U256;

/// An amount that is not a non-negative integer below 2^256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an amount in the smallest unit (a non-negative integer below 2^256)")]
pub struct BadAmount(pub String);

/// The NUMERIC value of `amount`.
pub fn to_numeric(amount: U256) -> BigDecimal {
    let mut bytes = [0u8; 32];
    amount.to_big_endian(&mut bytes);
    BigDecimal::from(BigInt::from_bytes_be(Sign::Plus, &bytes))
}

/// The U256 value of a NUMERIC amount; refused if negative, fractional or too big.
pub fn from_numeric(amount: &BigDecimal) -> Result<U256, BadAmount> {
    let refused = || BadAmount(amount.to_string());
    if !amount.is_integer() {
        return Err(refused());
    }
    let (int, _) = amount.with_scale(0).into_bigint_and_exponent();
    let (sign, bytes) = int.to_bytes_be();
    if sign == Sign::Minus || bytes.len() > 32 {
        return Err(refused());
    }
    Ok(U256::from_big_endian(&bytes))
}

/// The NUMERIC wire value of `amount`, digit for digit what diesel sends for the
/// same amount as a `BigDecimal`, without the bignum arithmetic: an eon stores
/// three million amounts, and going through `BigDecimal` cost a tenth of its CPU.
pub fn to_pg_numeric(amount: U256) -> PgNumeric {
    if amount.is_zero() {
        return PgNumeric::Positive {
            weight: 0,
            scale: 0,
            digits: vec![0],
        };
    }
    // Base-10000 digits, least significant first: each step divides the four
    // 64-bit limbs by 10^4 with 128-bit arithmetic.
    let mut limbs = amount.0;
    let mut digits = Vec::with_capacity(20);
    while limbs.iter().any(|&limb| limb != 0) {
        let mut rest: u128 = 0;
        for limb in limbs.iter_mut().rev() {
            let current = (rest << 64) | u128::from(*limb);
            // Both fit: current < 10^4 * 2^64, so the quotient is below 2^64.
            *limb = u64::try_from(current / NBASE).unwrap_or(u64::MAX);
            rest = current % NBASE;
        }
        digits.push(i16::try_from(rest).unwrap_or(i16::MAX));
    }
    let weight = i16::try_from(digits.len() - 1).unwrap_or(i16::MAX);
    // Trailing zero digits carry no value: PostgreSQL and diesel drop them.
    let trailing = digits.iter().take_while(|&&digit| digit == 0).count();
    digits.drain(..trailing);
    digits.reverse();
    PgNumeric::Positive {
        weight,
        scale: 0,
        digits,
    }
}

/// The U256 value of a NUMERIC wire value; refused if negative, fractional, NaN
/// or too big.
pub fn from_pg_numeric(numeric: &PgNumeric) -> Result<U256, BadAmount> {
    let refused = || BadAmount(format!("{numeric:?}"));
    let (weight, digits, negative) = match numeric {
        PgNumeric::Positive { weight, digits, .. } => (*weight, digits, false),
        PgNumeric::Negative { weight, digits, .. } => (*weight, digits, true),
        PgNumeric::NaN => return Err(refused()),
    };
    let mut amount = U256::zero();
    let mut nonzero = false;
    for (position, &digit) in digits.iter().enumerate() {
        if !(0..10_000).contains(&digit) {
            return Err(refused());
        }
        nonzero |= digit != 0;
        // Digits after the decimal point must all be zero.
        let power = i32::from(weight) - i32::try_from(position).map_err(|_| refused())?;
        if power < 0 {
            if digit != 0 {
                return Err(refused());
            }
            continue;
        }
        amount = amount
            .checked_mul(U256::from(NBASE as u64))
            .and_then(|a| a.checked_add(U256::from(digit as u64)))
            .ok_or_else(refused)?;
    }
    // Digits omitted at the end are zeros: scale the value up to the units digit.
    let shown = i32::try_from(digits.len()).map_err(|_| refused())?;
    for _ in shown..=i32::from(weight) {
        amount = amount
            .checked_mul(U256::from(NBASE as u64))
            .ok_or_else(refused)?;
    }
    if negative && nonzero {
        return Err(refused());
    }
    Ok(amount)
}

/// NUMERIC's digit base.
const NBASE: u128 = 10_000;

/// Parses a decimal integer amount.
pub fn parse(text: &str) -> Result<U256, BadAmount> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadAmount(text.to_owned()));
    }
    U256::from_dec_str(text).map_err(|_| BadAmount(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        for amount in [U256::zero(), U256::from(1_000_000_000_000u64), U256::MAX] {
            assert_eq!(from_numeric(&to_numeric(amount)), Ok(amount));
        }
        // NUMERIC values with a scale are still whole amounts.
        let scaled: BigDecimal = "1000.000".parse().unwrap();
        assert_eq!(from_numeric(&scaled), Ok(U256::from(1000)));
    }

    /// Amounts with every digit count, zero digits inside and at the end, and the
    /// edges of each limb.
    fn sample_amounts() -> Vec<U256> {
        let mut amounts = vec![
            U256::zero(),
            U256::one(),
            U256::from(9_999),
            U256::from(10_000),
            U256::from(10_001),
            U256::from(u64::MAX),
            U256::from(u128::MAX),
            U256::MAX,
            U256::MAX - 1,
        ];
        let mut power = U256::one();
        for _ in 0..77 {
            power *= 10;
            amounts.extend([
                power,
                power - 1,
                power + 1,
                power
                    .saturating_mul(U256::from(7))
                    .saturating_add(U256::from(10_000)),
            ]);
        }
        let mut x = U256::from(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..500 {
            // A cheap deterministic walk over the whole range.
            x = x
                .overflowing_mul(U256::from(6_364_136_223_846_793_005u64))
                .0
                .overflowing_add(U256::from(1_442_695_040_888_963_407u64))
                .0;
            amounts.push(x);
            amounts.push(x >> (x.low_u32() % 256));
        }
        amounts
    }

    #[test]
    fn the_wire_value_is_what_diesel_sends_for_the_bigdecimal() {
        for amount in sample_amounts() {
            let expected = PgNumeric::from(&to_numeric(amount));
            assert_eq!(to_pg_numeric(amount), expected, "{amount}");
            assert_eq!(from_pg_numeric(&expected), Ok(amount), "{amount}");
        }
    }

    #[test]
    fn wire_values_read_as_postgresql_may_send_them() {
        // PostgreSQL sends zero without digits, and may keep a scale.
        let zero = PgNumeric::Positive {
            weight: 0,
            scale: 0,
            digits: vec![],
        };
        assert_eq!(from_pg_numeric(&zero), Ok(U256::zero()));
        let scaled = PgNumeric::Positive {
            weight: 1,
            scale: 3,
            digits: vec![12, 3456, 0],
        };
        assert_eq!(from_pg_numeric(&scaled), Ok(U256::from(123_456u64)));
        let negative_zero = PgNumeric::Negative {
            weight: 0,
            scale: 0,
            digits: vec![0],
        };
        assert_eq!(from_pg_numeric(&negative_zero), Ok(U256::zero()));
    }

    #[test]
    fn bad_wire_values_are_refused() {
        let fraction = PgNumeric::Positive {
            weight: 0,
            scale: 1,
            digits: vec![1, 5000],
        };
        let negative = PgNumeric::Negative {
            weight: 0,
            scale: 0,
            digits: vec![1],
        };
        let bad_digit = PgNumeric::Positive {
            weight: 0,
            scale: 0,
            digits: vec![10_000],
        };
        let too_big = PgNumeric::Positive {
            weight: 20,
            scale: 0,
            digits: vec![1],
        };
        for numeric in [fraction, negative, bad_digit, too_big, PgNumeric::NaN] {
            assert!(from_pg_numeric(&numeric).is_err(), "{numeric:?}");
        }
        // One above the largest amount.
        let over = PgNumeric::from(&(to_numeric(U256::MAX) + BigDecimal::from(1)));
        assert!(from_pg_numeric(&over).is_err());
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        assert!(from_numeric(&"1.5".parse().unwrap()).is_err());
        assert!(from_numeric(&BigDecimal::from(-1)).is_err());
        assert!(from_numeric(&(to_numeric(U256::MAX) + BigDecimal::from(1))).is_err());
        let too_big = format!("{}0", U256::MAX);
        assert!(parse(&too_big).is_err());
        assert!(parse("").is_err());
    }
}
