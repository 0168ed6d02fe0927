//! A website's assertions (accepted status codes, keyword present or absent, a
//! JSON value, a response-time limit): their API shape and validation. The
//! validated values are stored on the site and sent with every assignment, whose
//! result signs their hash (`overlaps_shared::check_spec`).

use overlaps_shared::check_spec::{self, MAX_JSON_EXPECTED_BYTES, MAX_STATUS_RANGES};
use overlaps_shared::models::Website as WebsiteRow;
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::errors::ApiError;

/// The assertions as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssertionsView {
    /// Status codes counted as up: codes or ranges (default `["200-399"]`).
    #[schema(example = json!(["200-299"]))]
    pub accepted_status: Vec<String>,
    /// True: the site is down when `keyword` is in the body.
    pub keyword_absent: bool,
    /// A JSONPath (`$`, `.name`, `["name"]`, `[index]`) into the JSON body.
    #[schema(example = "$.status")]
    pub json_path: Option<String>,
    /// The value that must be at `json_path`.
    #[schema(schema_with = any_json_value)]
    pub json_expected: Option<Json>,
    /// A slower response (to the headers) is `degraded`.
    #[schema(example = 1000)]
    pub max_response_ms: Option<i32>,
}

impl From<&WebsiteRow> for AssertionsView {
    fn from(w: &WebsiteRow) -> Self {
        let a = w.site_assertions();
        AssertionsView {
            accepted_status: a.accepted_status.split(',').map(str::to_owned).collect(),
            keyword_absent: a.keyword_absent,
            json_expected: a.expected_value(),
            json_path: a.json_path,
            max_response_ms: a.max_response_ms,
        }
    }
}

/// The assertion fields of a create or update request (absent: default or unchanged).
#[derive(Debug, Clone, Default)]
pub struct AssertionsInput {
    /// New accepted ranges.
    pub accepted_status: Option<Vec<String>>,
    /// New keyword polarity.
    pub keyword_absent: Option<bool>,
    /// New path; an empty string removes the JSON assertion.
    pub json_path: Option<String>,
    /// New expected value.
    pub json_expected: Option<Json>,
    /// New limit; 0 removes it.
    pub max_response_ms: Option<i32>,
}

/// Validated assertions, as stored.
pub type Assertions = check_spec::SiteAssertions;

/// Applies `input` over `current` and checks the result against the site's other
/// settings (`keyword`, `method`, `timeout_ms`, already validated).
pub fn apply(
    current: Assertions,
    input: AssertionsInput,
    keyword: Option<&str>,
    method: &str,
    timeout_ms: i32,
) -> Result<Assertions, ApiError> {
    let accepted_status = match input.accepted_status {
        None => current.accepted_status,
        Some(list) => {
            if list.is_empty() || list.len() > MAX_STATUS_RANGES {
                return Err(ApiError::invalid(
                    "accepted_status",
                    "accepted_status must hold 1 to 16 codes or ranges",
                ));
            }
            let ranges = list
                .iter()
                .map(|item| check_spec::StatusRange::parse(item))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| ApiError::invalid("accepted_status", err.to_string()))?;
            check_spec::format_ranges(&ranges)
        }
    };
    // Removing the keyword drops its polarity unless the request sets it again.
    let keyword_absent = input
        .keyword_absent
        .unwrap_or(current.keyword_absent && keyword.is_some());
    if keyword_absent && keyword.is_none() {
        return Err(ApiError::invalid(
            "keyword_absent",
            "keyword_absent needs a keyword",
        ));
    }
    let (json_path, json_expected) = match (input.json_path, input.json_expected) {
        (Some(path), _) if path.is_empty() => (None, None),
        (Some(path), Some(expected)) => (Some(path), Some(expected)),
        (Some(_), None) if current.json_expected.is_none() => {
            return Err(ApiError::invalid(
                "json_expected",
                "json_path needs json_expected, the value it must equal",
            ));
        }
        (Some(path), None) => (Some(path), current.json_expected.as_deref().and_then(parse)),
        (None, Some(_)) if current.json_path.is_none() => {
            return Err(ApiError::invalid(
                "json_path",
                "json_expected needs json_path, where the value is read",
            ));
        }
        (None, Some(expected)) => (current.json_path, Some(expected)),
        (None, None) => (
            current.json_path,
            current.json_expected.as_deref().and_then(parse),
        ),
    };
    if let Some(path) = &json_path {
        check_spec::parse_json_path(path)
            .map_err(|err| ApiError::invalid("json_path", err.to_string()))?;
        if method != "GET" {
            return Err(ApiError::invalid(
                "json_path",
                "a JSON assertion needs method GET (HEAD has no body)",
            ));
        }
    }
    let json_expected = json_expected.map(|v| check_spec::canonical_json(&v));
    if json_expected
        .as_ref()
        .is_some_and(|text| text.len() > MAX_JSON_EXPECTED_BYTES)
    {
        return Err(ApiError::invalid(
            "json_expected",
            "json_expected must be at most 1024 bytes of JSON",
        ));
    }
    let max_response_ms = match input.max_response_ms {
        None => current.max_response_ms,
        Some(0) => None,
        Some(limit) => Some(limit),
    };
    if let Some(limit) = max_response_ms
        && !(1..timeout_ms).contains(&limit)
    {
        return Err(ApiError::invalid(
            "max_response_ms",
            format!(
                "max_response_ms must be between 1 and {} (below timeout_ms), or 0 to remove it",
                timeout_ms - 1
            ),
        ));
    }
    Ok(Assertions {
        accepted_status,
        keyword_absent,
        json_path,
        json_expected,
        max_response_ms,
    })
}

fn parse(text: &str) -> Option<Json> {
    serde_json::from_str(text).ok()
}

/// Any JSON value (string, number, boolean, array or object), or null: the schema
/// of `json_expected` (utoipa would describe `serde_json::Value` as an object).
fn any_json_value() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
        .description(Some(
            "The JSON value that must be at `json_path` (any JSON type).",
        ))
        .build()
}
