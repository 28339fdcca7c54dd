//! Lambda function for `GET /v1/plan/es_plan/{planId}`: the search index, and this endpoint alone.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use plan_wiring::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::begin("get-indexed-plan").await?;
    let index = start.index_reads()?;
    start.serve(start.api()?.indexed_plan(index)).await
}
