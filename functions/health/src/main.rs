//! Lambda function for `GET /v1/health`: a probe of each backend, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut start = ColdStart::begin("health").await?;
    let probes = start.probes().await?;
    start.serve(start.api()?.health(probes)).await
}
