//! Serving one endpoint as an AWS Lambda function.

use crate::{Backends, Config, Deployment, Endpoint, router};

/// Cold start: logging as configured by the function's LoggingConfig, configuration (every
/// problem named at once), clients built once; then the runtime loop, one request at a time.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    #[allow(unused_mut)]
    let mut config = Config::from_env(Deployment::Lambda)?;
    #[cfg(feature = "msk")]
    config.resolve_msk_brokers().await?;
    if endpoint.writes() && config.kafka.is_none() {
        return Err(format!("{} publishes change events: set KAFKA_BOOTSTRAP_SERVERS", endpoint.function()).into());
    }
    let backends = Backends::from_config(&config, None)?;
    tracing::info!(function = endpoint.function(), "cold start complete");
    lambda_http::run(router(&[endpoint], &backends)).await
}
