//! What one assignment asks a validator to check, built from a site's stored
//! columns (or a canary's): the `validate` message the server sends, and the spec
//! hash and response-time limit recorded on the assignment. The scheduler records
//! them when it opens a round and the server's dispatch rebuilds the message from
//! the same columns, so both must build it here, the one way.

use diesel::QueryableByName;
use diesel::sql_types::{Int4, Jsonb, Nullable, Text};

use crate::check_spec::{self, CheckSpec, SiteAssertions};
use crate::protocol::ValidateRequest;

/// What an assignment records of the check it asks for: the spec hash its result
/// must sign and the response-time limit (as the assignment's columns store them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSpec {
    /// SHA-256 of the spec.
    pub hash: [u8; 32],
    /// `max_response_ms`, if the site has one.
    pub max_response_ms: Option<i32>,
}

/// A check as stored: a website's columns, or a canary's URL, keyword and timeout
/// with default assertions. Queries select these five columns by name (embed it
/// with `#[diesel(embed)]`).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct SiteCheck {
    /// http(s) URL, `tcp://host:port` or `dns://name/TYPE`.
    #[diesel(sql_type = Text)]
    pub url: String,
    /// `GET` or `HEAD`.
    #[diesel(sql_type = Text)]
    pub method: String,
    /// Overall time limit of the check.
    #[diesel(sql_type = Int4)]
    pub timeout_ms: i32,
    /// The site's keyword (or a DNS check's expected answer).
    #[diesel(sql_type = Nullable<Text>)]
    pub keyword: Option<String>,
    /// The site's stored assertions (`{}`: defaults).
    #[diesel(sql_type = Jsonb)]
    pub assertions: serde_json::Value,
}

impl SiteCheck {
    /// What an assignment of this check records: its spec hash and limit.
    pub fn recorded(&self) -> RecordedSpec {
        let request = self.request(0, 0, 0);
        RecordedSpec {
            hash: request.spec().hash(),
            max_response_ms: request
                .max_response_ms
                .and_then(|ms| i32::try_from(ms).ok()),
        }
    }

    /// The `validate` message for assignment `assignment_id` of `round`.
    pub fn request(&self, assignment_id: i64, round: i64, deadline_ms: i64) -> ValidateRequest {
        let a = SiteAssertions::from_stored(&self.assertions);
        // The default travels as no field at all (as before assertions existed).
        let accepted_status = Some(a.ranges())
            .filter(|ranges| ranges[..] != check_spec::DEFAULT_ACCEPTED[..])
            .unwrap_or_default();
        let json_expected = a.expected_value();
        ValidateRequest {
            assignment_id,
            round,
            url: self.url.clone(),
            method: self.method.clone(),
            timeout_ms: u32::try_from(self.timeout_ms).unwrap_or(0),
            keyword: self.keyword.clone(),
            keyword_absent: a.keyword_absent && self.keyword.is_some(),
            accepted_status,
            json_path: a.json_path.clone().filter(|_| json_expected.is_some()),
            json_expected,
            max_response_ms: a.max_response_ms.and_then(|ms| u32::try_from(ms).ok()),
            deadline_ms,
        }
    }

    /// The spec a result for this check signs.
    pub fn spec(&self) -> CheckSpec {
        // Assignment, round and deadline are not part of the spec.
        self.request(0, 0, 0).spec()
    }

    /// SHA-256 of the spec: what the assignment records and the result must sign.
    pub fn spec_hash(&self) -> [u8; 32] {
        self.spec().hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(assertions: serde_json::Value) -> SiteCheck {
        SiteCheck {
            url: "https://example.com/".into(),
            method: "GET".into(),
            timeout_ms: 5_000,
            keyword: Some("Welcome".into()),
            assertions,
        }
    }

    #[test]
    fn the_recorded_hash_is_the_hash_of_every_message_sent() {
        let check = site(serde_json::json!({
            "accepted_status": "200-299",
            "keyword_absent": true,
            "json_path": "$.ok",
            "json_expected": "true",
            "max_response_ms": 800,
        }));
        for (assignment, round, deadline) in [(1, 1, 0), (99, 7, 1_700_000_000_000)] {
            assert_eq!(
                check.request(assignment, round, deadline).spec().hash(),
                check.spec_hash()
            );
        }
        assert_eq!(check.recorded().max_response_ms, Some(800));
        assert_eq!(check.recorded().hash, check.spec_hash());
    }

    #[test]
    fn any_change_to_the_site_changes_the_hash() {
        let base = site(serde_json::json!({}));
        let mut changed = vec![
            site(serde_json::json!({ "max_response_ms": 800 })),
            site(serde_json::json!({ "keyword_absent": true })),
        ];
        let mut other = base.clone();
        other.url = "https://example.org/".into();
        changed.push(other);
        let mut other = base.clone();
        other.timeout_ms = 4_000;
        changed.push(other);
        let mut other = base.clone();
        other.keyword = None;
        changed.push(other);
        for check in changed {
            assert_ne!(check.spec_hash(), base.spec_hash(), "{check:?}");
        }
    }
}
