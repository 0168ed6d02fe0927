//! Hash chains of hub secrets, committed before they are used and revealed one
//! value at a time.
//!
//! From a secret `anchor`, `h_0 = anchor` and `h_k = keccak256(domain || h_(k-1))`;
//! the **tip** `h_L` is published first. The `i`-th use (0-based) reveals
//! `h_(L-1-i)`, which anyone checks against the value revealed before it (or the
//! tip): `keccak256(domain || reveal_i) == reveal_(i-1)`. A revealed value cannot be
//! swapped for another (that would need a Keccak preimage), and the next one cannot
//! be computed from anything published (the same).

use sha3::{Digest, Keccak256};

/// A fresh secret anchor from the operating system's generator.
pub fn new_anchor() -> [u8; 32] {
    rand::random()
}

/// One step of the chain: `keccak256(domain || value)`.
pub fn step(domain: &[u8], value: &[u8; 32]) -> [u8; 32] {
    Keccak256::new()
        .chain_update(domain)
        .chain_update(value)
        .finalize()
        .into()
}

/// `h_k` of the chain from `anchor`.
fn nth(domain: &[u8], anchor: &[u8; 32], k: u32) -> [u8; 32] {
    (0..k).fold(*anchor, |value, _| step(domain, &value))
}

/// The published commitment of a chain of `length` values from `anchor`.
pub fn tip(domain: &[u8], anchor: &[u8; 32], length: u32) -> [u8; 32] {
    nth(domain, anchor, length)
}

/// The value revealed by the `index`-th use (0-based); `None` past the chain's end.
pub fn reveal(domain: &[u8], anchor: &[u8; 32], length: u32, index: u32) -> Option<[u8; 32]> {
    (index < length).then(|| nth(domain, anchor, length - 1 - index))
}

/// Whether `revealed` is the value that follows `previous` (the value revealed
/// just before it, or the tip for a chain's first use).
pub fn follows(domain: &[u8], revealed: &[u8; 32], previous: &[u8; 32]) -> bool {
    &step(domain, revealed) == previous
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &[u8] = b"test/chain";

    #[test]
    fn every_reveal_leads_back_to_the_tip_and_nothing_else_does() {
        let anchor = [7u8; 32];
        let tip = tip(DOMAIN, &anchor, 5);
        let mut previous = tip;
        for index in 0..5 {
            let Some(value) = reveal(DOMAIN, &anchor, 5, index) else {
                panic!("index {index} is inside the chain");
            };
            assert!(follows(DOMAIN, &value, &previous), "use {index}");
            // Hashing forward from what is public never gives the next reveal.
            assert_ne!(step(DOMAIN, &previous), value);
            previous = value;
        }
        assert_eq!(previous, anchor);
        assert_eq!(reveal(DOMAIN, &anchor, 5, 5), None);
        assert!(!follows(DOMAIN, &[8u8; 32], &tip));
        // Another domain is another chain.
        assert!(!follows(
            b"other",
            &reveal(DOMAIN, &anchor, 5, 0).unwrap_or_default(),
            &tip
        ));
    }
}
