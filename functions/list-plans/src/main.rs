//! Lambda function for `GET /v1/plan`: the store, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut start = ColdStart::begin("list-plans").await?;
    let reads = start.reads().await?;
    start.serve(start.api()?.list_plans(reads)).await
}
