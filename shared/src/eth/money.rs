//! Amounts between the chain (`U256`) and PostgreSQL (`NUMERIC(78,0)` as `BigDecimal`).

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::{BigInt, Sign};

use super::U256;

/// An on-chain amount as a database number (exact).
pub fn to_decimal(amount: U256) -> BigDecimal {
    let mut bytes = [0u8; 32];
    amount.to_big_endian(&mut bytes);
    BigDecimal::from(BigInt::from_bytes_be(Sign::Plus, &bytes))
}

/// A database number as an on-chain amount; `None` if negative, fractional or too big.
pub fn from_decimal(amount: &BigDecimal) -> Option<U256> {
    if !amount.is_integer() {
        return None;
    }
    let (int, _) = amount.with_scale(0).into_bigint_and_exponent();
    let (sign, bytes) = int.to_bytes_be();
    if sign == Sign::Minus || bytes.len() > 32 {
        return None;
    }
    Some(U256::from_big_endian(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_exactly() {
        for amount in [U256::zero(), U256::from(1), U256::exp10(30), U256::MAX] {
            assert_eq!(from_decimal(&to_decimal(amount)), Some(amount));
        }
    }

    #[test]
    fn negative_fractional_and_oversized_amounts_are_refused() {
        let parse = |s: &str| s.parse::<BigDecimal>().ok();
        assert_eq!(parse("-1").as_ref().and_then(from_decimal), None);
        assert_eq!(parse("1.5").as_ref().and_then(from_decimal), None);
        let too_big = to_decimal(U256::MAX) + BigDecimal::from(1);
        assert_eq!(from_decimal(&too_big), None);
        assert_eq!(
            parse("1000.000").as_ref().and_then(from_decimal),
            Some(U256::from(1000))
        );
    }
}
