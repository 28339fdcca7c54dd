//! Lambda function for `GET /v1/schema/plan`: no backend, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::begin("get-schema").await?;
    start.serve(start.api()?.schema()).await
}
