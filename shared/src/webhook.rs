//! The signature of a generic webhook delivery (`X-Overlaps-Signature`), here so
//! that the hub's sender and the published reference vectors use one definition.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The `X-Overlaps-Signature` value of a webhook body sent at Unix second
/// `timestamp`: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>." || body>`. The
/// time is inside what is signed, so a receiver that refuses old timestamps cannot
/// be sent a captured delivery again.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    // HMAC takes keys of any length; `None` cannot happen in practice.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}
