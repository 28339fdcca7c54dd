//! Serving one endpoint as an AWS Lambda function.

use crate::{Backends, Config, Deployment, Endpoint, router};

/// Cold start: logging as configured by the function's LoggingConfig, configuration (every
/// problem named at once), clients built once; then the runtime loop, one request at a time.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env(Deployment::Lambda)?;
    if endpoint.uses_index() && config.opensearch.is_none() {
        // The embedded index would be empty in a function of its own: refuse rather than answer
        // every search with nothing.
        return Err(format!("OPENSEARCH_URL is required for {} on Lambda", endpoint.function()).into());
    }
    let backends = Backends::from_config(&config)?;
    tracing::info!(function = endpoint.function(), "cold start complete");
    lambda_http::run(router(&[endpoint], &backends)).await
}
