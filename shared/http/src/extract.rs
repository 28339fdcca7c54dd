//! Extractors: every piece of a request is parsed here into domain types, and every failure is an
//! [`ApiError`] (so it answers in the API's own problem format, never axum's plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use plan::{ObjectId, PlanPatch, Preconditions, TagCondition};
use serde_json::Value;

use crate::problem::ApiError;

/// The largest body accepted (413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request body may take to arrive, all of it (408 after): a client that declares a
/// length and sends less cannot hold a request open. API Gateway buffers bodies before Lambda
/// sees them, so this matters to the local server.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The `{id}` path segment, parsed as an objectId.
pub struct PathId(pub ObjectId);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::InvalidId(String::new()))?;
        ObjectId::parse(&raw).map(PathId).map_err(|_| ApiError::InvalidId(raw.chars().take(140).collect()))
    }
}

/// If-Match and If-None-Match, parsed.
pub struct Conditions(pub Preconditions);

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Conditions(Preconditions {
            if_match: tag_condition(&parts.headers, header::IF_MATCH, "If-Match")?,
            if_none_match: tag_condition(&parts.headers, header::IF_NONE_MATCH, "If-None-Match")?,
        }))
    }
}

fn tag_condition(headers: &HeaderMap, name: HeaderName, label: &'static str) -> Result<Option<TagCondition>, ApiError> {
    let mut lines = headers.get_all(name).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let lines: Vec<&str> = lines.map(|v| v.to_str()).collect::<Result<_, _>>().map_err(|_| ApiError::InvalidHeader(label))?;
    TagCondition::parse(lines).map(Some).map_err(|_| ApiError::InvalidHeader(label))
}

/// An `application/json` body, at most [`MAX_BODY_BYTES`], parsed (not yet validated).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match media_type(request.headers()).as_deref() {
            Some("application/json") => {}
            _ => return Err(ApiError::UnsupportedMediaType { expected: "Content-Type: application/json", patch: false }),
        }
        parse_json(&read_body(request).await?).map(JsonBody)
    }
}

/// A PATCH body: a merge patch (`application/merge-patch+json` or `application/json`) or a JSON
/// Patch (`application/json-patch+json`).
pub struct PatchBody(pub PlanPatch);

impl<S: Send + Sync> FromRequest<S> for PatchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let media_type = media_type(request.headers());
        let json_patch = match media_type.as_deref() {
            Some("application/json" | "application/merge-patch+json") => false,
            Some("application/json-patch+json") => true,
            _ => {
                return Err(ApiError::UnsupportedMediaType {
                    expected: "application/merge-patch+json, application/json-patch+json or application/json",
                    patch: true,
                });
            }
        };
        let document = parse_json(&read_body(request).await?)?;
        let patch = if json_patch { PlanPatch::json_patch(document) } else { PlanPatch::merge(document) };
        patch.map(PatchBody).map_err(|e| ApiError::InvalidPatch(e.to_string()))
    }
}

/// The media type without parameters, lower-cased (`Application/JSON; charset=utf-8` -> `application/json`).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// The body, at most [`MAX_BODY_BYTES`] and within [`BODY_READ_TIMEOUT`]. A declared
/// `Content-Length` over the limit is refused before a byte of the body is read.
async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    let read = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Err(_) => Err(ApiError::BodyTimeout { seconds: BODY_READ_TIMEOUT.as_secs() }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            if error.into_inner().is::<http_body_util::LengthLimitError>() {
                Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES })
            } else {
                Err(ApiError::UnreadableBody)
            }
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// The `limit` and `cursor` query parameters of `GET /v1/plan`, validated.
pub struct ListParams(pub plan::ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        struct Raw {
            limit: Option<String>,
            cursor: Option<String>,
        }
        let invalid = |e: String| ApiError::InvalidQuery(plan::Violations::one("", e));
        let axum::extract::Query(raw) = axum::extract::Query::<Raw>::try_from_uri(&parts.uri).map_err(|e| invalid(e.body_text()))?;
        Ok(ListParams(plan::ListQuery::parse(raw.limit.as_deref(), raw.cursor.as_deref())?))
    }
}

/// The JSON body of `POST /v1/search`, parsed into a typed search.
pub struct SearchBody(pub plan_index::SearchQuery);

impl<S: Send + Sync> FromRequest<S> for SearchBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(document) = JsonBody::from_request(request, state).await?;
        plan_index::SearchQuery::from_json(&document).map(SearchBody).map_err(ApiError::InvalidSearch)
    }
}

/// The query parameters of `GET /v1/search`, parsed into the same typed search.
pub struct SearchParams(pub plan_index::SearchQuery);

impl<S: Send + Sync> FromRequestParts<S> for SearchParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let invalid = ApiError::InvalidSearch;
        let pairs = query_pairs(parts).map_err(|e| invalid(plan::Violations::one("", e)))?;
        plan_index::SearchQuery::from_params(&pairs).map(SearchParams).map_err(invalid)
    }
}

/// `GET /v1/plan/es_data?id=&parent_type=`: an objectId, and optionally the relation of the
/// parent whose children are asked for (`plan` or `linkedPlanServices`).
pub struct IndexDataParams {
    pub id: ObjectId,
    pub parent_type: Option<plan_index::ParentRelation>,
}

impl<S: Send + Sync> FromRequestParts<S> for IndexDataParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let invalid = ApiError::InvalidQuery;
        let pairs = query_pairs(parts).map_err(|e| invalid(plan::Violations::one("", e)))?;
        let mut violations = plan::Violations::new();
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &pairs {
            if !["id", "parent_type"].contains(&name.as_str()) {
                violations.push(plan::Violation::new(
                    format!("/{}", name.chars().take(64).collect::<String>()),
                    "unknown parameter; known: id, parent_type",
                ));
            } else if !seen.insert(name.as_str()) {
                violations.push(plan::Violation::new(format!("/{name}"), "given more than once"));
            }
        }
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let id = match get("id").map(ObjectId::parse) {
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => {
                violations.push(plan::Violation::new("/id", e.to_string()));
                None
            }
            None => {
                violations.push(plan::Violation::new("/id", "the objectId of the document to show is required"));
                None
            }
        };
        let parent_type = match get("parent_type") {
            None => None,
            Some(raw) => {
                let parsed = plan_index::ParentRelation::parse(raw);
                if parsed.is_none() {
                    violations.push(plan::Violation::new("/parent_type", "plan or linkedPlanServices (the relations that have children)"));
                }
                parsed
            }
        };
        match id {
            Some(id) if violations.is_empty() => Ok(IndexDataParams { id, parent_type }),
            _ => Err(invalid(violations)),
        }
    }
}

fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, String> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map(|q| q.0).map_err(|e| e.body_text())
}

/// Who is asking: the organisation the caller is confined to and the request id. Authentication
/// puts the caller's [`plan::Tenant`] into every request it lets through (unrestricted only when
/// isolation is off); a request that reaches a handler without one was never authenticated, and
/// is refused rather than treated as unrestricted (fail closed).
pub struct CallerContext(pub plan::Caller);

impl<S: Send + Sync> FromRequestParts<S> for CallerContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let tenant = parts.extensions.get::<plan::Tenant>().cloned().ok_or(ApiError::NoTenant)?;
        let request_id = parts.extensions.get::<crate::middleware::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        let trace_id = parts.extensions.get::<crate::middleware::TraceId>().map(|t| t.0.clone());
        Ok(CallerContext(plan::Caller::new(tenant, request_id).traced(trace_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn caller(request: axum::http::Request<()>) -> Result<plan::Caller, ApiError> {
        let (mut parts, ()) = request.into_parts();
        CallerContext::from_request_parts(&mut parts, &()).await.map(|c| c.0)
    }

    #[tokio::test]
    async fn a_request_without_a_tenant_is_refused_not_unrestricted() {
        let refused = caller(axum::http::Request::new(())).await.unwrap_err();
        assert!(matches!(refused, ApiError::NoTenant));
        assert_eq!(refused.problem().status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut confined = axum::http::Request::new(());
        confined.extensions_mut().insert(plan::Tenant::org("a.com"));
        assert_eq!(caller(confined).await.unwrap().tenant, plan::Tenant::org("a.com"));
    }

    fn post(headers: &[(&str, &str)], body: impl Into<Body>) -> Request {
        let mut builder = axum::http::Request::post("/v1/plan");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.into()).unwrap()
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        // The body never ends: only the declared length can answer this in time.
        let endless = Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let too_long = (MAX_BODY_BYTES + 1).to_string();
        let request = post(&[("content-type", "application/json"), ("content-length", too_long.as_str())], endless);
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), JsonBody::from_request(request, &())).await.unwrap();
        assert!(matches!(refused, Err(ApiError::PayloadTooLarge { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out() {
        let stalled = Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let request = post(&[("content-type", "application/json"), ("content-length", "10")], stalled);
        let refused = JsonBody::from_request(request, &()).await;
        let Err(error) = refused else { panic!("a stalled body was accepted") };
        assert!(matches!(error, ApiError::BodyTimeout { seconds: 30 }));
        assert_eq!(error.problem().status, axum::http::StatusCode::REQUEST_TIMEOUT);
    }
}
