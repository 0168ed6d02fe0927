//! What a validator is asked to check (the site's assertions), its canonical bytes
//! and their SHA-256 `spec_hash`, which every `overlaps/v2` result signs: a hub can
//! never later claim a validator evaluated assertions other than those it sent.
//!
//! Also the small JSONPath subset the `json_path` assertion uses (`$`, `.name`,
//! `["name"]`, `[index]`), shared by the API (validation) and the validator
//! (evaluation) so both read a path the same way.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain tag of the canonical spec bytes.
pub const SPEC_DOMAIN: &[u8] = b"overlaps/v2/check-spec";

/// Accepted status ranges when a site names none: 200–399.
pub const DEFAULT_ACCEPTED: [StatusRange; 1] = [StatusRange { from: 200, to: 399 }];

/// At most this many accepted status ranges per site.
pub const MAX_STATUS_RANGES: usize = 16;
/// Longest accepted `json_path`, in bytes.
pub const MAX_JSON_PATH_BYTES: usize = 256;
/// Longest accepted `json_expected` (canonical JSON text), in bytes.
pub const MAX_JSON_EXPECTED_BYTES: usize = 1024;

/// An inclusive range of HTTP status codes that count as up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StatusRange {
    /// First accepted code (100..=599).
    pub from: u16,
    /// Last accepted code (`from`..=599).
    pub to: u16,
}

impl StatusRange {
    /// Whether `status` lies in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.from..=self.to).contains(&status)
    }

    /// Parses `"200-299"` or `"301"`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::StatusRange(text.to_owned());
        let (from, to) = match text.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (text.trim(), text.trim()),
        };
        let from: u16 = from.parse().map_err(|_| bad())?;
        let to: u16 = to.parse().map_err(|_| bad())?;
        if !(100..=599).contains(&from) || !(from..=599).contains(&to) {
            return Err(bad());
        }
        Ok(StatusRange { from, to })
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// Why an assertion is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not `NNN` or `NNN-MMM` within 100..=599, ascending.
    #[error("status range {0:?} must be a code or a range like 200-299 within 100..599")]
    StatusRange(String),
    /// Too many ranges, or none.
    #[error("accepted_status must hold 1 to 16 ranges")]
    RangeCount,
    /// A JSONPath outside the supported subset.
    #[error("json_path {0}")]
    JsonPath(String),
}

/// Parses a comma-separated stored list of ranges (`"200-299,301"`).
pub fn parse_ranges(text: &str) -> Result<Vec<StatusRange>, SpecError> {
    let ranges = text
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(StatusRange::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if ranges.is_empty() || ranges.len() > MAX_STATUS_RANGES {
        return Err(SpecError::RangeCount);
    }
    Ok(ranges)
}

/// Writes ranges as the stored comma-separated list.
pub fn format_ranges(ranges: &[StatusRange]) -> String {
    ranges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object member.
    Key(String),
    /// An array element (0-based).
    Index(usize),
}

/// Parses the supported subset: `$` followed by `.name` (letters, digits, `_`,
/// `-`), `["any name"]` or `[index]` steps. Wildcards, filters, slices and
/// recursive descent are refused: an assertion must name exactly one value.
pub fn parse_json_path(path: &str) -> Result<Vec<PathStep>, SpecError> {
    let err = |why: &str| SpecError::JsonPath(why.to_owned());
    if path.len() > MAX_JSON_PATH_BYTES {
        return Err(err("must be at most 256 bytes"));
    }
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| err("must start with $"))?;
    let mut steps = Vec::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '-' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    return Err(err("has an empty or unsupported member name after '.'"));
                }
                steps.push(PathStep::Key(name));
            }
            '[' => {
                let mut inner = String::new();
                let mut closed = false;
                let mut quoted = false;
                for (_, n) in chars.by_ref() {
                    if n == '"' {
                        quoted = !quoted;
                    }
                    if n == ']' && !quoted {
                        closed = true;
                        break;
                    }
                    inner.push(n);
                }
                if !closed {
                    return Err(err("has an unclosed '['"));
                }
                if let Some(name) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    if name.contains('"') || name.contains('\\') {
                        return Err(err(
                            "member names in brackets may not hold quotes or backslashes",
                        ));
                    }
                    steps.push(PathStep::Key(name.to_owned()));
                } else {
                    let index: usize = inner
                        .parse()
                        .map_err(|_| err("supports only [index] and [\"name\"] in brackets"))?;
                    steps.push(PathStep::Index(index));
                }
            }
            _ => return Err(err("supports only $, .name, [\"name\"] and [index]")),
        }
    }
    Ok(steps)
}

/// The value at `steps` in `document`, if there is one.
pub fn select<'a>(
    document: &'a serde_json::Value,
    steps: &[PathStep],
) -> Option<&'a serde_json::Value> {
    steps.iter().try_fold(document, |value, step| match step {
        PathStep::Key(name) => value.as_object()?.get(name),
        PathStep::Index(index) => value.as_array()?.get(*index),
    })
}

/// Whether two JSON values are equal as values: numbers by value (`1` equals
/// `1.0`), objects regardless of key order, arrays in order.
pub fn json_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The body assertion on a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordRule {
    /// The text looked for in the scanned part of the body.
    pub text: String,
    /// True: the site is down when the text is present.
    pub absent: bool,
}

/// The body assertion on a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRule {
    /// The path (see [`parse_json_path`]).
    pub path: String,
    /// The expected value as canonical JSON text (object keys sorted, no spaces).
    pub expected: String,
}

/// Everything that decides a check's outcome, as sent in `validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// The URL checked (`http`/`https`, `tcp://host:port` for a TCP check, or
    /// `dns://name/TYPE` for a DNS record check).
    pub url: String,
    /// `GET` or `HEAD`.
    pub method: String,
    /// Overall time limit.
    pub timeout_ms: u32,
    /// Status ranges counted as up (never empty; the default is 200–399).
    pub accepted_status: Vec<StatusRange>,
    /// The keyword assertion, if any.
    pub keyword: Option<KeywordRule>,
    /// The JSON assertion, if any.
    pub json: Option<JsonRule>,
    /// Slower than this (to the response headers) is `degraded`.
    pub max_response_ms: Option<u32>,
}

/// Kind code of an HTTP(S) check in the spec bytes.
const KIND_HTTP: u8 = 1;
/// Kind code of a TCP check (`tcp://host:port`: up when a connection completes).
const KIND_TCP: u8 = 2;
/// Kind code of a DNS record check (`dns://name/TYPE`; the expected answer, if
/// any, is the keyword rule).
const KIND_DNS: u8 = 3;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

impl CheckSpec {
    /// The canonical bytes (PROTOCOL.md §4, "Check-spec bytes").
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.url.len());
        out.extend_from_slice(SPEC_DOMAIN);
        out.push(0);
        out.push(if self.url.starts_with("tcp://") {
            KIND_TCP
        } else if self.url.starts_with(crate::dns_check::SCHEME_PREFIX) {
            KIND_DNS
        } else {
            KIND_HTTP
        });
        put_str(&mut out, &self.url);
        put_str(&mut out, &self.method);
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(u8::try_from(self.accepted_status.len()).unwrap_or(u8::MAX));
        for range in &self.accepted_status {
            out.extend_from_slice(&range.from.to_be_bytes());
            out.extend_from_slice(&range.to.to_be_bytes());
        }
        match &self.keyword {
            None => out.push(0),
            Some(rule) => {
                out.push(if rule.absent { 2 } else { 1 });
                put_str(&mut out, &rule.text);
            }
        }
        match &self.json {
            None => out.push(0),
            Some(rule) => {
                out.push(1);
                put_str(&mut out, &rule.path);
                put_str(&mut out, &rule.expected);
            }
        }
        match self.max_response_ms {
            None => out.push(0),
            Some(limit) => {
                out.push(1);
                out.extend_from_slice(&limit.to_be_bytes());
            }
        }
        out
    }

    /// SHA-256 of [`CheckSpec::canonical_bytes`].
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

/// A site's assertions as stored (`websites.assertions`), already validated by the
/// API. Absent keys are defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteAssertions {
    /// Canonical ranges (`"200-299,301"`).
    pub accepted_status: String,
    /// True: the keyword must be absent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keyword_absent: bool,
    /// JSONPath, with `json_expected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// The expected value as canonical JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_expected: Option<String>,
    /// Degraded above this many milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_ms: Option<i32>,
}

impl Default for SiteAssertions {
    fn default() -> Self {
        SiteAssertions {
            accepted_status: format_ranges(&DEFAULT_ACCEPTED),
            keyword_absent: false,
            json_path: None,
            json_expected: None,
            max_response_ms: None,
        }
    }
}

impl SiteAssertions {
    /// Reads the stored object; one that does not parse counts as the defaults
    /// (the API never writes such a thing).
    pub fn from_stored(value: &serde_json::Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    /// The object to store.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }

    /// The accepted ranges (the default when the stored text does not parse).
    pub fn ranges(&self) -> Vec<StatusRange> {
        parse_ranges(&self.accepted_status).unwrap_or_else(|_| DEFAULT_ACCEPTED.to_vec())
    }

    /// The expected JSON value.
    pub fn expected_value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.json_expected.as_deref()?).ok()
    }
}

/// The canonical text of a JSON value: object keys sorted, no whitespace.
pub fn canonical_json(value: &serde_json::Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` feature in this build).
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CheckSpec {
        CheckSpec {
            url: "https://example.com/health".into(),
            method: "GET".into(),
            timeout_ms: 5000,
            accepted_status: DEFAULT_ACCEPTED.to_vec(),
            keyword: None,
            json: None,
            max_response_ms: None,
        }
    }

    #[test]
    fn every_assertion_changes_the_spec_hash() {
        let base = spec();
        let variants = [
            CheckSpec {
                url: "https://example.com/".into(),
                ..base.clone()
            },
            CheckSpec {
                method: "HEAD".into(),
                ..base.clone()
            },
            CheckSpec {
                timeout_ms: 5001,
                ..base.clone()
            },
            CheckSpec {
                accepted_status: vec![StatusRange { from: 200, to: 200 }],
                ..base.clone()
            },
            CheckSpec {
                keyword: Some(KeywordRule {
                    text: "ok".into(),
                    absent: false,
                }),
                ..base.clone()
            },
            CheckSpec {
                keyword: Some(KeywordRule {
                    text: "ok".into(),
                    absent: true,
                }),
                ..base.clone()
            },
            CheckSpec {
                json: Some(JsonRule {
                    path: "$.ok".into(),
                    expected: "true".into(),
                }),
                ..base.clone()
            },
            CheckSpec {
                max_response_ms: Some(1000),
                ..base.clone()
            },
            CheckSpec {
                url: "dns://example.com/A".into(),
                ..base.clone()
            },
            CheckSpec {
                url: "dns://example.com/A".into(),
                keyword: Some(KeywordRule {
                    text: "192.0.2.1".into(),
                    absent: false,
                }),
                ..base.clone()
            },
        ];
        let mut hashes: Vec<[u8; 32]> = variants.iter().map(CheckSpec::hash).collect();
        hashes.push(base.hash());
        let count = hashes.len();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), count, "every variant hashes differently");
    }

    #[test]
    fn the_json_path_subset_reads_members_and_indexes_and_refuses_the_rest() {
        let doc: serde_json::Value =
            serde_json::json!({"a": {"b": [{"c": 1}, {"c": "two"}]}, "odd key": true});
        let at = |path: &str| select(&doc, &parse_json_path(path).unwrap()).cloned();
        assert_eq!(at("$.a.b[1].c"), Some(serde_json::json!("two")));
        assert_eq!(at("$[\"odd key\"]"), Some(serde_json::json!(true)));
        assert_eq!(at("$"), Some(doc.clone()));
        assert_eq!(at("$.a.b[5]"), None);
        for bad in [
            "a.b",
            "$..a",
            "$.a[*]",
            "$.a[0:2]",
            "$.",
            "$[",
            "$.a[?(@.x)]",
        ] {
            assert!(parse_json_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_values_compare_by_value() {
        use serde_json::json;
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(
            &json!({"a": [1, "x"], "b": null}),
            &json!({"b": null, "a": [1.0, "x"]})
        ));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(!json_equal(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_equal(&json!(-1), &json!(18446744073709551615u64)));
    }

    #[test]
    fn status_ranges_parse_and_print_alike() {
        let ranges = parse_ranges("200-299, 301").unwrap();
        assert_eq!(format_ranges(&ranges), "200-299,301");
        for bad in ["99", "600", "300-200", "abc", "200-", ""] {
            assert!(parse_ranges(bad).is_err(), "{bad}");
        }
    }
}
