//! The validator WebSocket protocol: JSON text frames, one message each, tagged by
//! `type`. Signatures cover the canonical bytes of [`crate::signing`], never the JSON.
//!
//! ```text
//! hub → validator   hello { protocol, hub_id, nonce }
//! validator → hub   signup { public_key, payout_address, signature }
//! hub → validator   signed_up { validator_id }
//! hub → validator   validate { assignment_id, round, url, method, timeout_ms, keyword?,
//!                              keyword_absent?, accepted_status?, json_path?, json_expected?,
//!                              max_response_ms?, deadline_ms }
//! validator → hub   result { assignment_id, status, http_status?, latency_ms, failure?,
//!                            tls_expires_at_ms?, checked_at_ms, spec_hash, signature }
//! hub → validator   ack { assignment_ids }          (only once stored)
//! hub → validator   error { code, message, assignment_id? }
//! ```

use serde::{Deserialize, Serialize};

use crate::check_spec::{self, CheckSpec, JsonRule, KeywordRule, StatusRange};
use crate::signing::{self, ResultFields, SigningError};

/// The protocol version announced in `hello`.
pub const PROTOCOL: &str = "overlaps/v2";

/// How many bytes a validator's WebSocket reads at a time (tungstenite's
/// `read_buffer_size`). Its default, 128 KiB, is zeroed before every read: that
/// was 45 % of the load driver's CPU with 2,000 sockets. Hub messages are a few
/// hundred bytes; a longer one is read in several pieces.
pub const CLIENT_READ_BUFFER_BYTES: usize = 4096;

/// A message the hub sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// First message on every connection.
    Hello {
        /// Always [`PROTOCOL`].
        protocol: String,
        /// The hub's id, part of every signed payload.
        hub_id: String,
        /// 32 random bytes, hex; the signup must sign them (no replay).
        nonce: String,
    },
    /// Signup accepted.
    SignedUp {
        /// The validator's id at this hub.
        validator_id: i64,
    },
    /// Please check a site.
    Validate(ValidateRequest),
    /// These results are stored; do not resend them.
    Ack {
        /// The assignments whose results are stored.
        assignment_ids: Vec<i64>,
    },
    /// Something was refused.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// The assignment concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignment_id: Option<i64>,
    },
}

/// One check to perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// What the result must name.
    pub assignment_id: i64,
    /// The round it belongs to (the node keeps it with the acknowledgement, to find
    /// the round's public record when it checks its reward).
    pub round: i64,
    /// http(s) URL, `tcp://host:port` or `dns://name/TYPE`.
    pub url: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// Overall time limit of the check.
    pub timeout_ms: u32,
    /// A string the body must contain (or, with `keyword_absent`, must not); for a
    /// `dns://` check, the answer expected among the records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// True: the site is down when `keyword` is in the body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyword_absent: bool,
    /// Status ranges counted as up; absent or empty means 200–399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_status: Vec<StatusRange>,
    /// A JSONPath (subset, see `check_spec`) whose value must equal `json_expected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// The value expected at `json_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_expected: Option<serde_json::Value>,
    /// Slower than this (to the response headers) is `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_ms: Option<u32>,
    /// Results after this Unix-millisecond instant are refused.
    pub deadline_ms: i64,
}

impl ValidateRequest {
    /// The check spec this request asks for (what a result's `spec_hash` binds).
    pub fn spec(&self) -> CheckSpec {
        CheckSpec {
            url: self.url.clone(),
            method: self.method.clone(),
            timeout_ms: self.timeout_ms,
            accepted_status: if self.accepted_status.is_empty() {
                check_spec::DEFAULT_ACCEPTED.to_vec()
            } else {
                self.accepted_status.clone()
            },
            keyword: self.keyword.clone().map(|text| KeywordRule {
                text,
                absent: self.keyword_absent,
            }),
            json: match (&self.json_path, &self.json_expected) {
                (Some(path), Some(expected)) => Some(JsonRule {
                    path: path.clone(),
                    expected: check_spec::canonical_json(expected),
                }),
                _ => None,
            },
            max_response_ms: self.max_response_ms,
        }
    }
}

/// A message a validator sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValidatorMessage {
    /// Identify with a key and sign the hub's nonce.
    Signup {
        /// Ed25519 public key, 32 bytes hex.
        public_key: String,
        /// EIP-55 checksummed Ethereum address rewards go to.
        payout_address: String,
        /// Signature over [`signing::signup_bytes`], 64 bytes hex.
        signature: String,
    },
    /// A signed check result.
    Result(CheckResult),
}

/// Up, down or degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The site answered as expected.
    Up,
    /// It did not.
    Down,
    /// It answered as expected, but slower than `max_response_ms`.
    Degraded,
}

impl CheckStatus {
    /// `up`, `down` or `degraded`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Up => "up",
            CheckStatus::Down => "down",
            CheckStatus::Degraded => "degraded",
        }
    }

    /// The byte in the signed result: 1 up, 2 down, 3 degraded.
    pub fn code(self) -> u8 {
        match self {
            CheckStatus::Up => 1,
            CheckStatus::Down => 2,
            CheckStatus::Degraded => 3,
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [CheckStatus::Up, CheckStatus::Down, CheckStatus::Degraded]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// No complete answer within the timeout.
    Timeout,
    /// The name did not resolve.
    Dns,
    /// TCP connection refused or unreachable.
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// A response with a non-2xx/3xx status.
    HttpStatus,
    /// The keyword was not in the body.
    KeywordMissing,
    /// Too many redirects.
    RedirectLoop,
    /// The keyword that must be absent is in the body.
    KeywordPresent,
    /// The body is not JSON, or the value at `json_path` differs from `json_expected`.
    JsonMismatch,
    /// Every assertion passed, but the response came after `max_response_ms`
    /// (the one failure of a `degraded` result).
    TooSlow,
    /// A DNS check's name has records of the asked type, but not the expected one.
    DnsMismatch,
}

impl FailureReason {
    /// Every reason, in code order.
    pub const ALL: [FailureReason; 11] = [
        FailureReason::Timeout,
        FailureReason::Dns,
        FailureReason::Connect,
        FailureReason::Tls,
        FailureReason::HttpStatus,
        FailureReason::KeywordMissing,
        FailureReason::RedirectLoop,
        FailureReason::KeywordPresent,
        FailureReason::JsonMismatch,
        FailureReason::TooSlow,
        FailureReason::DnsMismatch,
    ];

    /// The code in the signed bytes (1..=11).
    pub fn code(self) -> u8 {
        match self {
            FailureReason::Timeout => 1,
            FailureReason::Dns => 2,
            FailureReason::Connect => 3,
            FailureReason::Tls => 4,
            FailureReason::HttpStatus => 5,
            FailureReason::KeywordMissing => 6,
            FailureReason::RedirectLoop => 7,
            FailureReason::KeywordPresent => 8,
            FailureReason::JsonMismatch => 9,
            FailureReason::TooSlow => 10,
            FailureReason::DnsMismatch => 11,
        }
    }

    /// The name stored in `ticks.failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Dns => "dns",
            FailureReason::Connect => "connect",
            FailureReason::Tls => "tls",
            FailureReason::HttpStatus => "http_status",
            FailureReason::KeywordMissing => "keyword_missing",
            FailureReason::RedirectLoop => "redirect_loop",
            FailureReason::KeywordPresent => "keyword_present",
            FailureReason::JsonMismatch => "json_mismatch",
            FailureReason::TooSlow => "too_slow",
            FailureReason::DnsMismatch => "dns_mismatch",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// 9999-12-31T23:59:59.999Z: the latest instant a result may name.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A signed check result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The assignment answered.
    pub assignment_id: i64,
    /// Up, down or degraded.
    pub status: CheckStatus,
    /// HTTP status, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Milliseconds to the response or the failure.
    pub latency_ms: u32,
    /// Why it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    /// TLS certificate expiry (HTTPS), Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_expires_at_ms: Option<i64>,
    /// When the check ran, Unix milliseconds.
    pub checked_at_ms: i64,
    /// SHA-256 of the check spec evaluated (`ValidateRequest::spec`), 32 bytes hex.
    pub spec_hash: String,
    /// Signature over [`signing::result_bytes`], 64 bytes hex.
    pub signature: String,
}

impl CheckResult {
    /// The fields covered by the signature.
    /// (Always the current layout: a hub speaks only `overlaps/v2`; a malformed
    /// `spec_hash` becomes zeros, which no honest signature covers.)
    pub fn fields(&self) -> ResultFields {
        ResultFields {
            assignment_id: self.assignment_id,
            status_code: self.status.code(),
            http_status: self.http_status,
            latency_ms: self.latency_ms,
            failure_code: self.failure.map_or(0, FailureReason::code),
            tls_expires_at_ms: self.tls_expires_at_ms,
            checked_at_ms: self.checked_at_ms,
            layout: signing::ResultLayout::V2 {
                spec_hash: self.spec_hash_bytes().unwrap_or([0; 32]),
            },
        }
    }

    /// The decoded 32-byte spec hash, if it is 64 hex digits.
    pub fn spec_hash_bytes(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.spec_hash, &mut out).ok()?;
        Some(out)
    }

    /// Checks that the fields are consistent (before any signature work).
    pub fn validate_shape(&self) -> Result<(), &'static str> {
        if let Some(status) = self.http_status
            && !(100..=599).contains(&status)
        {
            return Err("http_status must be between 100 and 599");
        }
        // Every signed field must fit the store exactly: refused here, never clamped
        // or left to fail a whole batch later.
        if i32::try_from(self.latency_ms).is_err() {
            return Err("latency_ms must be at most 2147483647");
        }
        if self
            .tls_expires_at_ms
            .is_some_and(|at| !(0..=MAX_TIME_MS).contains(&at))
        {
            return Err("tls_expires_at_ms must lie between 1970 and the year 9999");
        }
        if !(0..=MAX_TIME_MS).contains(&self.checked_at_ms) {
            return Err("checked_at_ms must lie between 1970 and the year 9999");
        }
        if self.spec_hash_bytes().is_none() {
            return Err("spec_hash must be 32 bytes of hex");
        }
        match (self.status, self.failure) {
            (CheckStatus::Up, Some(_)) => Err("an up result has no failure"),
            (CheckStatus::Down, None) => Err("a down result names its failure"),
            (CheckStatus::Down, Some(FailureReason::TooSlow)) => {
                Err("too_slow is the failure of a degraded result, not a down one")
            }
            (CheckStatus::Degraded, f) if f != Some(FailureReason::TooSlow) => {
                Err("a degraded result names the failure too_slow")
            }
            _ => Ok(()),
        }
    }

    /// Signs `unsigned`'s fields with `key` for `hub_id`, filling `signature`.
    pub fn sign(mut self, hub_id: &str, key: &signing::Keypair) -> Self {
        self.signature = hex::encode(key.sign(&signing::result_bytes(hub_id, &self.fields())));
        self
    }

    /// The decoded 64-byte signature.
    pub fn signature_bytes(&self) -> Result<[u8; 64], SigningError> {
        signing::decode_signature(&self.signature)
    }

    /// Checks `signature` (this result's, decoded by [`Self::signature_bytes`])
    /// against `key` for `hub_id`, strictly.
    pub fn verify(
        &self,
        hub_id: &str,
        key: &signing::PublicKey,
        signature: &[u8; 64],
    ) -> Result<(), SigningError> {
        key.verify(&signing::result_bytes(hub_id, &self.fields()), signature)
    }
}

/// Stable error codes sent to validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or lacks fields.
    MalformedJson,
    /// Valid JSON with an unknown `type`.
    UnknownMessage,
    /// Binary frames are not part of the protocol.
    BinaryNotSupported,
    /// A frame above the size limit.
    FrameTooLarge,
    /// A key that is malformed or weak.
    BadKey,
    /// A payout address that is malformed or wrongly checksummed.
    BadPayoutAddress,
    /// A signature that is malformed or does not verify.
    BadSignature,
    /// A result before a successful signup.
    NotSignedUp,
    /// A second signup on the same connection.
    AlreadySignedUp,
    /// The key already has a live session (here or on another server instance).
    KeyInUse,
    /// A result whose fields contradict each other.
    InvalidResult,
    /// No such assignment.
    UnknownAssignment,
    /// The assignment belongs to another validator.
    NotYourAssignment,
    /// A different result for an assignment already answered.
    AlreadyAnswered,
    /// The assignment's deadline passed (or it was released as missed).
    DeadlinePassed,
    /// Too many messages per second.
    RateLimited,
    /// Too many connections from this address.
    TooManyConnections,
    /// The hub could not store the result; resend it later.
    Unavailable,
    /// Signed up, but the key is not admitted to selection (no stake counted, or
    /// not on the allowlist): the connection stays and gets no assignments until
    /// the key is admitted.
    NotAdmitted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json_with_a_type_tag() {
        let msg = HubMessage::Validate(ValidateRequest {
            assignment_id: 5,
            round: 2,
            url: "https://example.com".into(),
            method: "GET".into(),
            timeout_ms: 5000,
            keyword: None,
            keyword_absent: false,
            accepted_status: Vec::new(),
            json_path: None,
            json_expected: None,
            max_response_ms: None,
            deadline_ms: 1,
        });
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.starts_with(r#"{"type":"validate""#), "{json}");
        assert_eq!(serde_json::from_str::<HubMessage>(&json).unwrap(), msg);
        let unknown = serde_json::from_str::<ValidatorMessage>(r#"{"type":"steal"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn failure_codes_are_distinct_and_names_round_trip() {
        let mut codes: Vec<u8> = FailureReason::ALL.iter().map(|r| r.code()).collect();
        codes.dedup();
        assert_eq!(codes, (1..=11).collect::<Vec<u8>>());
        for reason in FailureReason::ALL {
            assert_eq!(FailureReason::from_name(reason.as_str()), Some(reason));
        }
    }
}
