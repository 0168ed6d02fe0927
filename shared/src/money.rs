//! Money: integers in the chain's smallest unit, `U256` in Rust and `NUMERIC(78,0)`
//! in PostgreSQL. Conversions are exact (big integers), never through a float.

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::{BigInt, Sign};

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
