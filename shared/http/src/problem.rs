//! RFC 9457 problem documents. The error enum is the API contract: each variant has one status and
//! one problem type, decided in `ApiError::problem` and nowhere else.
//!
//! Handlers return a [`Problem`] as a response *extension*; the `render_problems` middleware then
//! writes the document with the request's path and request id, which the handler need not know.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plan::{PlanError, Violation, Violations};
use plan_index::IndexReadError;
use serde::Serialize;

use crate::auth::AuthError;

/// Base of every problem `type` URI; they identify, they are not meant to be fetched.
pub const PROBLEM_BASE: &str = "https://healthplan.dev/problems/";

/// An error as the client will see it, before the request-specific members are added.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The first violations (at most [`plan::validate::MAX_LISTED_VIOLATIONS`]) ...
    pub violations: Vec<Violation>,
    /// ... and how many there were in all.
    pub violation_count: usize,
    /// `Allow` for 405, `Retry-After` for 503, `Accept-Patch` for 415 on PATCH.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, slug, title, detail: detail.into(), violations: Vec::new(), violation_count: 0, headers: Vec::new() }
    }

    pub fn with_violations(mut self, violations: &Violations) -> Self {
        self.violations = violations.listed().to_vec();
        self.violation_count = violations.total();
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// A header built at run time; one that is not a valid header value is left out.
    pub fn with_header_text(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        let mut problem = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this path does not support this method; see Allow",
        );
        problem.headers.push((header::ALLOW, allow));
        problem
    }

    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "route-not-found", "No such route", "no route matches this path; the API lives under /v1")
    }

    /// The full document for one request.
    pub fn document(&self, instance: &str, request_id: &str) -> ProblemDocument<'_> {
        ProblemDocument {
            kind: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            instance: instance.to_owned(),
            request_id: request_id.to_owned(),
            violations: &self.violations,
            violation_count: (self.violation_count > 0).then_some(self.violation_count),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: &'a str,
    pub instance: String,
    #[serde(rename = "requestId")]
    pub request_id: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub violations: &'a [Violation],
    /// How many violations there were; `violations` lists the first 100.
    #[serde(rename = "violationCount", skip_serializing_if = "Option::is_none")]
    pub violation_count: Option<usize>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Every way a request can fail: the domain's errors and the edge's own.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Index(#[from] IndexReadError),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// Query parameters this edge could not read or that name nothing it knows.
    #[error("invalid query parameters")]
    InvalidQuery(Violations),
    /// A search (body or query parameters) that does not parse into the typed search.
    #[error("the search is not valid")]
    InvalidSearch(Violations),
    /// A patch body that is neither a merge patch nor a JSON Patch.
    #[error("{0}")]
    InvalidPatch(String),
    /// An answer this edge could not render (a bug: logged).
    #[error("the answer could not be rendered: {0}")]
    Unrenderable(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("could not read the request body")]
    UnreadableBody,
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout { seconds: u64 },
    #[error("unsupported content type; send {expected}")]
    UnsupportedMediaType { expected: &'static str, patch: bool },
    #[error("'{0}' is not a valid objectId (1 to 128 letters, digits, '.', '_' or '-')")]
    InvalidId(String),
    #[error("the {0} header is not a valid entity-tag list")]
    InvalidHeader(&'static str),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A protected handler ran without the authentication layer naming a tenant: a wiring bug.
    #[error("the request reached a handler without an authenticated tenant")]
    NoTenant,
}

impl ApiError {
    /// The problem document this error answers: a pure mapping (logging is [`Self::log`]'s).
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        let detail = self.to_string();
        match self {
            Self::Plan(error) => plan_problem(error),
            Self::Index(error) => index_problem(error),
            Self::MalformedJson(_) => Problem::new(S::BAD_REQUEST, "malformed-json", "Malformed JSON", detail),
            Self::InvalidQuery(violations) => invalid_query(violations, detail),
            Self::InvalidSearch(violations) => invalid_search(violations),
            Self::InvalidPatch(_) => Problem::new(S::BAD_REQUEST, "invalid-patch", "Invalid patch document", detail),
            Self::Unrenderable(_) => internal(),
            Self::PayloadTooLarge { .. } => Problem::new(S::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large", detail),
            Self::UnreadableBody => Problem::new(S::BAD_REQUEST, "unreadable-body", "Unreadable body", detail),
            Self::BodyTimeout { .. } => {
                Problem::new(S::REQUEST_TIMEOUT, "body-timeout", "Request body timeout", detail).with_header(header::CONNECTION, "close")
            }
            Self::UnsupportedMediaType { patch, .. } => {
                let problem = Problem::new(S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type", detail);
                if *patch {
                    problem.with_header(
                        header::HeaderName::from_static("accept-patch"),
                        "application/merge-patch+json, application/json-patch+json, application/json",
                    )
                } else {
                    problem
                }
            }
            Self::InvalidId(_) => Problem::new(S::BAD_REQUEST, "invalid-id", "Invalid objectId", detail),
            Self::InvalidHeader(_) => Problem::new(S::BAD_REQUEST, "invalid-header", "Invalid header", detail),
            Self::Auth(error) => auth_problem(error),
            Self::NoTenant => internal(),
        }
    }

    /// The one log line of an answer in the 5xx range: a backend that is down is a warning,
    /// anything else an error. Refusals are logged by the authentication guard, which knows why.
    fn log(&self) {
        match self {
            Self::Plan(PlanError::Unavailable(source)) => tracing::warn!(error = %source, "store unavailable"),
            Self::Plan(PlanError::Contended) => tracing::warn!(error = %self, "write contended"),
            Self::Index(IndexReadError::Unavailable(source)) => tracing::warn!(error = %source, "search index unavailable"),
            Self::Index(IndexReadError::Internal(source)) => tracing::error!(error = %source, "search index error"),
            Self::Plan(PlanError::Internal(source)) => tracing::error!(error = %source, "internal error"),
            Self::NoTenant => tracing::error!("{self}: refused (fail closed)"),
            Self::Auth(_) => {}
            other => tracing::error!(error = %other, "internal error"),
        }
    }
}

fn internal() -> Problem {
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an unexpected error occurred; it has been logged")
}

fn invalid_query(violations: &Violations, detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query parameters", detail).with_violations(violations)
}

fn invalid_search(violations: &Violations) -> Problem {
    let detail = format!("the search is not valid: {}", counted(violations));
    Problem::new(StatusCode::BAD_REQUEST, "invalid-search", "Invalid search", detail).with_violations(violations)
}

/// The realm named in every `WWW-Authenticate` challenge.
const REALM: &str = "plan-api";

/// RFC 6750 challenges ride along with the problem document: `invalid_token` for a missing or bad
/// token (401), `insufficient_scope` naming the scope needed (403).
fn auth_problem(error: &AuthError) -> Problem {
    use StatusCode as S;
    let detail = error.to_string();
    match error {
        AuthError::InvalidToken(reason) => {
            let challenge = format!(r#"Bearer realm="{REALM}", error="invalid_token", error_description="{}""#, reason.description());
            Problem::new(S::UNAUTHORIZED, "invalid-token", "Authentication required", detail)
                .with_header_text(header::WWW_AUTHENTICATE, &challenge)
        }
        AuthError::InsufficientScope(scope) => {
            let challenge = format!(r#"Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}""#);
            Problem::new(S::FORBIDDEN, "insufficient-scope", "Insufficient scope", detail)
                .with_header_text(header::WWW_AUTHENTICATE, &challenge)
        }
        // Authenticated, but the token names no organisation: asking for another token with more
        // scopes would not help, so no scope challenge, just the problem.
        AuthError::NoOrganisation(_) => Problem::new(S::FORBIDDEN, "no-organisation", "No organisation", detail),
        AuthError::KeysUnavailable => Problem::new(S::SERVICE_UNAVAILABLE, "auth-unavailable", "Authentication unavailable", detail)
            .with_header(header::RETRY_AFTER, "5"),
    }
}

fn plan_problem(error: &PlanError) -> Problem {
    use StatusCode as S;
    let detail = error.to_string();
    match error {
        PlanError::Invalid(violations) => {
            let detail = format!("the document is not a valid plan: {}", counted(violations));
            Problem::new(S::BAD_REQUEST, "validation-failed", "Invalid plan", detail).with_violations(violations)
        }
        PlanError::InvalidQuery(violations) => invalid_query(violations, detail),
        PlanError::TooLarge { .. } => Problem::new(S::PAYLOAD_TOO_LARGE, "plan-too-large", "Plan too large", detail),
        PlanError::IdMismatch { .. } => Problem::new(S::BAD_REQUEST, "id-mismatch", "objectId does not match the path", detail),
        PlanError::PlanIdChanged { .. } => Problem::new(S::BAD_REQUEST, "plan-id-changed", "A plan's objectId cannot change", detail),
        PlanError::InvalidPatch(_) => Problem::new(S::BAD_REQUEST, "invalid-patch", "Invalid patch document", detail),
        PlanError::NotFound(_) => Problem::new(S::NOT_FOUND, "not-found", "Not found", detail),
        PlanError::NestedObject { plan_id, .. } => {
            let detail = format!(
                "{detail}: only a whole plan is replaced or deleted here. To remove or change this object, PATCH /v1/plan/{plan_id} \
                 (for example a JSON Patch 'remove' of its path, with Content-Type: application/json-patch+json)"
            );
            Problem::new(S::METHOD_NOT_ALLOWED, "nested-object", "Not a plan", detail).with_header(header::ALLOW, "GET, HEAD")
        }
        PlanError::ForeignOrg(_) => Problem::new(S::FORBIDDEN, "foreign-org", "Another organisation's plan", detail),
        PlanError::PlanExists(_) => Problem::new(S::CONFLICT, "plan-exists", "Plan already exists", detail),
        PlanError::IdTaken(_) => Problem::new(S::CONFLICT, "object-id-taken", "objectId already in use", detail),
        PlanError::PatchConflict(_) => Problem::new(S::CONFLICT, "patch-conflict", "Patch does not apply", detail),
        PlanError::PreconditionFailed => Problem::new(S::PRECONDITION_FAILED, "precondition-failed", "Precondition failed", detail),
        PlanError::PreconditionRequired => Problem::new(S::PRECONDITION_REQUIRED, "precondition-required", "Precondition required", detail),
        PlanError::Contended => {
            Problem::new(S::SERVICE_UNAVAILABLE, "contended", "Too many concurrent writers", detail).with_header(header::RETRY_AFTER, "1")
        }
        PlanError::Unavailable(_) => {
            Problem::new(S::SERVICE_UNAVAILABLE, "store-unavailable", "Service unavailable", "the plan store is unavailable; retry shortly")
                .with_header(header::RETRY_AFTER, "1")
        }
        PlanError::Internal(_) => internal(),
    }
}

/// "3 violation(s), listed in 'violations'", or which of them are listed when not all are.
fn counted(violations: &Violations) -> String {
    let (total, listed) = (violations.total(), violations.listed().len());
    if total == listed {
        format!("{total} violation(s), listed in 'violations'")
    } else {
        format!("{total} violations; 'violations' lists the first {listed}")
    }
}

fn index_problem(error: &IndexReadError) -> Problem {
    use StatusCode as S;
    match error {
        IndexReadError::InvalidSearch(violations) => invalid_search(violations),
        IndexReadError::NotFound { .. } => Problem::new(S::NOT_FOUND, "not-found", "Not found", error.to_string()),
        IndexReadError::Unavailable(_) => Problem::new(
            S::SERVICE_UNAVAILABLE,
            "index-unavailable",
            "Service unavailable",
            "the search index is unavailable; retry shortly",
        )
        .with_header(header::RETRY_AFTER, "1"),
        IndexReadError::Internal(_) => internal(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status.is_server_error() {
            self.log();
        }
        problem.into_response()
    }
}
