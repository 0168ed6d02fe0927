//! Ed25519 identities, Ethereum payout addresses and the canonical byte strings
//! that get signed.
//!
//! A signed payload is never JSON text: it is a domain tag (`overlaps/v2/...`)
//! followed by fixed-width big-endian fields, so the hub and a validator (or an
//! auditor, years later) derive exactly the same bytes from the same values.
//! Results stored before `overlaps/v2` keep their `overlaps/v1` layout
//! ([`ResultLayout::V1`]) and still verify.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

/// Domain tag of a signup signature.
pub const SIGNUP_DOMAIN: &[u8] = b"overlaps/v2/signup";
/// Domain tag of a check-result signature.
pub const RESULT_DOMAIN: &[u8] = b"overlaps/v2/result";
/// Domain tag of a result signed under `overlaps/v1` (kept to verify old results).
pub const RESULT_DOMAIN_V1: &[u8] = b"overlaps/v1/result";

/// Why a key, signature or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// Not 32 bytes of hex, or not a point on the curve.
    #[error("malformed Ed25519 public key")]
    MalformedKey,
    /// A small-order key: any signature would verify against it.
    #[error("weak Ed25519 public key refused")]
    WeakKey,
    /// Not 64 bytes of hex.
    #[error("malformed signature")]
    MalformedSignature,
    /// The signature does not verify for these bytes and this key.
    #[error("signature does not verify")]
    BadSignature,
    /// Not `0x` followed by 40 hex digits.
    #[error("malformed Ethereum address")]
    MalformedAddress,
    /// Mixed-case address whose EIP-55 checksum does not match.
    #[error("Ethereum address checksum (EIP-55) does not match")]
    BadChecksum,
}

/// A validator's public key, checked to be a valid, non-weak Ed25519 point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 32 raw bytes, refusing malformed and weak keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| SigningError::MalformedKey)?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| SigningError::MalformedKey)?;
        // Batch verification skips this check, so weak keys never get an identity.
        if key.is_weak() {
            return Err(SigningError::WeakKey);
        }
        Ok(PublicKey(key))
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The dalek key, for batch verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Verifies `signature` over `message` (strict: no malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        let signature = parse_signature(signature)?;
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| SigningError::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_bytes()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = SigningError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| SigningError::MalformedKey)?;
        PublicKey::from_bytes(&bytes)
    }
}

/// Parses a 64-byte signature.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, SigningError> {
    let bytes: &[u8; 64] = bytes
        .try_into()
        .map_err(|_| SigningError::MalformedSignature)?;
    Ok(Signature::from_bytes(bytes))
}

/// Decodes a hex signature (as sent on the wire) into its 64 bytes.
pub fn decode_signature(hex_signature: &str) -> Result<[u8; 64], SigningError> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(hex_signature, &mut out).map_err(|_| SigningError::MalformedSignature)?;
    Ok(out)
}

/// A validator's secret key.
pub struct Keypair(SigningKey);

impl Keypair {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (secret).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public_key())
    }
}

/// A 20-byte Ethereum address; shown and parsed in EIP-55 checksummed form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayoutAddress([u8; 20]);

impl PayoutAddress {
    /// From 20 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        Ok(PayoutAddress(
            bytes
                .try_into()
                .map_err(|_| SigningError::MalformedAddress)?,
        ))
    }

    /// The 20 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The EIP-55 checksummed `0x...` form.
    pub fn to_checksummed(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }
}

impl fmt::Debug for PayoutAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

impl fmt::Display for PayoutAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

impl FromStr for PayoutAddress {
    type Err = SigningError;
    /// Accepts only the exact checksummed form: a typo in a payout address loses money.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").ok_or(SigningError::MalformedAddress)?;
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| SigningError::MalformedAddress)?;
        let address = PayoutAddress(bytes);
        if address.to_checksummed() != s {
            return Err(SigningError::BadChecksum);
        }
        Ok(address)
    }
}

/// Appends a length-prefixed string (u16 big-endian length).
fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn start(domain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(domain);
    out.push(0);
    out
}

/// The bytes a validator signs at signup: hub id, the hub's nonce, payout address.
pub fn signup_bytes(hub_id: &str, nonce: &[u8; 32], payout: &PayoutAddress) -> Vec<u8> {
    let mut out = start(SIGNUP_DOMAIN);
    put_str(&mut out, hub_id);
    out.extend_from_slice(nonce);
    out.extend_from_slice(payout.as_bytes());
    out
}

/// Which signed layout a result was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultLayout {
    /// `overlaps/v1/result`: no spec hash (results stored before v2).
    V1,
    /// `overlaps/v2/result`: the v1 fields, then the check spec's SHA-256.
    V2 {
        /// SHA-256 of the canonical check spec evaluated.
        spec_hash: [u8; 32],
    },
}

impl ResultLayout {
    /// The layout of a stored row: its `protocol_version` (1 or 2) and `spec_hash`.
    /// A v2 row without a 32-byte hash gets zeros, which no signature covers.
    pub fn from_record(protocol_version: i16, spec_hash: Option<&[u8]>) -> Self {
        if protocol_version < 2 {
            return ResultLayout::V1;
        }
        let mut hash = [0u8; 32];
        if let Some(bytes) = spec_hash.filter(|b| b.len() == 32) {
            hash.copy_from_slice(bytes);
        }
        ResultLayout::V2 { spec_hash: hash }
    }

    /// The version number stored beside the result.
    pub fn version(self) -> i16 {
        match self {
            ResultLayout::V1 => 1,
            ResultLayout::V2 { .. } => 2,
        }
    }
}

/// The signed fields of one check result, as stored in a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFields {
    /// The assignment answered.
    pub assignment_id: i64,
    /// 1 up, 2 down, 3 degraded (v2 only).
    pub status_code: u8,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// Milliseconds to the response or failure.
    pub latency_ms: u32,
    /// Failure code (see `protocol::FailureReason::code`), 0 for none.
    pub failure_code: u8,
    /// TLS certificate expiry, Unix milliseconds.
    pub tls_expires_at_ms: Option<i64>,
    /// When the check ran, Unix milliseconds.
    pub checked_at_ms: i64,
    /// The layout signed (and, for v2, the spec hash).
    pub layout: ResultLayout,
}

/// A stored or published result, by name and instant (the inputs of
/// [`ResultFields::from_record`]).
#[derive(Debug, Clone, Copy)]
pub struct ResultRecord<'a> {
    /// The assignment answered.
    pub assignment_id: i64,
    /// `up`, `down` or `degraded`.
    pub status: &'a str,
    /// HTTP status, when a response arrived.
    pub http_status: Option<i16>,
    /// Milliseconds to the response or failure.
    pub latency_ms: i32,
    /// Failure name.
    pub failure: Option<&'a str>,
    /// TLS certificate expiry.
    pub tls_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the check ran.
    pub checked_at: chrono::DateTime<chrono::Utc>,
    /// 1 for results signed under `overlaps/v1`, 2 under `overlaps/v2`.
    pub protocol_version: i16,
    /// The spec hash of a v2 result.
    pub spec_hash: Option<&'a [u8]>,
}

impl ResultFields {
    /// Rebuilds the signed fields of a stored or published result (status and failure
    /// by name, times as instants): the hub's ticks and the public round record
    /// alike; the layout follows the stored `protocol_version`.
    pub fn from_record(record: ResultRecord<'_>) -> Self {
        let ResultRecord {
            assignment_id,
            status,
            http_status,
            latency_ms,
            failure,
            tls_expires_at,
            checked_at,
            protocol_version,
            spec_hash,
        } = record;
        ResultFields {
            assignment_id,
            status_code: crate::protocol::CheckStatus::from_name(status)
                .map_or(0, crate::protocol::CheckStatus::code),
            http_status: http_status.and_then(|s| u16::try_from(s).ok()),
            latency_ms: u32::try_from(latency_ms).unwrap_or(u32::MAX),
            failure_code: failure
                .and_then(crate::protocol::FailureReason::from_name)
                .map_or(0, |f| f.code()),
            tls_expires_at_ms: tls_expires_at.map(|t| t.timestamp_millis()),
            checked_at_ms: checked_at.timestamp_millis(),
            layout: ResultLayout::from_record(protocol_version, spec_hash),
        }
    }
}

/// The bytes a validator signs for a result, bound to the hub and the assignment
/// (and, under v2, to the check spec). The v2 layout is the v1 layout with another
/// tag and the spec hash appended: every v1 field keeps its offset.
pub fn result_bytes(hub_id: &str, fields: &ResultFields) -> Vec<u8> {
    let domain = match fields.layout {
        ResultLayout::V1 => RESULT_DOMAIN_V1,
        ResultLayout::V2 { .. } => RESULT_DOMAIN,
    };
    let mut out = start(domain);
    put_str(&mut out, hub_id);
    out.extend_from_slice(&fields.assignment_id.to_be_bytes());
    out.push(fields.status_code);
    out.extend_from_slice(&fields.http_status.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&fields.latency_ms.to_be_bytes());
    out.push(fields.failure_code);
    out.push(u8::from(fields.tls_expires_at_ms.is_some()));
    out.extend_from_slice(&fields.tls_expires_at_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&fields.checked_at_ms.to_be_bytes());
    if let ResultLayout::V2 { spec_hash } = fields.layout {
        out.extend_from_slice(&spec_hash);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_checksums_match_the_reference_vectors() {
        // From the EIP-55 specification.
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let parsed: PayoutAddress = addr.parse().unwrap();
            assert_eq!(parsed.to_string(), addr);
        }
    }

    #[test]
    fn a_wrongly_cased_or_malformed_address_is_refused() {
        let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        assert_eq!(
            lower.parse::<PayoutAddress>(),
            Err(SigningError::BadChecksum)
        );
        for bad in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x1234",
            "0xZZ",
            "",
        ] {
            assert_eq!(
                bad.parse::<PayoutAddress>(),
                Err(SigningError::MalformedAddress)
            );
        }
    }

    #[test]
    fn signatures_verify_only_for_the_same_bytes_and_key() {
        let key = Keypair::generate();
        let other = Keypair::generate();
        let payout: PayoutAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
            .parse()
            .unwrap();
        let msg = signup_bytes("hub", &[1; 32], &payout);
        let sig = key.sign(&msg);
        assert_eq!(key.public_key().verify(&msg, &sig), Ok(()));
        assert_eq!(
            other.public_key().verify(&msg, &sig),
            Err(SigningError::BadSignature)
        );
        let replay = signup_bytes("hub", &[2; 32], &payout);
        assert_eq!(
            key.public_key().verify(&replay, &sig),
            Err(SigningError::BadSignature)
        );
        assert_eq!(
            key.public_key().verify(&msg, &sig[..63]),
            Err(SigningError::MalformedSignature)
        );
    }

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(SigningError::WeakKey));
        assert_eq!(
            PublicKey::from_bytes(&[0u8; 31]),
            Err(SigningError::MalformedKey)
        );
        assert!("not hex".parse::<PublicKey>().is_err());
    }

    #[test]
    fn every_result_field_changes_the_signed_bytes() {
        let base = ResultFields {
            assignment_id: 42,
            status_code: 1,
            http_status: Some(200),
            latency_ms: 120,
            failure_code: 0,
            tls_expires_at_ms: Some(1_900_000_000_000),
            checked_at_ms: 1_800_000_000_000,
            layout: ResultLayout::V2 { spec_hash: [7; 32] },
        };
        let reference = result_bytes("hub", &base);
        let variants = [
            ResultFields {
                assignment_id: 43,
                ..base.clone()
            },
            ResultFields {
                status_code: 2,
                ..base.clone()
            },
            ResultFields {
                status_code: 3,
                ..base.clone()
            },
            ResultFields {
                layout: ResultLayout::V2 { spec_hash: [8; 32] },
                ..base.clone()
            },
            ResultFields {
                layout: ResultLayout::V1,
                ..base.clone()
            },
            ResultFields {
                http_status: Some(500),
                ..base.clone()
            },
            ResultFields {
                http_status: None,
                ..base.clone()
            },
            ResultFields {
                latency_ms: 121,
                ..base.clone()
            },
            ResultFields {
                failure_code: 1,
                ..base.clone()
            },
            ResultFields {
                tls_expires_at_ms: None,
                ..base.clone()
            },
            ResultFields {
                checked_at_ms: 1_800_000_000_001,
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(result_bytes("hub", &variant), reference, "{variant:?}");
        }
        assert_ne!(result_bytes("other-hub", &base), reference);
        assert!(reference.starts_with(b"overlaps/v2/result\0"));
    }

    #[test]
    fn the_v2_layout_extends_v1_keeping_every_offset() {
        let v2 = ResultFields {
            assignment_id: 42,
            status_code: 2,
            http_status: Some(503),
            latency_ms: 120,
            failure_code: 5,
            tls_expires_at_ms: None,
            checked_at_ms: 1_800_000_000_000,
            layout: ResultLayout::V2 { spec_hash: [9; 32] },
        };
        let v1 = ResultFields {
            layout: ResultLayout::V1,
            ..v2.clone()
        };
        let (new, old) = (result_bytes("hub", &v2), result_bytes("hub", &v1));
        assert_eq!(new.len(), old.len() + 32);
        assert_eq!(
            new[18..old.len()],
            old[18..],
            "same fields at the same offsets"
        );
        assert_eq!(&new[old.len()..], &[9u8; 32]);
        assert!(old.starts_with(b"overlaps/v1/result\0"));
    }
}
