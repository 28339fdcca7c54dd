//! Lambda function for `GET /v1/health`: a probe of each backend, and this endpoint alone.

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut start = ColdStart::begin("health").await?;
    let probes = start.probes().await?;
    start.serve(start.api()?.health(probes)).await
}
