//! Lambda function for `GET /v1/openapi.json, GET /docs and GET /docs/{asset}`: no backend, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::begin("api-docs").await?;
    start.serve(start.api()?.docs()).await
}
