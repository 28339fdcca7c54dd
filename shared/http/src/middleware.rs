//! Request ids and problem rendering, applied around every router.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use axum::extract::State;
use axum::routing::MethodRouter;
use plan::Tenant;

use crate::auth::{AuthError, Authenticator, Scope};
use crate::problem::{ApiError, Problem};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request target (path and query) answered; 414 above it. API Gateway's own
/// limits are lower; this bounds the local server.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header lines, and header bytes (names and values), a request may carry; 431 above.
/// The local server's HTTP library answers a bare 431 of its own beyond 128 lines or about
/// 400 KiB; below that every refusal is a problem document.
pub const MAX_HEADER_COUNT: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The id of the current request: the caller's `x-request-id` when it is sane, else API Gateway's
/// request id, else a fresh UUID. Echoed in the response and in every problem document.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The X-Ray trace header of the invocation serving the request, on Lambda (from the runtime's
/// context, never from a header the caller could set).
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = caller_request_id(&request).or_else(|| gateway_request_id(&request)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace_id = invocation_trace_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    if let Some(trace_id) = &trace_id {
        request.extensions_mut().insert(TraceId(trace_id.clone()));
    }
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = trace_id.as_deref().unwrap_or_default(),
        method = %request.method(),
        path = %request.uri().path()
    );
    let started = std::time::Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), latency_ms = started.elapsed().as_secs_f64() * 1000.0, "answered")
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn caller_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(REQUEST_ID)?.to_str().ok()?;
    let sane = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| value.to_owned())
}

fn invocation_trace_id(request: &Request) -> Option<String> {
    let trace_id = request.extensions().get::<lambda_http::Context>()?.xray_trace_id.as_deref()?;
    (!trace_id.is_empty() && trace_id.len() <= 256).then(|| trace_id.to_owned())
}

fn gateway_request_id(request: &Request) -> Option<String> {
    match request.extensions().get::<lambda_http::request::RequestContext>()? {
        lambda_http::request::RequestContext::ApiGatewayV2(context) => context.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Writes the body of every problem response, and turns the router's bare 405s into problems.
pub async fn render_problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let mut response = next.run(request).await;
    let problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(header::ALLOW).cloned().unwrap_or_else(|| HeaderValue::from_static(""));
            Problem::method_not_allowed(allow)
        }
        None => return response,
    };
    let document = problem.document(&instance, &request_id);
    let body = serde_json::to_vec(&document).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Refuses, as problems, request targets and header sections over the limits above, before any
/// route (or authentication) looks at them.
pub async fn request_limits(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        let detail = format!("the request target is {target} bytes; at most {MAX_URI_BYTES} are accepted");
        return Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long", detail).into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADER_COUNT || bytes > MAX_HEADER_BYTES {
        let detail = format!(
            "{} header lines of {bytes} bytes; at most {MAX_HEADER_COUNT} lines and {MAX_HEADER_BYTES} bytes are accepted",
            headers.len()
        );
        return Problem::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large", "Request headers too large", detail)
            .into_response();
    }
    next.run(request).await
}

/// The authentication guard of one route.
#[derive(Clone)]
struct Guard {
    auth: Authenticator,
    scope: Scope,
}

/// `route` answers only callers that `auth` lets through with `scope`; they reach the handler with
/// their [`Tenant`] (and [`Principal`]) in the request extensions.
pub fn protect(route: MethodRouter, auth: &Authenticator, scope: Scope) -> MethodRouter {
    route.route_layer(axum::middleware::from_fn_with_state(Guard { auth: auth.clone(), scope }, require))
}

async fn require(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match guard.auth.authorize(request.headers(), request.extensions(), guard.scope).await {
        Ok(principal) => {
            let tenant: Tenant = principal.tenant.clone();
            request.extensions_mut().insert(tenant);
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => {
            metrics::counter!(plan::metrics::AUTH_REFUSALS.name, "reason" => error.reason()).increment(1);
            match &error {
                AuthError::KeysUnavailable => tracing::warn!(%error, "request refused"),
                _ => tracing::info!(%error, "request refused"),
            }
            ApiError::Auth(error).into_response()
        }
    }
}
