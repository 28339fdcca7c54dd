//! The HTTP edge shared by every Lambda function and the local server: configuration, backends,
//! routes, extractors and RFC 9457 problem responses. Handlers extract, make one call into the
//! `plan` use cases, and answer.

pub mod auth;
pub mod backends;
pub mod config;
pub mod docs;
pub mod emf;
pub mod extract;
pub mod lambda;
pub mod middleware;
#[cfg(feature = "api-docs")]
pub mod openapi;
pub mod problem;
pub mod request_metrics;
pub mod routes;
mod search;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::Authenticator;
pub use backends::{Backends, StartupError};
pub use config::{Config, Deployment};
pub use routes::Endpoint;

use crate::problem::Problem;

/// Where the local server publishes its development issuer's public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A router serving `endpoints` (each behind authentication unless public), with the API's
/// 404/405 problems, request ids and panic guard; the documentation endpoints among them are
/// served when this build has them (`docs::ROUTES`).
pub fn router(endpoints: &[Endpoint], backends: &Backends) -> Router {
    with_edge_layers(endpoint_routes(endpoints, backends, docs::ROUTES))
}

/// [`router`] for the API's own endpoints, never the documentation: what every function but
/// api-docs runs, so that nothing it can reach refers to the embedded page (see `docs`).
pub fn api_router(endpoints: &[Endpoint], backends: &Backends) -> Router {
    with_edge_layers(endpoint_routes(endpoints, backends, None))
}

/// Every endpoint in one router: the local server. When it is its own issuer, it also serves the
/// issuer's JWKS, so other processes (a function under `cargo lambda watch`) can verify its tokens.
pub fn app(backends: &Backends) -> Router {
    let mut routes = endpoint_routes(&Endpoint::ALL, backends, docs::ROUTES);
    if let Some(jwks) = backends.auth().published_jwks() {
        let body = axum::body::Bytes::from(serde_json::to_vec(jwks).unwrap_or_default());
        routes = routes.route(
            JWKS_PATH,
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/jwk-set+json"), (header::CACHE_CONTROL, "public, max-age=300")], body) }
            }),
        );
    }
    with_edge_layers(routes)
}

fn endpoint_routes(endpoints: &[Endpoint], backends: &Backends, docs: Option<docs::DocsRoute>) -> Router {
    endpoints.iter().fold(Router::new(), |router, endpoint| router.merge(endpoint.route(backends, docs)))
}

fn with_edge_layers(routes: Router) -> Router {
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
