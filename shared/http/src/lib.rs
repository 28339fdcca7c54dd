//! The HTTP edge shared by every Lambda function and the local server: configuration, backends,
//! routes, extractors and RFC 9457 problem responses. Handlers extract, make one call into the
//! `plan` use cases, and answer.

pub mod backends;
pub mod config;
pub mod extract;
pub mod lambda;
pub mod middleware;
pub mod problem;
pub mod routes;
mod search;

use axum::Router;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;

pub use backends::Backends;
pub use config::{Config, Deployment};
pub use routes::Endpoint;

use crate::problem::Problem;

/// A router serving `endpoints`, with the API's 404/405 problems, request ids and panic guard.
pub fn router(endpoints: &[Endpoint], backends: &Backends) -> Router {
    let routes = endpoints.iter().fold(Router::new(), |router, endpoint| router.merge(endpoint.route(backends)));
    routes
        .fallback(|| async { Problem::route_not_found() })
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an unexpected error occurred")
                .into_response()
        }))
        .layer(axum::middleware::from_fn(middleware::render_problems))
        .layer(axum::middleware::from_fn(middleware::request_id))
}

/// Every endpoint in one router: the local server.
pub fn app(backends: &Backends) -> Router {
    router(&Endpoint::ALL, backends)
}
