//! Money: integers in the chain's smallest unit, `U256` in Rust and `NUMERIC(78,0)`
//! in PostgreSQL. Conversions go through the decimal string, never a float.

use std::str::FromStr;

use bigdecimal::BigDecimal;

use crate::eth::U256;

/// An amount that is not a non-negative integer below 2^256.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an amount in the smallest unit (a non-negative integer below 2^256)")]
pub struct BadAmount(pub String);

/// The NUMERIC value of `amount`.
pub fn to_numeric(amount: U256) -> BigDecimal {
    // A U256's decimal string always parses.
    BigDecimal::from_str(&amount.to_string()).unwrap_or_default()
}

/// The U256 value of a NUMERIC amount.
pub fn from_numeric(amount: &BigDecimal) -> Result<U256, BadAmount> {
    parse(&amount.normalized().to_plain_string())
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
        // NUMERIC(78,0) values come back normalized: 1E+3 is still 1000.
        assert_eq!(from_numeric(&BigDecimal::from(1000)), Ok(U256::from(1000)));
    }

    #[test]
    fn fractions_negatives_and_overflow_are_refused() {
        assert!(from_numeric(&BigDecimal::from_str("1.5").unwrap()).is_err());
        assert!(from_numeric(&BigDecimal::from(-1)).is_err());
        let too_big = format!("{}0", U256::MAX);
        assert!(parse(&too_big).is_err());
        assert!(parse("").is_err());
    }
}
