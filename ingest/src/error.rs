//! The one error shape of the HTTP API: `{"code", "message", "field"}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use billstream_processors::StoreError;
use serde::Serialize;

/// An API error: stable code, human message, and the offending field when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// What was wrong and what would be right.
    pub message: String,
    /// JSON path of the field at fault, e.g. `lines[2].unit_price`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.into(), message: message.into(), field: None }
    }

    /// 422: the body parsed but a value breaks a rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { status: 422, code: "invalid_field".into(), message: message.into(), field: Some(field.into()) }
    }

    /// 400: the body is not the JSON expected.
    pub fn bad_json(field: Option<String>, message: impl Into<String>) -> Self {
        ApiError { status: 400, code: "invalid_json".into(), message: message.into(), field: field.filter(|f| !f.is_empty() && f != ".") }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// 503: a dependency (broker, store) is unavailable; retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadPageToken => ApiError::invalid("page_token", "page_token is not one this API issued"),
            other => ApiError::unavailable(format!("hot store: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}
