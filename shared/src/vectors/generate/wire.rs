//! The wire vectors: messages, check specs, signup and result bytes with their
//! signatures (both result layouts).

use super::super::*;
use super::{HUB_ID, T0_MS, hex32, json, key};
use crate::check_spec::StatusRange;
use crate::protocol::{
    CheckResult, CheckStatus, ErrorCode, FailureReason, HubMessage, PROTOCOL, ValidateRequest,
    ValidatorMessage,
};
use crate::signing::{self, PayoutAddress};

/// The `validate` requests of the vectors: a keyword, a HEAD with defaults, every
/// assertion at once, a TCP port check with a time limit, and a DNS record check
/// with an expected answer.
fn validate_requests() -> [ValidateRequest; 5] {
    let plain =
        |assignment_id, round, url: &str, method: &str, timeout_ms, deadline_ms| ValidateRequest {
            assignment_id,
            round,
            url: url.into(),
            method: method.into(),
            timeout_ms,
            keyword: None,
            keyword_absent: false,
            accepted_status: Vec::new(),
            json_path: None,
            json_expected: None,
            max_response_ms: None,
            deadline_ms,
        };
    [
        ValidateRequest {
            keyword: Some("healthy".into()),
            ..plain(
                4_294_967_301,
                1_024,
                "https://example.com/health",
                "GET",
                5_000,
                T0_MS + 30_000,
            )
        },
        plain(9, 3, "http://example.org/", "HEAD", 3_000, T0_MS + 60_000),
        ValidateRequest {
            keyword: Some("error".into()),
            keyword_absent: true,
            accepted_status: vec![
                StatusRange { from: 200, to: 204 },
                StatusRange { from: 301, to: 301 },
            ],
            json_path: Some("$.checks[0].status".into()),
            json_expected: Some(serde_json::json!({"ok": true, "code": 1})),
            max_response_ms: Some(1_000),
            ..plain(
                10,
                1_024,
                "https://api.example.com/status",
                "GET",
                5_000,
                T0_MS + 30_000,
            )
        },
        ValidateRequest {
            max_response_ms: Some(500),
            ..plain(
                11,
                1_024,
                "tcp://db.example.com:5432",
                "GET",
                3_000,
                T0_MS + 30_000,
            )
        },
        ValidateRequest {
            keyword: Some("10 mx1.example.com".into()),
            max_response_ms: Some(800),
            ..plain(
                12,
                1_024,
                "dns://example.com/MX",
                "GET",
                2_000,
                T0_MS + 30_000,
            )
        },
    ]
}

pub(super) fn check_specs() -> Vec<CheckSpecVector> {
    validate_requests()
        .into_iter()
        .map(|request| {
            let spec = request.spec();
            CheckSpecVector {
                message: json(&HubMessage::Validate(request)),
                bytes: hex::encode(spec.canonical_bytes()),
                spec_hash: hex32(&spec.hash()),
            }
        })
        .collect()
}

pub(super) fn messages(payout: &PayoutAddress) -> Vec<MessageVector> {
    let [keyword, head, assertions, tcp, dns] = validate_requests();
    let hub = [
        HubMessage::Hello {
            protocol: PROTOCOL.into(),
            hub_id: HUB_ID.into(),
            nonce: hex::encode((0u8..32).collect::<Vec<_>>()),
        },
        HubMessage::SignedUp { validator_id: 17 },
        HubMessage::Validate(keyword),
        HubMessage::Validate(head),
        HubMessage::Validate(assertions),
        HubMessage::Validate(tcp),
        HubMessage::Validate(dns),
        HubMessage::Ack {
            assignment_ids: vec![4_294_967_301],
        },
        HubMessage::Error {
            code: ErrorCode::Unavailable,
            message: "not stored; resend later".into(),
            assignment_id: Some(4_294_967_301),
        },
        HubMessage::Error {
            code: ErrorCode::MalformedJson,
            message: "expected value at line 1 column 1".into(),
            assignment_id: None,
        },
    ];
    let mut out: Vec<MessageVector> = hub
        .iter()
        .map(|m| MessageVector {
            direction: "hub_to_validator".into(),
            json: json(m),
        })
        .collect();
    out.extend(signups(payout).into_iter().take(1).map(|s| MessageVector {
        direction: "validator_to_hub".into(),
        json: s.message,
    }));
    // Re-read as the message, so the text has the field order sent on the wire.
    out.extend(results().into_iter().take(3).map(|r| {
        MessageVector {
            direction: "validator_to_hub".into(),
            json: serde_json::from_value::<ValidatorMessage>(r.message)
                .map(|m| json(&m))
                .unwrap_or_default(),
        }
    }));
    out
}

pub(super) fn signups(payout: &PayoutAddress) -> Vec<SignupVector> {
    let cases: [(u8, &str, [u8; 32]); 2] = [
        (1, HUB_ID, std::array::from_fn(|i| i as u8)),
        (2, "overlaps-main", [0xa5; 32]),
    ];
    cases
        .into_iter()
        .map(|(n, hub_id, nonce)| {
            let key = key(n);
            let bytes = signing::signup_bytes(hub_id, &nonce, payout);
            let signature = hex::encode(key.sign(&bytes));
            let message = ValidatorMessage::Signup {
                public_key: key.public_key().to_string(),
                payout_address: payout.to_string(),
                signature: signature.clone(),
            };
            SignupVector {
                key_seed: hex::encode(key.seed()),
                public_key: key.public_key().to_string(),
                hub_id: hub_id.into(),
                nonce: hex32(&nonce),
                payout_address: payout.to_string(),
                bytes: hex::encode(bytes),
                signature,
                message: json(&message),
            }
        })
        .collect()
}

/// One result per status and failure, each field at a telling value, bound to
/// the spec of the first `validate` request (the next three to the one with every
/// assertion, the last to the DNS check).
pub(super) fn results() -> Vec<ResultVector> {
    let [keyword, _, assertions, _, dns] = validate_requests();
    let (spec, full, dns) = (
        hex32(&keyword.spec().hash()),
        hex32(&assertions.spec().hash()),
        hex32(&dns.spec().hash()),
    );
    let up = |assignment_id, http_status, tls| CheckResult {
        assignment_id,
        status: CheckStatus::Up,
        http_status: Some(http_status),
        latency_ms: 142,
        failure: None,
        tls_expires_at_ms: tls,
        checked_at_ms: T0_MS + 1_234,
        spec_hash: spec.clone(),
        signature: String::new(),
    };
    let down = |assignment_id, failure, http_status, latency_ms| CheckResult {
        assignment_id,
        status: CheckStatus::Down,
        http_status,
        latency_ms,
        failure: Some(failure),
        tls_expires_at_ms: None,
        checked_at_ms: T0_MS + 2_000,
        spec_hash: spec.clone(),
        signature: String::new(),
    };
    let cases = [
        up(4_294_967_301, 200, Some(1_900_000_000_000)),
        up(2, 301, None),
        down(3, FailureReason::Timeout, None, 10_000),
        down(4, FailureReason::Dns, None, 12),
        down(5, FailureReason::Connect, None, 1),
        down(6, FailureReason::Tls, None, 35),
        down(7, FailureReason::HttpStatus, Some(503), 80),
        down(8, FailureReason::KeywordMissing, Some(200), 95),
        down(9, FailureReason::RedirectLoop, Some(302), 410),
        CheckResult {
            spec_hash: full.clone(),
            ..down(10, FailureReason::KeywordPresent, Some(200), 90)
        },
        CheckResult {
            spec_hash: full.clone(),
            ..down(10, FailureReason::JsonMismatch, Some(200), 91)
        },
        CheckResult {
            status: CheckStatus::Degraded,
            spec_hash: full.clone(),
            ..down(10, FailureReason::TooSlow, Some(200), 1_840)
        },
        CheckResult {
            spec_hash: dns,
            ..down(12, FailureReason::DnsMismatch, None, 23)
        },
    ];
    sign_results(&cases)
}

/// Results as stored before `overlaps/v2` (layout v1, no spec hash), for verifiers
/// of old records.
pub(super) fn results_v1() -> Vec<ResultVector> {
    let key = key(1);
    let cases = [
        (11, CheckStatus::Up, Some(200), 0u8),
        (12, CheckStatus::Down, None, FailureReason::Timeout.code()),
    ];
    cases
        .into_iter()
        .map(|(assignment_id, status, http_status, failure_code)| {
            let fields = signing::ResultFields {
                assignment_id,
                status_code: status.code(),
                http_status,
                latency_ms: 120,
                failure_code,
                tls_expires_at_ms: None,
                checked_at_ms: T0_MS + 3_000,
                layout: signing::ResultLayout::V1,
            };
            let bytes = signing::result_bytes(HUB_ID, &fields);
            ResultVector {
                key_seed: hex::encode(key.seed()),
                public_key: key.public_key().to_string(),
                hub_id: HUB_ID.into(),
                failure_code,
                signature: hex::encode(key.sign(&bytes)),
                bytes: hex::encode(bytes),
                message: serde_json::Value::Null,
            }
        })
        .collect()
}

fn sign_results(cases: &[CheckResult]) -> Vec<ResultVector> {
    let key = key(1);
    cases
        .iter()
        .cloned()
        .map(|result| {
            let result = result.sign(HUB_ID, &key);
            let bytes = signing::result_bytes(HUB_ID, &result.fields());
            ResultVector {
                key_seed: hex::encode(key.seed()),
                public_key: key.public_key().to_string(),
                hub_id: HUB_ID.into(),
                failure_code: result.fields().failure_code,
                bytes: hex::encode(bytes),
                signature: result.signature.clone(),
                message: serde_json::to_value(ValidatorMessage::Result(result)).unwrap_or_default(),
            }
        })
        .collect()
}
