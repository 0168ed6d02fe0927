//! The API's one error type and its JSON body `{code, message, details}`.
//!
//! Every failure, including unknown routes and malformed JSON, paths or queries,
//! answers JSON with a stable `code`; nothing becomes an HTML page or a bare 500.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "validation_failed", "message": "interval_seconds must be between 30 and 86400", "details": {"field": "interval_seconds"}}))]
pub struct ErrorBody {
    /// Stable, machine-readable code (`unauthorized`, `not_found`, `validation_failed`, ...).
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
    /// Structured context (the field at fault, limits, ...), or null.
    #[schema(value_type = Object, nullable = true)]
    pub details: Option<Json>,
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, a malformed or unknown key, or a revoked key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is valid but the role may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Nothing there, or nothing the caller may see (another owner's resource).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Nothing there, with a more specific code than `not_found`.
    #[error("{message}")]
    Missing {
        /// Stable code.
        code: &'static str,
        /// What is missing.
        message: String,
    },
    /// A field is invalid.
    #[error("{message}")]
    Validation {
        /// The field at fault.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The request conflicts with stored state (a taken e-mail, ...).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// The request could not be parsed (bad JSON, path or query).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What the parser said.
        message: String,
    },
    /// Too many requests for this key or address.
    #[error("rate limit exceeded; retry later")]
    RateLimited,
    /// The account's quota does not allow this.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Stored data contradicts itself (logged; never the caller's fault).
    #[error("internal error")]
    Inconsistent(String),
    /// The database or Redis failed; details are logged, not returned.
    #[error("internal error")]
    Internal(#[from] overlaps_shared::Error),
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        ApiError::Internal(err.into())
    }
}

impl ApiError {
    /// A validation failure of `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field,
            message: message.into(),
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Conflict { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Missing { code, .. } => code,
            ApiError::RateLimited => "rate_limited",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::Internal(_) | ApiError::Inconsistent(_) => "internal",
        }
    }

    fn details(&self) -> Option<Json> {
        match self {
            ApiError::Validation { field, .. } => Some(serde_json::json!({ "field": field })),
            _ => None,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::Missing { .. } => StatusCode::NOT_FOUND,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) | ApiError::Inconsistent(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(err) => tracing::error!(error = %err, "request failed"),
            ApiError::Inconsistent(what) => tracing::error!(what, "stored data is inconsistent"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if matches!(self, ApiError::RateLimited) {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(ErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
            details: self.details(),
        })
    }
}

/// Makes actix's own extractor failures (JSON body, path, query) JSON 400s.
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _req| {
                let code = match &err {
                    actix_web::error::JsonPayloadError::ContentType => "unsupported_media_type",
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        "payload_too_large"
                    }
                    _ => "malformed_json",
                };
                ApiError::BadRequest {
                    code,
                    message: err.to_string(),
                }
                .into()
            }),
    )
    .app_data(web::PathConfig::default().error_handler(|err, _req| {
        ApiError::BadRequest {
            code: "bad_path",
            message: err.to_string(),
        }
        .into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::BadRequest {
            code: "bad_query",
            message: err.to_string(),
        }
        .into()
    }));
}

/// The answer to a route that does not exist (or a method it does not have).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let error = ApiError::NotFound("route");
    let mut response = error.error_response();
    // Keep the path in the log, not in the body, so nothing is reflected.
    tracing::debug!(path = req.path(), method = %req.method(), "no such route");
    response.head_mut().status = StatusCode::NOT_FOUND;
    response
}
