//! Signatures a cheating validator can make with its own key that strict
//! verification refuses and batch verification may take.
//!
//! A validator that knows its secret scalar `a` can sign with a nonce point
//! `R' = [r]B + T`, where `T` is the point of order 2, and `s = r + H(R'‖A‖M)·a`.
//! Then `[s]B − [H]A − R' = −T`: a torsion point. Strict (cofactorless, single)
//! verification compares `[s]B − [H]A` with `R'` and refuses it; a batch
//! multiplies each signature's equation by a random 128-bit `z` and sums, and
//! `z·T` vanishes whenever `z` is even, so one batch in two takes it. ed25519-dalek
//! derives its `z`s from the batch's own transcript, so the signer can even grind
//! the nonce until its batch passes.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::signing::Keypair;

/// The encoding of the point of order 2, `(0, −1)`: `y = p − 1`, little-endian.
const ORDER_TWO: [u8; 32] = {
    let mut bytes = [0xff; 32];
    bytes[0] = 0xec;
    bytes[31] = 0x7f;
    bytes
};

/// `key`'s signature of `message` with the nonce point shifted by the point of
/// order 2: an RFC 8032 signature in every byte but one that no strict verifier
/// takes. `nonce` picks the nonce, so a caller can try several.
pub fn mixed_order_signature(key: &Keypair, message: &[u8], nonce: u64) -> [u8; 64] {
    let expanded: [u8; 64] = Sha512::digest(key.seed()).into();
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&expanded[..32]);
    // RFC 8032's clamping; the scalar is only multiplied with, so reducing it is exact.
    secret[0] &= 248;
    secret[31] &= 127;
    secret[31] |= 64;
    let a = Scalar::from_bytes_mod_order(secret);
    let public = key.public_key().to_bytes();

    let mut seed = [0u8; 64];
    seed[..8].copy_from_slice(&nonce.to_le_bytes());
    seed[8..40].copy_from_slice(&Sha512::digest(message)[..32]);
    let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(seed).into());
    let Some(torsion) = CompressedEdwardsY(ORDER_TWO).decompress() else {
        unreachable!("(0, -1) is on the curve");
    };
    let shifted = (ED25519_BASEPOINT_TABLE * &r + torsion).compress();

    let challenge: [u8; 64] = Sha512::new()
        .chain_update(shifted.as_bytes())
        .chain_update(public)
        .chain_update(message)
        .finalize()
        .into();
    let s = r + Scalar::from_bytes_mod_order_wide(&challenge) * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(shifted.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}
