//! The HTTP edge shared by every Lambda function and the local server: routes ([`Api`]),
//! extractors, authentication, middleware and RFC 9457 problem responses. Handlers extract, make
//! one call into the `plan` use cases (or the index's reads), and answer. It depends on no
//! adapter: the composition root (`plan-wiring`) builds the use cases and hands them to [`Api`].

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod auth;
pub mod docs;
pub mod extract;
pub mod middleware;
#[cfg(feature = "api-docs")]
pub mod openapi;
pub mod problem;
pub mod request_metrics;
pub mod routes;
mod search;

use axum::Router;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::Authenticator;
pub use routes::{Api, Endpoint};

use crate::problem::Problem;

/// Where the local server publishes its development issuer's public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub(crate) fn with_edge_layers(routes: Router) -> Router {
    routes
        .fallback(|| async { Problem::route_not_found() })
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "an unexpected error occurred")
                .into_response()
        }))
        .layer(axum::middleware::from_fn(middleware::request_limits))
        .layer(axum::middleware::from_fn(middleware::render_problems))
        .layer(axum::middleware::from_fn(middleware::request_id))
        // Outermost: every answer is counted, problems and refusals included, with its full latency.
        .layer(axum::middleware::from_fn(request_metrics::track_requests))
}
